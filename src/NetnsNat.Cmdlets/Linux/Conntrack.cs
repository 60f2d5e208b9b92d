using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace NetnsNat.Linux
{
    /// <summary>
    /// One direction of a tracked connection (struct nf_conntrack_tuple): addresses, the layer 4 protocol, and ports
    /// (TCP, UDP, SCTP, DCCP, UDP-Lite; GRE keys travel as ports too) or ICMP type, code and id; null where absent.
    /// </summary>
    internal readonly record struct ConntrackTuple(IPAddress Source, IPAddress Destination, byte Protocol,
        ushort? SourcePort = null, ushort? DestinationPort = null, byte? IcmpType = null, byte? IcmpCode = null, ushort? IcmpId = null);

    /// <summary>An entry of the kernel's conntrack table as ctnetlink reports it.</summary>
    /// <param name="Family">AF_INET (2) or AF_INET6 (10).</param>
    /// <param name="Original">The tuple of the first packet, as the client sent it.</param>
    /// <param name="Reply">The tuple replies are expected with: after NAT, the translated addresses are here.</param>
    /// <param name="Status">IPS_* bits.</param>
    /// <param name="TcpState">enum tcp_conntrack, for TCP.</param>
    /// <param name="Timeout">Seconds until the entry expires.</param>
    /// <param name="Packets">Both directions, when conntrack accounting (nf_conntrack_acct) was on as the entry was made.</param>
    internal sealed record ConntrackEntry(byte Family, ConntrackTuple Original, ConntrackTuple Reply, uint Status, byte? TcpState, uint? Timeout,
        uint Mark, ushort Zone, uint Id, ulong? Packets, ulong? Bytes)
    {
        public byte Protocol => Original.Protocol;

        /// <summary>Source NAT (masquerade): replies go to another address or port than the client's.</summary>
        public bool SourceTranslated => !Reply.Destination.Equals(Original.Source) || Reply.DestinationPort != Original.SourcePort;

        /// <summary>Destination NAT (a port mapping): replies come from another address or port than the one the client asked for.</summary>
        public bool DestinationTranslated => !Reply.Source.Equals(Original.Destination) || Reply.SourcePort != Original.DestinationPort;

        public bool IsTranslated => (Status & (Ct.IPS_SRC_NAT | Ct.IPS_DST_NAT)) != 0 || SourceTranslated || DestinationTranslated;

        public override string ToString() =>
            $"{Ct.ProtocolName(Protocol)} {Ct.Endpoint(Original.Source, Original.SourcePort)} -> {Ct.Endpoint(Original.Destination, Original.DestinationPort)}";
    }

    /// <summary>The constants of ctnetlink (linux/netfilter/nfnetlink_conntrack.h) and names for what they mean.</summary>
    internal static class Ct
    {
        public const byte NFNL_SUBSYS_CTNETLINK = 1, AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10;
        public const byte IPCTNL_MSG_CT_NEW = 0, IPCTNL_MSG_CT_GET = 1, IPCTNL_MSG_CT_DELETE = 2;

        // enum ctattr_type
        public const ushort CTA_TUPLE_ORIG = 1, CTA_TUPLE_REPLY = 2, CTA_STATUS = 3, CTA_PROTOINFO = 4, CTA_TIMEOUT = 7, CTA_MARK = 8;
        public const ushort CTA_COUNTERS_ORIG = 9, CTA_COUNTERS_REPLY = 10, CTA_ID = 12, CTA_ZONE = 18;

        // enum ctattr_tuple, ctattr_ip, ctattr_l4proto
        public const ushort CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
        public const ushort CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
        public const ushort CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3;
        public const ushort CTA_PROTO_ICMP_ID = 4, CTA_PROTO_ICMP_TYPE = 5, CTA_PROTO_ICMP_CODE = 6;
        public const ushort CTA_PROTO_ICMPV6_ID = 7, CTA_PROTO_ICMPV6_TYPE = 8, CTA_PROTO_ICMPV6_CODE = 9;

        // enum ctattr_protoinfo, ctattr_protoinfo_tcp, ctattr_counters
        public const ushort CTA_PROTOINFO_TCP = 1, CTA_PROTOINFO_TCP_STATE = 1;
        public const ushort CTA_COUNTERS_PACKETS = 1, CTA_COUNTERS_BYTES = 2, CTA_COUNTERS32_PACKETS = 3, CTA_COUNTERS32_BYTES = 4;

        // enum ip_conntrack_status
        public const uint IPS_SEEN_REPLY = 1 << 1, IPS_ASSURED = 1 << 2, IPS_SRC_NAT = 1 << 4, IPS_DST_NAT = 1 << 5;

        public const byte IPPROTO_ICMP = 1, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_DCCP = 33, IPPROTO_GRE = 47, IPPROTO_ICMPV6 = 58;
        public const byte IPPROTO_SCTP = 132, IPPROTO_UDPLITE = 136;

        public static ushort MessageType(byte type) => (ushort)((NFNL_SUBSYS_CTNETLINK << 8) | type);

        /// <summary>enum tcp_conntrack, by the names conntrack -L prints.</summary>
        private static readonly string[] TcpStates =
            { "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2" };

        public static string TcpStateName(byte state) => state < TcpStates.Length ? TcpStates[state] : state.ToString(CultureInfo.InvariantCulture);

        /// <summary>The protocol as NatSession shows it and -Protocol takes it (the IANA keyword for 58: IPv6-ICMP).</summary>
        public static string ProtocolName(byte protocol) => protocol switch
        {
            IPPROTO_TCP => "Tcp",
            IPPROTO_UDP => "Udp",
            IPPROTO_ICMP => "Icmp",
            IPPROTO_ICMPV6 => "IPv6-ICMP",
            IPPROTO_SCTP => "Sctp",
            IPPROTO_DCCP => "Dccp",
            IPPROTO_GRE => "Gre",
            IPPROTO_UDPLITE => "UdpLite",
            _ => protocol.ToString(CultureInfo.InvariantCulture),
        };

        /// <summary>The protocol as the conntrack tool's -p takes it.</summary>
        public static string ConntrackToolName(byte protocol) => protocol switch
        {
            IPPROTO_TCP => "tcp",
            IPPROTO_UDP => "udp",
            IPPROTO_ICMP => "icmp",
            IPPROTO_ICMPV6 => "icmpv6",
            IPPROTO_SCTP => "sctp",
            IPPROTO_DCCP => "dccp",
            IPPROTO_GRE => "gre",
            IPPROTO_UDPLITE => "udplite",
            _ => protocol.ToString(CultureInfo.InvariantCulture),
        };

        /// <summary>ADDRESS:PORT, [ADDRESS]:PORT for IPv6, the bare address without a port.</summary>
        public static string Endpoint(IPAddress address, ushort? port) =>
            port is ushort p
                ? (address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{p}" : $"{address}:{p}")
                : address.ToString();

        /// <summary>A ctnetlink request the kernel refused, as an error that says what to do about it.</summary>
        public static NetnsNatException Failure(string operation, int errno, string errorId, ErrorCategory category)
        {
            var reason = $"{Native.Strerror(errno)} (errno {errno})";
            return errno switch
            {
                1 => new NetnsNatException($"Could not {operation}: {reason}. Reading and changing the conntrack table needs CAP_NET_ADMIN: run PowerShell as root (sudo pwsh).",
                    errorId, ErrorCategory.PermissionDenied),
                22 or 93 or 95 or 97 => new NetnsNatException(
                    $"Could not {operation}: {reason}. The kernel does not answer ctnetlink requests: load its conntrack netlink interface with 'modprobe nf_conntrack_netlink' (CONFIG_NF_CT_NETLINK).",
                    errorId, ErrorCategory.NotInstalled),
                _ => new NetnsNatException($"Could not {operation}: {reason}.", errorId, category),
            };
        }
    }

    /// <summary>Reads netlink attributes (struct nlattr) in place, one after another, with no allocation.</summary>
    internal ref struct NlaReader
    {
        private ReadOnlySpan<byte> _rest;

        public NlaReader(ReadOnlySpan<byte> data)
        {
            _rest = data;
            Type = 0;
            Data = default;
        }

        /// <summary>The type of the current attribute, flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER) masked off.</summary>
        public ushort Type { get; private set; }

        public ReadOnlySpan<byte> Data { get; private set; }

        public bool Next()
        {
            if (_rest.Length < 4) return false;
            int len = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
            if (len < 4 || len > _rest.Length) return false;
            Type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(_rest.Slice(2)) & 0x3FFF);
            Data = _rest.Slice(4, len - 4);
            int aligned = (len + 3) & ~3;
            _rest = aligned >= _rest.Length ? ReadOnlySpan<byte>.Empty : _rest.Slice(aligned);
            return true;
        }
    }

    /// <summary>
    /// ctnetlink messages: the entries of a dump read in place from the receive buffer (one IPAddress per address and
    /// one record per entry are all it allocates), and the requests NetnsNat sends (dump, delete by tuple).
    /// </summary>
    internal static class ConntrackMessages
    {
        private const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3;

        /// <summary>IPCTNL_MSG_CT_GET as a dump of every family (AF_UNSPEC: IPv4 and IPv6 entries in one dump).</summary>
        public static byte[] DumpRequest(uint seq) =>
            Nfnl.Message(Ct.MessageType(Ct.IPCTNL_MSG_CT_GET), Nfnl.NLM_F_REQUEST | Nfnl.NLM_F_DUMP, seq, Ct.AF_UNSPEC, 0, Array.Empty<byte>());

        /// <summary>
        /// Parses what one recv of a dump returned: the entries of the answer to the request numbered seq go into
        /// the list. True when the dump ended (NLMSG_DONE); a refused dump throws.
        /// </summary>
        public static bool ParseDump(ReadOnlySpan<byte> buffer, uint seq, List<ConntrackEntry> into)
        {
            ushort entryType = Ct.MessageType(Ct.IPCTNL_MSG_CT_NEW);
            int offset = 0;
            while (offset + 16 <= buffer.Length)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.Slice(offset));
                if (len < 16 || offset + len > buffer.Length) break;
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buffer.Slice(offset + 4));
                uint msgSeq = BinaryPrimitives.ReadUInt32LittleEndian(buffer.Slice(offset + 8));
                var payload = buffer.Slice(offset + 16, len - 16);
                offset += (len + 3) & ~3;
                if (msgSeq != seq) continue;
                if (type == entryType)
                {
                    var entry = ParseEntry(payload);
                    if (entry != null) into.Add(entry);
                }
                else if (type == NLMSG_DONE)
                {
                    int status = payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(payload) : 0;
                    if (status < 0) throw Ct.Failure("read the conntrack table", -status, "ConntrackReadFailed", ErrorCategory.ReadError);
                    return true;
                }
                else if (type == NLMSG_ERROR)
                {
                    int errno = payload.Length >= 4 ? -BinaryPrimitives.ReadInt32LittleEndian(payload) : 0;
                    if (errno == 0) return true;
                    throw Ct.Failure("read the conntrack table", errno, "ConntrackReadFailed", ErrorCategory.ReadError);
                }
            }
            return false;
        }

        /// <summary>One entry from the payload of an IPCTNL_MSG_CT_NEW message (struct nfgenmsg, then attributes); null when it has no tuples.</summary>
        public static ConntrackEntry? ParseEntry(ReadOnlySpan<byte> payload)
        {
            if (payload.Length < 4) return null;
            byte family = payload[0];
            ConntrackTuple? original = null, reply = null;
            uint status = 0, mark = 0, id = 0;
            uint? timeout = null;
            ushort zone = 0;
            byte? tcpState = null;
            ulong? packets = null, bytes = null;
            var attrs = new NlaReader(payload.Slice(4));
            while (attrs.Next())
            {
                var data = attrs.Data;
                switch (attrs.Type)
                {
                    case Ct.CTA_TUPLE_ORIG:
                        original = ParseTuple(data);
                        break;
                    case Ct.CTA_TUPLE_REPLY:
                        reply = ParseTuple(data);
                        break;
                    case Ct.CTA_STATUS when data.Length >= 4:
                        status = BinaryPrimitives.ReadUInt32BigEndian(data);
                        break;
                    case Ct.CTA_TIMEOUT when data.Length >= 4:
                        timeout = BinaryPrimitives.ReadUInt32BigEndian(data);
                        break;
                    case Ct.CTA_MARK when data.Length >= 4:
                        mark = BinaryPrimitives.ReadUInt32BigEndian(data);
                        break;
                    case Ct.CTA_ID when data.Length >= 4:
                        id = BinaryPrimitives.ReadUInt32BigEndian(data);
                        break;
                    case Ct.CTA_ZONE when data.Length >= 2:
                        zone = BinaryPrimitives.ReadUInt16BigEndian(data);
                        break;
                    case Ct.CTA_PROTOINFO:
                        tcpState = ParseTcpState(data) ?? tcpState;
                        break;
                    case Ct.CTA_COUNTERS_ORIG:
                    case Ct.CTA_COUNTERS_REPLY:
                        var (p, b) = ParseCounters(data);
                        if (p is ulong pv) packets = (packets ?? 0) + pv;
                        if (b is ulong bv) bytes = (bytes ?? 0) + bv;
                        break;
                }
            }
            if (original is not ConntrackTuple o || reply is not ConntrackTuple r) return null;
            return new ConntrackEntry(family, o, r, status, tcpState, timeout, mark, zone, id, packets, bytes);
        }

        private static ConntrackTuple? ParseTuple(ReadOnlySpan<byte> data)
        {
            IPAddress? source = null, destination = null;
            byte protocol = 0;
            ushort? sourcePort = null, destinationPort = null, icmpId = null;
            byte? icmpType = null, icmpCode = null;
            var tuple = new NlaReader(data);
            while (tuple.Next())
            {
                if (tuple.Type == Ct.CTA_TUPLE_IP)
                {
                    var ip = new NlaReader(tuple.Data);
                    while (ip.Next())
                    {
                        var a = ip.Data;
                        switch (ip.Type)
                        {
                            case Ct.CTA_IP_V4_SRC when a.Length == 4:
                            case Ct.CTA_IP_V6_SRC when a.Length == 16:
                                source = new IPAddress(a);
                                break;
                            case Ct.CTA_IP_V4_DST when a.Length == 4:
                            case Ct.CTA_IP_V6_DST when a.Length == 16:
                                destination = new IPAddress(a);
                                break;
                        }
                    }
                }
                else if (tuple.Type == Ct.CTA_TUPLE_PROTO)
                {
                    var proto = new NlaReader(tuple.Data);
                    while (proto.Next())
                    {
                        var v = proto.Data;
                        switch (proto.Type)
                        {
                            case Ct.CTA_PROTO_NUM when v.Length >= 1:
                                protocol = v[0];
                                break;
                            case Ct.CTA_PROTO_SRC_PORT when v.Length >= 2:
                                sourcePort = BinaryPrimitives.ReadUInt16BigEndian(v);
                                break;
                            case Ct.CTA_PROTO_DST_PORT when v.Length >= 2:
                                destinationPort = BinaryPrimitives.ReadUInt16BigEndian(v);
                                break;
                            case Ct.CTA_PROTO_ICMP_ID when v.Length >= 2:
                            case Ct.CTA_PROTO_ICMPV6_ID when v.Length >= 2:
                                icmpId = BinaryPrimitives.ReadUInt16BigEndian(v);
                                break;
                            case Ct.CTA_PROTO_ICMP_TYPE when v.Length >= 1:
                            case Ct.CTA_PROTO_ICMPV6_TYPE when v.Length >= 1:
                                icmpType = v[0];
                                break;
                            case Ct.CTA_PROTO_ICMP_CODE when v.Length >= 1:
                            case Ct.CTA_PROTO_ICMPV6_CODE when v.Length >= 1:
                                icmpCode = v[0];
                                break;
                        }
                    }
                }
            }
            if (source == null || destination == null) return null;
            return new ConntrackTuple(source, destination, protocol, sourcePort, destinationPort, icmpType, icmpCode, icmpId);
        }

        private static byte? ParseTcpState(ReadOnlySpan<byte> data)
        {
            var info = new NlaReader(data);
            while (info.Next())
            {
                if (info.Type != Ct.CTA_PROTOINFO_TCP) continue;
                var tcp = new NlaReader(info.Data);
                while (tcp.Next())
                {
                    if (tcp.Type == Ct.CTA_PROTOINFO_TCP_STATE && tcp.Data.Length >= 1) return tcp.Data[0];
                }
            }
            return null;
        }

        private static (ulong? Packets, ulong? Bytes) ParseCounters(ReadOnlySpan<byte> data)
        {
            ulong? packets = null, bytes = null;
            var counters = new NlaReader(data);
            while (counters.Next())
            {
                var v = counters.Data;
                switch (counters.Type)
                {
                    case Ct.CTA_COUNTERS_PACKETS when v.Length >= 8:
                        packets = BinaryPrimitives.ReadUInt64BigEndian(v);
                        break;
                    case Ct.CTA_COUNTERS_BYTES when v.Length >= 8:
                        bytes = BinaryPrimitives.ReadUInt64BigEndian(v);
                        break;
                    case Ct.CTA_COUNTERS32_PACKETS when v.Length >= 4:
                        packets = BinaryPrimitives.ReadUInt32BigEndian(v);
                        break;
                    case Ct.CTA_COUNTERS32_BYTES when v.Length >= 4:
                        bytes = BinaryPrimitives.ReadUInt32BigEndian(v);
                        break;
                }
            }
            return (packets, bytes);
        }

        /// <summary>
        /// IPCTNL_MSG_CT_DELETE of one entry: its original tuple, its zone, and its id, so the kernel deletes that
        /// entry and not a newer connection that reuses the tuple (ENOENT then, as for an entry already gone).
        /// </summary>
        public static byte[] DeleteRequest(ConntrackEntry entry, uint seq)
        {
            var attributes = new List<byte[]> { Nested(Ct.CTA_TUPLE_ORIG, Tuple(entry.Original, entry.Family)) };
            if (entry.Zone != 0) attributes.Add(NetlinkAttributes.Attribute(Ct.CTA_ZONE, BigEndian16(entry.Zone)));
            attributes.Add(Nfnl.U32(Ct.CTA_ID, entry.Id));
            return Nfnl.Message(Ct.MessageType(Ct.IPCTNL_MSG_CT_DELETE), Nfnl.NLM_F_REQUEST | Nfnl.NLM_F_ACK, seq, entry.Family, 0,
                NetlinkAttributes.Concat(attributes.ToArray()));
        }

        /// <summary>The attributes of a tuple (CTA_TUPLE_IP and CTA_TUPLE_PROTO), as the kernel reports and takes them.</summary>
        public static byte[] Tuple(ConntrackTuple tuple, byte family)
        {
            bool v6 = family == Ct.AF_INET6;
            var ip = NetlinkAttributes.Concat(
                NetlinkAttributes.Attribute(v6 ? Ct.CTA_IP_V6_SRC : Ct.CTA_IP_V4_SRC, tuple.Source.GetAddressBytes()),
                NetlinkAttributes.Attribute(v6 ? Ct.CTA_IP_V6_DST : Ct.CTA_IP_V4_DST, tuple.Destination.GetAddressBytes()));
            var proto = new List<byte[]> { NetlinkAttributes.Attribute(Ct.CTA_PROTO_NUM, new[] { tuple.Protocol }) };
            if (tuple.SourcePort is ushort sp) proto.Add(NetlinkAttributes.Attribute(Ct.CTA_PROTO_SRC_PORT, BigEndian16(sp)));
            if (tuple.DestinationPort is ushort dp) proto.Add(NetlinkAttributes.Attribute(Ct.CTA_PROTO_DST_PORT, BigEndian16(dp)));
            bool icmp6 = tuple.Protocol == Ct.IPPROTO_ICMPV6;
            if (tuple.IcmpId is ushort icmpId) proto.Add(NetlinkAttributes.Attribute(icmp6 ? Ct.CTA_PROTO_ICMPV6_ID : Ct.CTA_PROTO_ICMP_ID, BigEndian16(icmpId)));
            if (tuple.IcmpType is byte icmpType) proto.Add(NetlinkAttributes.Attribute(icmp6 ? Ct.CTA_PROTO_ICMPV6_TYPE : Ct.CTA_PROTO_ICMP_TYPE, new[] { icmpType }));
            if (tuple.IcmpCode is byte icmpCode) proto.Add(NetlinkAttributes.Attribute(icmp6 ? Ct.CTA_PROTO_ICMPV6_CODE : Ct.CTA_PROTO_ICMP_CODE, new[] { icmpCode }));
            return NetlinkAttributes.Concat(Nested(Ct.CTA_TUPLE_IP, ip), Nested(Ct.CTA_TUPLE_PROTO, NetlinkAttributes.Concat(proto.ToArray())));
        }

        /// <summary>The conntrack tool's arguments that delete the same entry: conntrack -D -p tcp -s ... -d ... --sport ... --dport ...</summary>
        public static string[] DeleteArguments(ConntrackEntry entry)
        {
            var o = entry.Original;
            var args = new List<string> { "-D" };
            if (entry.Family == Ct.AF_INET6) args.AddRange(new[] { "-f", "ipv6" });
            args.AddRange(new[] { "-p", Ct.ConntrackToolName(o.Protocol), "-s", o.Source.ToString(), "-d", o.Destination.ToString() });
            string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
            if (o.Protocol == Ct.IPPROTO_GRE)
            {
                if (o.SourcePort is ushort sk) args.AddRange(new[] { "--srckey", Text(sk) });
                if (o.DestinationPort is ushort dk) args.AddRange(new[] { "--dstkey", Text(dk) });
            }
            else
            {
                if (o.SourcePort is ushort sp) args.AddRange(new[] { "--sport", Text(sp) });
                if (o.DestinationPort is ushort dp) args.AddRange(new[] { "--dport", Text(dp) });
            }
            string icmp = o.Protocol == Ct.IPPROTO_ICMPV6 ? "--icmpv6" : "--icmp";
            if (o.IcmpType is byte t) args.AddRange(new[] { icmp + "-type", Text(t) });
            if (o.IcmpCode is byte c) args.AddRange(new[] { icmp + "-code", Text(c) });
            if (o.IcmpId is ushort i) args.AddRange(new[] { icmp + "-id", Text(i) });
            if (entry.Zone != 0) args.AddRange(new[] { "-w", Text(entry.Zone) });
            return args.ToArray();
        }

        private static byte[] Nested(ushort type, byte[] data) => NetlinkAttributes.Attribute((ushort)(type | Nfnl.NLA_F_NESTED), data);

        private static byte[] BigEndian16(ushort value)
        {
            var b = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(b, value);
            return b;
        }
    }

    /// <summary>
    /// The conntrack table of the network namespace this process runs in, over a NETLINK_NETFILTER socket
    /// (ctnetlink): no conntrack process. A dump is read in place, one kernel message batch (up to 32 KB) per recv.
    /// </summary>
    internal sealed class ConntrackTable : IDisposable
    {
        /// <summary>Deletions sent in one write; their acks fit the socket's default receive buffer.</summary>
        private const int DeleteChunk = 64;

        private const ushort NLMSG_ERROR = 2;

        private readonly NetfilterSocket _socket;

        private ConntrackTable(NetfilterSocket socket) => _socket = socket;

        public static ConntrackTable Open()
        {
            try
            {
                // The kernel fills at most 32 KB per dump message batch; 64 KB holds one with room, off the large-object heap.
                return new ConntrackTable(NetfilterSocket.Open(0, receiveBytes: 65536));
            }
            catch (NftablesException ex)
            {
                throw Ct.Failure("open a netfilter netlink socket", ex.Errno, "ConntrackReadFailed", ErrorCategory.ReadError);
            }
        }

        public void Dispose() => _socket.Dispose();

        /// <summary>Every entry of the table, IPv4 and IPv6.</summary>
        public List<ConntrackEntry> Dump(CancellationToken token)
        {
            const string operation = "read the conntrack table";
            var entries = new List<ConntrackEntry>();
            uint seq = _socket.Next();
            try
            {
                _socket.Send(ConntrackMessages.DumpRequest(seq), operation);
                while (true)
                {
                    token.ThrowIfCancellationRequested();
                    if (ConntrackMessages.ParseDump(_socket.ReceiveInPlace(operation), seq, entries)) return entries;
                }
            }
            catch (NftablesException ex)
            {
                throw Ct.Failure(operation, ex.Errno, "ConntrackReadFailed", ErrorCategory.ReadError);
            }
        }

        /// <summary>
        /// Deletes entries by original tuple, zone and id, many to a write; the errno of each (0: deleted, ENOENT:
        /// already gone, or replaced by a newer connection of the same tuple).
        /// </summary>
        public int[] Delete(IReadOnlyList<ConntrackEntry> entries, CancellationToken token)
        {
            const string operation = "delete conntrack entries";
            var result = new int[entries.Count];
            try
            {
                for (int start = 0; start < entries.Count; start += DeleteChunk)
                {
                    token.ThrowIfCancellationRequested();
                    int count = Math.Min(DeleteChunk, entries.Count - start);
                    uint first = _socket.Reserve(count);
                    var requests = new byte[count][];
                    for (int i = 0; i < count; i++) requests[i] = ConntrackMessages.DeleteRequest(entries[start + i], first + (uint)i);
                    _socket.Send(NetlinkAttributes.Concat(requests), operation);
                    var answered = new bool[count];
                    int pending = count;
                    while (pending > 0)
                    {
                        foreach (var (type, seq, payload) in _socket.Receive(operation))
                        {
                            if (type != NLMSG_ERROR || seq < first || seq - first >= count || payload.Length < 4) continue;
                            int i = (int)(seq - first);
                            if (answered[i]) continue;
                            answered[i] = true;
                            pending--;
                            result[start + i] = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                        }
                    }
                }
            }
            catch (NftablesException ex)
            {
                throw Ct.Failure(operation, ex.Errno, "ConntrackDeleteFailed", ErrorCategory.WriteError);
            }
            return result;
        }
    }
}
