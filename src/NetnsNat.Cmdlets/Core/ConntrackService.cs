using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using NetnsNat.Linux;

namespace NetnsNat.Core
{
    /// <summary>
    /// Which conntrack entries a call is about. Each filter given must match (AND); an address filter matches an
    /// entry by its client (original source), the address the client asked for (original destination) or the address
    /// really reached after a port mapping (translated destination). Without IncludeUntranslated only entries the NAT
    /// translated are selected.
    /// </summary>
    internal sealed record SessionFilter
    {
        /// <summary>The addresses of a namespace (-Namespace).</summary>
        public IReadOnlySet<IPAddress>? Addresses { get; init; }

        /// <summary>-Subnet, normalized.</summary>
        public IPNetwork? Subnet { get; init; }

        public ProtocolType? Protocol { get; init; }

        /// <summary>The port the client asked for (original destination port) or the port reached after a port mapping.</summary>
        public int? Port { get; init; }

        public bool IncludeUntranslated { get; init; }

        /// <summary>No filter that narrows the selection (IncludeUntranslated widens it).</summary>
        public bool IsEmpty => Addresses == null && Subnet == null && Protocol == null && Port == null;

        public bool Matches(ConntrackEntry entry)
        {
            if (!IncludeUntranslated && !entry.IsTranslated) return false;
            if (Protocol is ProtocolType p && entry.Protocol != (byte)p) return false;
            if (Port is int port && entry.Original.DestinationPort != port && entry.Reply.SourcePort != port) return false;
            if (Addresses is { } set && !set.Contains(entry.Original.Source) && !set.Contains(entry.Original.Destination) && !set.Contains(entry.Reply.Source)) return false;
            if (Subnet is IPNetwork net && !net.Contains(entry.Original.Source) && !net.Contains(entry.Original.Destination) && !net.Contains(entry.Reply.Source)) return false;
            return true;
        }

        /// <summary>The protocols -Protocol takes, by the names NatSession.Protocol shows (and conntrack's icmpv6).</summary>
        public static readonly IReadOnlyList<string> ProtocolNames = new[] { "Tcp", "Udp", "Icmp", "IPv6-ICMP" };

        public static bool TryParseProtocol(string? text, out ProtocolType protocol)
        {
            protocol = ProtocolType.Unknown;
            switch (text?.Trim().ToLowerInvariant())
            {
                case "tcp": protocol = ProtocolType.Tcp; return true;
                case "udp": protocol = ProtocolType.Udp; return true;
                case "icmp": protocol = ProtocolType.Icmp; return true;
                case "ipv6-icmp":
                case "icmpv6": protocol = ProtocolType.IcmpV6; return true;
                default: return false;
            }
        }

        /// <summary>A port number from 1 to 65535 in decimal digits; service names are not looked up.</summary>
        public static bool TryParsePort(string? text, out int port)
        {
            port = 0;
            text = text?.Trim();
            if (string.IsNullOrEmpty(text) || text.Length > 5) return false;
            foreach (var c in text)
            {
                if (c < '0' || c > '9') return false;
            }
            port = int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
            return port >= 1 && port <= 65535;
        }
    }

    /// <summary>
    /// The NAT's connections in the kernel's conntrack table of this network namespace, over ctnetlink: read them,
    /// and delete them (each deletion approved through ShouldProcess with the equivalent conntrack -D command line).
    /// </summary>
    internal sealed class ConntrackService
    {
        private const int ENOENT = 2;
        private readonly ICommandHost _host;

        public ConntrackService(ICommandHost host) => _host = host;

        /// <summary>The addresses of a named namespace, read over rtnetlink inside it; loopback addresses left out (every namespace has them).</summary>
        public IReadOnlySet<IPAddress> NamespaceAddresses(string ns) => NamespaceAddresses(NamespaceRef.Named(ns));

        /// <summary>The addresses of a namespace (by name or by path), read over rtnetlink inside it; loopback addresses left out.</summary>
        public IReadOnlySet<IPAddress> NamespaceAddresses(NamespaceRef ns)
        {
            _host.Token.ThrowIfCancellationRequested();
            ns.RequireExists();
            using var routes = NamespaceRoutes.Open(ns.Path, ns.Display, "NamespaceReadFailed");
            var addresses = routes.AllAddresses().Select(p => p.Address.Address).Where(a => !IPAddress.IsLoopback(a)).ToHashSet();
            _host.Verbose($"The namespace '{ns}' has the addresses {(addresses.Count == 0 ? "(none)" : string.Join(", ", addresses))}.");
            return addresses;
        }

