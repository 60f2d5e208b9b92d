using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Management.Automation;
using System.Text;
using NetnsNat.Linux;
using NetnsNat.Model;
using static NetnsNat.Linux.NetlinkAttributes;
using static NetnsNat.Linux.Nfnl;

namespace NetnsNat.Backends
{
    /// <summary>Which of the table's sets (or maps) an element is in.</summary>
    internal enum NftSetKind
    {
        /// <summary>"ip saddr . oifname": the subnet masqueraded out of the uplink.</summary>
        Masquerade,

        /// <summary>"ip daddr . iifname . oifname": the subnet, the uplink and the bridge; replies let in, new connections dropped.</summary>
        Inbound,

        /// <summary>The map "ip daddr . meta l4proto . th dport . ip saddr : address . port": a port mapping's DNAT.</summary>
        Dnat,

        /// <summary>"ip saddr . ip daddr . meta l4proto . th dport": a namespace of the subnet reaching a mapping by the host's address, masqueraded.</summary>
        Hairpin,

        /// <summary>"ip daddr . meta l4proto . th dport . oifname": a mapped connection let through to the namespace, above the inbound drop.</summary>
        Published,
    }

    /// <summary>One element of one of NetnsNat's sets or maps, as the kernel holds it (key, key end, data) and as nft writes it.</summary>
    internal abstract record NftEntry(NftSetKind Kind)
    {
        public abstract AddressFamilyProfile Family { get; }

        public string Set => NftablesTable.SetName(Kind, Family);

        /// <summary>The element as nft writes it: 10.0.0.0/24 . "eth0" . "br0".</summary>
        public abstract string Value { get; }

        /// <summary>The element as the backend's own text: what the state store and the result objects hold.</summary>
        public string Text => $"element inet {NftablesTable.Name} {Set} {{ {Value} }}";

        /// <summary>The start of the element's key range, each field as the registers hold it.</summary>
        public abstract byte[] Key { get; }

        /// <summary>The end of the element's key range.</summary>
        public abstract byte[] KeyEnd { get; }

        /// <summary>What a map's element maps to; null in a set.</summary>
        public virtual byte[]? Data => null;

        /// <summary>An element from its key, key end and data as the kernel lists them; null for one NetnsNat would not write.</summary>
        public static NftEntry? FromKernel(NftSetKind kind, AddressFamilyProfile family, byte[] key, byte[] keyEnd, byte[]? data) => kind is NftSetKind.Masquerade or NftSetKind.Inbound
            ? NftElement.Decode(kind, family, key, keyEnd)
            : NftMappingElement.Decode(kind, family, key, keyEnd, data);
    }

    /// <summary>One element of a subnet's NAT: a subnet and the interfaces it goes with.</summary>
    /// <param name="In">The uplink (Inbound only).</param>
    /// <param name="Out">The uplink (Masquerade) or the bridge (Inbound).</param>
    internal sealed record NftElement(NftSetKind Kind, IPNetwork Subnet, string? In, string Out) : NftEntry(Kind)
    {
        public override AddressFamilyProfile Family => AddressFamilyProfile.Of(Subnet);

        public override string Value => In == null ? $"{Cidr.Format(Subnet)} . \"{Out}\"" : $"{Cidr.Format(Subnet)} . \"{In}\" . \"{Out}\"";

        /// <summary>The subnet's first address, then the interface names, each padded to 16 bytes.</summary>
        public override byte[] Key => Encode(Subnet.BaseAddress);

        /// <summary>The subnet's last address, then the same names.</summary>
        public override byte[] KeyEnd => Encode(Cidr.Last(Subnet));

        private byte[] Encode(IPAddress address)
        {
            var names = In == null ? new[] { Out } : new[] { In, Out };
            var key = new byte[Family.AddressBytes + 16 * names.Length];
            address.GetAddressBytes().CopyTo(key, 0);
            for (int i = 0; i < names.Length; i++) Encoding.ASCII.GetBytes(names[i]).CopyTo(key, Family.AddressBytes + 16 * i);
            return key;
        }

        /// <summary>An element from its key and key end as the kernel lists them; null for one NetnsNat would not write.</summary>
        public static NftElement? Decode(NftSetKind kind, AddressFamilyProfile family, byte[] key, byte[] keyEnd)
        {
            int names = kind == NftSetKind.Masquerade ? 1 : 2;
            int length = family.AddressBytes + 16 * names;
            if (key.Length != length || keyEnd.Length != length || !key.AsSpan(family.AddressBytes).SequenceEqual(keyEnd.AsSpan(family.AddressBytes))) return null;
            var first = new IPAddress(key.AsSpan(0, family.AddressBytes));
            var last = new IPAddress(keyEnd.AsSpan(0, family.AddressBytes));
            var network = Cidr.RangeAsNetwork(first, last);
            if (network == null) return null;
            string Name(int i) => NftMappingElement.Name(key.AsSpan(family.AddressBytes + 16 * i, 16));
            return names == 1 ? new NftElement(kind, network.Value, null, Name(0)) : new NftElement(kind, network.Value, Name(0), Name(1));
        }
    }

    /// <summary>
    /// One element of a port mapping: its DNAT (Dnat, one per mapping), the masquerade of its hairpin and the accept of
    /// its connections (Hairpin and Published, shared by the mappings to the same port of a namespace).
    /// </summary>
    internal sealed record NftMappingElement(NftSetKind Kind, PortMapping Mapping) : NftEntry(Kind)
    {
        private const byte IPPROTO_TCP = 6, IPPROTO_UDP = 17;

        public override AddressFamilyProfile Family => Mapping.Family;

        private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        private string Everything => Cidr.Format(new IPNetwork(Family.Any, 0));

        public override string Value => Kind switch
        {
            NftSetKind.Dnat => $"{(Mapping.ExternalAddress?.ToString() ?? Everything)} . {Mapping.Protocol} . {Port(Mapping.ExternalPort)} . {(Mapping.Remote is IPNetwork r ? Cidr.Format(r) : Everything)} : {Mapping.InternalAddress} . {Port(Mapping.InternalPort)}",
            NftSetKind.Hairpin => $"{Cidr.Format(Mapping.Subnet)} . {Mapping.InternalAddress} . {Mapping.Protocol} . {Port(Mapping.InternalPort)}",
            _ => $"{Mapping.InternalAddress} . {Mapping.Protocol} . {Port(Mapping.InternalPort)} . \"{Mapping.Bridge}\"",
        };

        /// <summary>The element's key as nft writes it (what nft delete element takes): its value without what a map's element maps to.</summary>
        public string KeyText => Value.Split(" : ")[0];

        public override byte[] Key => Encode(last: false);

        public override byte[] KeyEnd => Encode(last: true);

        /// <summary>The Dnat map's data: the namespace's address, then its port (padded to 4 bytes).</summary>
        public override byte[]? Data => Kind == NftSetKind.Dnat ? Concat(Mapping.InternalAddress.GetAddressBytes(), Service(Mapping.InternalPort)) : null;

        private byte Protocol => Mapping.Protocol == "udp" ? IPPROTO_UDP : IPPROTO_TCP;

        private byte[] Encode(bool last)
        {
            byte[] Range(IPNetwork? network) => (network is IPNetwork n ? (last ? Cidr.Last(n) : n.BaseAddress) : last ? AllOnes() : Family.Any).GetAddressBytes();
            IPAddress AllOnes() => new IPAddress(Enumerable.Repeat((byte)0xff, Family.AddressBytes).ToArray());
            var proto = new byte[] { Protocol, 0, 0, 0 };
            return Kind switch
            {
                NftSetKind.Dnat => Concat(Range(Mapping.ExternalAddress is IPAddress e ? new IPNetwork(e, Family.AddressBytes * 8) : null), proto, Service(Mapping.ExternalPort), Range(Mapping.Remote)),
                NftSetKind.Hairpin => Concat(Range(Mapping.Subnet), Mapping.InternalAddress.GetAddressBytes(), proto, Service(Mapping.InternalPort)),
                _ => Concat(Mapping.InternalAddress.GetAddressBytes(), proto, Service(Mapping.InternalPort), Pad(Mapping.Bridge)),
            };
        }

