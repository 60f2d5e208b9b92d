using System.Linq;
using System.Text;
using NetnsNat.Backends;
using NetnsNat.Linux;
using NetnsNat.Model;
using Xunit;

namespace NetnsNat.Tests
{
    // What the nf_tables encoder takes on and what it leaves to iptables-restore. That the bytes it writes are the
    // ones iptables-nft writes is checked against the kernel in tests/Pester/NftRules.Tests.ps1.
    public class NftRulesTests
    {
        private static IptablesRule Rule(string table, string chain, string spec) =>
            IptablesRule.Create(table, chain, IptablesRule.Tokenize(spec));

        [Fact]
        public void Encodes_each_rule_this_module_writes()
        {
            Assert.True(Cidr.TryParsePrefix("10.0.0.0/24", out var p, out _));
            foreach (var rule in MasqueradeRules.For(new SubnetNat(p.Network, "eth0", "br0")))
            {
                Assert.NotNull(NftRuleWriter.Encode(rule, AddressFamilyProfile.IPv4));
            }
        }

        [Fact]
        public void A_lookup_reads_the_same_from_a_batch_and_from_the_kernel_and_differs_by_set_map_or_inversion()
        {
            // A batch names the set and its id in the batch, without flags; the kernel lists the name and flags 0.
            static string Lookup(params byte[][] fields) => NftRuleSignature.Of(NftRuleWriter.Expression("lookup", fields), System.Array.Empty<byte>());
            var name = NetlinkAttributes.Attribute(1, Nfnl.Text("inbound4"));
            var batch = Lookup(name, Nfnl.U32(2, 1), Nfnl.U32(4, 7));
            Assert.Equal(batch, Lookup(name, Nfnl.U32(2, 9), Nfnl.U32(5, 0)));
            Assert.NotEqual(batch, Lookup(name, Nfnl.U32(2, 1), Nfnl.U32(5, 1)));
            Assert.NotEqual(batch, Lookup(name, Nfnl.U32(2, 1), Nfnl.U32(3, 1)));
            Assert.NotEqual(batch, Lookup(NetlinkAttributes.Attribute(1, Nfnl.Text("inbound6")), Nfnl.U32(2, 1)));
        }

        [Fact]
        public void Keeps_the_comment_as_user_data_type_0_with_its_NUL()
        {
            var encoding = NftRuleWriter.Encode(MasqueradeRules.ForwardOut("10.0.0.0/24", "br0", "eth0"), AddressFamilyProfile.IPv4)!;
            Assert.Equal(new byte[] { 0, 9 }.Concat(Encoding.ASCII.GetBytes("netnsnat\0")).ToArray(), encoding.UserData);
            Assert.DoesNotContain("comment", Encoding.ASCII.GetString(encoding.Expressions));
            Assert.Empty(NftRuleWriter.Encode(MasqueradeRules.Masquerade("10.0.0.0/24", "eth0"), AddressFamilyProfile.IPv4)!.UserData);
        }

        [Theory]
        [InlineData("filter", "FORWARD", "-p tcp -s 10.0.0.0/24 -j ACCEPT")]
        [InlineData("filter", "FORWARD", "! -s 10.0.0.0/24 -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-s 10.0.0.0/24 -j REJECT")]
        [InlineData("filter", "FORWARD", "-s 10.0.0.0/24 -j MASQUERADE")]
        [InlineData("nat", "POSTROUTING", "-s 10.0.0.0/24 -o eth0 -j MASQUERADE --random")]
        [InlineData("filter", "FORWARD", "-s 0.0.0.0/0 -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-d 10.0.0.0/24 -m conntrack --ctstate UNTRACKED -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-d 10.0.0.0/24 -m comment --comment netnsnat -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-d 10.0.0.0/24 -m comment --comment a -m comment --comment b -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-s 10.0.0.0/24 ! -o eth0 -j ACCEPT")]
        [InlineData("filter", "FORWARD", "-s fd00::/64 -j ACCEPT")]
        public void Leaves_other_shapes_to_iptables_restore(string table, string chain, string spec)
        {
            Assert.Null(NftRuleWriter.Encode(Rule(table, chain, spec), AddressFamilyProfile.IPv4));
        }

