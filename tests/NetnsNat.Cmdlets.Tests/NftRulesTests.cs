using System.Linq;
using System.Text;
using NetnsNat.Linux;
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
            foreach (var rule in NatRules.For("10.0.0.0/24", "eth0", "br0"))
            {
                Assert.NotNull(NftRules.Encode(rule));
            }
        }

        [Fact]
        public void Keeps_the_comment_as_user_data_type_0_with_its_NUL()
        {
            var encoding = NftRules.Encode(NatRules.ForwardOut("10.0.0.0/24", "br0", "eth0"))!;
            Assert.Equal(new byte[] { 0, 9 }.Concat(Encoding.ASCII.GetBytes("netnsnat\0")).ToArray(), encoding.UserData);
            Assert.DoesNotContain("comment", Encoding.ASCII.GetString(encoding.Expressions));
            Assert.Empty(NftRules.Encode(NatRules.Masquerade("10.0.0.0/24", "eth0"))!.UserData);
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
        public void Leaves_other_shapes_to_iptables_restore(string table, string chain, string spec)
        {
            Assert.Null(NftRules.Encode(Rule(table, chain, spec)));
        }

        [Fact]
        public void A_plan_that_deletes_is_not_for_the_netlink_path()
        {
            var rule = NatRules.Masquerade("10.0.0.0/24", "eth0");
            var plan = new RulePlan(new[] { rule }, new IptablesRule[0], new IptablesRule[0]);
            Assert.False(NftRules.TryWrite(plan));
        }
    }
}