        /// <summary>The entries of the table that the filter selects.</summary>
        public List<ConntrackEntry> Read(SessionFilter filter) => Read(filter.Matches);

        /// <summary>The entries of the table that a predicate selects.</summary>
        public List<ConntrackEntry> Read(Func<ConntrackEntry, bool> select)
        {
            _host.Token.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            List<ConntrackEntry> all;
            using (var table = ConntrackTable.Open())
            {
                all = table.Dump(_host.Token);
            }
            var selected = new List<ConntrackEntry>();
            foreach (var entry in all)
            {
                if (select(entry)) selected.Add(entry);
            }
            _host.Verbose(string.Format(CultureInfo.InvariantCulture, "Read {0} in {1:0.0} ms; {2} selected.", Entries(all.Count), clock.Elapsed.TotalMilliseconds, selected.Count));
            return selected;
        }

        private static string Entries(int count) => count == 1 ? "1 conntrack entry" : $"{count} conntrack entries";

        /// <summary>What -WhatIf shows for deleting an entry: conntrack -D with its original tuple.</summary>
        public static string DeleteCommand(ConntrackEntry entry) => ProcessRunner.FormatCommandLine("conntrack", ConntrackMessages.DeleteArguments(entry));

        /// <summary>
        /// Deletes entries: every ShouldProcess question first, then the approved entries over one socket. Returns the
        /// entries this call deleted; one already gone is not an error, one the kernel refuses is that entry's error.
        /// </summary>
        public List<ConntrackEntry> Remove(IReadOnlyList<ConntrackEntry> entries) => Remove(entries, ask: true);

        /// <summary>Deletes entries; with ask false, without a question of their own (the caller's question covered them).</summary>
        private List<ConntrackEntry> Remove(IReadOnlyList<ConntrackEntry> entries, bool ask)
        {
            var approved = new List<ConntrackEntry>();
            foreach (var entry in entries)
            {
                if (!ask || _host.ShouldProcess($"conntrack entry {entry}", DeleteCommand(entry))) approved.Add(entry);
            }
            var removed = new List<ConntrackEntry>();
            if (approved.Count == 0) return removed;
            int[] errnos;
            using (var table = ConntrackTable.Open())
            {
                errnos = table.Delete(approved, _host.Token);
            }
            int gone = 0;
            for (int i = 0; i < approved.Count; i++)
            {
                var entry = approved[i];
                if (errnos[i] == 0)
                {
                    removed.Add(entry);
                }
                else if (errnos[i] == ENOENT)
                {
                    gone++;
                }
                else
                {
                    int errno = errnos[i];
                    _host.Try(NatSession.From(entry), () => throw Ct.Failure($"delete the conntrack entry {entry}", errno, "ConntrackDeleteFailed", ErrorCategory.WriteError));
                }
            }
            _host.Verbose($"Deleted {Entries(removed.Count)}" + (gone > 0 ? $"; {Entries(gone)} gone already." : "."));
            return removed;
        }

        /// <summary>
        /// Drops the connections to any of the endpoints (a protocol, an address or, when it is null, any address of
        /// anyOf (any address at all without it), and a port), as the client asked for them (original destination) or as
        /// reached after a port mapping, translated by the NAT or not: what a port mapping's change calls, so that no
        /// connection keeps going by the mapping it had before (an entry made before a DNAT rule existed never sees the
        /// rule). One read of the table; no question per entry (the mapping's question covered them). Returns the deleted.
        /// </summary>
        public List<ConntrackEntry> DeleteConnectionsTo(IReadOnlyList<(ProtocolType Protocol, IPAddress? Address, int Port)> endpoints, IReadOnlySet<IPAddress>? anyOf = null)
        {
            var selectors = endpoints.Select(e => ConnectionsTo(e.Protocol, e.Address, e.Port, anyOf)).ToArray();
            var entries = Read(e => Array.Exists(selectors, select => select(e)));
            return entries.Count == 0 ? entries : Remove(entries, ask: false);
        }

        /// <summary>What DeleteConnectionsTo selects for one endpoint: connections of the protocol to address:port before or after DNAT, translated or not.</summary>
        public static Func<ConntrackEntry, bool> ConnectionsTo(ProtocolType protocol, IPAddress? address, int port, IReadOnlySet<IPAddress>? anyOf = null)
        {
            bool To(IPAddress destination, ushort? destinationPort) => destinationPort == port && (address == null ? anyOf == null || anyOf.Contains(destination) : address.Equals(destination));
            return e => e.Protocol == (byte)protocol && (To(e.Original.Destination, e.Original.DestinationPort) || To(e.Reply.Source, e.Reply.SourcePort));
        }
    }
}
