using System.Linq;
using System.Net;
using NetnsNat.Backends;
using NetnsNat.Model;
using Xunit;

namespace NetnsNat.Tests
{
    /// <summary>The rules of a port mapping: their text is what iptables-save prints, and planning them is idempotent.</summary>
    public class PortMappingRulesTests
    {
        private static PortMapping M(int external, string inside = "10.0.0.2", int port = 80, string? externalAddress = "198.51.100.1", string? remote = null)
        {
            IPNetwork? r = remote == null ? null : IPNetwork.Parse(remote);
            var address = IPAddress.Parse(inside);
            var subnet = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? IPNetwork.Parse("fd00:0:0:1::/64") : IPNetwork.Parse("10.0.0.0/24");
            return new PortMapping("tcp", externalAddress == null ? null : IPAddress.Parse(externalAddress), external, address, port, r, "br0", subnet, "eth0");
        }

        /// <summary>A ruleset as iptables-save would print it after the plan (the rules' own text, table by table).</summary>
        private static IptablesSnapshot After(IptablesSnapshot before, RulePlan plan) => before.Apply(plan, out _);

        private static IptablesSnapshot Empty() => IptablesSnapshot.Parse("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n");

        [Fact]
        public void Rules_are_written_as_iptables_save_prints_them()
        {
            var rules = PortMappingRules.For(M(8080, remote: "192.0.2.0/24")).Select(r => r.ToString()).ToArray();
            Assert.Equal(new[]
            {
                "-t nat -A PREROUTING -s 192.0.2.0/24 -d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10.0.0.2:80",
                "-t nat -A OUTPUT -s 192.0.2.0/24 -d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10.0.0.2:80",
                "-t nat -A POSTROUTING -s 10.0.0.0/24 -d 10.0.0.2/32 -o br0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment netnsnat -j MASQUERADE",
                "-A FORWARD -s 192.0.2.0/24 -d 10.0.0.2/32 -o br0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment netnsnat -j ACCEPT",
                "-A FORWARD -s 10.0.0.2/32 -i br0 -o br0 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT -m comment --comment netnsnat -j ACCEPT",
            }, rules);
            var any6 = PortMappingRules.For(M(8080, "fd00:0:0:1::2", externalAddress: null)).Select(r => r.ToString()).ToArray();
            Assert.Equal("-t nat -A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination [fd00:0:0:1::2]:80", any6[0]);
            Assert.Equal("-t nat -A OUTPUT ! -d ::1/128 -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination [fd00:0:0:1::2]:80", any6[1]);
        }

        [Fact]
        public void Mappings_read_back_from_the_rules_are_the_same_mappings()
        {
            var mappings = new[] { M(8080), M(8081, externalAddress: null, remote: "192.0.2.0/24"), M(5353, port: 53) };
            var s = After(Empty(), RulePlanner.PlanAdd(Empty(), PortMappingRules.Describe(mappings)));
            var read = PortMappingRules.Parse(s, _ => null);
            Assert.Equal(3, read.Count);
            foreach (var m in mappings) Assert.Contains(read, r => r.SameAs(m) && r.Bridge == "br0" && r.Subnet.Equals(m.Subnet));
        }

        [Fact]
        public void Adding_the_same_mappings_again_plans_nothing_whatever_order_they_were_laid_in()
        {
            var s = After(Empty(), RulePlanner.PlanAdd(Empty(), PortMappingRules.Describe(new[] { M(8080) })));
            s = After(s, RulePlanner.PlanAdd(s, PortMappingRules.Describe(new[] { M(9090, port: 81) })));
            Assert.True(RulePlanner.PlanAdd(s, PortMappingRules.Describe(new[] { M(8080), M(9090, port: 81) })).IsEmpty);
            Assert.True(RulePlanner.PlanAdd(s, PortMappingRules.Describe(new[] { M(8080) })).IsEmpty);
        }

