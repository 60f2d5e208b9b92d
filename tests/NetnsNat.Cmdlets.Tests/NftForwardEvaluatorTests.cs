using System.Collections.Generic;
using System.Net;
using System.Text;
using NetnsNat.Backends;
using NetnsNat.Model;
using Xunit;
using static NetnsNat.Linux.NetlinkAttributes;
using static NetnsNat.Linux.Nfnl;

namespace NetnsNat.Cmdlets.Tests
{
    /// <summary>
    /// Another table's forward chain walked for a bridge's traffic: rules built as nft's netlink dump holds them (the
    /// expressions nft --debug=netlink prints for each), the bridge br0 with 10.0.0.0/24 out of eth0.
    /// </summary>
    public class NftForwardEvaluatorTests
    {
        private static readonly IPNetwork Subnet = IPNetwork.Parse("10.0.0.0/24");
        private static readonly ForwardPacket Out = new ForwardPacket("br0", "eth0", IPAddress.Parse("10.0.0.2"), IPAddress.Parse("192.0.2.1"), "NEW");
        private static readonly ForwardPacket Reply = new ForwardPacket("eth0", "br0", IPAddress.Parse("192.0.2.1"), IPAddress.Parse("10.0.0.2"), "ESTABLISHED");
        private const uint Accept = 1, Drop = 0, Jump = 0xfffffffd;

        private static ulong _handle;

        /// <summary>A rule as the dump gives it: the nfgenmsg header, its handle, its expressions.</summary>
        private static byte[] Rule(params byte[][] expressions) =>
            Concat(new byte[4], U64(3, ++_handle), Attribute(4 | NLA_F_NESTED, Concat(expressions)));

        private static byte[] Meta(uint key, uint register = 1) => NftRuleWriter.Expression("meta", U32(2, key), U32(1, register));

        private static byte[] Name(string name, int length = 16)
        {
            var bytes = new byte[length];
            Encoding.ASCII.GetBytes(name).CopyTo(bytes, 0);
            return bytes;
        }

        /// <summary>iifname (6) or oifname (7) "name"; with a * at the end, nft compares the prefix only.</summary>
        private static byte[][] Interface(uint key, string name) => name.EndsWith('*')
            ? new[] { Meta(key), NftRuleWriter.Cmp(Encoding.ASCII.GetBytes(name.TrimEnd('*'))) }
            : new[] { Meta(key), NftRuleWriter.Cmp(Name(name)) };

        /// <summary>ct state established,related: the state bits masked, not zero.</summary>
        private static byte[][] EstablishedRelated() => new[]
        {
            NftRuleWriter.Expression("ct", U32(1, 1), U32(2, 0)),
            NftRuleWriter.Expression("bitwise", U32(1, 1), U32(2, 1), U32(3, 4),
                Attribute(4 | NLA_F_NESTED, Attribute(1, new byte[] { 6, 0, 0, 0 })), Attribute(5 | NLA_F_NESTED, Attribute(1, new byte[4])), U32(6, 0)),
            NftRuleWriter.Cmp(new byte[4], negated: true),
        };

        /// <summary>ip saddr (offset 12) or daddr (16) == the prefix, as nft loads whole bytes of it.</summary>
        private static byte[][] Address(uint offset, string prefix)
        {
            var network = IPNetwork.Parse(prefix);
            int bytes = network.PrefixLength / 8;
            return new[]
            {
                NftRuleWriter.Expression("payload", U32(1, 1), U32(2, 1), U32(3, offset), U32(4, (uint)bytes)),
                NftRuleWriter.Cmp(network.BaseAddress.GetAddressBytes()[..bytes]),
            };
        }

        private static byte[] With(byte[][] matches, params byte[][] more)
        {
            var all = new List<byte[]>(matches);
            all.AddRange(more);
            return Rule(all.ToArray());
        }

        private static NftChainVerdict Walk(bool policyDrop, ForwardPacket packet, params byte[][] rules) =>
            NftForwardEvaluator.Evaluate("inet filter forward", policyDrop, rules, AddressFamilyProfile.IPv4, packet, Subnet);

        [Fact]
        public void A_host_firewall_s_policy_drop_that_accepts_only_replies_and_another_interface_drops_the_bridge_s_traffic_out()
        {
            var rules = new[] { With(EstablishedRelated(), NftRuleWriter.Verdict(Accept)), With(Interface(6, "docker0"), NftRuleWriter.Verdict(Accept)) };
            var outgoing = Walk(true, Out, rules);
            Assert.Equal(NftChainOutcome.Dropped, outgoing.Outcome);
            Assert.Equal("policy drop", outgoing.By);
            var reply = Walk(true, Reply, rules);
            Assert.Equal(NftChainOutcome.Accepted, reply.Outcome);
            Assert.Matches("^rule handle \\d+ \\(accept\\)$", reply.By);
        }