        // The reader of the ruleset over netlink (NftRulesetReader) turns the kernel's expressions back into the tokens
        // iptables-save prints; against iptables-save itself it is checked in tests/Pester/NftRules.Tests.ps1.
        [Theory]
        [InlineData("10.0.0.0/24", "eth0", "br0")]
        [InlineData("172.16.0.0/12", "e", "abcdefghijklmno")]
        [InlineData("192.168.128.0/17", "wlp0s20f3", "br-lan.7")]
        [InlineData("10.0.0.4/30", "eth0", "br0")]
        [InlineData("10.0.0.7/32", "eth0", "br0")]
        [InlineData("10.3.0.0/24", "eth+", "veth+")]
        public void Reads_back_each_rule_this_module_writes(string subnet, string outbound, string bridge)
        {
            Assert.True(Cidr.TryParsePrefix(subnet, out var p, out _));
            foreach (var rule in MasqueradeRules.For(new SubnetNat(p.Network, outbound, bridge)))
            {
                var encoding = NftRuleWriter.Encode(rule, AddressFamilyProfile.IPv4)!;
                var tokens = NftRulesetReader.Decode(AddressFamilyProfile.IPv4, encoding.Expressions, encoding.UserData);
                Assert.NotNull(tokens);
                Assert.Equal(rule.Specification, tokens);
            }
        }

        [Fact]
        public void Reads_back_the_conntrack_states_in_iptables_order()
        {
            var rule = Rule("filter", "FORWARD", "-d 10.0.0.0/24 -o br0 -m conntrack --ctstate ESTABLISHED,INVALID,NEW,RELATED -j DROP");
            var encoding = NftRuleWriter.Encode(rule, AddressFamilyProfile.IPv4)!;
            Assert.Equal("-d 10.0.0.0/24 -o br0 -m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED -j DROP",
                string.Join(" ", NftRulesetReader.Decode(AddressFamilyProfile.IPv4, encoding.Expressions, encoding.UserData)!));
        }

        [Fact]
        public void Leaves_a_rule_it_does_not_know_to_iptables_save()
        {
            var encoding = NftRuleWriter.Encode(MasqueradeRules.Masquerade("10.0.0.0/24", "eth0"), AddressFamilyProfile.IPv4)!;
            // The same rule with an expression the reader does not know ("limit") before the target.
            var limit = NetlinkAttributes.Attribute(1 | 0x8000, NetlinkAttributes.Concat(NetlinkAttributes.Attribute(1, Encoding.ASCII.GetBytes("limit\0")), NetlinkAttributes.Attribute(2 | 0x8000, new byte[0])));
            Assert.Null(NftRulesetReader.Decode(AddressFamilyProfile.IPv4, NetlinkAttributes.Concat(limit, encoding.Expressions), encoding.UserData));
            // User data that is not a comment.
            Assert.Null(NftRulesetReader.Decode(AddressFamilyProfile.IPv4, encoding.Expressions, new byte[] { 1, 2, 65, 0 }));
        }

        [Fact]
        public void A_plan_that_deletes_is_not_for_the_netlink_path()
        {
            var rule = MasqueradeRules.Masquerade("10.0.0.0/24", "eth0");
            var plan = RulePlan.Of(new[] { rule }, new IptablesRule[0], new IptablesRule[0]);
            Assert.Equal(NftWriteResult.NotForThisPath, NftRuleWriter.TryWrite(plan, AddressFamilyProfile.IPv4));
        }

        [Fact]
        public void An_insert_below_a_rule_the_batch_did_not_write_is_not_for_the_netlink_path()
        {
            var rule = MasqueradeRules.ForwardOut("10.0.0.0/24", "br0", "eth0");
            var plan = new RulePlan(new[] { new RuleChange(RuleChangeKind.Insert, rule, 2) });
            Assert.Equal(NftWriteResult.NotForThisPath, NftRuleWriter.TryWrite(plan, AddressFamilyProfile.IPv4));
        }

        [Fact]
        public void Encodes_ipv6_rules_with_the_ipv6_header_offsets()
        {
            var rule = MasqueradeRules.ForwardOut("fd00:1::/64", "br0", "eth0");
            var v6 = NftRuleWriter.Encode(rule, AddressFamilyProfile.IPv6)!;
            Assert.NotNull(v6);
            // payload load of 8 bytes at offset 8 (the IPv6 source address), not 12 as in IPv4
            var hex = System.Convert.ToHexString(v6.Expressions);
            Assert.Contains("0800030000000008" + "0800040000000008", hex);
            Assert.Null(NftRuleWriter.Encode(rule, AddressFamilyProfile.IPv4));
        }
    }
}
