using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Backends
{
    /// <summary>
    /// The iptables rules of a published port, each marked with the comment "netnsnat":
    /// <list type="bullet">
    /// <item>nat PREROUTING: connections from outside (and from other bridges) to the external address and port go to
    /// the namespace (DNAT); the source stays the client's. On every address of the host: "-m addrtype --dst-type LOCAL".</item>
    /// <item>nat OUTPUT: the same for the host's own connections (never for 127.0.0.0/8 or ::1: reaching a namespace from
    /// loopback needs route_localnet, which would open the mapping to the LAN).</item>
    /// <item>nat POSTROUTING: hairpin, a namespace of the same bridge subnet reaching the mapping by the host's address, is
    /// masqueraded to the bridge's address, so that the answer comes back through the host (only that case).</item>
    /// <item>filter FORWARD, at the top (above NetnsNat's inbound drop): the DNAT'd connections to the namespace's port,
    /// and the answers of a hairpin connection back out to the bridge.</item>
    /// </list>
    /// Nothing else opens: other ports and the namespace's own address stay behind the inbound drop.
    /// </summary>
    internal static class PortMappingRules
    {
        private const string Comment = MasqueradeRules.Comment;
        private const string DnatState = "DNAT";

        private static string Host(IPAddress address) => address + (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "/128" : "/32");

        private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

        private static string Loopback(AddressFamilyProfile family) => family == AddressFamilyProfile.IPv6 ? "::1/128" : "127.0.0.0/8";

        private static IEnumerable<string> Tail(string protocol, string portOption, int port, bool conntrack, params string[] target)
        {
            var tokens = new List<string> { "-m", protocol, portOption, Port(port) };
            if (conntrack) tokens.AddRange(new[] { "-m", "conntrack", "--ctstate", DnatState });
            tokens.AddRange(new[] { "-m", "comment", "--comment", Comment, "-j" });
            tokens.AddRange(target);
            return tokens;
        }

        private static IptablesRule Dnat(PortMapping m, string chain)
        {
            var spec = new List<string>();
            if (m.Remote is IPNetwork remote) spec.AddRange(new[] { "-s", Cidr.Format(remote) });
            if (m.ExternalAddress != null) spec.AddRange(new[] { "-d", Host(m.ExternalAddress) });
            else if (chain == "OUTPUT") spec.AddRange(new[] { "!", "-d", Loopback(m.Family) });
            spec.AddRange(new[] { "-p", m.Protocol });
            if (m.ExternalAddress == null) spec.AddRange(new[] { "-m", "addrtype", "--dst-type", "LOCAL" });
            spec.AddRange(Tail(m.Protocol, "--dport", m.ExternalPort, false, "DNAT", "--to-destination", m.TargetText));
            return IptablesRule.Create("nat", chain, spec);
        }

        public static IptablesRule Prerouting(PortMapping m) => Dnat(m, "PREROUTING");

        public static IptablesRule Output(PortMapping m) => Dnat(m, "OUTPUT");

        public static IptablesRule Hairpin(PortMapping m) =>
            IptablesRule.Create("nat", "POSTROUTING", new[] { "-s", Cidr.Format(m.Subnet), "-d", Host(m.InternalAddress), "-o", m.Bridge, "-p", m.Protocol }
                .Concat(Tail(m.Protocol, "--dport", m.InternalPort, true, "MASQUERADE")).ToArray());

        public static IptablesRule ForwardIn(PortMapping m)
        {
            var spec = new List<string>();
            if (m.Remote is IPNetwork remote) spec.AddRange(new[] { "-s", Cidr.Format(remote) });
            spec.AddRange(new[] { "-d", Host(m.InternalAddress), "-o", m.Bridge, "-p", m.Protocol });
            spec.AddRange(Tail(m.Protocol, "--dport", m.InternalPort, true, "ACCEPT"));
            return IptablesRule.Create("filter", "FORWARD", spec);
        }

        public static IptablesRule ForwardHairpinReply(PortMapping m) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-s", Host(m.InternalAddress), "-i", m.Bridge, "-o", m.Bridge, "-p", m.Protocol }
                .Concat(Tail(m.Protocol, "--sport", m.InternalPort, true, "ACCEPT")).ToArray());

        /// <summary>The FORWARD rules of a mapping, in the order they stand at the top of the chain.</summary>
        public static IReadOnlyList<IptablesRule> Forward(PortMapping m) => new[] { ForwardIn(m), ForwardHairpinReply(m) };

        /// <summary>Every rule of a mapping: PREROUTING, OUTPUT, POSTROUTING, then FORWARD.</summary>
        public static IReadOnlyList<IptablesRule> For(PortMapping m) => new[] { Prerouting(m), Output(m), Hairpin(m) }.Concat(Forward(m)).ToArray();

        /// <summary>A rule a port mapping of NetnsNat's wrote: its comment, and a DNAT target or a "--ctstate DNAT" match.</summary>
        public static bool IsOwn(IptablesRule rule) =>
            rule.Comment == Comment && (rule.Target == "DNAT" || rule.ConnectionStates == DnatState);

        /// <summary>
        /// The FORWARD rules of NetnsNat's mappings to addresses of a subnet on a bridge, in chain order: they stand above
        /// the bridge's own FORWARD rules, so a re-laid group keeps them there.
        /// </summary>
        public static IReadOnlyList<IptablesRule> ForwardOnBridge(IptablesSnapshot snapshot, string bridge, IPNetwork subnet)
        {
            List<IptablesRule>? found = null;
            foreach (var r in snapshot.Chain("filter", "FORWARD"))
            {
                if (r.ConnectionStates != DnatState || r.Comment != Comment || r.OutInterface != bridge) continue;
                var address = r.Destination ?? r.Source;
                if (r.InInterface == bridge) address = r.Source;
                if (address == null || !Cidr.TryParseNetwork(address, out var host) || !subnet.Contains(host.BaseAddress)) continue;
                (found ??= new List<IptablesRule>()).Add(r);
            }
            return (IReadOnlyList<IptablesRule>?)found ?? Array.Empty<IptablesRule>();
        }

        /// <summary>
        /// What to add for mappings: each rule once (mappings to the same port of a namespace share their POSTROUTING and
        /// FORWARD rules), the DNAT and hairpin rules anywhere in their chains, the FORWARD rules at the top of FORWARD
        /// unless they stand there already with nothing above that drops the mapping's connections.
        /// </summary>
        public static RuleDescription Describe(IReadOnlyList<PortMapping> mappings)
        {
            var groups = new List<RuleGroup>();
            foreach (var chain in new[] { ("nat", "PREROUTING"), ("nat", "OUTPUT"), ("nat", "POSTROUTING") })
            {
                var rules = Distinct(mappings.SelectMany(For).Where(r => r.Table == chain.Item1 && r.Chain == chain.Item2));
                groups.Add(new RuleGroup(chain.Item1, chain.Item2, rules, AtTop: false, s => Array.Empty<IptablesRule>()));
            }
            var forward = Distinct(mappings.SelectMany(Forward));
            var keys = forward.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
            groups.Add(new RuleGroup("filter", "FORWARD", forward, AtTop: true,
                s => s.Chain("filter", "FORWARD").Where(r => r.Comment == Comment && keys.Contains(r.Key)).ToArray(),
                (s, found) => BlockedAbove(s, found, mappings), AnyOrder: true));
            return new RuleDescription(string.Join(", ", mappings), groups);
        }

        /// <summary>
        /// Whether the FORWARD rules are missing some of theirs or stand below a rule that drops a mapping's new
        /// connections from its uplink (NetnsNat's own inbound drop after a bridge's rules were laid again, a DROP of
        /// the user's): then they are laid on top again.
        /// </summary>
        private static bool BlockedAbove(IptablesSnapshot snapshot, IReadOnlyList<IptablesRule> found, IReadOnlyList<PortMapping> mappings)
        {
            var chain = snapshot.Chain("filter", "FORWARD");
            int first = 0;
            while (first < chain.Count && !ReferenceEquals(chain[first], found[0])) first++;
            if (first == 0 || first >= chain.Count) return false;
            var above = chain.Take(first).ToArray();
            return mappings.Any(m => DroppedBy(snapshot, above, m, m.Outbound) != null);
        }

        /// <summary>
        /// The rule among those given (the ones above a mapping's FORWARD rules) that drops a new connection to the
        /// mapping coming in by the uplink from an allowed source, or null when none does.
        /// </summary>
        public static string? DroppedBy(IptablesSnapshot snapshot, IReadOnlyList<IptablesRule> above, PortMapping m, string uplink)
        {
            return ForwardEvaluator.Decides(snapshot, above, InboundPacket(m, uplink)) is { Accepted: false } verdict ? verdict.By : null;
        }

        /// <summary>A new connection to the mapping from outside, in by the uplink, from an allowed source, as FORWARD sees it after the DNAT.</summary>
        public static ForwardPacket InboundPacket(PortMapping m, string uplink) =>
            new ForwardPacket(uplink, m.Bridge, m.Remote?.BaseAddress ?? m.Family.OutsideExample, m.InternalAddress, "NEW");

        /// <summary>
        /// What to remove for a mapping: its rules that stand, except those another of NetnsNat's mappings that stay
        /// still needs (the same namespace port by another external address or port).
        /// </summary>
        public static IReadOnlyList<IptablesRule> Removal(IptablesSnapshot snapshot, PortMapping mapping, IReadOnlyList<PortMapping> staying)
        {
            // Only a mapping of the same namespace port (its POSTROUTING and FORWARD rules) or of the same external port (its
            // DNAT rules) can share a rule with this one: the others are not turned into rules at all.
            var kept = staying.Where(s => s.ExternalPort == mapping.ExternalPort || (s.InternalPort == mapping.InternalPort && s.InternalAddress.Equals(mapping.InternalAddress)))
                .SelectMany(For).Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
            var delete = new List<IptablesRule>();
            foreach (var rule in For(mapping))
            {
                if (kept.Contains(rule.Key)) continue;
                // Every copy: a mapping's rule means one thing, however often it stands.
                delete.AddRange(snapshot.Chain(rule.Table, rule.Chain).Where(r => r.SameAs(rule)));
            }
            return delete;
        }

        /// <summary>
        /// NetnsNat's mappings as the rules show them: one per DNAT rule of its in nat PREROUTING, with the bridge,
        /// subnet and uplink its other rules (or, failing those, the state store's record) name.
        /// </summary>
        public static IReadOnlyList<PortMapping> Parse(IptablesSnapshot snapshot, Func<PortMapping, PortMapping?> complete)
        {
            var found = new List<PortMapping>();
            foreach (var rule in snapshot.Chain("nat", "PREROUTING"))
            {
                if (rule.Comment != Comment || rule.Target != "DNAT" || rule.Protocol is not ("tcp" or "udp") || rule.SourceNegated || rule.DestinationNegated) continue;
                var spec = rule.Specification;
                int? port = null;
                bool local = false;
                for (int i = 0; i + 1 < spec.Count; i++)
                {
                    if (spec[i] == "--dport" && int.TryParse(spec[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var p)) port = p;
                    if (spec[i] == "--dst-type" && spec[i + 1] == "LOCAL") local = true;
                }
                if (port == null || rule.TargetOptions.Count != 2 || rule.TargetOptions[0] != "--to-destination") continue;
                if (!TryParseEndpoint(rule.TargetOptions[1], out var internalAddress, out var internalPort)) continue;
                IPAddress? external = null;
                if (rule.Destination != null)
                {
                    if (!Cidr.TryParseNetwork(rule.Destination, out var d)) continue;
                    external = d.BaseAddress;
                }
                else if (!local)
                {
                    continue;
                }
                IPNetwork? remote = null;
                if (rule.Source != null)
                {
                    if (!Cidr.TryParseNetwork(rule.Source, out var s)) continue;
                    remote = s;
                }
                var bare = new PortMapping(rule.Protocol, external, port.Value, internalAddress, internalPort, remote, string.Empty,
                    new IPNetwork(internalAddress, internalAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 128 : 32), string.Empty);
                found.Add(complete(bare) ?? FromRules(snapshot, bare));
            }
            return found;
        }

        /// <summary>The bridge and subnet of a mapping from its FORWARD and hairpin rules; the mapping as it is when they are gone.</summary>
        private static PortMapping FromRules(IptablesSnapshot snapshot, PortMapping bare)
        {
            var host = Host(bare.InternalAddress);
            string? dport = Port(bare.InternalPort);
            var forward = snapshot.Chain("filter", "FORWARD").FirstOrDefault(r => IsOwn(r) && r.Destination == host && r.Protocol == bare.Protocol && r.OutInterface != null && HasOption(r, "--dport", dport));
            var hairpin = snapshot.Chain("nat", "POSTROUTING").FirstOrDefault(r => IsOwn(r) && r.Destination == host && r.Protocol == bare.Protocol && r.Source != null && HasOption(r, "--dport", dport));
            var result = bare;
            if (forward?.OutInterface != null) result = result with { Bridge = forward.OutInterface };
            if (hairpin?.Source != null && Cidr.TryParseNetwork(hairpin.Source, out var subnet)) result = result with { Subnet = subnet, Bridge = result.Bridge.Length > 0 ? result.Bridge : hairpin.OutInterface ?? string.Empty };
            return result;
        }

        private static bool HasOption(IptablesRule rule, string option, string value)
        {
            var spec = rule.Specification;
            for (int i = 0; i + 1 < spec.Count; i++)
            {
                if (spec[i] == option && spec[i + 1] == value) return true;
            }
            return false;
        }

        /// <summary>
        /// A rule of another's in nat PREROUTING that takes the mapping's connections before its own DNAT rule does (a DNAT
        /// or REDIRECT of the same protocol and port, or of every port, to the same destination or any): the first such
        /// rule, or null. The kernel uses the first DNAT that matches, so the mapping does nothing while that rule stands.
        /// </summary>
        public static IptablesRule? ShadowedBy(IptablesSnapshot snapshot, PortMapping m)
        {
            var chain = RedirectsOf(snapshot);
            if (chain.Foreign.Count == 0) return null;
            var own = Prerouting(m);
            int ownAt = chain.Own.TryGetValue(own.Key, out var at) ? at : int.MaxValue;
            var port = Port(m.ExternalPort);
            foreach (var (r, position) in chain.Foreign)
            {
                if (position > ownAt) break;
                if (r.Protocol != null && r.Protocol != m.Protocol) continue;
                var spec = r.Specification;
                int option = -1;
                for (int i = 0; i + 1 < spec.Count; i++) if (spec[i] == "--dport" || spec[i] == "--dports") option = i;
                if (option >= 0 && spec[option + 1] != port) continue;
                if (r.Destination != null && (m.ExternalAddress == null || !Cidr.TryParseNetwork(r.Destination, out var d) || !d.Contains(m.ExternalAddress))) continue;
                if (r.Source != null && m.Remote != null && Cidr.TryParseNetwork(r.Source, out var src) && !src.Contains(m.Remote.Value.BaseAddress)) continue;
                return r;
            }
            return null;
        }

        /// <summary>nat PREROUTING in two parts: the DNAT and REDIRECT rules of others with their positions, and NetnsNat's own DNAT rules' positions by identity.</summary>
        private sealed record Redirects(IReadOnlyList<(IptablesRule Rule, int Position)> Foreign, IReadOnlyDictionary<string, int> Own);

        /// <summary>Made once per snapshot (snapshots never change): a thousand mappings are checked against one walk of the chain.</summary>
        private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IptablesSnapshot, Redirects> RedirectCache =
            new System.Runtime.CompilerServices.ConditionalWeakTable<IptablesSnapshot, Redirects>();

        private static Redirects RedirectsOf(IptablesSnapshot snapshot) => RedirectCache.GetValue(snapshot, s =>
        {
            var foreign = new List<(IptablesRule, int)>();
            var own = new Dictionary<string, int>(StringComparer.Ordinal);
            var chain = s.Chain("nat", "PREROUTING");
            for (int i = 0; i < chain.Count; i++)
            {
                var r = chain[i];
                if (IsOwn(r)) own.TryAdd(r.Key, i);
                else if ((r.Target == "DNAT" || r.Target == "REDIRECT") && !r.HasNegation) foreign.Add((r, i));
            }
            return new Redirects(foreign, own);
        });

        /// <summary>"10.0.0.2:80" or "[fd00::2]:80".</summary>
        public static bool TryParseEndpoint(string text, out IPAddress address, out int port)
        {
            address = IPAddress.None;
            port = 0;
            int colon = text.LastIndexOf(':');
            if (colon <= 0) return false;
            var host = text.Substring(0, colon);
            if (host.StartsWith('[') && host.EndsWith(']')) host = host.Substring(1, host.Length - 2);
            return IPAddress.TryParse(host, out address!) && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536;
        }

        private static IReadOnlyList<IptablesRule> Distinct(IEnumerable<IptablesRule> rules)
        {
            var list = new List<IptablesRule>();
            var keys = new HashSet<string>(StringComparer.Ordinal);
            foreach (var r in rules)
            {
                if (keys.Add(r.Key)) list.Add(r);
            }
            return list;
        }
    }
}
