using System.Linq;
using NetnsNat.Linux;
using Xunit;

namespace NetnsNat.Tests
{
    public class CidrTests
    {
        [Theory]
        [InlineData("10.0.0.1/24", "10.0.0.0/24")]
        [InlineData("10.1.2.3/16", "10.1.0.0/16")]
        [InlineData("192.168.5.130/25", "192.168.5.128/25")]
        [InlineData("192.168.5.127/25", "192.168.5.0/25")]
        [InlineData("172.16.33.9/12", "172.16.0.0/12")]
        [InlineData("10.255.255.255/8", "10.0.0.0/8")]
        [InlineData("10.0.0.7/30", "10.0.0.4/30")]
        [InlineData("10.0.0.7/32", "10.0.0.7/32")]
        [InlineData("1.2.3.4/0", "0.0.0.0/0")]
        [InlineData("100.64.1.200/31", "100.64.1.200/31")]
        [InlineData("fd00::1/64", "fd00::/64")]
        [InlineData("2001:db8:1:2:3:4:5:6/61", "2001:db8:1::/61")]
        [InlineData("fd00::abcd/127", "fd00::abcc/127")]
        public void Network_clears_host_bits_for_every_prefix(string input, string expected)
        {
            Assert.True(Cidr.TryParsePrefix(input, out var prefix, out _));
            Assert.Equal(expected, Cidr.Format(prefix.Network));
        }

        [Fact]
        public void Every_prefix_length_matches_the_mask_arithmetic()
        {
            for (int prefix = 0; prefix <= 32; prefix++)
            {
                Assert.True(Cidr.TryParsePrefix($"255.255.255.255/{prefix}", out var cidr, out _));
                var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
                Assert.Equal(mask, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(cidr.Network.BaseAddress.GetAddressBytes()));
            }
            for (int prefix = 0; prefix <= 128; prefix++)
            {
                Assert.True(Cidr.TryParsePrefix($"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/{prefix}", out var cidr, out _));
                Assert.Equal(prefix, cidr.Network.BaseAddress.GetAddressBytes().Sum(b => System.Numerics.BitOperations.PopCount(b)));
            }
        }

        [Theory]
        [InlineData("10.0.0.0/33")]
        [InlineData("300.1.1.1/24")]
        [InlineData("10.0.0.1")]
        [InlineData("10.0.0/24")]
        [InlineData("10.0.0.0.0/24")]
        [InlineData("10.0.0.0/")]
        [InlineData("10.0.0.0/-1")]
        [InlineData("10.0.0.0/2 4")]
        [InlineData(" 10.0.0.0/24")]
        [InlineData("10.0.0.a/24")]
        [InlineData("10.0.0.0/24;reboot")]
        [InlineData("")]
        [InlineData("1000.0.0.0/8")]
        [InlineData("10.0.0.0/024")]
        [InlineData("fd00::/129")]
        [InlineData("fd00::1::/64")]
        [InlineData("fe80::1%eth0/64")]
        [InlineData("[fd00::1]/64")]
        [InlineData("10.1/16")]
        public void Rejects_what_is_not_a_network(string input)
        {
            Assert.False(Cidr.TryParsePrefix(input, out _, out var error));
            Assert.NotEmpty(error);
        }

        [Theory]
        [InlineData("10.0.0.1", true)]
        [InlineData("fd00::1", true)]
        [InlineData("10.1", false)]
        [InlineData("010.0.0.1x", false)]
        [InlineData("fe80::1%2", false)]
        [InlineData("", false)]
        public void Addresses_are_parsed_strictly(string input, bool ok) => Assert.Equal(ok, Cidr.TryParseAddress(input, out _));

        [Fact]
        public void Contains_uses_the_prefix()
        {
            Assert.True(Cidr.TryParsePrefix("10.0.0.0/24", out var net, out _));
            Assert.True(net.Network.Contains(System.Net.IPAddress.Parse("10.0.0.200")));
            Assert.False(net.Network.Contains(System.Net.IPAddress.Parse("10.0.1.1")));
        }

        [Theory]
        [InlineData("10.0.0.7", "10.0.0.7/32")]
        [InlineData("10.0.0.7/24", "10.0.0.0/24")]
        [InlineData("fd00::7", "fd00::7/128")]
        [InlineData("not an address", null)]
        public void Normalizes_networks_as_iptables_prints_them(string input, string? expected) => Assert.Equal(expected, Cidr.NormalizeNetwork(input));
    }

    public class NamesTests
    {
        [Theory]
        [InlineData("br0")]
        [InlineData("eth0")]
        [InlineData("veth-a_b.1")]
        [InlineData("abcdefghijklmno")]
        public void Accepts_plain_interface_names(string name) => Assert.True(Names.IsValidInterface(name, out _));

        [Theory]
        [InlineData("br0;reboot")]
        [InlineData("$(id)")]
        [InlineData("br 0")]
        [InlineData("br0/x")]
        [InlineData("br0:1")]
        [InlineData("abcdefghijklmnop")]
        [InlineData("")]
        [InlineData(".")]
        [InlineData("..")]
        [InlineData("-j")]
        [InlineData("br\u0430")] // Cyrillic a
        [InlineData("br0\n")]
        [InlineData("`id`")]
        public void Rejects_hostile_interface_names(string name)
        {
            Assert.False(Names.IsValidInterface(name, out var reason));
            Assert.NotEmpty(reason);
        }

        [Theory]
        [InlineData("..")]
        [InlineData("../etc")]
        [InlineData("a/b")]
        [InlineData("ns;id")]
        [InlineData("")]
        public void Rejects_namespace_names_that_are_not_plain_file_names(string name) => Assert.False(Names.IsValidNamespace(name, out _));

        [Fact]
        public void Namespace_names_may_be_longer_than_interface_names() => Assert.True(Names.IsValidNamespace(new string('n', 40), out _));
    }
}
