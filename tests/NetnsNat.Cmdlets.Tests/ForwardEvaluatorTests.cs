using System.Net;
using NetnsNat.Backends;
using NetnsNat.Linux;
using Xunit;

namespace NetnsNat.Tests
{
    public class ForwardEvaluatorTests
    {
        private static IPAddress A(string text)
        {
            Assert.True(Cidr.TryParseAddress(text, out var a));
            return a;
        }

        private static readonly ForwardPacket Out = new ForwardPacket("br0", "eth0", A("10.0.0.2"), A("192.0.2.1"), "NEW");
        private static readonly ForwardPacket Reply = new ForwardPacket("eth0", "br0", A("192.0.2.1"), A("10.0.0.2"), "ESTABLISHED");
        private static readonly ForwardPacket Inbound = new ForwardPacket("eth0", "br0", A("192.0.2.1"), A("10.0.0.2"), "NEW");

        private const string Ours =
            "-A FORWARD -s 10.0.0.0/24 -i br0 -o eth0 -m comment --comment netnsnat -j ACCEPT\n" +
            "-A FORWARD -d 10.0.0.0/24 -i eth0 -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment netnsnat -j ACCEPT\n" +
            "-A FORWARD -d 10.0.0.0/24 -i eth0 -o br0 -m comment --comment netnsnat -j DROP\n";

        private static ForwardVerdict Eval(string filter, ForwardPacket p, string policy = "ACCEPT") =>
            ForwardEvaluator.Evaluate(IptablesSnapshot.Parse($"*filter\n:FORWARD {policy} [0:0]\n{filter}COMMIT\n"), p);

        [Fact]
        public void Our_rules_let_traffic_out_and_replies_in_but_not_new_inbound_even_under_policy_drop()
        {
            Assert.True(Eval(Ours, Out, "DROP").Accepted);
            Assert.True(Eval(Ours, Reply, "DROP").Accepted);
            var inbound = Eval(Ours, Inbound);
            Assert.False(inbound.Accepted);
            Assert.Contains("DROP", inbound.By);
        }

        [Fact]
        public void The_policy_decides_when_no_rule_matches()
        {
            var v = Eval(string.Empty, Out, "DROP");
            Assert.False(v.Accepted);
            Assert.Equal("policy DROP", v.By);
        }

        [Fact]
        public void A_reject_with_options_before_our_rules_blocks()
        {
            var v = Eval("-A FORWARD -i br0 -j REJECT --reject-with icmp-port-unreachable\n" + Ours, Out);
            Assert.False(v.Accepted);
            Assert.Empty(v.Uncertain);
        }

        [Fact]
        public void A_drop_with_a_protocol_match_is_uncertain_not_decisive()
        {
            var v = Eval("-A FORWARD -p tcp -i br0 -j DROP\n" + Ours, Out);
            Assert.True(v.Accepted);
            Assert.Single(v.Uncertain);
        }

        [Fact]
        public void User_chains_are_followed_and_return_comes_back()
        {
            var filter = ":DOCKER-USER - [0:0]\n:BLOCK - [0:0]\n-A FORWARD -j DOCKER-USER\n-A FORWARD -o eth+ -j BLOCK\n" + Ours +
                "-A DOCKER-USER -j RETURN\n-A BLOCK -s 10.0.0.0/25 -j DROP\n";
            var v = Eval(filter, Out);
            Assert.False(v.Accepted);
            Assert.Contains("BLOCK", v.By);
            Assert.True(Eval(filter, new ForwardPacket("br0", "eth0", A("10.0.0.200"), A("192.0.2.1"), "NEW")).Accepted);
        }

        [Fact]
        public void A_negated_interface_match_is_decided_not_skipped()
        {
            // Docker's "! -o docker0" shape: a DROP for traffic to anywhere but eth0 blocks nothing going out by eth0.
            Assert.True(Eval("-A FORWARD -i br0 ! -o eth0 -j DROP\n" + Ours, Out).Accepted);
            var v = Eval("-A FORWARD -i br0 ! -o wlan0 -j DROP\n" + Ours, Out);
            Assert.False(v.Accepted);
            Assert.Empty(v.Uncertain);
        }

        [Theory]
        [InlineData("eth+", "eth0", true)]
        [InlineData("eth+", "wlan0", false)]
        [InlineData("br0", "br0", true)]
        [InlineData("br0", "br01", false)]
        public void Interface_wildcards(string pattern, string name, bool match) => Assert.Equal(match, ForwardEvaluator.InterfaceMatches(pattern, name));
    }
}