        [Fact]
        public void Mappings_that_share_a_namespace_port_share_rules_and_removing_one_keeps_the_shared_ones()
        {
            var a = M(8080);
            var b = M(8088);
            var s = After(Empty(), RulePlanner.PlanAdd(Empty(), PortMappingRules.Describe(new[] { a, b })));
            Assert.Equal(2 + 2 + 1 + 2, s.Rules.Count);
            var removal = PortMappingRules.Removal(s, a, new[] { b });
            Assert.Equal(new[] { "PREROUTING", "OUTPUT" }, removal.Select(r => r.Chain).ToArray());
            Assert.Equal(5, PortMappingRules.Removal(s, a, new PortMapping[0]).Count);
        }

        [Fact]
        public void A_drop_above_the_forward_rules_makes_the_planner_lay_them_on_top_again()
        {
            var s = After(Empty(), RulePlanner.PlanAdd(Empty(), PortMappingRules.Describe(new[] { M(8080) })));
            var drop = IptablesRule.Create("filter", "FORWARD", new[] { "-d", "10.0.0.0/24", "-i", "eth0", "-o", "br0", "-m", "comment", "--comment", "netnsnat", "-j", "DROP" });
            s = After(s, new RulePlan(new[] { new RuleChange(RuleChangeKind.Insert, drop, 1) }));
            var plan = RulePlanner.PlanAdd(s, PortMappingRules.Describe(new[] { M(8080) }));
            Assert.Equal(2, plan.Deleted.Count());
            Assert.Equal(new[] { 1, 2 }, plan.Changes.Where(c => c.Kind == RuleChangeKind.Insert).Select(c => c.Position).ToArray());
        }

        [Theory]
        [InlineData("10.0.0.2", "198.51.100.1", null)]
        [InlineData("10.0.0.2", null, "192.0.2.0/24")]
        [InlineData("fd00:0:0:1::2", "2001:db8:1::1", "2001:db8::/32")]
        [InlineData("fd00:0:0:1::2", null, null)]
        public void The_netlink_encoder_writes_each_rule_of_a_mapping_and_the_reader_reads_it_back(string inside, string? external, string? remote)
        {
            var m = M(8080, inside, 80, external, remote);
            var family = m.Family;
            foreach (var rule in PortMappingRules.For(m))
            {
                var encoding = NftRuleWriter.Encode(rule, family);
                Assert.NotNull(encoding);
                Assert.Equal(6u, encoding!.Protocol);
                var tokens = NftRulesetReader.Decode(family, encoding.Expressions, encoding.UserData);
                Assert.NotNull(tokens);
                Assert.Equal(rule.Specification, tokens);
            }
        }

        [Theory]
        [InlineData("nat", "PREROUTING", "-d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80")]
        [InlineData("nat", "PREROUTING", "-d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10.0.0.2:80-90")]
        [InlineData("nat", "PREROUTING", "-d 198.51.100.1/32 -p sctp -m sctp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10.0.0.2:80")]
        [InlineData("nat", "PREROUTING", "! -s 198.51.100.1/32 -p tcp -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10.0.0.2:80")]
        [InlineData("filter", "FORWARD", "-d 10.0.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment netnsnat -j DROP")]
        public void The_netlink_encoder_leaves_other_shapes_to_iptables_restore(string table, string chain, string spec)
        {
            Assert.Null(NftRuleWriter.Encode(IptablesRule.Create(table, chain, IptablesRule.Tokenize(spec)), AddressFamilyProfile.IPv4));
        }

        [Fact]
        public void Overlap_is_the_same_port_on_the_same_address_or_on_every_address()
        {
            Assert.True(M(8080).Overlaps(M(8080, "10.0.0.3")));
            Assert.True(M(8080).Overlaps(M(8080, "10.0.0.3", externalAddress: null)));
            Assert.False(M(8080).Overlaps(M(8081)));
            Assert.False(M(8080).Overlaps(M(8080, externalAddress: "198.51.100.2")));
            Assert.False(M(8080).Overlaps(M(8080, "fd00:0:0:1::2", externalAddress: "2001:db8:1::1")));
            Assert.True(M(8080).SameAs(M(8080)));
            Assert.False(M(8080).SameAs(M(8080, port: 81)));
        }
    }
}
