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
        public void The_definition_is_nft_commands_for_one_table_of_eight_sets_two_maps_four_chains_and_eighteen_rules()
        {
            var lines = NftablesTable.Definition();
            Assert.All(lines, l => Assert.StartsWith("add ", l));
            Assert.Single(lines, l => l.StartsWith("add table inet netnsnat", System.StringComparison.Ordinal));
            Assert.Equal(8, lines.Count(l => l.StartsWith("add set ", System.StringComparison.Ordinal)));
            Assert.Equal(new[] { "dnat4", "dnat6" }, lines.Where(l => l.StartsWith("add map ", System.StringComparison.Ordinal)).Select(l => l.Split(' ')[4]));
            Assert.Equal(4, lines.Count(l => l.StartsWith("add chain ", System.StringComparison.Ordinal)));
            Assert.Equal(18, lines.Count(l => l.StartsWith("add rule ", System.StringComparison.Ordinal)));
            // The host's own connections from loopback are never DNAT'd: reaching a namespace from 127.0.0.1 needs route_localnet.
            Assert.All(lines.Where(l => l.Contains(" output ", System.StringComparison.Ordinal) && l.StartsWith("add rule", System.StringComparison.Ordinal)),
                l => Assert.Matches("daddr != (127\\.0\\.0\\.0/8|::1) ", l));
        }

        private static NetnsNat.Model.PortMapping Mapping(string external, string inside, string? remote = null, string protocol = "tcp") =>
            new NetnsNat.Model.PortMapping(protocol, external is "0.0.0.0" or "::" ? null : IPAddress.Parse(external), 8080, IPAddress.Parse(inside), 80,
                remote == null ? null : IPNetwork.Parse(remote), "br0", IPNetwork.Parse(inside.Contains(':') ? "fd00:0:0:1::/64" : "10.0.0.0/24"), "eth0");

        [Fact]
        public void A_mapping_s_dnat_element_is_keyed_as_nft_writes_it_the_external_address_protocol_port_and_sources()
        {
            // nft --debug=mnl add element inet t dnat4 { 198.51.100.1 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.2 . 80 }
            var e = new NftMappingElement(NftSetKind.Dnat, Mapping("198.51.100.1", "10.0.0.2"));
            Assert.Equal(new byte[] { 198, 51, 100, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0, 0 }, e.Key);
            Assert.Equal(new byte[] { 198, 51, 100, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 255, 255, 255, 255 }, e.KeyEnd);
            Assert.Equal(new byte[] { 10, 0, 0, 2, 0, 80, 0, 0 }, e.Data);
            Assert.Equal("element inet netnsnat dnat4 { 198.51.100.1 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.2 . 80 }", e.Text);
            Assert.Equal("element inet netnsnat published4 { 10.0.0.2 . tcp . 80 . \"br0\" }", new NftMappingElement(NftSetKind.Published, e.Mapping).Text);
            Assert.Equal("element inet netnsnat hairpin4 { 10.0.0.0/24 . 10.0.0.2 . tcp . 80 }", new NftMappingElement(NftSetKind.Hairpin, e.Mapping).Text);
        }

        [Theory]
        [InlineData("198.51.100.1", "10.0.0.2", null)]
        [InlineData("0.0.0.0", "10.0.0.2", "192.0.2.0/24")]
        [InlineData("::", "fd00:0:0:1::2", "2001:db8::/32")]
        [InlineData("2001:db8:1::1", "fd00:0:0:1::2", null)]
        public void A_mapping_reads_back_from_its_dnat_element(string external, string inside, string? remote)
        {
            var m = Mapping(external, inside, remote, "udp");
            var e = new NftMappingElement(NftSetKind.Dnat, m);
            var back = (NftMappingElement?)NftEntry.FromKernel(NftSetKind.Dnat, m.Family, e.Key, e.KeyEnd, e.Data);
            Assert.NotNull(back);
            Assert.True(back!.Mapping.SameAs(m));
            Assert.Equal(e.Text, back.Text);
            // Another protocol at the ends, or no data, is not NetnsNat's.
            var end = e.KeyEnd.ToArray();
            end[m.Family.AddressBytes] = 6;
            Assert.Null(NftEntry.FromKernel(NftSetKind.Dnat, m.Family, e.Key, end, e.Data));
            Assert.Null(NftEntry.FromKernel(NftSetKind.Dnat, m.Family, e.Key, e.KeyEnd, null));
        }

        [Fact]
        public void A_confirmed_part_of_a_plan_keeps_the_table_its_elements_need_and_deletes_the_table_only_with_every_element()
        {
            var basis = new NftablesState(NftTableContent.Absent, null);
            var add = new NftablesPlan(basis, false, true, System.Array.Empty<NftEntry>(), new[] { Masquerade("10.0.0.0/24"), Inbound("10.0.0.0/24") }, System.Array.Empty<NftEntry>(), false);
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
            var lay = new NftablesPlan(basis, true, true, held, new[] { Masquerade("10.0.0.0/24") }, System.Array.Empty<NftEntry>(), false);
            var layOnly = (NftablesPlan)lay.Only(new[] { lay.Changes[0] });
            Assert.True(layOnly.Batch.DeleteFirst);
            Assert.Equal(held, layOnly.Batch.Relay);
            Assert.Empty(layOnly.Batch.Add);
            Assert.Equal(0, layOnly.Additions);

            var delete = new NftablesPlan(basis, false, false, System.Array.Empty<NftEntry>(), System.Array.Empty<NftEntry>(), new[] { Masquerade("10.0.0.0/24"), Inbound("10.0.0.0/24") }, true);
            Assert.Equal("nft delete table inet netnsnat", delete.Changes[^1].CommandLine);
            var some = (NftablesPlan)delete.Only(new[] { delete.Changes[0], delete.Changes[2] });
            Assert.False(some.Batch.DeleteAfter);
            Assert.Single(some.Batch.Delete);
            var all = (NftablesPlan)delete.Only(delete.Changes.ToArray());
            Assert.True(all.Batch.DeleteAfter);
        }
    }
}
