using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using NetnsNat.Core;
using NetnsNat.Linux;
using Xunit;

namespace NetnsNat.Tests
{
    // ctnetlink messages into NatSession objects, and the filters of Get-NatSession and Remove-NatSession. The
    // captured dump is what the kernel answered "conntrack -L" in the lab (strace -e read=3), with accounting on: a
    // masqueraded ping and TCP connection, an IPv6 entry with source NAT and a UDP entry with destination NAT
    // (both made with conntrack -I). That the kernel takes what NetnsNat sends is checked in tests/Pester/NatSession.Tests.ps1.
    public class ConntrackTests
    {
        private const uint CapturedSeq = 1796017801;

        private static readonly byte[] Captured = Convert.FromHexString(
            "ec00000000010200890e0d6b55000000020000003c00018014000180080001000a00000208000200cb00710a240002800500010001000000" +
            "0600040000510000050005000800000005000600000000003c0002801400018008000100cb00710a08000200c63364012400028005000100" +
            "01000000060004000051000005000500000000000500060000000000080003000000019a080008000000000008000c00bc13e08208000b00" +
            "00000001080007000000001d1c0009800c00010000000000000000010c00020000000000000000541c000a800c0001000000000000000001" +
            "0c00020000000000000000540c01000000010200890e0d6b55000000020000003400018014000180080001000a00000208000200cb00710a" +
            "1c00028005000100060000000600020084d40000060003001f900000340002801400018008000100cb00710a08000200c63364011c000280" +
            "0500010006000000060002001f9000000600030084d40000080003000000019e080008000000000008000c00845c351b08000b0000000001" +
            "0800070000000077300004802c0001800500010007000000050002000a000000050003000a00000006000400270000000600050023000000" +
            "1c0009800c00010000000000000000050c000200000000000000010c1c000a800c00010000000000000000040c00020000000000000000e5" +
            "5801000000010200890e0d6b550000000a0000004c0001802c00018014000300fd0000000000000000000000000000021400040020010db8" +
            "0000000000000000000000101c00028005000100060000000600020004d200000600030001bb00004c0002802c0001801400030020010db8" +
            "0000000000000000000000101400040020010db80000000000000000000000011c00028005000100060000000600020001bb000006000300" +
            "04d20000080003000000019e080008000000000008000c00f2fd36fd08000b00000000010800070000000063300004802c00018005000100" +
            "0300000005000200000000000500030000000000060004000a000000060005000a0000001c0009800c00010000000000000000000c000200" +
            "00000000000000001c000a800c00010000000000000000000c00020000000000000000001c00188008000100000000000800020000000000" +
            "0800030000000000f800000000010200890e0d6b5500000002000000340001801400018008000100cb00711408000200c63364011c000280" +
            "05000100110000000600020015b30000060003001f9000003400028014000180080001000a00000208000200cb0071141c00028005000100" +
            "1100000006000200005000000600030015b3000008000300000001a8080008000000000008000c00e9914cbc08000b000000000108000700" +
            "000000631c0009800c00010000000000000000000c00020000000000000000001c000a800c00010000000000000000000c00020000000000" +
            "000000001c001880080001000000000008000200000000000800030000000000"
            );

        private static List<ConntrackEntry> ParseCaptured()
        {
            var entries = new List<ConntrackEntry>();
            Assert.False(ConntrackMessages.ParseDump(Captured, CapturedSeq, entries)); // no NLMSG_DONE in this recv
            return entries;
        }

        // Hand-built messages: struct nlattr, nested attributes, a message with struct nlmsghdr and struct nfgenmsg.
        private static byte[] Attr(ushort type, params byte[] data)
        {
            var a = new byte[(4 + data.Length + 3) & ~3];
            BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + data.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(2), type);
            data.CopyTo(a, 4);
            return a;
        }

        private static byte[] Nest(ushort type, params byte[][] parts) => Attr((ushort)(type | 0x8000), parts.SelectMany(p => p).ToArray());

        private static byte[] Be16(int v) => new[] { (byte)(v >> 8), (byte)v };

