using System;
using System.Globalization;

namespace NetnsNat.Linux
{
    /// <summary>An IPv4 address with a prefix length, parsed strictly (no shorthand such as "10.1").</summary>
    public readonly struct Ipv4Cidr : IEquatable<Ipv4Cidr>
    {
        public Ipv4Cidr(uint address, int prefixLength)
        {
            if (prefixLength < 0 || prefixLength > 32) throw new ArgumentOutOfRangeException(nameof(prefixLength));
            Address = address;
            PrefixLength = prefixLength;
        }

        /// <summary>The address as written (host bits kept).</summary>
        public uint Address { get; }

        public int PrefixLength { get; }

        public uint Mask => PrefixLength == 0 ? 0u : uint.MaxValue << (32 - PrefixLength);

        public uint NetworkAddress => Address & Mask;

        /// <summary>The network this address belongs to, host bits cleared: 192.168.5.130/25 gives 192.168.5.128/25.</summary>
        public Ipv4Cidr Network => new Ipv4Cidr(NetworkAddress, PrefixLength);

        public bool Contains(uint address) => (address & Mask) == NetworkAddress;

        public string AddressText => FormatAddress(Address);

        public override string ToString() => FormatAddress(Address) + "/" + PrefixLength.ToString(CultureInfo.InvariantCulture);

        public bool Equals(Ipv4Cidr other) => Address == other.Address && PrefixLength == other.PrefixLength;

        public override bool Equals(object? obj) => obj is Ipv4Cidr other && Equals(other);

        public override int GetHashCode() => HashCode.Combine(Address, PrefixLength);

        public static bool operator ==(Ipv4Cidr left, Ipv4Cidr right) => left.Equals(right);

        public static bool operator !=(Ipv4Cidr left, Ipv4Cidr right) => !left.Equals(right);

        public static string FormatAddress(uint address) => string.Create(CultureInfo.InvariantCulture,
            $"{address >> 24}.{(address >> 16) & 0xFF}.{(address >> 8) & 0xFF}.{address & 0xFF}");

        /// <summary>Parses a dotted quad of four decimal octets, nothing else.</summary>
        public static bool TryParseAddress(string? text, out uint address)
        {
            address = 0;
            if (string.IsNullOrEmpty(text)) return false;
            var parts = text.Split('.');
            if (parts.Length != 4) return false;
            foreach (var part in parts)
            {
                if (part.Length == 0 || part.Length > 3) return false;
                int value = 0;
                foreach (var c in part)
                {
                    if (c < '0' || c > '9') return false;
                    value = (value * 10) + (c - '0');
                }
                if (value > 255) return false;
                address = (address << 8) | (uint)value;
            }
            return true;
        }

        /// <summary>Parses "a.b.c.d/n" (n from 0 to 32); the prefix is required.</summary>
        public static bool TryParse(string? text, out Ipv4Cidr cidr, out string error)
        {
            cidr = default;
            if (string.IsNullOrWhiteSpace(text))
            {
                error = "it is empty";
                return false;
            }
            var slash = text.IndexOf('/');
            if (slash < 0)
            {
                error = "it has no prefix length; write it as ADDRESS/PREFIX, for example 10.0.0.0/24";
                return false;
            }
            if (text.IndexOf(':') >= 0)
            {
                error = "it is an IPv6 network; NAT here is for IPv4 networks such as 10.0.0.0/24";
                return false;
            }
            if (!TryParseAddress(text.Substring(0, slash), out var address))
            {
                error = "the address part is not four numbers from 0 to 255 separated by dots";
                return false;
            }
            var prefixText = text.Substring(slash + 1);
            if (prefixText.Length == 0 || prefixText.Length > 2 || !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) || prefix > 32)
            {
                error = "the prefix length is not a whole number from 0 to 32";
                return false;
            }
            cidr = new Ipv4Cidr(address, prefix);
            error = string.Empty;
            return true;
        }
    }
}
