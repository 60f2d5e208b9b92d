using System;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace NetnsNat.Linux
{
    /// <summary>An address with its prefix length, host bits kept (a bridge's 10.0.0.1/24).</summary>
    /// <remarks>A class, not a struct: lists and queries of it then run precompiled code in a fresh pwsh (see NlAttribute).</remarks>
    internal sealed record IpPrefix(IPAddress Address, int PrefixLength)
    {
        /// <summary>The network the address is on, host bits cleared: 192.168.5.130/25 gives 192.168.5.128/25.</summary>
        public IPNetwork Network => new IPNetwork(Cidr.Mask(Address, PrefixLength), PrefixLength);

        public bool IsIPv4 => Address.AddressFamily == AddressFamily.InterNetwork;

        public override string ToString() => Address + "/" + PrefixLength.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Strict parsing of addresses and networks at the edges (parameters, tool output), into IPAddress and IPNetwork
    /// for the core. Stricter than IPAddress.Parse: no IPv4 shorthand ("10.1"), no zone ids, no leading zeros.
    /// </summary>
    internal static class Cidr
    {
        /// <summary>A dotted quad of four decimal octets, or an IPv6 address (with ':' and no zone).</summary>
        public static bool TryParseAddress(string? text, out IPAddress address)
        {
            address = IPAddress.None;
            if (string.IsNullOrEmpty(text)) return false;
            if (text.IndexOf(':') >= 0)
            {
                if (text.IndexOf('%') >= 0 || text.IndexOf('/') >= 0 || text.IndexOf('[') >= 0) return false;
                if (!IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6) return false;
                address = v6;
                return true;
            }
            var parts = text.Split('.');
            if (parts.Length != 4) return false;
            var bytes = new byte[4];
            for (int i = 0; i < 4; i++)
            {
                var part = parts[i];
                if (part.Length == 0 || part.Length > 3) return false;
                int value = 0;
                foreach (var c in part)
                {
                    if (c < '0' || c > '9') return false;
                    value = (value * 10) + (c - '0');
                }
                if (value > 255) return false;
                bytes[i] = (byte)value;
            }
            address = new IPAddress(bytes);
            return true;
        }

        /// <summary>Parses "ADDRESS/PREFIX" (the prefix is required), keeping the host bits of the address.</summary>
        public static bool TryParsePrefix(string? text, [NotNullWhen(true)] out IpPrefix? prefix, out string error)
        {
            prefix = null;
            if (string.IsNullOrWhiteSpace(text))
            {
                error = "it is empty";
                return false;
            }
            var slash = text.IndexOf('/');
            if (slash < 0)
            {
                error = "it has no prefix length";
                return false;
            }
            var addressText = text.Substring(0, slash);
            bool v6 = addressText.IndexOf(':') >= 0;
            if (!TryParseAddress(addressText, out var address))
            {
                error = v6 ? "the address part is not an IPv6 address" : "the address part is not four numbers from 0 to 255 separated by dots";
                return false;
            }
            int max = v6 ? 128 : 32;
            var prefixText = text.Substring(slash + 1);
            if (prefixText.Length == 0 || prefixText.Length > 3 || (prefixText.Length > 1 && prefixText[0] == '0')
                || !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > max)
            {
                error = $"the prefix length is not a whole number from 0 to {max}";
                return false;
            }
            prefix = new IpPrefix(address, length);
            error = string.Empty;
            return true;
        }

        /// <summary>The address with every bit past the prefix cleared.</summary>
        public static IPAddress Mask(IPAddress address, int prefixLength)
        {
            var bytes = address.GetAddressBytes();
            for (int i = 0; i < bytes.Length; i++)
            {
                int bits = Math.Clamp(prefixLength - (i * 8), 0, 8);
                bytes[i] &= (byte)(0xFF00 >> bits);
            }
            return new IPAddress(bytes);
        }

        /// <summary>The mask of a prefix length as bytes (4 or 16 of them).</summary>
        public static byte[] MaskBytes(int prefixLength, int length)
        {
            var bytes = new byte[length];
            for (int i = 0; i < length; i++) bytes[i] = (byte)(0xFF00 >> Math.Clamp(prefixLength - (i * 8), 0, 8));
            return bytes;
        }

        /// <summary>The last address of a network (the broadcast address of an IPv4 one).</summary>
        public static IPAddress Last(IPNetwork network)
        {
            var bytes = network.BaseAddress.GetAddressBytes();
            var mask = MaskBytes(network.PrefixLength, bytes.Length);
            for (int i = 0; i < bytes.Length; i++) bytes[i] |= (byte)~mask[i];
            return new IPAddress(bytes);
        }

        /// <summary>The network whose first and last addresses are these; null when the range is not one network.</summary>
        public static IPNetwork? RangeAsNetwork(IPAddress first, IPAddress last)
        {
            var a = first.GetAddressBytes();
            var b = last.GetAddressBytes();
            if (a.Length != b.Length) return null;
            int prefix = 0;
            while (prefix < a.Length * 8 && (a[prefix / 8] & (0x80 >> (prefix % 8))) == (b[prefix / 8] & (0x80 >> (prefix % 8)))) prefix++;
            var network = new IPNetwork(new IPAddress(Mask(first, prefix).GetAddressBytes()), prefix);
            return network.BaseAddress.Equals(first) && Last(network).Equals(last) ? network : null;
        }

        /// <summary>A network in the form iptables-save prints it: "10.0.0.0/24", "fd00::/64".</summary>
        public static string Format(IPNetwork network) => network.ToString();

        /// <summary>Normalizes an address or network as iptables prints one ("10.0.0.1/24" to "10.0.0.0/24", a bare address to /32 or /128); null when it is neither.</summary>
        public static string? NormalizeNetwork(string? text)
        {
            if (text == null) return null;
            if (TryParsePrefix(text, out var prefix, out _)) return Format(prefix.Network);
            if (TryParseAddress(text, out var address)) return Format(new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128));
            return null;
        }

        // fe80::/10, ff00::/8 and ::ffff:0:0/96 as bytes (not parsed: this runs in every fresh pwsh's first call).
        private static readonly (byte[] Bytes, int Length) LinkLocal6 = (new byte[] { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 10);
        private static readonly (byte[] Bytes, int Length) Multicast6 = (new byte[] { 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 8);
        private static readonly (byte[] Bytes, int Length) Mapped6 = (new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0 }, 96);

        /// <summary>
        /// Why NetnsNat will not NAT an IPv6 network, or null when it will: the whole address space (::/0), link-local
        /// (never routed beyond its link), multicast, and IPv4-mapped addresses (IPv4 traffic, which the IPv4 rules handle).
        /// </summary>
        public static string? WhyNotNatNetwork6(IPNetwork network)
        {
            if (network.PrefixLength == 0) return "::/0 is every IPv6 address: NetnsNat never masquerades everything; give the bridge's subnet, for example fd00:0:0:1::/64";
            if (Overlaps(network, LinkLocal6)) return "it is link-local (fe80::/10), which never leaves its link and is never NAT'd; give the bridge's global or unique-local subnet, for example fd00:0:0:1::/64";
            if (Overlaps(network, Multicast6)) return "it is multicast (ff00::/8), not a subnet of hosts; give the bridge's subnet, for example fd00:0:0:1::/64";
            if (Overlaps(network, Mapped6)) return "it is IPv4-mapped (::ffff:0:0/96): give the IPv4 subnet itself, for example 10.0.0.0/24";
            return null;
        }

        /// <summary>
        /// Why an IPv4 network is not one NetnsNat sets NAT up for, or null when it is: everything (0.0.0.0/0: the
        /// blog posts' "-o eth0 -j MASQUERADE", which masquerades the host's own traffic too), loopback, link-local and
        /// multicast networks.
        /// </summary>
        public static string? WhyNotNatNetwork4(IPNetwork network)
        {
            if (network.PrefixLength == 0) return "0.0.0.0/0 is every IPv4 address: NetnsNat never masquerades everything; give the bridge's subnet, for example 10.0.0.0/24";
            var first = network.BaseAddress.GetAddressBytes()[0];
            if (first == 127) return "it is loopback (127.0.0.0/8), which never leaves the host; give the bridge's subnet, for example 10.0.0.0/24";
            if (first >= 224) return "it is multicast or reserved (224.0.0.0/3), not a subnet of hosts; give the bridge's subnet, for example 10.0.0.0/24";
            if (network.PrefixLength >= 16 && first == 169 && network.BaseAddress.GetAddressBytes()[1] == 254) return "it is link-local (169.254.0.0/16), which never leaves its link and is never NAT'd; give the bridge's subnet, for example 10.0.0.0/24";
            return null;
        }

        /// <summary>Why an IPv6 address cannot be a namespace's gateway, or null when it can.</summary>
        public static string? WhyNotGateway6(IPAddress address)
        {
            if (address.Equals(IPAddress.IPv6Any)) return "it is the unspecified address ::";
            if (IPAddress.IsLoopback(address)) return "it is the loopback ::1";
            if (address.IsIPv6LinkLocal) return "it is link-local, which names no link on its own; give the bridge's global or unique-local address";
            if (address.IsIPv6Multicast) return "it is multicast";
            if (address.IsIPv4MappedToIPv6) return "it is IPv4-mapped: give the IPv4 address itself";
            return null;
        }

        /// <summary>
        /// Whether two IPv6 networks share an address: their bits agree up to the shorter prefix. Not IPNetwork.Contains:
        /// tried, it took fd00:0:0:1::/64 for part of ::ffff:0:0/96 and missed ::ffff:10.0.0.0/120.
        /// </summary>
        private static bool Overlaps(IPNetwork a, (byte[] Bytes, int Length) b)
        {
            var x = a.BaseAddress.GetAddressBytes();
            int bits = Math.Min(a.PrefixLength, b.Length);
            for (int i = 0; i < bits; i++)
            {
                int mask = 0x80 >> (i % 8);
                if ((x[i / 8] & mask) != (b.Bytes[i / 8] & mask)) return false;
            }
            return true;
        }

        /// <summary>Parses a network given by a user or a tool, normalized; false when it is not one.</summary>
        public static bool TryParseNetwork(string? text, out IPNetwork network)
        {
            network = default;
            if (TryParsePrefix(text, out var prefix, out _))
            {
                network = prefix.Network;
                return true;
            }
            if (TryParseAddress(text, out var address))
            {
                network = new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
                return true;
            }
            return false;
        }
    }
}