        private static byte[] Be32(uint v) => new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v };

        private static byte[] Be64(ulong v) => Be32((uint)(v >> 32)).Concat(Be32((uint)v)).ToArray();

        private static byte[] Message(ushort type, uint seq, byte family, params byte[][] attributes)
        {
            var body = attributes.SelectMany(a => a).ToArray();
            var m = new byte[20 + body.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
            BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), seq);
            m[16] = family;
            body.CopyTo(m, 20);
            return m;
        }

        // A message whose payload follows the 16-byte header directly (NLMSG_ERROR, NLMSG_DONE).
        private static byte[] Control(ushort type, uint seq, int value)
        {
            var m = new byte[36];
            BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
            BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), seq);
            BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), value);
            return m;
        }

        private static byte[] Tuple(string src, string dst, byte proto, int sport, int dport) =>
            Nest(1, Nest(1, Attr(1, IPAddress.Parse(src).GetAddressBytes()), Attr(2, IPAddress.Parse(dst).GetAddressBytes())),
                Nest(2, Attr(1, proto), Attr(2, Be16(sport)), Attr(3, Be16(dport))));

        // A UDP entry; status SEEN_REPLY | CONFIRMED | SRC_NAT | SRC_NAT_DONE | DST_NAT_DONE unless told.
        private static byte[] Entry(uint seq, string osrc, string odst, int osport, int odport, string rsrc, string rdst, int rsport, int rdport, params byte[][] more) =>
            Entry(0x19a, seq, osrc, odst, osport, odport, rsrc, rdst, rsport, rdport, more);

        private static byte[] Entry(uint status, uint seq, string osrc, string odst, int osport, int odport, string rsrc, string rdst, int rsport, int rdport, params byte[][] more)
        {
            var orig = Tuple(osrc, odst, 17, osport, odport);
            var reply = Tuple(rsrc, rdst, 17, rsport, rdport);
            reply[2] = 2; // CTA_TUPLE_REPLY
            return Message(0x100, seq, 2, new[] { orig, reply, Attr(3, Be32(status)), Attr(7, Be32(30)), Attr(12, Be32(7)) }.Concat(more).ToArray());
        }

        private static ConntrackEntry ParseOne(byte[] message)
        {
            var entries = new List<ConntrackEntry>();
            ConntrackMessages.ParseDump(message, 5, entries);
            return Assert.Single(entries);
        }

        [Fact]
        public void Parses_every_entry_of_a_captured_dump()
        {
            var entries = ParseCaptured();
            Assert.Equal(4, entries.Count);
            Assert.Equal(new byte[] { 2, 2, 10, 2 }, entries.Select(e => e.Family));
            Assert.Equal(new byte[] { 1, 6, 6, 17 }, entries.Select(e => e.Protocol));
        }

        [Fact]
        public void A_masqueraded_tcp_connection_becomes_a_session_with_the_uplink_as_translated_source()
        {
            var s = NatSession.From(ParseCaptured()[1]);
            Assert.Equal(new NatSession("Tcp", "IPv4", "TIME_WAIT", true, true, "10.0.0.2", 34004, "203.0.113.10", 8080,
                "198.51.100.1", 34004, null, null, 119, 9, 497, 0, 0, 0x845c351b), s);
            Assert.Equal("Tcp 10.0.0.2:34004 -> 203.0.113.10:8080", s.ToString());
        }

        [Fact]
        public void A_ping_has_no_ports_and_its_state_says_a_reply_came()
        {
            var e = ParseCaptured()[0];
            Assert.Equal((byte)8, e.Original.IcmpType);
            Assert.Equal((byte)0, e.Original.IcmpCode);
            Assert.Equal((ushort)81, e.Original.IcmpId);
            var s = NatSession.From(e);
            Assert.Equal("Icmp", s.Protocol);
            Assert.Equal("REPLIED", s.State);
            Assert.Null(s.OriginalSourcePort);
            Assert.Null(s.OriginalDestinationPort);
            Assert.Equal("198.51.100.1", s.TranslatedSource);
            Assert.Null(s.TranslatedSourcePort);
            Assert.Equal(2L, s.Packets);
            Assert.Equal(168L, s.Bytes);
            Assert.Equal(29L, s.TimeoutSeconds);
        }

        [Fact]
        public void An_ipv6_entry_keeps_its_family_and_addresses()
        {
            var s = NatSession.From(ParseCaptured()[2]);
            Assert.Equal("IPv6", s.AddressFamily);
            Assert.Equal("fd00::2", s.OriginalSource);
            Assert.Equal("2001:db8::10", s.OriginalDestination);
            Assert.Equal(443, s.OriginalDestinationPort);
            Assert.Equal("2001:db8::1", s.TranslatedSource);
            Assert.Equal("ESTABLISHED", s.State);
            Assert.Equal("Tcp [fd00::2]:1234 -> [2001:db8::10]:443", s.ToString());
            Assert.Equal(0L, s.Packets);
        }

        [Fact]
        public void A_port_mapping_shows_as_translated_destination_and_port()
        {
            var s = NatSession.From(ParseCaptured()[3]);
            Assert.Equal("Udp", s.Protocol);
            Assert.Equal("UNREPLIED", s.State);
            Assert.False(s.Replied);
            Assert.Equal(("203.0.113.20", 5555, "198.51.100.1", 8080), (s.OriginalSource, s.OriginalSourcePort, s.OriginalDestination, s.OriginalDestinationPort));
            Assert.Equal(("10.0.0.2", (int?)80), (s.TranslatedDestination, s.TranslatedDestinationPort));
            Assert.Null(s.TranslatedSource);
        }

        [Fact]
        public void Counters_are_null_without_accounting_and_32_bit_counters_are_read()
        {
            var plain = ParseOne(Entry(5, "10.0.0.2", "192.0.2.1", 1000, 53, "192.0.2.1", "198.51.100.1", 53, 1000));
            Assert.Null(plain.Packets);
            Assert.Null(plain.Bytes);
            var counted = ParseOne(Entry(5, "10.0.0.2", "192.0.2.1", 1000, 53, "192.0.2.1", "198.51.100.1", 53, 1000,
                Nest(9, Attr(3, Be32(3)), Attr(4, Be32(300))), Nest(10, Attr(1, Be64(2)), Attr(2, Be64(5_000_000_000)))));
            Assert.Equal(5UL, counted.Packets);
            Assert.Equal(5_000_000_300UL, counted.Bytes);
        }

        [Fact]
        public void Reads_zone_and_mark_and_skips_attributes_it_does_not_know()
        {
            var e = ParseOne(Entry(5, "10.0.0.2", "192.0.2.1", 1000, 53, "192.0.2.1", "198.51.100.1", 53, 1000,
                Attr(18, Be16(7)), Attr(8, Be32(0x2a)), Attr(99, 1, 2, 3), Nest(22, Attr(1, 9))));
            Assert.Equal((ushort)7, e.Zone);
            Assert.Equal(0x2au, e.Mark);
            Assert.Equal(7u, e.Id);
            Assert.Equal("-D -p udp -s 10.0.0.2 -d 192.0.2.1 --sport 1000 --dport 53 -w 7", string.Join(" ", ConntrackMessages.DeleteArguments(e)));
        }

        [Fact]
        public void Ends_at_NLMSG_DONE_and_ignores_other_requests_and_truncated_messages()
        {
            var entries = new List<ConntrackEntry>();
            var other = Entry(6, "10.0.0.3", "192.0.2.1", 1000, 53, "192.0.2.1", "198.51.100.1", 53, 1000);
            var mine = Entry(5, "10.0.0.2", "192.0.2.1", 1000, 53, "192.0.2.1", "198.51.100.1", 53, 1000);
            var done = Control(3, 5, 0);
            Assert.True(ConntrackMessages.ParseDump(other.Concat(mine).Concat(done).ToArray(), 5, entries));
            Assert.Equal("10.0.0.2", Assert.Single(entries).Original.Source.ToString());
            entries.Clear();
            Assert.False(ConntrackMessages.ParseDump(mine.AsSpan(0, mine.Length - 8), 5, entries));
            Assert.Empty(entries);
            Assert.True(ConntrackMessages.ParseDump(Control(2, 5, 0), 5, entries)); // an ack ends it too
            Assert.Throws<NetnsNatException>(() => ConntrackMessages.ParseDump(Control(3, 5, -16), 5, entries)); // a dump that failed midway
        }

        [Theory]
        [InlineData(1, "ConntrackReadFailed", ErrorCategory.PermissionDenied)]
        [InlineData(95, "ConntrackReadFailed", ErrorCategory.NotInstalled)]
        [InlineData(16, "ConntrackReadFailed", ErrorCategory.ReadError)]
        public void A_refused_dump_is_an_error_that_says_what_to_do(int errno, string id, ErrorCategory category)
        {
            var message = Control(2, 5, -errno);
            var ex = Assert.Throws<NetnsNatException>(() => ConntrackMessages.ParseDump(message, 5, new List<ConntrackEntry>()));
            Assert.Equal(id, ex.ErrorId);
            Assert.Equal(category, ex.Category);
        }

        [Fact]
        public void A_delete_request_carries_the_tuple_byte_for_byte_as_the_kernel_reported_it()
        {
            foreach (var entry in ParseCaptured())
            {
                var request = ConntrackMessages.DeleteRequest(entry, 42);
                Assert.Equal(Ct.MessageType(Ct.IPCTNL_MSG_CT_DELETE), BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4)));
                Assert.Equal(entry.Family, request[16]);
                // The CTA_TUPLE_ORIG the kernel sent starts right after the nfgenmsg of its message.
                var orig = ConntrackMessages.Tuple(entry.Original, entry.Family);
                Assert.True(Captured.AsSpan().IndexOf(orig) > 0, $"the tuple of {entry} is not in the capture as encoded");
                Assert.Equal(orig, request.AsSpan(24, orig.Length).ToArray());
                // And the id, so that a newer connection with the same tuple is not deleted.
                Assert.Equal(Be32(entry.Id), request.AsSpan(request.Length - 4).ToArray());
            }
        }

        [Fact]
        public void The_whatif_text_is_a_conntrack_command_that_deletes_the_same_entry()
        {
            var e = ParseCaptured();
            Assert.Equal("conntrack -D -p icmp -s 10.0.0.2 -d 203.0.113.10 --icmp-type 8 --icmp-code 0 --icmp-id 81", ConntrackService.DeleteCommand(e[0]));
            Assert.Equal("conntrack -D -p tcp -s 10.0.0.2 -d 203.0.113.10 --sport 34004 --dport 8080", ConntrackService.DeleteCommand(e[1]));
            Assert.Equal("conntrack -D -f ipv6 -p tcp -s fd00::2 -d 2001:db8::10 --sport 1234 --dport 443", ConntrackService.DeleteCommand(e[2]));
            Assert.Equal("conntrack -D -p udp -s 203.0.113.20 -d 198.51.100.1 --sport 5555 --dport 8080", ConntrackService.DeleteCommand(e[3]));
        }

        private static int[] Select(SessionFilter filter) =>
            ParseCaptured().Select((e, i) => (e, i)).Where(x => filter.Matches(x.e)).Select(x => x.i).ToArray();

        private static IPNetwork Net(string text)
        {
            Assert.True(Cidr.TryParsePrefix(text, out var p, out _));
            return p.Network;
        }

        [Fact]
        public void The_namespace_filter_matches_client_destination_and_port_mapping_target()
        {
            Assert.Equal(new[] { 0, 1, 3 }, Select(new SessionFilter { Addresses = new HashSet<IPAddress> { IPAddress.Parse("10.0.0.2") } }));
            Assert.Equal(new[] { 2 }, Select(new SessionFilter { Addresses = new HashSet<IPAddress> { IPAddress.Parse("fd00::2") } }));
            Assert.Empty(Select(new SessionFilter { Addresses = new HashSet<IPAddress>() }));
        }

        [Fact]
        public void The_subnet_filter_takes_either_family()
        {
            Assert.Equal(new[] { 0, 1, 3 }, Select(new SessionFilter { Subnet = Net("10.0.0.0/24") }));
            Assert.Equal(new[] { 2 }, Select(new SessionFilter { Subnet = Net("fd00::/64") }));
            Assert.Equal(new[] { 0, 1 }, Select(new SessionFilter { Subnet = Net("203.0.113.0/28") }));
            Assert.Empty(Select(new SessionFilter { Subnet = Net("10.9.0.0/16") }));
        }

        [Fact]
        public void The_protocol_and_port_filters_and_all_filters_together()
        {
            Assert.Equal(new[] { 3 }, Select(new SessionFilter { Protocol = ProtocolType.Udp }));
            Assert.Equal(new[] { 1, 2 }, Select(new SessionFilter { Protocol = ProtocolType.Tcp }));
            Assert.Equal(new[] { 0 }, Select(new SessionFilter { Protocol = ProtocolType.Icmp }));
            Assert.Equal(new[] { 1, 3 }, Select(new SessionFilter { Port = 8080 }));
            Assert.Equal(new[] { 3 }, Select(new SessionFilter { Port = 80 })); // the port reached after the mapping
            Assert.Empty(Select(new SessionFilter { Port = 34004 })); // a source port is not a destination
            Assert.Equal(new[] { 1 }, Select(new SessionFilter { Protocol = ProtocolType.Tcp, Port = 8080, Subnet = Net("10.0.0.0/24") }));
            Assert.True(new SessionFilter { IncludeUntranslated = true }.IsEmpty);
            Assert.False(new SessionFilter { Port = 1 }.IsEmpty);
        }

        [Fact]
        public void Untranslated_connections_are_left_out_unless_asked_for()
        {
            var local = ParseOne(Entry(0x18a, 5, "10.0.0.2", "10.0.0.1", 1000, 53, "10.0.0.1", "10.0.0.2", 53, 1000));
            Assert.False(local.IsTranslated);
            Assert.False(new SessionFilter { Port = 53 }.Matches(local));
            Assert.True(new SessionFilter { Port = 53, IncludeUntranslated = true }.Matches(local));
            var s = NatSession.From(local);
            Assert.Null(s.TranslatedSource);
            Assert.Null(s.TranslatedDestination);
        }

        [Fact]
        public void Delete_of_a_port_mapping_selects_the_connections_to_its_endpoint_before_or_after_translation()
        {
            int[] To(ProtocolType p, string? address, int port) =>
                ParseCaptured().Select((e, i) => (e, i)).Where(x => ConntrackService.ConnectionsTo(p, address == null ? null : IPAddress.Parse(address), port)(x.e)).Select(x => x.i).ToArray();
            Assert.Equal(new[] { 3 }, To(ProtocolType.Udp, "198.51.100.1", 8080)); // the public side of the mapping
            Assert.Equal(new[] { 3 }, To(ProtocolType.Udp, "10.0.0.2", 80)); // the namespace's side
            Assert.Equal(new[] { 3 }, To(ProtocolType.Udp, null, 8080));
            Assert.Empty(To(ProtocolType.Udp, "10.0.0.2", 8080)); // address and port of one endpoint, not of two
            Assert.Empty(To(ProtocolType.Tcp, "198.51.100.1", 8080));
            Assert.Equal(new[] { 1 }, To(ProtocolType.Tcp, "203.0.113.10", 8080));
            var untranslated = ParseOne(Entry(0x18a, 5, "203.0.113.20", "198.51.100.1", 1000, 8080, "198.51.100.1", "203.0.113.20", 8080, 1000));
            Assert.True(ConntrackService.ConnectionsTo(ProtocolType.Udp, IPAddress.Parse("198.51.100.1"), 8080)(untranslated)); // made before the DNAT rule
        }

        [Theory]
        [InlineData("Tcp", ProtocolType.Tcp)]
        [InlineData("udp", ProtocolType.Udp)]
        [InlineData("ICMP", ProtocolType.Icmp)]
        [InlineData("IPv6-ICMP", ProtocolType.IcmpV6)]
        [InlineData("icmpv6", ProtocolType.IcmpV6)]
        public void Takes_the_protocols_it_lists(string text, ProtocolType expected)
        {
            Assert.True(SessionFilter.TryParseProtocol(text, out var p));
            Assert.Equal(expected, p);
        }

        [Theory]
        [InlineData("sctp")]
        [InlineData("6")]
        [InlineData("")]
        [InlineData(null)]
        public void Refuses_other_protocols(string? text) => Assert.False(SessionFilter.TryParseProtocol(text, out _));

        [Theory]
        [InlineData("1", true)]
        [InlineData("8080", true)]
        [InlineData("65535", true)]
        [InlineData("0", false)]
        [InlineData("65536", false)]
        [InlineData("http", false)]
        [InlineData("-1", false)]
        [InlineData("80a", false)]
        [InlineData("", false)]
        [InlineData("123456", false)]
        public void Takes_port_numbers_from_1_to_65535(string text, bool ok) => Assert.Equal(ok, SessionFilter.TryParsePort(text, out _));
    }
}
