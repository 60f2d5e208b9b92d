using System.Globalization;
using NetnsNat.Linux;

namespace NetnsNat
{
    /// <summary>One connection the kernel tracks through the NAT (an entry of the conntrack table).</summary>
    /// <param name="Protocol">Tcp, Udp, Icmp, IPv6-ICMP; Sctp, Dccp, Gre, UdpLite; otherwise the protocol number.</param>
    /// <param name="AddressFamily">IPv4 or IPv6.</param>
    /// <param name="State">The TCP state (ESTABLISHED, TIME_WAIT, ...); for other protocols UNREPLIED, REPLIED or ASSURED.</param>
    /// <param name="Replied">Whether a reply was seen (conntrack -L prints [UNREPLIED] when not).</param>
    /// <param name="Assured">Whether the kernel marked the connection ASSURED (traffic both ways; kept when the table is full).</param>
    /// <param name="OriginalSource">The address the first packet came from: the client.</param>
    /// <param name="OriginalSourcePort">Its port (null for protocols without ports).</param>
    /// <param name="OriginalDestination">The address the client sent to.</param>
    /// <param name="OriginalDestinationPort">The port the client sent to.</param>
    /// <param name="TranslatedSource">After source NAT (masquerade), the address the client appears as outside; null when not translated.</param>
    /// <param name="TranslatedSourcePort">The port the client appears with outside; null when the source is not translated.</param>
    /// <param name="TranslatedDestination">After destination NAT (a port mapping), the address really reached; null when not translated.</param>
    /// <param name="TranslatedDestinationPort">The port really reached; null when the destination is not translated.</param>
    /// <param name="TimeoutSeconds">Seconds until the kernel forgets the connection unless more traffic comes.</param>
    /// <param name="Packets">Packets both ways, when conntrack accounting (net.netfilter.nf_conntrack_acct) is on; null otherwise.</param>
    /// <param name="Bytes">Bytes both ways, when accounting is on; null otherwise.</param>
    /// <param name="Mark">The connection mark (CONNMARK).</param>
    /// <param name="Zone">The conntrack zone (0 unless rules put connections in zones).</param>
    /// <param name="Id">The kernel's id of the entry; Remove-NatSession deletes only the entry of this id.</param>
    public sealed record NatSession(string Protocol, string AddressFamily, string State, bool Replied, bool Assured,
        string OriginalSource, int? OriginalSourcePort, string OriginalDestination, int? OriginalDestinationPort,
        string? TranslatedSource, int? TranslatedSourcePort, string? TranslatedDestination, int? TranslatedDestinationPort,
        long? TimeoutSeconds, long? Packets, long? Bytes, long Mark, int Zone, long Id)
    {
        public override string ToString() => $"{Protocol} {Endpoint(OriginalSource, OriginalSourcePort)} -> {Endpoint(OriginalDestination, OriginalDestinationPort)}";

        private static string Endpoint(string address, int? port) =>
            port is int p ? (address.IndexOf(':') >= 0 ? $"[{address}]:" : address + ":") + p.ToString(CultureInfo.InvariantCulture) : address;

        /// <summary>The session of a conntrack entry: addresses as strings, translations only where the reply tuple differs.</summary>
        internal static NatSession From(ConntrackEntry entry)
        {
            var o = entry.Original;
            var r = entry.Reply;
            bool replied = (entry.Status & Ct.IPS_SEEN_REPLY) != 0, assured = (entry.Status & Ct.IPS_ASSURED) != 0;
            string state = entry.TcpState is byte tcp && entry.Protocol == Ct.IPPROTO_TCP ? Ct.TcpStateName(tcp)
                : !replied ? "UNREPLIED" : assured ? "ASSURED" : "REPLIED";
            bool snat = entry.SourceTranslated, dnat = entry.DestinationTranslated;
            return new NatSession(
                Ct.ProtocolName(entry.Protocol),
                entry.Family == Ct.AF_INET6 ? "IPv6" : "IPv4",
                state, replied, assured,
                o.Source.ToString(), o.SourcePort, o.Destination.ToString(), o.DestinationPort,
                snat ? r.Destination.ToString() : null, snat ? r.DestinationPort : null,
                dnat ? r.Source.ToString() : null, dnat ? r.SourcePort : null,
                entry.Timeout, (long?)entry.Packets, (long?)entry.Bytes, entry.Mark, entry.Zone, entry.Id);
        }

        /// <summary>Whether this object describes that entry: the same id and the same original tuple.</summary>
        internal bool Describes(ConntrackEntry entry) =>
            Id == entry.Id && Protocol == Ct.ProtocolName(entry.Protocol)
            && OriginalSource == entry.Original.Source.ToString() && OriginalDestination == entry.Original.Destination.ToString()
            && OriginalSourcePort == entry.Original.SourcePort && OriginalDestinationPort == entry.Original.DestinationPort;
    }
}