        [Fact]
        public void The_bridge_s_own_accept_and_a_prefix_match_of_its_name_let_it_out()
        {
            Assert.Equal(NftChainOutcome.Accepted, Walk(true, Out, Rule(Concat(Interface(6, "br0")), Concat(Interface(7, "eth0")), NftRuleWriter.Verdict(Accept))).Outcome);
            Assert.Equal(NftChainOutcome.Accepted, Walk(true, Out, Rule(Concat(Interface(6, "br*")), NftRuleWriter.Verdict(Accept))).Outcome);
            Assert.Equal(NftChainOutcome.Dropped, Walk(true, Out, Rule(Concat(Interface(6, "eth*")), NftRuleWriter.Verdict(Accept))).Outcome);
        }

        [Fact]
        public void A_verdict_map_is_no_certain_drop_after_it()
        {
            // ct state vmap { established : accept, related : accept, invalid : drop }: a lookup into the verdict register.
            var vmap = Rule(NftRuleWriter.Expression("ct", U32(1, 1), U32(2, 0)), NftRuleWriter.Expression("lookup", Attribute(1, Text("__map0")), U32(2, 1), U32(3, 0)));
            var reply = Walk(true, Reply, vmap, With(Interface(6, "br0"), NftRuleWriter.Verdict(Accept)));
            Assert.Equal(NftChainOutcome.Unknown, reply.Outcome);
            Assert.Contains("or else policy drop", reply.By);
        }

        [Fact]
        public void A_jump_whose_match_is_not_evaluated_leaves_a_later_drop_open()
        {
            // meta l4proto tcp jump allow_tcp: the protocol is not modelled.
            var jump = Rule(Meta(16), NftRuleWriter.Cmp(new byte[] { 6 }), Concat(NftRuleWriter.Expression("immediate", U32(1, 0),
                Attribute(2 | NLA_F_NESTED, Attribute(2 | NLA_F_NESTED, Concat(U32(1, Jump), Attribute(2, Text("allow_tcp"))))))));
            var outgoing = Walk(true, Out, jump);
            Assert.Equal(NftChainOutcome.Unknown, outgoing.Outcome);
            Assert.Contains(outgoing.Uncertain, u => u.Contains("(jump)"));
        }

        [Fact]
        public void Only_what_the_whole_bridge_shares_is_known_of_its_addresses()
        {
            // One namespace address, or one outside address, decides nothing for the bridge's traffic, not even the very ones of the packet walked.
            Assert.NotEqual(NftChainOutcome.Dropped, Walk(false, Out, With(Address(12, "10.0.0.2/32"), NftRuleWriter.Verdict(Drop))).Outcome);
            Assert.NotEqual(NftChainOutcome.Dropped, Walk(false, Out, With(Address(16, "192.0.2.1/32"), NftRuleWriter.Verdict(Drop))).Outcome);
            // The subnet, or a network that holds it, is all of it; another network none of it.
            Assert.Equal(NftChainOutcome.Dropped, Walk(false, Out, With(Address(12, "10.0.0.0/24"), NftRuleWriter.Verdict(Drop))).Outcome);
            Assert.Equal(NftChainOutcome.Dropped, Walk(false, Out, With(Address(12, "10.0.0.0/16"), NftRuleWriter.Verdict(Drop))).Outcome);
            Assert.Equal(NftChainOutcome.Accepted, Walk(false, Out, With(Address(12, "10.1.0.0/16"), NftRuleWriter.Verdict(Drop))).Outcome);
        }

        [Fact]
        public void An_expression_it_does_not_model_forgets_the_registers_it_may_have_written()
        {
            // iifname "br0" loaded, then fib writes register 1; a cmp of it afterwards decides nothing.
            var rule = Rule(Meta(6), NftRuleWriter.Expression("fib", U32(1, 1), U32(2, 3), U32(3, 2)), NftRuleWriter.Cmp(Name("eth0")), NftRuleWriter.Verdict(Drop));
            var verdict = Walk(false, Out, rule);
            Assert.Equal(NftChainOutcome.Accepted, verdict.Outcome);
            Assert.Contains(verdict.Uncertain, u => u.Contains("(drop)"));
        }
    }
}
