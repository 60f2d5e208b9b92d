using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;

namespace NetnsNat.Model
{
    /// <summary>
    /// Everything that differs between IPv4 and IPv6 in this module, as data: the iptables tools, the nf_tables
    /// family and header offsets, the forwarding sysctl, the route family and the /proc files. Code takes a profile
    /// instead of branching on the family, so IPv6 is a second instance, not a fork of the code.
    /// </summary>
    internal sealed class AddressFamilyProfile
    {
        public static readonly AddressFamilyProfile IPv4 = new AddressFamilyProfile(
            name: "IPv4", family: AddressFamily.InterNetwork, nfProto: 2, addressBytes: 4,
            sourceOffset: 12, destinationOffset: 16,
            iptables: "iptables", forwardingPath: "/proc/sys/net/ipv4/ip_forward", forwardingKey: "net.ipv4.ip_forward",
            legacyTables: "/proc/net/ip_tables_names", everything: "0.0.0.0/0",
            // -j MASQUERADE: struct nf_nat_ipv4_multi_range_compat, rangesize 1, nothing else set.
            masqueradeInfo: new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 });

        public static readonly AddressFamilyProfile IPv6 = new AddressFamilyProfile(
            name: "IPv6", family: AddressFamily.InterNetworkV6, nfProto: 10, addressBytes: 16,
            sourceOffset: 8, destinationOffset: 24,
            iptables: "ip6tables", forwardingPath: "/proc/sys/net/ipv6/conf/all/forwarding", forwardingKey: "net.ipv6.conf.all.forwarding",
            legacyTables: "/proc/net/ip6_tables_names", everything: "::/0",
            // -j MASQUERADE for IPv6: struct nf_nat_range, all zero.
            masqueradeInfo: new byte[40]);

        private AddressFamilyProfile(string name, AddressFamily family, byte nfProto, int addressBytes, uint sourceOffset, uint destinationOffset,
            string iptables, string forwardingPath, string forwardingKey, string legacyTables, string everything, byte[] masqueradeInfo)
        {
            Name = name;
            Family = family;
            NfProto = nfProto;
            AddressBytes = addressBytes;
            MaxPrefix = addressBytes * 8;
            SourceOffset = sourceOffset;
            DestinationOffset = destinationOffset;
            Iptables = iptables;
            IptablesSave = iptables + "-save";
            IptablesRestore = iptables + "-restore";
            LegacySave = iptables + "-legacy-save";
            NftSave = iptables + "-nft-save";
            ForwardingPath = forwardingPath;
            ForwardingKey = forwardingKey;
            LegacyTablesFile = legacyTables;
            Everything = everything;
            MasqueradeInfo = masqueradeInfo;
        }

        /// <summary>"IPv4" or "IPv6", as parameters and objects name the family.</summary>
        public string Name { get; }

        public AddressFamily Family { get; }

        /// <summary>The nf_tables family (NFPROTO_IPV4, NFPROTO_IPV6) and the rtnetlink family (AF_INET, AF_INET6).</summary>
        public byte NfProto { get; }

        public byte RouteFamily => (byte)(Family == AddressFamily.InterNetwork ? 2 : 10);

        public int AddressBytes { get; }

        public int MaxPrefix { get; }

        /// <summary>Offsets of the source and destination address in the network header.</summary>
        public uint SourceOffset { get; }

        public uint DestinationOffset { get; }

        /// <summary>The iptables tool of the family (iptables, ip6tables) and its save/restore companions.</summary>
        public string Iptables { get; }

        public string IptablesSave { get; }

        public string IptablesRestore { get; }

        public string LegacySave { get; }

        public string NftSave { get; }

        public string ForwardingPath { get; }

        public string ForwardingKey { get; }

        /// <summary>The /proc file in which the legacy backend lists its tables (non-empty when it has any).</summary>
        public string LegacyTablesFile { get; }

        /// <summary>The network that holds every address, which NetnsNat never masquerades.</summary>
        public string Everything { get; }

        /// <summary>The xt MASQUERADE target's info struct for this family (revision 0).</summary>
        public byte[] MasqueradeInfo { get; }

        public IPAddress Any => Family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;

        /// <summary>An address outside (documentation range: 192.0.2.1, 2001:db8::1) for walking a packet through FORWARD.</summary>
        public IPAddress OutsideExample => Family == AddressFamily.InterNetwork ? OutsideExample4 : OutsideExample6;

        // From bytes, not parsed: the first call of a fresh pwsh would JIT-compile IPAddress's parser for these alone.
        private static readonly IPAddress OutsideExample4 = new IPAddress(new byte[] { 192, 0, 2, 1 });
        private static readonly IPAddress OutsideExample6 = new IPAddress(new byte[] { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 });

        public static AddressFamilyProfile Of(IPAddress address) => address.AddressFamily == AddressFamily.InterNetworkV6 ? IPv6 : IPv4;

        public static AddressFamilyProfile Of(IPNetwork network) => Of(network.BaseAddress);

        /// <summary>Both families, IPv4 first.</summary>
        public static readonly IReadOnlyList<AddressFamilyProfile> All = new[] { IPv4, IPv6 };

        /// <summary>The families an -AddressFamily value names ("IPv4", "IPv6" or "Both", any case); null when none was given.</summary>
        public static IReadOnlyList<AddressFamilyProfile>? Select(string? value) =>
            value == null ? null : string.Equals(value, "Both", StringComparison.OrdinalIgnoreCase) ? All : new[] { Parse(value) };

        public static AddressFamilyProfile Parse(string name) =>
            string.Equals(name, "IPv6", StringComparison.OrdinalIgnoreCase) ? IPv6 : IPv4;

        public override string ToString() => Name;
    }
}
