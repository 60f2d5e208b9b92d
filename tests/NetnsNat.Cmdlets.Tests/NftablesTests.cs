using System.Linq;
using System.Net;
using NetnsNat.Backends;
using NetnsNat.Linux;
using Xunit;

namespace NetnsNat.Tests
{
    /// <summary>The elements of NetnsNat's nftables table: their keys as the kernel holds them, their text, and plans of them.</summary>
    public class NftablesTests
    {
        private static NftElement Masquerade(string subnet, string uplink = "eth0") => new NftElement(NftSetKind.Masquerade, IPNetwork.Parse(subnet), null, uplink);

        private static NftElement Inbound(string subnet, string uplink = "eth0", string bridge = "br0") => new NftElement(NftSetKind.Inbound, IPNetwork.Parse(subnet), uplink, bridge);

        [Fact]
        public void A_masquerade_key_is_the_first_address_then_the_uplink_padded_to_16_bytes_and_its_end_the_last_address()
        {
            var e = Masquerade("10.0.0.0/24");
            var name = new byte[16];
            System.Text.Encoding.ASCII.GetBytes("eth0").CopyTo(name, 0);
            Assert.Equal(new byte[] { 10, 0, 0, 0 }.Concat(name).ToArray(), e.Key);
            Assert.Equal(new byte[] { 10, 0, 0, 255 }.Concat(name).ToArray(), e.KeyEnd);
            Assert.Equal("masquerade4", e.Set);
        }

        [Fact]
        public void The_text_is_what_nft_lists_and_takes()
        {
            Assert.Equal("element inet netnsnat inbound6 { fd00:0:0:1::/64 . \"eth0\" . \"br0\" }", Inbound("fd00:0:0:1::/64").Text);
            Assert.Equal("10.0.0.0/24 . \"eth0\"", Masquerade("10.0.0.0/24").Value);
        }

        [Theory]
        [InlineData("10.0.0.0/24")]
        [InlineData("10.0.0.7/32")]
        [InlineData("192.168.5.128/25")]
        [InlineData("fd00:0:0:1::/64")]
        [InlineData("2001:db8::/48")]
        public void An_element_reads_back_from_its_keys(string subnet)
        {
            foreach (var e in new[] { Masquerade(subnet), Inbound(subnet, "uplink-with-15c", "br-0") })
            {
                var back = NftElement.Decode(e.Kind, e.Family, e.Key, e.KeyEnd);
                Assert.Equal(e, back);
            }
        }

        [Fact]
        public void A_range_that_is_not_one_network_or_names_that_differ_at_the_ends_are_not_ours()
        {
            var e = Masquerade("10.0.0.0/24");
            var end = e.KeyEnd.ToArray();
            end[3] = 200;
            Assert.Null(NftElement.Decode(e.Kind, e.Family, e.Key, end));
            var otherName = e.KeyEnd.ToArray();
            otherName[4] = (byte)'x';
            Assert.Null(NftElement.Decode(e.Kind, e.Family, e.Key, otherName));
            Assert.Null(NftElement.Decode(NftSetKind.Inbound, e.Family, e.Key, e.KeyEnd));
        }

        [Theory]
        [InlineData("10.0.0.0/24", "10.0.0.255")]
        [InlineData("10.0.0.7/32", "10.0.0.7")]
        [InlineData("0.0.0.0/0", "255.255.255.255")]
        [InlineData("fd00:0:0:1::/64", "fd00:0:0:1:ffff:ffff:ffff:ffff")]
        public void The_last_address_of_a_network(string network, string last)
        {
            Assert.Equal(IPAddress.Parse(last), Cidr.Last(IPNetwork.Parse(network)));
            Assert.Equal(IPNetwork.Parse(network), Cidr.RangeAsNetwork(IPNetwork.Parse(network).BaseAddress, IPAddress.Parse(last)));
        }

        [Fact]
        public void The_definition_is_nft_commands_for_one_table_of_four_sets_two_chains_and_six_rules()
        {
            var lines = NftablesTable.Definition();
            Assert.All(lines, l => Assert.StartsWith("add ", l));
            Assert.Single(lines, l => l.StartsWith("add table inet netnsnat", System.StringComparison.Ordinal));
            Assert.Equal(4, lines.Count(l => l.StartsWith("add set ", System.StringComparison.Ordinal)));
            Assert.Equal(2, lines.Count(l => l.StartsWith("add chain ", System.StringComparison.Ordinal)));
            Assert.Equal(6, lines.Count(l => l.StartsWith("add rule ", System.StringComparison.Ordinal)));
        }

        [Fact]
        public void A_confirmed_part_of_a_plan_keeps_the_table_its_elements_need_and_deletes_the_table_only_with_every_element()
        {
            var basis = new NftablesState(NftTableContent.Absent, null);
            var add = new NftablesPlan(basis, false, true, System.Array.Empty<NftElement>(), new[] { Masquerade("10.0.0.0/24"), Inbound("10.0.0.0/24") }, System.Array.Empty<NftElement>(), false);
            Assert.Equal(3, add.Count);
            // The table's creation declined: the elements that need it are not added either.
            var declined = (NftablesPlan)add.Only(new[] { add.Changes[1] });
            Assert.True(declined.IsEmpty);
            // The table and one element approved.
            var part = (NftablesPlan)add.Only(new[] { add.Changes[0], add.Changes[1] });
            Assert.True(part.Batch.Create);
            Assert.Single(part.Batch.Add);
            Assert.Equal(1, part.Additions);

            // A table laid again: the elements it held go back whatever was approved of the new ones, and count as no addition.
            var held = new[] { Masquerade("10.9.0.0/24") };
            var lay = new NftablesPlan(basis, true, true, held, new[] { Masquerade("10.0.0.0/24") }, System.Array.Empty<NftElement>(), false);
            var layOnly = (NftablesPlan)lay.Only(new[] { lay.Changes[0] });
            Assert.True(layOnly.Batch.DeleteFirst);
            Assert.Equal(held, layOnly.Batch.Relay);
            Assert.Empty(layOnly.Batch.Add);
            Assert.Equal(0, layOnly.Additions);

            var delete = new NftablesPlan(basis, false, false, System.Array.Empty<NftElement>(), System.Array.Empty<NftElement>(), new[] { Masquerade("10.0.0.0/24"), Inbound("10.0.0.0/24") }, true);
            Assert.Equal("nft delete table inet netnsnat", delete.Changes[^1].CommandLine);
            var some = (NftablesPlan)delete.Only(new[] { delete.Changes[0], delete.Changes[2] });
            Assert.False(some.Batch.DeleteAfter);
            Assert.Single(some.Batch.Delete);
            var all = (NftablesPlan)delete.Only(delete.Changes.ToArray());
            Assert.True(all.Batch.DeleteAfter);
        }
    }
}