        /// <summary>A port as a register holds it: big-endian, padded to 4 bytes.</summary>
        private static byte[] Service(int port) => new byte[] { (byte)(port >> 8), (byte)port, 0, 0 };

        private static byte[] Pad(string name)
        {
            var bytes = new byte[16];
            Encoding.ASCII.GetBytes(name).CopyTo(bytes, 0);
            return bytes;
        }

        private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

        /// <summary>An interface name padded with NULs.</summary>
        internal static string Name(ReadOnlySpan<byte> span)
        {
            int end = span.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? span : span.Slice(0, end));
        }

        /// <summary>The length of a kind's key for a family.</summary>
        public static int KeyLength(NftSetKind kind, AddressFamilyProfile family) => kind switch
        {
            NftSetKind.Dnat or NftSetKind.Hairpin => 2 * family.AddressBytes + 8,
            _ => family.AddressBytes + 8 + 16,
        };

        /// <summary>
        /// An element from what the kernel lists; null for one NetnsNat would not write. A Dnat element gives the mapping's
        /// external side and target (its bridge, subnet and uplink unknown); Hairpin and Published ones give what they hold.
        /// </summary>
        public static NftMappingElement? Decode(NftSetKind kind, AddressFamilyProfile family, byte[] key, byte[] keyEnd, byte[]? data)
        {
            int a = family.AddressBytes;
            if (key.Length != KeyLength(kind, family) || keyEnd.Length != key.Length) return null;
            IPAddress Address(byte[] bytes, int at) => new IPAddress(bytes.AsSpan(at, a));
            int PortAt(byte[] bytes, int at) => (bytes[at] << 8) | bytes[at + 1];
            string? ProtocolAt(int at) => key[at] == IPPROTO_TCP && keyEnd[at] == IPPROTO_TCP ? "tcp" : key[at] == IPPROTO_UDP && keyEnd[at] == IPPROTO_UDP ? "udp" : null;
            IPNetwork Host(IPAddress address) => new IPNetwork(address, a * 8);
            switch (kind)
            {
                case NftSetKind.Dnat:
                {
                    var protocol = ProtocolAt(a);
                    if (protocol == null || data == null || data.Length != a + 4 || PortAt(key, a + 4) != PortAt(keyEnd, a + 4)) return null;
                    var externalFirst = Address(key, 0);
                    var externalLast = Address(keyEnd, 0);
                    IPAddress? external = externalFirst;
                    if (!externalFirst.Equals(externalLast))
                    {
                        // A mapping on every address of the host: the whole range.
                        if (Cidr.RangeAsNetwork(externalFirst, externalLast) is not { PrefixLength: 0 }) return null;
                        external = null;
                    }
                    var remote = Cidr.RangeAsNetwork(Address(key, a + 8), Address(keyEnd, a + 8));
                    if (remote == null) return null;
                    var inside = Address(data, 0);
                    int port = PortAt(key, a + 4), internalPort = PortAt(data, a);
                    if (port == 0 || internalPort == 0) return null;
                    return new NftMappingElement(kind, new PortMapping(protocol, external, port, inside, internalPort, remote.Value.PrefixLength == 0 ? null : remote, string.Empty, Host(inside), string.Empty));
                }
                case NftSetKind.Hairpin:
                {
                    var protocol = ProtocolAt(a + a);
                    var subnet = Cidr.RangeAsNetwork(Address(key, 0), Address(keyEnd, 0));
                    if (protocol == null || subnet == null || !key.AsSpan(a).SequenceEqual(keyEnd.AsSpan(a))) return null;
                    var inside = Address(key, a);
                    return new NftMappingElement(kind, new PortMapping(protocol, null, PortAt(key, a + a + 4), inside, PortAt(key, a + a + 4), null, string.Empty, subnet.Value, string.Empty));
                }
                default:
                {
                    var protocol = ProtocolAt(a);
                    if (protocol == null || !key.AsSpan().SequenceEqual(keyEnd)) return null;
                    var inside = Address(key, 0);
                    int port = PortAt(key, a + 4);
                    return new NftMappingElement(kind, new PortMapping(protocol, null, port, inside, port, null, Name(key.AsSpan(a + 8, 16)), Host(inside), string.Empty));
                }
            }
        }
    }

    /// <summary>
    /// What the kernel holds of the table "inet netnsnat" at one generation: whether it is there, NetnsNat's and intact
    /// (read at once, a few small dumps), and its elements, which are looked up one by one (an element's own
    /// NFT_MSG_GETSETELEM: the cost does not grow with the set) until a caller needs them all (one dump of each set).
    /// </summary>
    internal sealed class NftTableContent
    {
        public static readonly NftTableContent Absent = new NftTableContent(false, true, true, null);

        private IReadOnlyList<NftEntry>? _all;
        private HashSet<string>? _index;
        private readonly Dictionary<string, bool> _known = new Dictionary<string, bool>(StringComparer.Ordinal);

        public NftTableContent(bool exists, bool owned, bool intact, string? problem, IReadOnlyList<NftEntry>? elements = null)
        {
            Exists = exists;
            Owned = owned;
            Intact = intact;
            Problem = problem;
            _all = exists && owned ? elements : Array.Empty<NftEntry>();
        }

        public bool Exists { get; }

        /// <summary>False for a table named netnsnat that NetnsNat did not create (no comment of its own): never touched.</summary>
        public bool Owned { get; }

        /// <summary>Whether its sets, chains and rules are the ones NetnsNat creates (false: something was changed by hand).</summary>
        public bool Intact { get; }

        /// <summary>What is wrong with a table that is not intact.</summary>
        public string? Problem { get; }

        /// <summary>The rules of its forward chain as the read listed them (netlink payloads, in order); none when it was not read.</summary>
        public IReadOnlyList<byte[]> ForwardRules { get; init; } = Array.Empty<byte[]>();

        /// <summary>Every element of the table's sets and maps (one dump of each, on first use).</summary>
        public IReadOnlyList<NftEntry> Elements
        {
            get
            {
                if (_all == null) (_all, _foreign) = NftablesTable.ReadElements();
                return _all;
            }
        }

        private int _foreign;

        /// <summary>Elements of the sets that NetnsNat would not write (a range that is no network, say): never taken, and they keep the table.</summary>
        public int Foreign
        {
            get
            {
                _ = Elements;
                return _foreign;
            }
        }

        private HashSet<string> Index => _index ??= Elements.Select(e => e.Text).ToHashSet(StringComparer.Ordinal);

        /// <summary>The elements of a subnet's NAT (masquerade and inbound).</summary>
        public IEnumerable<NftElement> Subnets => Elements.OfType<NftElement>();

        /// <summary>The elements of port mappings of a kind and family.</summary>
        public IEnumerable<NftMappingElement> MappingElements(NftSetKind kind, AddressFamilyProfile family) => Elements.OfType<NftMappingElement>().Where(e => e.Kind == kind && e.Family == family);

        public bool Has(NftEntry element) => Missing(new[] { element }).Count == 0;

        /// <summary>The elements that are not in the table: from the full list when it was read, else looked up.</summary>
        public IReadOnlyList<T> Missing<T>(IReadOnlyList<T> elements) where T : NftEntry
        {
            if (!Exists || !Owned) return elements;
            if (_all != null) return elements.Where(e => !Index.Contains(e.Text)).ToArray();
            var unknown = elements.Where(e => !_known.ContainsKey(e.Text)).ToArray();
            if (unknown.Length > 0)
            {
                var found = NftablesTable.Lookup(unknown);
                for (int i = 0; i < unknown.Length; i++) _known[unknown[i].Text] = found[i];
            }
            return elements.Where(e => !_known[e.Text]).ToArray();
        }

        /// <summary>Whether the table holds an element other than these (the first page of each set's dump is enough to tell).</summary>
        public bool HasOtherThan(IReadOnlyCollection<NftEntry> elements)
        {
            var texts = elements.Select(e => e.Text).ToHashSet(StringComparer.Ordinal);
            if (_all != null) return _foreign > 0 || _all.Any(e => !texts.Contains(e.Text));
            return NftablesTable.AnyElementBut(texts);
        }
    }

    /// <summary>
    /// NetnsNat's own nftables table, "inet netnsnat", over netlink: one table for both families, whose rules never
    /// change once created; a subnet's NAT is elements of its sets. Per family (4 or 6) it holds
    /// <code>
    /// set masquerade4 { type ipv4_addr . ifname; flags interval; }            # subnet . uplink
    /// set inbound4 { type ipv4_addr . ifname . ifname; flags interval; }      # subnet . uplink . bridge
    /// map dnat4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr : ipv4_addr . inet_service; flags interval; }
    ///                                                  # external address . protocol . port . sources : namespace address . port
    /// set hairpin4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval; }  # subnet . namespace address . protocol . port
    /// set published4 { type ipv4_addr . inet_proto . inet_service . ifname; flags interval; }   # namespace address . protocol . port . bridge
    /// chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
    ///   fib daddr type local meta l4proto tcp counter dnat ip to ip daddr . meta l4proto . th dport . ip saddr map @dnat4    # and udp (nft lists "tcp dport")
    /// chain output { type nat hook output priority -100; policy accept; }
    ///   ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto tcp counter dnat ip to ...        # the same, never to loopback
    /// chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
    ///   ip saddr . oifname @masquerade4 counter masquerade
    ///   ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin4 counter masquerade
    /// chain forward { type filter hook forward priority filter; policy accept; }
    ///   ct status dnat ip daddr . meta l4proto . th dport . oifname @published4 counter accept
    ///   ct state established,related ip daddr . iifname . oifname @inbound4 counter accept
    ///   ip daddr . iifname . oifname @inbound4 counter drop
    /// </code>
    /// Adding a bridge adds two elements, publishing a port one to three (no rule, no chain, no verdict map), so the
    /// kernel has no chain to rebuild and no table to validate again: the cost of a call does not grow with the number
    /// of bridges or mappings.
    /// </summary>
    internal static class NftablesTable
    {
        public const string Name = "netnsnat";
        public const byte NFPROTO_INET = 1;
        public const string Comment = "NetnsNat: NAT for network namespaces (managed by the NetnsNat PowerShell module)";

        private const ushort NFTA_TABLE_NAME = 1, NFTA_TABLE_USERDATA = 6;
        private const ushort NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5, NFTA_CHAIN_TYPE = 7;
        private const ushort NFTA_HOOK_HOOKNUM = 1, NFTA_HOOK_PRIORITY = 2;
        private const ushort NFTA_SET_TABLE = 1, NFTA_SET_NAME = 2, NFTA_SET_FLAGS = 3, NFTA_SET_KEY_TYPE = 4, NFTA_SET_KEY_LEN = 5, NFTA_SET_DESC = 9, NFTA_SET_ID = 10;
        private const ushort NFTA_SET_DESC_CONCAT = 2, NFTA_SET_FIELD_LEN = 1, NFTA_LIST_ELEM = 1, NFTA_DATA_VALUE = 1;
        private const ushort NFTA_SET_ELEM_LIST_TABLE = 1, NFTA_SET_ELEM_LIST_SET = 2, NFTA_SET_ELEM_LIST_ELEMENTS = 3, NFTA_SET_ELEM_LIST_SET_ID = 4;
        private const ushort NFTA_SET_ELEM_KEY = 1, NFTA_SET_ELEM_KEY_END = 10;
        private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_EXPRESSIONS = 4;
        private const ushort NFTA_SET_DATA_TYPE = 6, NFTA_SET_DATA_LEN = 7, NFTA_SET_ELEM_DATA = 2;
        private const uint NFT_SET_INTERVAL = 0x4, NFT_SET_MAP = 0x8, NFT_SET_CONCAT = 0x80;
        private const uint NFT_META_L4PROTO = 16, NFT_PAYLOAD_TRANSPORT_HEADER = 2, NFT_CT_STATUS = 2, IPS_DST_NAT = 0x20, RTN_LOCAL = 2;
        private const uint TYPE_INET_PROTO = 12, TYPE_INET_SERVICE = 13;
        private const uint NFT_META_IIFNAME = 6, NFT_META_OIFNAME = 7, NFT_META_NFPROTO = 15, NFT_PAYLOAD_NETWORK_HEADER = 1;
        private const uint NFT_REG_1 = 1, NFT_REG32_00 = 8, NF_DROP = 0, NF_ACCEPT = 1;
        private const uint TYPE_IPADDR = 7, TYPE_IP6ADDR = 8, TYPE_IFNAME = 41;

        /// <summary>Elements per NEWSETELEM message: a message's element list is one attribute, at most 64 KiB.</summary>
        private const int ElementsPerMessage = 400;

        public static string SetName(NftSetKind kind, AddressFamilyProfile family) =>
            kind.ToString().ToLowerInvariant() + (family == AddressFamilyProfile.IPv4 ? "4" : "6");

        private static readonly NftSetKind[] Kinds = { NftSetKind.Masquerade, NftSetKind.Inbound, NftSetKind.Dnat, NftSetKind.Hairpin, NftSetKind.Published };

        /// <summary>Every set and map, a family's after the other's (loops, not LINQ over tuples: precompiled code has no instantiation of those).</summary>
        private static readonly (NftSetKind Kind, AddressFamilyProfile Family)[] Sets = AllSets();

        private static (NftSetKind, AddressFamilyProfile)[] AllSets()
        {
            var sets = new List<(NftSetKind, AddressFamilyProfile)>();
            foreach (var family in AddressFamilyProfile.All)
            {
                foreach (var kind in Kinds) sets.Add((kind, family));
            }
            return sets.ToArray();
        }

        private static readonly string[] Protocols = { "tcp", "udp" };

        /// <summary>A set's type as nft writes it.</summary>
        private static string TypeOf(NftSetKind kind, AddressFamilyProfile family)
        {
            var address = family == AddressFamilyProfile.IPv4 ? "ipv4_addr" : "ipv6_addr";
            return kind switch
            {
                NftSetKind.Masquerade => $"{address} . ifname",
                NftSetKind.Inbound => $"{address} . ifname . ifname",
                NftSetKind.Dnat => $"{address} . inet_proto . inet_service . {address} : {address} . inet_service",
                NftSetKind.Hairpin => $"{address} . {address} . inet_proto . inet_service",
                _ => $"{address} . inet_proto . inet_service . ifname",
            };
        }

        /// <summary>The lengths of a set's key fields (as NFTA_SET_DESC_CONCAT gives them), and its key type.</summary>
        private static (uint[] Fields, uint Type) KeyOf(NftSetKind kind, AddressFamilyProfile family)
        {
            uint a = (uint)family.AddressBytes, address = family == AddressFamilyProfile.IPv4 ? TYPE_IPADDR : TYPE_IP6ADDR;
            var (lengths, types) = kind switch
            {
                NftSetKind.Masquerade => (new[] { a, 16u }, new[] { address, TYPE_IFNAME }),
                NftSetKind.Inbound => (new[] { a, 16u, 16u }, new[] { address, TYPE_IFNAME, TYPE_IFNAME }),
                NftSetKind.Dnat => (new[] { a, 1u, 2u, a }, new[] { address, TYPE_INET_PROTO, TYPE_INET_SERVICE, address }),
                NftSetKind.Hairpin => (new[] { a, a, 1u, 2u }, new[] { address, address, TYPE_INET_PROTO, TYPE_INET_SERVICE }),
                _ => (new[] { a, 1u, 2u, 16u }, new[] { address, TYPE_INET_PROTO, TYPE_INET_SERVICE, TYPE_IFNAME }),
            };
            uint type = 0;
            foreach (var t in types) type = (type << 6) | t;
            return (lengths, type);
        }

        /// <summary>The table's definition as nft commands (one argument to nft, or the lines of an nft -f file).</summary>
        public static IReadOnlyList<string> Definition()
        {
            var lines = new List<string> { $"add table inet {Name} {{ comment \"{Comment}\"; }}" };
            foreach (var (kind, family) in Sets)
            {
                lines.Add($"add {(kind == NftSetKind.Dnat ? "map" : "set")} inet {Name} {SetName(kind, family)} {{ type {TypeOf(kind, family)}; flags interval; }}");
            }
            foreach (var chain in BaseChains) lines.Add($"add chain inet {Name} {chain.Name} {{ {chain.Spec} }}");
            foreach (var rule in Rules.Value) lines.Add($"add rule inet {Name} {rule.Chain} {rule.Text}");
            return lines;
        }

        /// <summary>One base chain of the table: its hook, priority and type, and how nft writes them.</summary>
        private sealed record TableChain(string Name, uint Hook, int Priority, string Type, string Spec);

        private static readonly TableChain[] BaseChains =
        {
            new TableChain("prerouting", 0 /* NF_INET_PRE_ROUTING */, -100 /* dstnat */, "nat", "type nat hook prerouting priority dstnat; policy accept;"),
            new TableChain("output", 3 /* NF_INET_LOCAL_OUT */, -100, "nat", "type nat hook output priority -100; policy accept;"),
            new TableChain("postrouting", 4 /* NF_INET_POST_ROUTING */, 100 /* srcnat */, "nat", "type nat hook postrouting priority srcnat; policy accept;"),
            new TableChain("forward", 2 /* NF_INET_FORWARD */, 0 /* filter */, "filter", "type filter hook forward priority filter; policy accept;"),
        };

        /// <summary>
        /// One rule of the table: its chain, what it is (for an error that names it), how nft writes it, and its
        /// expressions over netlink (given the batch's set ids). Each rule is written once, here, as both.
        /// </summary>
        private sealed record TableRule(string Chain, string What, string Text, Func<Dictionary<string, uint>, byte[]> Expressions);

        /// <summary>The table's rules in order: the one list the nft text, the netlink batch and the intact check (rules per chain) come from.</summary>
        private static readonly Lazy<TableRule[]> Rules = new Lazy<TableRule[]>(AllRules);

        private static TableRule[] AllRules()
        {
            var rules = new List<TableRule>();
            foreach (var chain in new[] { "prerouting", "output" })
            {
                bool output = chain == "output";
                foreach (var family in AddressFamilyProfile.All)
                {
                    var ip = Ip(family);
                    var set = SetName(NftSetKind.Dnat, family);
                    var guard = output ? $"{ip} daddr != {Loopback(family)} " : string.Empty;
                    foreach (var protocol in Protocols)
                    {
                        // In the order nft writes "[ip daddr != 127.0.0.0/8] fib daddr type local meta l4proto tcp counter dnat ip to ip daddr . meta l4proto . th dport . ip saddr map @dnat4".
                        rules.Add(new TableRule(chain, $"the {chain} DNAT rule of {family.Name} {protocol}",
                            $"{guard}fib daddr type local meta l4proto {protocol} counter dnat {ip} to {ip} daddr . meta l4proto . th dport . {ip} saddr map @{set}",
                            ids => Concat(
                                output ? Nfproto(family) : Array.Empty<byte>(),
                                output ? NotLoopback(family) : Array.Empty<byte>(),
                                NftRuleWriter.Expression("fib", U32(1 /* DREG */, NFT_REG_1), U32(2 /* RESULT */, 3 /* NFT_FIB_RESULT_ADDRTYPE */), U32(3 /* FLAGS */, 2 /* NFTA_FIB_F_DADDR */)),
                                NftRuleWriter.Cmp(HostOrder(RTN_LOCAL)),
                                NftRuleWriter.Expression("meta", U32(2, NFT_META_L4PROTO), U32(1, NFT_REG_1)),
                                NftRuleWriter.Cmp(new[] { protocol == "tcp" ? (byte)6 : (byte)17 }),
                                Counter(),
                                output ? Array.Empty<byte>() : Nfproto(family),
                                Fields(Payload(family.DestinationOffset, family.AddressBytes), L4Proto, TransportPort, Payload(family.SourceOffset, family.AddressBytes)),
                                NftRuleWriter.Expression("lookup", Attribute(1 /* SET */, Text(set)), U32(2 /* SREG */, NFT_REG_1), U32(3 /* DREG */, NFT_REG_1), U32(4 /* SET_ID */, ids[set])),
                                // The address from the first register, the port from the one after it.
                                NftRuleWriter.Expression("nat", U32(1 /* TYPE */, 1 /* NFT_NAT_DNAT */), U32(2 /* FAMILY */, family.NfProto),
                                    U32(3 /* REG_ADDR_MIN */, NFT_REG_1), U32(5 /* REG_PROTO_MIN */, Register(family.AddressBytes))))));
                    }
                }
            }
            foreach (var family in AddressFamilyProfile.All)
            {
                var ip = Ip(family);
                var set = SetName(NftSetKind.Masquerade, family);
                rules.Add(new TableRule("postrouting", $"the masquerade rule of {family.Name}", $"{ip} saddr . oifname @{set} counter masquerade",
                    ids => Concat(Nfproto(family), Load(family, family.SourceOffset, NFT_META_OIFNAME), Lookup(set, ids[set]), Counter(), NftRuleWriter.Expression("masq"))));
            }
            foreach (var family in AddressFamilyProfile.All)
            {
                var ip = Ip(family);
                var set = SetName(NftSetKind.Hairpin, family);
                rules.Add(new TableRule("postrouting", $"the hairpin rule of {family.Name}", $"ct status dnat {ip} saddr . {ip} daddr . meta l4proto . th dport @{set} counter masquerade",
                    ids => Concat(DnatStatus(), Nfproto(family),
                        Fields(Payload(family.SourceOffset, family.AddressBytes), Payload(family.DestinationOffset, family.AddressBytes), L4Proto, TransportPort),
                        Lookup(set, ids[set]), Counter(), NftRuleWriter.Expression("masq"))));
            }
            foreach (var family in AddressFamilyProfile.All)
            {
                var ip = Ip(family);
                var published = SetName(NftSetKind.Published, family);
                var set = SetName(NftSetKind.Inbound, family);
                rules.Add(new TableRule("forward", $"the published ports rule of {family.Name}", $"ct status dnat {ip} daddr . meta l4proto . th dport . oifname @{published} counter accept",
                    ids => Concat(DnatStatus(), Nfproto(family),
                        Fields(Payload(family.DestinationOffset, family.AddressBytes), L4Proto, TransportPort, MetaField(NFT_META_OIFNAME, 16)),
                        Lookup(published, ids[published]), Counter(), NftRuleWriter.Verdict(NF_ACCEPT))));
                rules.Add(new TableRule("forward", $"the reply rule of {family.Name}", $"ct state established,related {ip} daddr . iifname . oifname @{set} counter accept",
                    ids => Concat(Nfproto(family),
                        // ct state established,related: the state bits (host order) masked, not zero.
                        NftRuleWriter.Expression("ct", U32(1 /* DREG */, NFT_REG_1), U32(2 /* KEY */, 0 /* NFT_CT_STATE */)),
                        NftRuleWriter.Expression("bitwise", U32(1, NFT_REG_1), U32(2, NFT_REG_1), U32(3, 4),
                            Attribute(4 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, new byte[] { 6, 0, 0, 0 })), Attribute(5 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, new byte[4]))),
                        NftRuleWriter.Cmp(new byte[4], negated: true),
                        Load(family, family.DestinationOffset, NFT_META_IIFNAME, NFT_META_OIFNAME),
                        Lookup(set, ids[set]), Counter(), NftRuleWriter.Verdict(NF_ACCEPT))));
                rules.Add(new TableRule("forward", InboundDrop(family), $"{ip} daddr . iifname . oifname @{set} counter drop",
                    ids => Concat(Nfproto(family), Load(family, family.DestinationOffset, NFT_META_IIFNAME, NFT_META_OIFNAME), Lookup(set, ids[set]), Counter(), NftRuleWriter.Verdict(NF_DROP))));
            }
            return rules.ToArray();
        }

        private static string Ip(AddressFamilyProfile family) => family == AddressFamilyProfile.IPv4 ? "ip" : "ip6";

        private static string Loopback(AddressFamilyProfile family) => family == AddressFamilyProfile.IPv4 ? "127.0.0.0/8" : "::1";

        /// <summary>
        /// Reads the table: whether it exists and is NetnsNat's, and whether it is intact (its elements are read when asked).
        /// Returns the content and the generation the read began at: a batch planned from it goes only if nothing changed
        /// since (elements looked up later are checked by the same guard at the write).
        /// </summary>
        public static (NftTableContent Content, uint? Generation) Read()
        {
            for (int attempt = 0; ; attempt++)
            {
                var before = NftGeneration.Read();
                var content = ReadOnce();
                var after = NftGeneration.Read();
                // A read that saw the ruleset move carries the generation from before it: a batch planned from it is refused
                // (ERESTART), and the call reads again.
                if (before == after || attempt >= 3) return (content, before);
            }
        }

        private static NftTableContent ReadOnce()
        {
            using var socket = NetfilterSocket.Open(0);
            byte[]? userData = null;
            bool exists = false;
            foreach (var payload in socket.Dump(Message(NftMessage(1), NLM_F_REQUEST | NLM_F_DUMP, socket.Next(), NFPROTO_INET, 0, Array.Empty<byte>()), NftMessage(0), "list the nftables tables"))
            {
                string? name = null;
                byte[]? data = null;
                foreach (var (attr, value) in Attributes(payload, 4))
                {
                    if (attr == NFTA_TABLE_NAME) name = TextOf(value);
                    else if (attr == NFTA_TABLE_USERDATA) data = value;
                }
                if (name != Name) continue;
                exists = true;
                userData = data;
            }
            if (!exists) return NftTableContent.Absent;
            if (userData == null || CommentOf(userData) != Comment) return new NftTableContent(true, false, false, "it was not created by NetnsNat", Array.Empty<NftEntry>());

            var keyLengths = new Dictionary<string, uint>(StringComparer.Ordinal);
            foreach (var payload in socket.Dump(Message(NftMessage(10), NLM_F_REQUEST | NLM_F_DUMP, socket.Next(), NFPROTO_INET, 0, Attribute(NFTA_SET_TABLE, Text(Name))), NftMessage(9), "list the sets of inet netnsnat"))
            {
                string? name = null;
                uint keyLength = 0;
                foreach (var (attr, value) in Attributes(payload, 4))
                {
                    if (attr == NFTA_SET_NAME) name = TextOf(value);
                    else if (attr == NFTA_SET_KEY_LEN && value.Length == 4) keyLength = BinaryPrimitives.ReadUInt32BigEndian(value);
                }
                if (name != null) keyLengths[name] = keyLength;
            }
            string? problem = null;
            foreach (var (kind, family) in Sets)
            {
                var set = SetName(kind, family);
                if (!keyLengths.TryGetValue(set, out var length) || length != KeyLength(kind, family)) problem ??= $"its {(kind == NftSetKind.Dnat ? "map" : "set")} {set} is missing or of another type";
            }
            IReadOnlyList<byte[]> forward = Array.Empty<byte[]>();
            foreach (var (chain, _, _, _, _) in BaseChains)
            {
                // The rules the chain holds when the table is intact: the definition's.
                int rules = Rules.Value.Count(r => r.Chain == chain);
                var listed = socket.Dump(Message(NftMessage(7), NLM_F_REQUEST | NLM_F_DUMP, socket.Next(), NFPROTO_INET, 0,
                    Concat(Attribute(NFTA_RULE_TABLE, Text(Name)), Attribute(NFTA_RULE_CHAIN, Text(chain)))), NftMessage(6), $"list the rules of inet netnsnat {chain}");
                if (chain == "forward") forward = listed;
                int count = listed.Count;
                if (count != rules) problem ??= count == 0 ? $"its chain {chain} is missing or empty" : $"its chain {chain} has {count} rules, not {rules}";
            }
            return new NftTableContent(true, true, problem == null, problem) { ForwardRules = forward };
        }

        /// <summary>
        /// Whether the family's inbound drop takes effect in the table's forward chain: the rule is there, and every rule
        /// before it is one of the table's own (a rule added by hand above it could accept what it drops). Compared by what
        /// the rules do (<see cref="NftRuleSignature"/>), not by handle. For a table changed by hand,
        /// or one whose rule counts are right but whose rules are not. Reads the chain's rules as the table's read listed
        /// them (<see cref="NftTableContent.ForwardRules"/>): no second dump.
        /// </summary>
        public static bool InboundDropStands(NftTableContent content, AddressFamilyProfile family)
        {
            var (own, drops) = ForwardSignatures.Value;
            var drop = drops[family == AddressFamilyProfile.IPv6 ? 1 : 0];
            foreach (var payload in content.ForwardRules)
            {
                var signature = NftRuleSignature.Of(ExpressionsOf(payload, 4), Array.Empty<byte>());
                if (signature == drop) return true;
                if (!own.Contains(signature)) return false;
            }
            return false;
        }

        /// <summary>The signatures of the definition's forward rules, and of each family's inbound drop (IPv4, IPv6): made once.</summary>
        private static readonly Lazy<(HashSet<string> Own, string[] Drops)> ForwardSignatures = new Lazy<(HashSet<string>, string[])>(() =>
        {
            var definition = new List<BatchMessage>();
            AddDefinition(definition, new Dictionary<string, uint>(StringComparer.Ordinal));
            var own = new HashSet<string>(StringComparer.Ordinal);
            var drops = new string[2];
            foreach (var rule in definition)
            {
                if (rule.Chain != "forward") continue;
                var signature = NftRuleSignature.Of(ExpressionsOf(rule.Body, 0), Array.Empty<byte>());
                own.Add(signature);
                if (rule.What == InboundDrop(AddressFamilyProfile.IPv4)) drops[0] = signature;
                else if (rule.What == InboundDrop(AddressFamilyProfile.IPv6)) drops[1] = signature;
            }
            return (own, drops);
        });

        private static string InboundDrop(AddressFamilyProfile family) => $"the inbound drop rule of {family.Name}";

        private static byte[] ExpressionsOf(byte[] rule, int offset)
        {
            foreach (var (attr, value) in Attributes(rule, offset))
            {
                if (attr == NFTA_RULE_EXPRESSIONS) return value;
            }
            return Array.Empty<byte>();
        }

        /// <summary>Every element of the table's sets, one dump of each, and how many it would not write (left out of the list).</summary>
        public static (IReadOnlyList<NftEntry> Elements, int Foreign) ReadElements()
        {
            int foreign = 0;
            using var socket = NetfilterSocket.Open(0);
            var elements = new List<NftEntry>();
            foreach (var (kind, family) in Sets)
            {
                var set = SetName(kind, family);
                List<byte[]> payloads;
                try
                {
                    payloads = socket.Dump(ElementDump(socket.Next(), set), NftMessage(12), $"list the elements of {set}");
                }
                catch (NftablesException ex) when (ex.Errno == ENOENT)
                {
                    // A set deleted by hand: the table is laid again whole, with the elements the other sets hold.
                    continue;
                }
                foreach (var payload in payloads)
                {
                    foreach (var (key, end, data) in KeysOf(payload))
                    {
                        if (NftEntry.FromKernel(kind, family, key, end ?? key, data) is { } element) elements.Add(element);
                        else foreign++;
                    }
                }
            }
            return (elements, foreign);
        }

        /// <summary>
        /// Whether each element is in its set, one NFT_MSG_GETSETELEM each on one socket: the kernel looks the key up (the
        /// element that holds it) and the answer must be this element, start and end (and, in a map, what it maps to).
        /// </summary>
        public static bool[] Lookup(IReadOnlyList<NftEntry> elements)
        {
            var found = new bool[elements.Count];
            Ask(elements, (i, key, end, data) =>
            {
                var e = elements[i];
                // A map's element must map to the same: the same key to another namespace is another mapping.
                if (key.AsSpan().SequenceEqual(e.Key) && (end ?? key).AsSpan().SequenceEqual(e.KeyEnd) && (e.Data == null || (data != null && data.AsSpan().SequenceEqual(e.Data)))) found[i] = true;
            });
            return found;
        }

        /// <summary>The element of its set that holds each element's key (its start), as NetnsNat reads it; null where none does.</summary>
        public static NftEntry?[] Holders(IReadOnlyList<NftEntry> elements)
        {
            var holders = new NftEntry?[elements.Count];
            Ask(elements, (i, key, end, data) => holders[i] ??= NftEntry.FromKernel(elements[i].Kind, elements[i].Family, key, end ?? key, data));
            return holders;
        }

        /// <summary>One NFT_MSG_GETSETELEM per element on one socket; each answer's elements (key, key end, data) handed to found with the element's index.</summary>
        private static void Ask(IReadOnlyList<NftEntry> elements, Action<int, byte[], byte[]?, byte[]?> found)
        {
            using var socket = NetfilterSocket.Open(0);
            for (int i = 0; i < elements.Count; i++)
            {
                var e = elements[i];
                uint seq = socket.Next();
                socket.Send(Message(NftMessage(13), NLM_F_REQUEST, seq, NFPROTO_INET, 0, Elements(e.Set, new Dictionary<string, uint>(), new[] { e }, withData: false)), $"look up {e.Value} in {e.Set}");
                bool done = false;
                while (!done)
                {
                    foreach (var (type, msgSeq, payload) in socket.Receive($"look up {e.Value} in {e.Set}"))
                    {
                        if (msgSeq != seq) continue;
                        if (type == NLMSG_ERROR)
                        {
                            int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                            if (error != 0 && error != ENOENT) throw new NftablesException($"Looking up {e.Value} in {e.Set}: {Strerror(error)} (errno {error}).", error);
                            done = true;
                            break;
                        }
                        if (type != NftMessage(12)) continue;
                        foreach (var (key, end, data) in KeysOf(payload)) found(i, key, end, data);
                        done = true;
                        break;
                    }
                }
            }
        }

        /// <summary>Whether any set holds an element whose text is not one of these: the first page of each set's dump, then the socket is closed.</summary>
        public static bool AnyElementBut(IReadOnlySet<string> texts)
        {
            foreach (var (kind, family) in Sets)
            {
                var set = SetName(kind, family);
                using var socket = NetfilterSocket.Open(0);
                socket.Send(ElementDump(socket.Next(), set), $"list the elements of {set}");
                while (true)
                {
                    bool end = false;
                    foreach (var (type, _, payload) in socket.Receive($"list the elements of {set}"))
                    {
                        if (type == NLMSG_DONE || type == NLMSG_ERROR)
                        {
                            int error = type == NLMSG_ERROR && payload.Length >= 4 ? -BinaryPrimitives.ReadInt32LittleEndian(payload) : 0;
                            if (error != 0 && error != ENOENT) throw new NftablesException($"Could not list the elements of {set}: {Strerror(error)} (errno {error}).", error);
                            end = true;
                            break;
                        }
                        if (type != NftMessage(12)) continue;
                        foreach (var (key, keyEnd, data) in KeysOf(payload))
                        {
                            var element = NftEntry.FromKernel(kind, family, key, keyEnd ?? key, data);
                            if (element == null || !texts.Contains(element.Text)) return true;
                        }
                    }
                    if (end) break;
                }
            }
            return false;
        }

        private static byte[] ElementDump(uint seq, string set) => Message(NftMessage(13), NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_INET, 0,
            Concat(Attribute(NFTA_SET_ELEM_LIST_TABLE, Text(Name)), Attribute(NFTA_SET_ELEM_LIST_SET, Text(set))));

        /// <summary>The key, key end and data of each element of a NEWSETELEM message.</summary>
        private static IEnumerable<(byte[] Key, byte[]? End, byte[]? Data)> KeysOf(byte[] payload)
        {
            foreach (var (attr, list) in Attributes(payload, 4))
            {
                if (attr != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
                foreach (var (_, item) in Attributes(list, 0))
                {
                    byte[]? key = null, end = null, data = null;
                    foreach (var (a, v) in Attributes(item, 0))
                    {
                        if (a == NFTA_SET_ELEM_KEY) key = DataValue(v);
                        else if (a == NFTA_SET_ELEM_KEY_END) end = DataValue(v);
                        else if (a == NFTA_SET_ELEM_DATA) data = DataValue(v);
                    }
                    if (key != null) yield return (key, end, data);
                }
            }
        }

        /// <summary>What one batch does to the table, in this order.</summary>
        /// <param name="DeleteFirst">Delete the table before anything else (a table changed by hand is laid again whole).</param>
        /// <param name="Create">Create the table, its sets, chains and rules.</param>
        /// <param name="Relay">The elements a table laid again held before: written again, and never taken away by an undo.</param>
        /// <param name="Add">The elements the batch adds.</param>
        /// <param name="DeleteAfter">Delete the table at the end (its last elements go with it).</param>
        internal sealed record Batch(bool DeleteFirst, bool Create, IReadOnlyList<NftEntry> Relay, IReadOnlyList<NftEntry> Add, IReadOnlyList<NftEntry> Delete, bool DeleteAfter);

        /// <summary>One message of a batch: its type, flags, body, and what it is about (for the error that refuses it).</summary>
        private sealed record BatchMessage(ushort Type, ushort Flags, byte[] Body, string What, string? Chain = null);

        /// <summary>
        /// Writes a batch as one kernel transaction, only at the generation given (when one is): the kernel refuses it
        /// when the ruleset changed since. Returns 0, or the errno of the refusal (ERESTART: the ruleset moved) with what it was about.
        /// </summary>
        public static (int Errno, string What) Write(Batch batch, uint? generation)
        {
            var messages = new List<BatchMessage>();
            if (batch.DeleteFirst) messages.Add(new BatchMessage(NftMessage(2), 0, Attribute(NFTA_TABLE_NAME, Text(Name)), "the deletion of the table"));
            var setIds = new Dictionary<string, uint>(StringComparer.Ordinal);
            if (batch.Create) AddDefinition(messages, setIds);
            foreach (var group in batch.Relay.Concat(batch.Add).GroupBy(e => e.Set))
            {
                foreach (var chunk in group.Chunk(ElementsPerMessage)) messages.Add(new BatchMessage(NftMessage(12), NLM_F_CREATE, Elements(group.Key, setIds, chunk), $"the elements of {group.Key}: {string.Join(", ", chunk.Select(e => e.Value))}"));
            }
            // A table deleted at the end takes its last elements with it.
            if (batch.DeleteAfter)
            {
                messages.Add(new BatchMessage(NftMessage(2), 0, Attribute(NFTA_TABLE_NAME, Text(Name)), "the deletion of the table"));
            }
            else
            {
                foreach (var group in batch.Delete.GroupBy(e => e.Set))
                {
                    foreach (var chunk in group.Chunk(ElementsPerMessage)) messages.Add(new BatchMessage(NftMessage(14), 0, Elements(group.Key, setIds, chunk, withData: false), $"the deletion of {string.Join(", ", chunk.Select(e => e.Value))}"));
                }
            }
            if (messages.Count == 0) return (0, string.Empty);

            using var socket = NetfilterSocket.Open(messages.Sum(m => m.Body.Length + 64));
            uint seq = socket.Reserve(messages.Count + 2);
            uint first = seq, last = seq + (uint)messages.Count;
            var wire = new List<byte[]>(messages.Count + 2) { BatchBegin(seq, generation) };
            foreach (var (type, flags, body, _, _) in messages)
            {
                ++seq;
                wire.Add(Message(type, (ushort)(NLM_F_REQUEST | flags | (seq == last ? NLM_F_ACK : 0)), seq, NFPROTO_INET, 0, body));
            }
            wire.Add(BatchEnd(++seq));
            var (errno, index) = socket.SendBatch(Concat(wire.ToArray()), first, last, "write the inet netnsnat table");
            return (errno, errno == 0 ? string.Empty : index >= 0 && index < messages.Count ? messages[index].What : "the batch");
        }

        private static void AddDefinition(List<BatchMessage> messages, Dictionary<string, uint> setIds)
        {
            messages.Add(new BatchMessage(NftMessage(0), NLM_F_CREATE, Concat(Attribute(NFTA_TABLE_NAME, Text(Name)), Attribute(NFTA_TABLE_USERDATA, CommentUserData(Comment))), "the creation of the table"));
            uint id = 0;
            foreach (var (kind, family) in Sets)
            {
                var name = SetName(kind, family);
                setIds[name] = ++id;
                var (fields, type) = KeyOf(kind, family);
                bool map = kind == NftSetKind.Dnat;
                messages.Add(new BatchMessage(NftMessage(9), NLM_F_CREATE, Concat(
                    Attribute(NFTA_SET_TABLE, Text(Name)),
                    Attribute(NFTA_SET_NAME, Text(name)),
                    U32(NFTA_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_CONCAT | (map ? NFT_SET_MAP : 0)),
                    U32(NFTA_SET_KEY_TYPE, type),
                    U32(NFTA_SET_KEY_LEN, KeyLength(kind, family)),
                    // The map's data: the namespace's address and port, as the nat expression takes them from two registers.
                    map ? Concat(U32(NFTA_SET_DATA_TYPE, ((family == AddressFamilyProfile.IPv4 ? TYPE_IPADDR : TYPE_IP6ADDR) << 6) | TYPE_INET_SERVICE), U32(NFTA_SET_DATA_LEN, (uint)family.AddressBytes + 4)) : Array.Empty<byte>(),
                    U32(NFTA_SET_ID, id),
                    Attribute(NFTA_SET_DESC | NLA_F_NESTED, Attribute(NFTA_SET_DESC_CONCAT | NLA_F_NESTED,
                        Concat(fields.Select(f => Attribute(NFTA_LIST_ELEM | NLA_F_NESTED, U32(NFTA_SET_FIELD_LEN, f))).ToArray())))), $"the creation of the {(map ? "map" : "set")} {name}"));
            }
            foreach (var chain in BaseChains)
            {
                messages.Add(new BatchMessage(NftMessage(3), NLM_F_CREATE, BaseChain(chain.Name, chain.Hook, chain.Priority, chain.Type), $"the creation of the chain {chain.Name}"));
            }
            foreach (var rule in Rules.Value)
            {
                messages.Add(new BatchMessage(NftMessage(6), (ushort)(NLM_F_CREATE | NLM_F_APPEND), RuleBody(rule.Chain, rule.Expressions(setIds)), rule.What, rule.Chain));
            }
        }

        private static byte[] HostOrder(uint value) => BitConverter.GetBytes(value);

        /// <summary>ct status dnat: the status bits (host order) masked with IPS_DST_NAT, not zero.</summary>
        private static byte[] DnatStatus() => Concat(
            NftRuleWriter.Expression("ct", U32(1 /* DREG */, NFT_REG_1), U32(2 /* KEY */, NFT_CT_STATUS)),
            NftRuleWriter.Expression("bitwise", U32(1, NFT_REG_1), U32(2, NFT_REG_1), U32(3, 4),
                Attribute(4 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, HostOrder(IPS_DST_NAT))), Attribute(5 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, new byte[4]))),
            NftRuleWriter.Cmp(new byte[4], negated: true));

        /// <summary>"ip daddr != 127.0.0.0/8" (its first byte, as nft writes it) or "ip6 daddr != ::1".</summary>
        private static byte[] NotLoopback(AddressFamilyProfile family) => family == AddressFamilyProfile.IPv4
            ? Concat(NftRuleWriter.Expression("payload", U32(1, NFT_REG_1), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, family.DestinationOffset), U32(4, 1)), NftRuleWriter.Cmp(new byte[] { 127 }, negated: true))
            : Concat(NftRuleWriter.Expression("payload", U32(1, NFT_REG_1), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, family.DestinationOffset), U32(4, 16)), NftRuleWriter.Cmp(IPAddress.IPv6Loopback.GetAddressBytes(), negated: true));

        /// <summary>One field of a concatenation: its length in bytes, and the expressions that load it into a register.</summary>
        private delegate (int Length, byte[] Expressions) Field(uint register);

        private static Field Payload(uint offset, int length) => register => (length, NftRuleWriter.Expression("payload", U32(1, register), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, offset), U32(4, (uint)length)));

        private static Field MetaField(uint key, int length) => register => (length, NftRuleWriter.Expression("meta", U32(2, key), U32(1, register)));

        /// <summary>meta l4proto in a concatenation, as nft writes it (with a byteorder expression that leaves its one byte as it is).</summary>
        private static readonly Field L4Proto = register => (1, Concat(
            NftRuleWriter.Expression("meta", U32(2, NFT_META_L4PROTO), U32(1, register)),
            NftRuleWriter.Expression("byteorder", U32(1 /* SREG */, register), U32(2 /* DREG */, register), U32(3 /* OP */, 1 /* NFT_BYTEORDER_HTON */), U32(4 /* LEN */, 1), U32(5 /* SIZE */, 2))));

        /// <summary>th dport: the transport header's destination port.</summary>
        private static readonly Field TransportPort = register => (2, NftRuleWriter.Expression("payload", U32(1, register), U32(2, NFT_PAYLOAD_TRANSPORT_HEADER), U32(3, 2), U32(4, 2)));

        /// <summary>
        /// A concatenation in the registers, as nft loads it: the first field into the first 16-byte register, each next
        /// one into the register after the last one used (each field takes whole 4-byte registers).
        /// </summary>
        private static byte[] Fields(params Field[] fields)
        {
            var parts = new List<byte[]>();
            int at = 0;
            foreach (var field in fields)
            {
                var (length, expressions) = field(Register(at));
                parts.Add(expressions);
                at += (length + 3) / 4 * 4;
            }
            return Concat(parts.ToArray());
        }

        /// <summary>The register at a byte offset into a concatenation, as nft names it (a 16-byte register where one starts).</summary>
        private static uint Register(int offset) => offset % 16 == 0 ? NFT_REG_1 + (uint)offset / 16 : NFT_REG32_00 + (uint)offset / 4;

        private static uint KeyLength(NftSetKind kind, AddressFamilyProfile family) => kind switch
        {
            NftSetKind.Masquerade => (uint)family.AddressBytes + 16,
            NftSetKind.Inbound => (uint)family.AddressBytes + 32,
            _ => (uint)NftMappingElement.KeyLength(kind, family),
        };

        private static byte[] Elements(string set, Dictionary<string, uint> setIds, IEnumerable<NftEntry> elements, bool withData = true) => Concat(
            Attribute(NFTA_SET_ELEM_LIST_TABLE, Text(Name)),
            Attribute(NFTA_SET_ELEM_LIST_SET, Text(set)),
            setIds.TryGetValue(set, out var id) ? U32(NFTA_SET_ELEM_LIST_SET_ID, id) : Array.Empty<byte>(),
            Attribute(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, Concat(elements.Select(e => Attribute(NFTA_LIST_ELEM | NLA_F_NESTED, Concat(
                Attribute(NFTA_SET_ELEM_KEY | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, e.Key)),
                Attribute(NFTA_SET_ELEM_KEY_END | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, e.KeyEnd)),
                withData && e.Data is { } data ? Attribute(NFTA_SET_ELEM_DATA | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, data)) : Array.Empty<byte>()))).ToArray())));

        private static byte[] BaseChain(string name, uint hook, int priority, string type) => Concat(
            Attribute(NFTA_CHAIN_TABLE, Text(Name)),
            Attribute(NFTA_CHAIN_NAME, Text(name)),
            Attribute(NFTA_CHAIN_HOOK | NLA_F_NESTED, Concat(U32(NFTA_HOOK_HOOKNUM, hook), U32(NFTA_HOOK_PRIORITY, (uint)priority))),
            U32(NFTA_CHAIN_POLICY, NF_ACCEPT),
            Attribute(NFTA_CHAIN_TYPE, Text(type)));

        private static byte[] RuleBody(string chain, byte[] expressions) => Concat(
            Attribute(NFTA_RULE_TABLE, Text(Name)),
            Attribute(NFTA_RULE_CHAIN, Text(chain)),
            Attribute(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, expressions));

        // In an inet table "ip saddr" first checks the packet's family: meta nfproto ipv4.
        private static byte[] Nfproto(AddressFamilyProfile family) => Concat(
            NftRuleWriter.Expression("meta", U32(2, NFT_META_NFPROTO), U32(1, NFT_REG_1)),
            NftRuleWriter.Cmp(new[] { family.NfProto }));

        // The concatenation in the 32-bit registers from NFT_REG32_00: the address, then each interface name (16 bytes).
        private static byte[] Load(AddressFamilyProfile family, uint offset, params uint[] names)
        {
            var parts = new List<byte[]>
            {
                NftRuleWriter.Expression("payload", U32(1, NFT_REG32_00), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, offset), U32(4, (uint)family.AddressBytes)),
            };
            uint register = NFT_REG32_00 + (uint)family.AddressBytes / 4;
            foreach (var key in names)
            {
                parts.Add(NftRuleWriter.Expression("meta", U32(2, key), U32(1, register)));
                register += 4;
            }
            return Concat(parts.ToArray());
        }

        private static byte[] Lookup(string set, uint id) =>
            NftRuleWriter.Expression("lookup", Attribute(1 /* SET */, Text(set)), U32(2 /* SREG */, NFT_REG32_00), U32(4 /* SET_ID */, id));

        private static byte[] Counter() => NftRuleWriter.Expression("counter", U64(1, 0), U64(2, 0));

        private static byte[]? DataValue(byte[] nested)
        {
            foreach (var (attr, value) in Attributes(nested, 0))
            {
                if ((attr & 0x3fff) == NFTA_DATA_VALUE) return value;
            }
            return null;
        }
    }

    /// <summary>The base chains of other nftables tables, as netlink lists them.</summary>
    internal static class NftablesChains
    {
        /// <summary>A chain as the chain listing names it, before its rules are listed.</summary>
        private sealed record ChainHead(byte Family, string Table, string Chain, bool Drop);

        private const ushort NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5, NFTA_HOOK_HOOKNUM = 1;
        private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2;

        /// <summary>A base chain of another table on the forward hook: its place, whether its policy drops, and its rules as dumped.</summary>
        internal sealed record ForwardChain(byte Family, string Table, string Chain, bool PolicyDrop, IReadOnlyList<byte[]> Rules)
        {
            public string Name => $"{FamilyName(Family)} {Table} {Chain}";

            /// <summary>What the chain does with a packet of the family (<see cref="NftForwardEvaluator"/>).</summary>
            public NftChainVerdict Verdict(AddressFamilyProfile family, ForwardPacket packet, IPNetwork? subnet) => NftForwardEvaluator.Evaluate(Name, PolicyDrop, Rules, family, packet, subnet);
        }

        /// <summary>
        /// Walks the other tables' base chains on the forward hook for a bridge's traffic out and its replies in: throws
        /// ForwardBlocked when one drops either (an accept in another table does not override its drop; callers judge
        /// before they change anything), and returns a warning for each chain whose verdict hangs on rules NetnsNat does
        /// not evaluate (sets, ports, marks, jumps), with the same fix.
        /// </summary>
        public static IReadOnlyList<string> RequireOpen(IReadOnlyList<ForwardChain> chains, AddressFamilyProfile family, string bridge, string uplink, IPNetwork subnet, IPAddress host, IPAddress outside)
        {
            var warnings = new List<string>();
            foreach (var chain in chains)
            {
                var outgoing = chain.Verdict(family, new ForwardPacket(bridge, uplink, host, outside, "NEW"), subnet);
                var reply = chain.Verdict(family, new ForwardPacket(uplink, bridge, outside, host, "ESTABLISHED"), subnet);
                var fix = Fix(chain.Name, bridge, uplink);
                var dropped = outgoing.Outcome == NftChainOutcome.Dropped ? ($"new traffic from {bridge} out of {uplink}", outgoing.By)
                    : reply.Outcome == NftChainOutcome.Dropped ? ($"replies from {uplink} back to {bridge}", reply.By) : default;
                if (dropped.Item1 != null)
                {
                    throw new NetnsNatException(
                        $"The nftables chain '{chain.Name}' on the forward hook drops {dropped.Item1} ({dropped.By}), and an accept in NetnsNat's rules does not override a drop in another table: the namespaces on {bridge} would not get out. Nothing was changed. " +
                        $"Let the traffic through it ({fix}), or set its policy to accept.",
                        "ForwardBlocked", ErrorCategory.ResourceUnavailable);
                }
                var open = new[] { outgoing, reply }.Where(v => v.Outcome == NftChainOutcome.Unknown).Select(v => v.By)
                    .Concat(outgoing.Uncertain).Concat(reply.Uncertain).Distinct(StringComparer.Ordinal).ToArray();
                if (open.Length > 0)
                {
                    warnings.Add($"The nftables chain '{chain.Name}' on the forward hook may drop the traffic of {bridge} ({string.Join("; ", open)}): NetnsNat does not evaluate those rules (nft -a list chain {chain.Name} shows them by handle). " +
                        $"If the namespaces do not get out, let the traffic through it: {fix}.");
                }
            }
            return warnings;
        }

        /// <summary>
        /// The runnable fix for a chain that drops a bridge's traffic: two rules at its top, for the traffic out and the
        /// replies back in.
        /// </summary>
        public static string Fix(string chain, string bridge, string uplink) =>
            $"nft insert rule {chain} iifname \"{bridge}\" oifname \"{uplink}\" accept; nft insert rule {chain} iifname \"{uplink}\" oifname \"{bridge}\" ct state established,related accept";

        /// <summary>
        /// The base chains on the forward hook of the family (its own table family, or inet), with their rules; NetnsNat's
        /// own table left out, and iptables-nft's FORWARD (which the iptables evaluator walks) when asked. None on a kernel
        /// without nf_tables (iptables-legacy alone).
        /// </summary>
        public static IReadOnlyList<ForwardChain> ForwardChains(AddressFamilyProfile family, bool skipIptables)
        {
            if (NftGeneration.Read() == null) return Array.Empty<ForwardChain>();
            using var socket = NetfilterSocket.Open(0);
            var found = new List<ChainHead>();
            foreach (var payload in socket.Dump(Nfnl.Message(Nfnl.NftMessage(4), Nfnl.NLM_F_REQUEST | Nfnl.NLM_F_DUMP, socket.Next(), 0, 0, Array.Empty<byte>()), Nfnl.NftMessage(3), "list the nftables chains"))
            {
                byte tableFamily = payload[0];
                if (tableFamily != family.NfProto && tableFamily != NftablesTable.NFPROTO_INET) continue;
                string? table = null, chain = null;
                uint? hook = null, policy = null;
                foreach (var (attr, value) in Attributes(payload, 4))
                {
                    if (attr == NFTA_CHAIN_TABLE) table = TextOf(value);
                    else if (attr == NFTA_CHAIN_NAME) chain = TextOf(value);
                    else if (attr == NFTA_CHAIN_POLICY && value.Length == 4) policy = BinaryPrimitives.ReadUInt32BigEndian(value);
                    else if (attr == NFTA_CHAIN_HOOK)
                    {
                        foreach (var (h, v) in Attributes(value, 0))
                        {
                            if (h == NFTA_HOOK_HOOKNUM && v.Length == 4) hook = BinaryPrimitives.ReadUInt32BigEndian(v);
                        }
                    }
                }
                if (table == null || chain == null || hook != 2 /* NF_INET_FORWARD */) continue;
                if (tableFamily == NftablesTable.NFPROTO_INET && table == NftablesTable.Name) continue;
                if (skipIptables && tableFamily == family.NfProto && table == "filter" && chain == "FORWARD") continue;
                found.Add(new ChainHead(tableFamily, table, chain, policy == 0 /* NF_DROP */));
            }
            return found.Select(c => new ForwardChain(c.Family, c.Table, c.Chain, c.Drop, socket.Dump(Nfnl.Message(Nfnl.NftMessage(7), Nfnl.NLM_F_REQUEST | Nfnl.NLM_F_DUMP, socket.Next(), c.Family, 0,
                Concat(Attribute(NFTA_RULE_TABLE, Nfnl.Text(c.Table)), Attribute(NFTA_RULE_CHAIN, Nfnl.Text(c.Chain)))), Nfnl.NftMessage(6), $"list the rules of {c.Table} {c.Chain}"))).ToArray();
        }

        private static string FamilyName(byte family) => family switch { NftablesTable.NFPROTO_INET => "inet", 2 => "ip", 10 => "ip6", _ => family.ToString(System.Globalization.CultureInfo.InvariantCulture) };
    }
}
