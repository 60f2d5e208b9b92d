using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using System.Net;
using NetnsNat.Backends;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>One namespace of an Enable-NamespaceNat call, as it came down the pipeline, and what the checks found.</summary>
    internal sealed class EnableRequest
    {
        public EnableRequest(NamespaceRef ns, string bridge, string? outbound, string[]? dns, IReadOnlyList<string>? subnets = null,
            IReadOnlyList<AddressFamilyProfile>? families = null, IReadOnlyDictionary<AddressFamilyProfile, string>? outbounds = null)
        {
            Namespace = ns;
            Bridge = bridge;
            Outbound = outbound;
            Dns = dns;
            Subnets = subnets ?? Array.Empty<string>();
            Families = families;
            Outbounds = outbounds;
        }

        public NamespaceRef Namespace { get; }
        public string Bridge { get; }

        /// <summary>-Outbound: the uplink of every family; null to take each family's default route's.</summary>
        public string? Outbound { get; }
        public string[]? Dns { get; }

        /// <summary>-Subnet: which of the bridge's subnets (one per family at most); none to take the one the namespace's address is on.</summary>
        public IReadOnlyList<string> Subnets { get; }

        /// <summary>-AddressFamily: the families asked for; null for those the bridge and the namespace both have.</summary>
        public IReadOnlyList<AddressFamilyProfile>? Families { get; }

        /// <summary>The uplink of each family as the state store recorded it (Restore-NamespaceNat).</summary>
        public IReadOnlyDictionary<AddressFamilyProfile, string>? Outbounds { get; }

        /// <summary>The backend: -Backend of its pipeline item, or what the state store recorded (Restore-NamespaceNat); null for the call's.</summary>
        public NatBackendKind? Kind { get; init; }

        /// <summary>One binding per family, IPv4 first: what the checks resolved.</summary>
        public List<NatBinding> Bindings { get; } = new List<NatBinding>();
    }

    /// <summary>
    /// The composite flow behind Enable-, Disable- and Restore-NamespaceNat: checks, forwarding, rules, routes and the
    /// resolver, in one transaction under the ruleset lock, rolled back as a whole or per bridge; and the state store,
    /// which says which namespaces NetnsNat enabled and which rules it added, so that it only ever takes away its own,
    /// and only when no other namespace still uses them.
    /// </summary>
    internal sealed class NamespaceNatService
    {
        private readonly ICommandHost _host;
        private readonly Func<AddressFamilyProfile, NatBackendKind, INatBackend> _backendOf;
        private readonly NatBackendKind _kind;
        private readonly RuleServices _rules;
        private readonly InterfaceService _interfaces;
        private readonly ForwardingService _forwarding;
        private readonly RouteService _routes;
        private readonly ResolverService _resolver;
        private StoreContent? _stored;
        private readonly HashSet<AddressFamilyProfile> _warnedNoRoute = new HashSet<AddressFamilyProfile>();
        private readonly Dictionary<AddressFamilyProfile, string?> _defaultUplinks = new Dictionary<AddressFamilyProfile, string?>();

        /// <summary>The interface of the host's default route of a family, read once per call.</summary>
        private string? DefaultUplink(AddressFamilyProfile family)
        {
            if (!_defaultUplinks.TryGetValue(family, out var name)) _defaultUplinks[family] = name = IpRoute2.DefaultRouteInterface(family);
            return name;
        }

        /// <summary>kind: the backend Enable writes to (Auto resolved here); a binding the store has keeps the one it was enabled with.</summary>
        public NamespaceNatService(ICommandHost host, Func<AddressFamilyProfile, NatBackendKind, INatBackend> backendOf, NatBackendKind kind = NatBackendKind.Auto)
        {
            _host = host;
            _backendOf = backendOf;
            _rules = new RuleServices(host, backendOf);
            _kind = BackendFactory.Resolve(kind);
            _interfaces = new InterfaceService(host);
            _forwarding = new ForwardingService(host);
            _routes = new RouteService(host);
            _resolver = new ResolverService(host);
        }

        /// <summary>The rule service of a family and backend (made when first needed).</summary>
        private RuleService Rules(AddressFamilyProfile family, NatBackendKind kind) => _rules.Of(family, kind);

        private RuleService Rules(AddressFamilyProfile family) => Rules(family, _kind);

        private INatBackend Backend(AddressFamilyProfile family, NatBackendKind kind) => Rules(family, kind).Backend;

        private INatBackend Backend(AddressFamilyProfile family) => Backend(family, _kind);

        private static NatBackendKind KindOf(StoredBinding binding) => BackendFactory.FromStoreName(binding.Backend);

        /// <summary>The families in their order: IPv4 first.</summary>
        private static IEnumerable<AddressFamilyProfile> Ordered(IEnumerable<AddressFamilyProfile> families) =>
            families.Distinct().OrderBy(f => f == AddressFamilyProfile.IPv4 ? 0 : 1);

        /// <summary>
        /// The whole flow for every namespace of the call: inputs checked per namespace (errors reported per namespace),
        /// forwarding once per family, the rules of every bridge in one write per family (one nf_tables batch or one
        /// iptables-restore), then each namespace's routes and resolver, and the bindings recorded. A bridge subnet whose
        /// namespaces all failed has its rules rolled back; if nothing succeeded, forwarding too.
        /// </summary>
        public void Enable(IReadOnlyList<EnableRequest> requests, Action<NamespaceNatResult> emit)
        {
            // The results go down the pipeline once the transaction is over and the lock released: a cmdlet after this one
            // (Enable-NamespaceNat ... | Disable-NamespaceNat) runs inside each WriteObject, and would otherwise wait for
            // the lock this call holds. A call that fails as a whole emits nothing: what it did was rolled back.
            var results = new List<NamespaceNatResult>();
            // Each backend in a transaction of its own (a pipeline of Get-NamespaceNat objects may name both); one that fails
            // as a whole is reported, and the other's results still come out.
            var kinds = new Dictionary<EnableRequest, NatBackendKind>(ReferenceEqualityComparer.Instance);
            foreach (var r in requests) kinds[r] = KindFor(r);
            foreach (var kind in kinds.Values.Distinct().ToArray())
            {
                var service = kind == _kind ? this : new NamespaceNatService(_host, _backendOf, kind);
                _host.Try(null, () => service.EnableAll(requests.Where(r => kinds[r] == kind).ToArray(), results.Add));
            }
            foreach (var result in results) emit(result);
        }

        /// <summary>
        /// The backend of a request: -Backend when given; else the one NetnsNat enabled the namespace on the bridge with, or
        /// the one of the bridge's other namespaces (their NAT is the bridge's); else the host's default (Auto).
        /// </summary>
        private NatBackendKind KindFor(EnableRequest request)
        {
            if (request.Kind is { } given && given != NatBackendKind.Auto) return given;
            _stored ??= StateStore.Read(_host);
            var recorded = _stored.Bindings.FirstOrDefault(b => b.NamespacePath == request.Namespace.Path && b.Bridge == request.Bridge)
                ?? _stored.Bindings.FirstOrDefault(b => b.Bridge == request.Bridge);
            return recorded != null ? BackendFactory.FromStoreName(recorded.Backend) : _kind;
        }

        /// <summary>A namespace's binding to a bridge subnet, as a call plans it (a class: see NlAttribute).</summary>
        private sealed record Planned(EnableRequest Request, NatBinding Binding);

        /// <summary>A request the call enabled, and whether it wrote the namespace's resolv.conf.</summary>
        private sealed record Enabled(EnableRequest Request, bool WroteResolvConf);

        private void EnableAll(IReadOnlyList<EnableRequest> requests, Action<NamespaceNatResult> emit)
        {
            var ready = new List<EnableRequest>();
            var links = new Dictionary<string, LinkInfo>(StringComparer.Ordinal);
            var uplinks = new HashSet<string>(StringComparer.Ordinal);
            foreach (var request in requests) _host.Try(request.Namespace.Display, () => { Check(request, links, uplinks); ready.Add(request); });
            if (ready.Count == 0) return;

            var groups = ready.SelectMany(r => r.Bindings.Select(b => new Planned(r, b))).GroupBy(x => x.Binding.Rules).ToArray();
            foreach (var g in groups) _host.Verbose($"Setting up NAT on bridge {g.Key.Bridge} ({g.Key.SubnetText}, gateway {g.First().Binding.Gateway}) via {g.Key.Outbound} for {g.Count()} namespace(s).");
            var families = Ordered(groups.Select(g => g.Key.Family)).ToArray();
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var forwarding = families.ToDictionary(f => f, f => _forwarding.Set(f, true, tx));
            // IPv6 forwarding makes the kernel ignore router advertisements on uplinks with accept_ra=1: keep them.
            var acceptRa = new Dictionary<string, AcceptRaState?>(StringComparer.Ordinal);
            foreach (var uplink in groups.Where(g => g.Key.Family == AddressFamilyProfile.IPv6).Select(g => g.Key.Outbound).Distinct())
            {
                acceptRa[uplink] = _forwarding.KeepRouterAdvertisements(uplink, tx);
            }
            var byTarget = new Dictionary<SubnetNat, RuleService.Outcome>();
            foreach (var family in families)
            {
                var outcomes = Rules(family).Add(groups.Where(g => g.Key.Family == family).Select(g => g.Key).ToArray(), tx, target => target);
                foreach (var o in outcomes ?? Array.Empty<RuleService.Outcome>()) byTarget[o.Target] = o;
            }

            // The rules of a bridge subnet are written once for all its namespaces: the first result reports the change.
            var reported = new HashSet<SubnetNat>();
            NatMasqueradeRule? RuleFor(SubnetNat key)
            {
                if (!byTarget.TryGetValue(key, out var outcome)) return null;
                return reported.Add(key) ? outcome.Rule : outcome.Rule with { ChangedRules = 0 };
            }

            var progress = new ProgressRecord(1, "Enable-NamespaceNat", "Setting default routes") { PercentComplete = 0 };
            int done = 0;
            var enabled = new List<Enabled>();
            // Namespaces in the order of their first bridge subnet, as the rules were grouped.
            foreach (var request in groups.SelectMany(g => g.Select(x => x.Request)).Distinct())
            {
                if (ready.Count > 20 && done++ % 10 == 0)
                {
                    progress.StatusDescription = $"{request.Namespace} ({done} of {ready.Count})";
                    progress.PercentComplete = done * 100 / ready.Count;
                    _host.Progress(progress);
                }
                bool wrote = false;
                NamespaceNatResult? result = null;
                if (_host.Try(request.Namespace.Display, () => result = EnableOne(request, forwarding, acceptRa, RuleFor, tx, out wrote)) && result != null)
                {
                    enabled.Add(new Enabled(request, wrote));
                    emit(result);
                }
            }
            if (ready.Count > 20)
            {
                progress.RecordType = ProgressRecordType.Completed;
                _host.Progress(progress);
            }
            // A bridge subnet none of whose namespaces got through keeps nothing of this call.
            var succeeded = enabled.SelectMany(e => e.Request.Bindings.Select(b => b.Rules)).ToHashSet();
            foreach (var g in groups.Where(g => !succeeded.Contains(g.Key))) tx.RollBack(g.Key);
            // With nothing enabled, disposing the transaction rolls back the rest (forwarding); otherwise it is recorded.
            if (enabled.Count == 0) return;
            // A family none of whose work got through keeps nothing either: its forwarding (and IPv6's accept_ra) go back.
            var kept = succeeded.Select(t => t.Family).ToHashSet();
            foreach (var family in families.Where(f => !kept.Contains(f))) tx.RollBack(family);

            foreach (var (family, state) in forwarding)
            {
                if (state?.Changed == true && kept.Contains(family)) store.ForwardingTurnedOn.Add(family.Name);
            }
            if (kept.Contains(AddressFamilyProfile.IPv6))
            {
                foreach (var ra in acceptRa.Values)
                {
                    if (ra?.Changed == true && !store.AcceptRaChanged.ContainsKey(ra.Interface)) store.AcceptRaChanged[ra.Interface] = ra.PreviousValue;
                }
            }
            foreach (var target in succeeded)
            {
                var outcome = byTarget[target];
                RecordRules(store, target, outcome.Found);
                foreach (var table in outcome.CreatedTables) store.CreatedTables.Add(table);
            }
            var now = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            foreach (var (request, wrote) in enabled)
            {
                foreach (var binding in request.Bindings) Bind(store, request, binding, wrote, now, tx);
            }
            StateStore.Save(store, tx.Lock);
            tx.Complete();
        }

        /// <summary>
        /// Records which of a target's rules NetnsNat found standing (never removed by it) and which it added. A rule it
        /// found once and that has gone since is NetnsNat's when it writes it again.
        /// </summary>
        private void RecordRules(StoreContent store, SubnetNat target, IReadOnlyList<string> presentBefore)
        {
            var family = target.Family;
            var desired = Backend(family).Rules(target);
            var kind = BackendFactory.StoreName(_kind);
            var key = StoredRules.KeyOf(family.Name, target.SubnetText, target.Outbound, target.Bridge!, kind);
            var existing = store.Rules.FirstOrDefault(r => r.Key == key);
            var before = presentBefore.ToHashSet(StringComparer.Ordinal);
            var found = (existing == null ? desired : existing.Found).Where(before.Contains).ToArray();
            var added = desired.Except(found, StringComparer.Ordinal).ToArray();
            if (existing != null) store.Rules.Remove(existing);
            store.Rules.Add(new StoredRules(family.Name, target.SubnetText, target.Outbound, target.Bridge!, kind, added, found));
        }

        /// <summary>
        /// Records a namespace's binding of one family, replacing the one it had on the bridge. When the earlier binding
        /// used another uplink or subnet, the rules NetnsNat added for it go (unless another binding still uses them),
        /// and a warning says so: Enable makes the binding what was asked.
        /// </summary>
        private void Bind(StoreContent store, EnableRequest request, NatBinding b, bool wroteResolvConf, string now, NatTransaction tx)
        {
            var family = b.Family;
            var old = store.Bindings.FirstOrDefault(x => x.SameNamespace(request.Namespace.Path, request.Bridge, family.Name));
            if (old != null) store.Bindings.Remove(old);
            var binding = new StoredBinding(request.Namespace.Display, request.Namespace.Path, request.Bridge, family.Name, b.Rules.SubnetText, b.Gateway.ToString(),
                b.Outbound, BackendFactory.StoreName(_kind), request.Dns, wroteResolvConf || (old?.WroteResolvConf ?? false), old?.EnabledAt ?? now);
            store.Bindings.Add(binding);
            if (old == null || old.RulesKey == binding.RulesKey) return;
            if (store.Using(old.RulesKey).Any()) return;
            var entry = store.Rules.FirstOrDefault(r => r.Key == old.RulesKey);
            if (entry == null) return;
            store.Rules.Remove(entry);
            if (!Cidr.TryParseNetwork(old.Subnet, out var oldSubnet)) return;
            var stale = new SubnetNat(oldSubnet, old.Outbound, old.Bridge);
            var removed = Rules(family, KindOf(old)).RemoveOwned(stale, entry.Added, $"{stale} (no longer used)", tx, null);
            if (removed != null && removed.ChangedRules > 0)
            {
                _host.Warning($"Removed the {removed.ChangedRules} rules NetnsNat had added for '{request.Namespace}' via {old.Outbound} ({old.Subnet}): " +
                    $"it now goes via {b.Outbound} ({b.Rules.SubnetText}), and no other namespace NetnsNat enabled uses them.");
            }
        }

        /// <summary>
        /// Checks one namespace's inputs and resolves its bindings, one per family; bridges and uplinks are looked up
        /// once per call. The families: those asked for (each must be on the bridge); else those the bridge has, less
        /// IPv6 when the namespace has no IPv6 address of its own (every interface has a link-local one, which does not count).
        /// </summary>
        private void Check(EnableRequest request, Dictionary<string, LinkInfo> links, HashSet<string> uplinks)
        {
            request.Namespace.RequireExists();
            // A namespace stays in the backend it was enabled with: two backends' rules for one bridge would be two NATs.
            _stored ??= StateStore.Read(_host);
            var kind = BackendFactory.StoreName(_kind);
            var other = _stored.Bindings.FirstOrDefault(b => b.NamespacePath == request.Namespace.Path && b.Bridge == request.Bridge && b.Backend != kind);
            if (other != null)
            {
                var theirs = BackendFactory.FromStoreName(other.Backend);
                throw new NetnsNatException(
                    $"'{request.Namespace}' on {request.Bridge} is enabled with the {other.Backend} backend, and this call would use {kind}; nothing was changed. " +
                    $"Run it with -Backend {theirs}, or move it: Disable-NamespaceNat {request.Namespace.Display} {request.Bridge}, then Enable-NamespaceNat with -Backend {BackendFactory.Resolve(_kind)}.",
                    "BackendMismatch", ErrorCategory.InvalidOperation);
            }
            if (!links.TryGetValue(request.Bridge, out var link))
            {
                link = _interfaces.RequireInterface(request.Bridge, "Bridge");
                links[request.Bridge] = link;
            }
            IReadOnlyList<AddressFamilyProfile> families;
            if (request.Families != null)
            {
                // Each family asked for must be on the bridge: its own error when it is not.
                foreach (var f in request.Families) InterfaceService.BridgeSubnets(link, requireUp: true, new[] { f });
                families = request.Families;
            }
            else
            {
                var all = InterfaceService.BridgeSubnets(link, requireUp: true);
                var onBridge = Ordered(all.Select(s => AddressFamilyProfile.Parse(s.AddressFamily))).ToArray();
                // Subnets given name their families; beyond those, a family the namespace has no address of is left out.
                var named = request.Subnets.Select(t => Cidr.TryParseNetwork(t, out var n) ? AddressFamilyProfile.Of(n) : null).Where(f => f != null).ToArray();
                // A family -Subnet names must be on the bridge: its own error (BridgeHasNoIpv6Address, ...) when it is not.
                foreach (var f in named.Where(f => !onBridge.Contains(f))) InterfaceService.BridgeSubnets(link, requireUp: true, new[] { f! });
                families = onBridge.Length == 1 ? onBridge
                    : onBridge.Where(f => named.Contains(f) || _routes.Addresses(request.Namespace, f).Count > 0).ToArray() is { Length: > 0 } had ? had : onBridge;
                // A family the host has no default route of (and no uplink given or recorded) is left out, with a warning:
                // NAT out of the other family's uplink would give the namespace a route to nowhere, and its programs
                // prefer IPv6 to a global address over IPv4.
                if (families.Count > 1 && request.Outbound == null)
                {
                    var routed = families.Where(f => !named.Contains(f) && (request.Outbounds == null || !request.Outbounds.ContainsKey(f)) && DefaultUplink(f) == null).ToArray();
                    if (routed.Length > 0 && routed.Length < families.Count)
                    {
                        foreach (var f in routed)
                        {
                            if (_warnedNoRoute.Add(f)) _host.Warning($"The host has no {f.Name} default route: {f.Name} NAT is left out for '{request.Bridge}'. Pass -Outbound (the uplink for {f.Name}) or -AddressFamily Both to set it up anyway.");
                        }
                        families = families.Except(routed).ToArray();
                    }
                }
            }
            foreach (var family in Ordered(families))
            {
                var subnets = InterfaceService.BridgeSubnets(link, requireUp: true, new[] { family });
                var subnet = ChooseSubnet(request, link, family, subnets);
                var outbound = Uplink(request, family, families);
                if (!uplinks.Contains(outbound))
                {
                    _interfaces.RequireInterface(outbound, "Outbound");
                    uplinks.Add(outbound);
                }
                if (outbound == request.Bridge)
                {
                    throw new NetnsNatException($"The uplink would be the bridge '{request.Bridge}' itself. Pass -Outbound with the interface toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
                }
                Cidr.TryParseNetwork(subnet.Subnet, out var network);
                Cidr.TryParseAddress(subnet.Address, out var gateway);
                // A bridge subnet's NAT is in one backend: another namespace's in the other would be a second NAT (and the
                // nftables table's inbound drop would stop the iptables backend's port mappings).
                var neighbour = _stored.Bindings.FirstOrDefault(b => b.Bridge == request.Bridge && b.Family == family.Name && b.Subnet == subnet.Subnet && b.Backend != kind && b.NamespacePath != request.Namespace.Path);
                if (neighbour != null)
                {
                    throw new NetnsNatException(
                        $"The {family.Name} NAT of {request.Bridge} ({subnet.Subnet}) is in the {neighbour.Backend} backend ('{neighbour.Namespace}' uses it), and this call would use {kind}; nothing was changed for '{request.Namespace}'. " +
                        $"Run it with -Backend {BackendFactory.FromStoreName(neighbour.Backend)} (or without -Backend: a namespace takes its bridge's backend).",
                        "BackendMismatch", ErrorCategory.InvalidOperation);
                }
                request.Bindings.Add(new NatBinding(request.Namespace.Display, request.Bridge, network, gateway, outbound));
            }
        }

        /// <summary>
        /// A family's uplink: -Outbound; else the one the store recorded; else the interface of the family's default
        /// route; else, on a dual-stack call, the other family's (a host with no IPv6 default route yet); else an error.
        /// </summary>
        private string Uplink(EnableRequest request, AddressFamilyProfile family, IReadOnlyList<AddressFamilyProfile> families)
        {
            if (request.Outbound != null) return request.Outbound;
            if (request.Outbounds != null && request.Outbounds.TryGetValue(family, out var stored)) return stored;
            var own = DefaultUplink(family);
            if (own != null) return own;
            if (families.Count > 1)
            {
                var other = families.First(f => f != family);
                if (DefaultUplink(other) is { } theirs)
                {
                    if (_warnedNoRoute.Add(family)) _host.Warning($"The host has no {family.Name} default route: {family.Name} goes out by {theirs}, the {other.Name} uplink. Pass -Outbound to choose.");
                    return theirs;
                }
            }
            return InterfaceService.DefaultOutbound(family);
        }

        /// <summary>
        /// The bridge subnet of a family a namespace uses: the one -Subnet names; else the one its own address is on (a
        /// bridge can have several); else the bridge's first, and the route step then says the namespace has no address there.
        /// </summary>
        private BridgeSubnet ChooseSubnet(EnableRequest request, LinkInfo link, AddressFamilyProfile family, IReadOnlyList<BridgeSubnet> subnets)
        {
            var given = request.Subnets.Where(t => Cidr.TryParseNetwork(t, out var n) && AddressFamilyProfile.Of(n) == family).ToArray();
            if (given.Length > 0)
            {
                var named = Cidr.NormalizeNetwork(given[0]);
                return subnets.FirstOrDefault(s => s.Subnet == named) ?? throw new NetnsNatException(
                    $"-Subnet {given[0]} is not a subnet of the bridge '{link.Name}' (it has {string.Join(", ", InterfaceService.BridgeSubnets(link, requireUp: false).Select(s => s.Subnet))}). Give one of those, or leave -Subnet out to take the one the namespace's address is on.",
                    "SubnetNotOnBridge", ErrorCategory.InvalidArgument);
            }
            if (subnets.Count == 1) return subnets[0];
            var addresses = _routes.Addresses(request.Namespace, family);
            foreach (var subnet in subnets)
            {
                if (Cidr.TryParseNetwork(subnet.Subnet, out var network) && addresses.Any(a => network.Contains(a.Address.Address))) return subnet;
            }
            return subnets[0];
        }

        /// <summary>Routes and resolver for one namespace; undoes its own steps when a later one fails. Null under -WhatIf.</summary>
        private NamespaceNatResult? EnableOne(EnableRequest request, IReadOnlyDictionary<AddressFamilyProfile, IpForwardingState?> forwarding,
            IReadOnlyDictionary<string, AcceptRaState?> acceptRa, Func<SubnetNat, NatMasqueradeRule?> ruleOf, NatTransaction tx, out bool wroteResolvConf)
        {
            var ns = request.Namespace;
            wroteResolvConf = false;
            try
            {
                var parts = new List<NamespaceNatFamily>();
                bool whatIf = false;
                foreach (var binding in request.Bindings)
                {
                    var route = _routes.SetDefault(ns, binding.Gateway, tx, request);
                    var rule = route == null ? null : ruleOf(binding.Rules);
                    var state = forwarding[binding.Family];
                    if (state == null || rule == null || route == null)
                    {
                        whatIf = true;
                        continue;
                    }
                    parts.Add(new NamespaceNatFamily(binding.Family.Name, binding.Rules.SubnetText, binding.Outbound, binding.Gateway.ToString(), state, rule, route));
                }
                if (ns.Name != null) wroteResolvConf = _resolver.Write(ns.Name, request.Dns, tx, request);
                if (whatIf) return null;
                _interfaces.RequireBridgeStillThere(request.Bridge);
                var resolvConf = ns.Name != null ? Resolver.EffectiveResolvConf(ns.Name) : null;
                var first = parts[0];
                var six = request.Bindings.FirstOrDefault(b => b.Family == AddressFamilyProfile.IPv6);
                var ra = six != null && acceptRa.TryGetValue(six.Outbound, out var r) ? r : null;
                return new NamespaceNatResult(ns.Display, request.Bridge, first.Subnet, first.Outbound, first.Gateway, true, first.ForwardingState, first.Rule, first.Route,
                    resolvConf == null ? null : Resolver.NameserversOf(resolvConf), resolvConf, parts, ra);
            }
            catch (Exception)
            {
                tx.RollBack(request);
                throw;
            }
        }

        /// <summary>
        /// Undoes Enable-NamespaceNat for one namespace on a bridge, for every family NetnsNat enabled there (or the ones
        /// asked for): the rules NetnsNat added for it, when no other namespace it enabled still uses them (never the
        /// rules it found); the namespace's default route when it goes via the bridge; the resolv.conf NetnsNat wrote;
        /// with disableForwarding, forwarding, when no namespace NetnsNat enabled still needs it (and an uplink's
        /// accept_ra with IPv6's). A namespace NetnsNat never enabled there is an error that changes nothing. A failed
        /// step puts back the ones before it.
        /// </summary>
        public NamespaceNatResult? Disable(NamespaceRef ns, string bridge, string? outbound, bool disableForwarding, IReadOnlyList<AddressFamilyProfile>? families = null)
        {
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var bindings = store.Bindings.Where(b => b.NamespacePath == ns.Path && b.Bridge == bridge && (families == null || families.Any(f => f.Name == b.Family)))
                .OrderBy(b => b.Family == AddressFamilyProfile.IPv4.Name ? 0 : 1).ToArray();
            if (bindings.Length == 0)
            {
                var elsewhere = store.Bindings.Where(b => b.NamespacePath == ns.Path && (families == null || families.Any(f => f.Name == b.Family))).Select(b => b.Bridge).Distinct().ToArray();
                var which = families == null || families.Count > 1 ? string.Empty : " " + families[0].Name;
                throw new NetnsNatException(
                    $"NetnsNat has not enabled{which} NAT for '{ns}' on the bridge {bridge}{(elsewhere.Length > 0 ? $" (it has on {string.Join(", ", elsewhere)})" : string.Empty)}, so there is nothing of its to disable; nothing was changed. " +
                    "Get-NamespaceNat lists what it has enabled; rules written some other way are removed with Remove-NatMasquerade.",
                    "NotEnabled", ErrorCategory.ObjectNotFound);
            }
            // -Outbound names the binding's uplink; with a family per uplink (IPv4 by eth0, IPv6 by eth1) it is enough that
            // one family's matches: Enable's result, piped in, carries the first family's.
            var mismatch = outbound != null && bindings.All(b => b.Outbound != outbound) ? bindings[0] : null;
            if (mismatch != null)
            {
                throw new NetnsNatException(
                    $"'{ns}' on {bridge} goes out by {mismatch.Outbound}{(bindings.Length > 1 ? $" for {mismatch.Family}" : string.Empty)}, not {outbound}. Leave -Outbound out, or give {mismatch.Outbound}.",
                    "OutboundMismatch", ErrorCategory.InvalidArgument);
            }
            if (!ns.Exists) _host.Warning($"The namespace '{ns}' does not exist any more; removing only what NetnsNat had set up for it on the host.");

            // Its published ports first: they go through the bridge's NAT, and stand above its FORWARD rules.
            var forgotten = new PortMappingService(_host, _backendOf).RemoveForNamespace(ns, bridge, bindings.Select(b => b.Family).ToArray(), store, tx);

            var parts = new List<NamespaceNatFamily>();
            foreach (var binding in bindings)
            {
                var family = AddressFamilyProfile.Parse(binding.Family);
                store.Bindings.Remove(binding);
                Cidr.TryParseNetwork(binding.Subnet, out var subnet);
                var target = new SubnetNat(subnet, binding.Outbound, binding.Bridge);

                // Rules first, in one write; then the route. If a later step fails, the transaction puts back the earlier ones.
                NatMasqueradeRule? removed = null;
                var others = store.Using(binding.RulesKey).Select(b => b.Namespace).ToArray();
                var entry = store.Rules.FirstOrDefault(r => r.Key == binding.RulesKey);
                if (others.Length > 0)
                {
                    _host.Verbose($"The rules for {target} stay: {string.Join(", ", others)} still use{(others.Length == 1 ? "s" : string.Empty)} them.");
                }
                else if (entry != null)
                {
                    if (entry.Found.Count > 0) _host.Verbose($"Leaving the {entry.Found.Count} rules for {target} that stood before NetnsNat came.");
                    removed = Rules(family, KindOf(binding)).RemoveOwned(target, entry.Added, $"bridge {bridge}", tx, null);
                    store.Rules.Remove(entry);
                }

                NamespaceRoute? route = null;
                Cidr.TryParseAddress(binding.Gateway, out var gateway);
                if (ns.Exists)
                {
                    var current = (gateway == null ? null : _routes.Read(ns, family, gateway)) ?? _routes.Read(ns, family);
                    if (current?.Gateway != null && current.Gateway.Equals(gateway) && _host.ShouldProcess($"namespace {ns}", RouteService.DeleteCommand(ns, family)))
                    {
                        _host.Verbose($"Removing the {(family == AddressFamilyProfile.IPv6 ? "IPv6 " : string.Empty)}default route of '{ns}' via {current.Gateway}.");
                        RouteService.Delete(ns, family, current.Gateway);
                        var previous = current.Gateway;
                        tx.Record(null, $"the default route of '{ns}' via {previous}", () => RouteService.Replace(ns, previous));
                        route = new NamespaceRoute(ns.Display, null, null, previous.ToString(), true, family.Name);
                    }
                    else
                    {
                        route = new NamespaceRoute(ns.Display, current?.Gateway?.ToString(), current?.Device, current?.Gateway?.ToString(), false, family.Name);
                    }
                }

                IpForwardingState? forwardingState = null;
                var needing = store.Bindings.Where(b => b.Family == family.Name).Select(b => b.Namespace).Distinct().ToArray();
                if (disableForwarding && needing.Length > 0)
                {
                    _host.Warning($"{family.ForwardingKey} stays on: {needing.Length} other namespace(s) NetnsNat enabled still need it ({string.Join(", ", needing.Take(5))}{(needing.Length > 5 ? ", ..." : string.Empty)}).");
                }
                else if (disableForwarding)
                {
                    forwardingState = _forwarding.Set(family, false, tx);
                    if (forwardingState?.Changed == true) store.ForwardingTurnedOn.Remove(family.Name);
                    // Under -WhatIf forwarding stays on, and the accept_ra that goes back with it is shown too.
                    if (family == AddressFamilyProfile.IPv6 && (forwardingState?.Enabled == false || _host.WhatIf)) _forwarding.RestoreAcceptRa(store, tx);
                }
                forwardingState ??= ForwardingService.Read(family);
                removed ??= new NatMasqueradeRule(binding.Subnet, binding.Outbound, bridge, BackendName(family, KindOf(binding)), Array.Empty<string>(), 0);
                parts.Add(new NamespaceNatFamily(family.Name, binding.Subnet, binding.Outbound, null, forwardingState, removed, route));
            }
            if (ns.Name != null && bindings.Any(b => b.WroteResolvConf) && !store.Bindings.Any(b => b.NamespacePath == ns.Path && b.Bridge == bridge)) _resolver.Remove(ns.Name);

            if (store.Bindings.Count == 0 && store.CreatedTables.Count > 0
                && _host.ShouldProcess(string.Join(", ", store.CreatedTables), "Delete the tables NetnsNat's rules created, when nothing is left in them"))
            {
                // Only the families that have such a table ("ip nat", "ip6 filter"): a host without ip6tables never runs it.
                foreach (var family in InterfaceService.AllFamilies)
                {
                    var prefix = family == AddressFamilyProfile.IPv6 ? "ip6 " : "ip ";
                    var mine = store.CreatedTables.Where(t => t.StartsWith(prefix, StringComparison.Ordinal)).ToArray();
                    if (mine.Length == 0) continue;
                    foreach (var table in Backend(family, NatBackendKind.Iptables).DeleteEmptyTables(mine, tx.Lock)) store.CreatedTables.Remove(table);
                }
            }
            // Under -WhatIf nothing changed, and the store keeps the binding.
            if (_host.ShouldProcess(StateStore.CurrentPath, $"Record that '{ns}' on {bridge} is no longer enabled")) StateStore.Save(store, tx.Lock);
            else if (forgotten.Count > 0)
            {
                // The binding stays recorded, as answered; the mappings whose removal was approved (rules, record and
                // connections, as their question said) are forgotten all the same: nothing of a mapping is half-removed.
                var kept = StateStore.Load(tx.Lock);
                foreach (var m in forgotten) kept.Mappings.Remove(m);
                StateStore.Save(kept, tx.Lock);
            }
            tx.Complete();

            var first = parts[0];
            return new NamespaceNatResult(ns.Display, bridge, first.Subnet, first.Outbound, null, false, first.ForwardingState, first.Rule, first.Route, Families: parts);
        }

        /// <summary>The families NetnsNat enabled for a namespace (on a bridge, when given), from the state store.</summary>
        public static IReadOnlyList<AddressFamilyProfile> BoundFamilies(StoreContent store, NamespaceRef ns, string? bridge)
        {
            return Ordered(store.Bindings.Where(b => b.NamespacePath == ns.Path && (bridge == null || b.Bridge == bridge))
                .Select(b => AddressFamilyProfile.Parse(b.Family))).ToArray();
        }

        /// <summary>The bindings of the state store that match (one per family), each with whether it is in force now.</summary>
        public IReadOnlyList<NamespaceNatBinding> List(Func<StoredBinding, bool> match)
        {
            var store = StateStore.Read(_host);
            var bindings = store.Bindings.Where(match).ToArray();
            if (bindings.Length == 0) return Array.Empty<NamespaceNatBinding>();
            var states = new Dictionary<(string, NatBackendKind), NatState>();
            var result = new List<NamespaceNatBinding>(bindings.Length);
            foreach (var b in bindings)
            {
                var family = AddressFamilyProfile.Parse(b.Family);
                var kind = KindOf(b);
                if (!states.TryGetValue((b.Family, kind), out var state)) states[(b.Family, kind)] = state = Backend(family, kind).Read(_host.Token);
                var ns = NamespaceRef.Of(b.Namespace, b.NamespacePath);
                var (status, detail) = Health(b, family, kind, ns, state);
                result.Add(new NamespaceNatBinding(ns.Name, b.NamespacePath, b.Bridge, b.Subnet, b.Gateway, b.Outbound, b.Family, state.BackendName, b.Dns,
                    status == "InForce", status, detail, DateTime.Parse(b.EnabledAt, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
                    store.Mappings.Where(m => m.NamespacePath == b.NamespacePath && m.Bridge == b.Bridge && m.Family == b.Family)
                        .Select(m => m.ToMapping()).Where(m => m != null).Select(m => PortMappingService.Describe(m!)).ToArray()));
            }
            return result;
        }

        /// <summary>Whether a binding is in force: its namespace, bridge and uplink exist, its rules stand, its route goes via its gateway.</summary>
        private (string Status, string? Detail) Health(StoredBinding b, AddressFamilyProfile family, NatBackendKind kind, NamespaceRef ns, NatState state)
        {
            if (!ns.Exists) return ("NamespaceGone", $"{b.NamespacePath} no longer exists.");
            if (!InterfaceTable.Exists(b.Bridge)) return ("BridgeGone", $"The bridge {b.Bridge} no longer exists.");
            if (!InterfaceTable.Exists(b.Outbound)) return ("UplinkGone", $"The uplink {b.Outbound} no longer exists: the namespace's traffic has no way out.");
            if (!Cidr.TryParseNetwork(b.Subnet, out var subnet)) return ("RulesMissing", $"The stored subnet '{b.Subnet}' is not a network.");
            var target = new SubnetNat(subnet, b.Outbound, b.Bridge);
            var backend = Backend(family, kind);
            if (state is NftablesState { Content: { Exists: true, Intact: false } changed })
            {
                return ("RulesMissing", $"inet {NftablesTable.Name} is not as NetnsNat made it: {changed.Problem}. Restore-NamespaceNat lays it again, with its elements.");
            }
            var missing = backend.Rules(target).Except(backend.Present(state, target), StringComparer.Ordinal).ToArray();
            if (missing.Length > 0) return ("RulesMissing", $"{missing.Length} of its rules do not stand: {string.Join("; ", missing)}.");
            var route = _routes.Read(ns, family);
            if (route?.Gateway == null || route.Gateway.ToString() != b.Gateway) return ("RouteMissing", $"Its {family.Name} default route goes {(route?.Gateway == null ? "nowhere" : "via " + route.Gateway)}, not via {b.Gateway}.");
            return ("InForce", null);
        }

        /// <summary>
        /// Re-applies the bindings that match, as Enable-NamespaceNat would with what they record (every family of a
        /// namespace on a bridge in one request): after a firewall reload, a flushed ruleset or a lost route.
        /// Idempotent. A binding whose namespace, bridge or uplink is gone is reported (a warning) and skipped; it stays recorded.
        /// </summary>
        public void Restore(Func<StoredBinding, bool> match, Action<NamespaceNatResult> emit)
        {
            var store = StateStore.Read(_host);
            var requests = new List<EnableRequest>();
            foreach (var group in store.Bindings.Where(match).GroupBy(b => (b.NamespacePath, b.Bridge)))
            {
                var b = group.First();
                var ns = NamespaceRef.Of(b.Namespace, b.NamespacePath);
                if (!ns.Exists)
                {
                    _host.Warning($"Skipping '{ns}' on {b.Bridge}: the namespace no longer exists. Disable-NamespaceNat forgets it; re-create the namespace and run Restore-NamespaceNat again to bring it back.");
                    continue;
                }
                if (!InterfaceTable.Exists(b.Bridge))
                {
                    _host.Warning($"Skipping '{ns}' on {b.Bridge}: the bridge no longer exists. Create it again (with {string.Join(" and ", group.Select(x => $"{x.Gateway} on {x.Subnet}"))}) and run Restore-NamespaceNat again.");
                    continue;
                }
                var uplinks = group.Select(x => x.Outbound).Where(o => !InterfaceTable.Exists(o)).Distinct(StringComparer.Ordinal).ToArray();
                if (uplinks.Length > 0)
                {
                    _host.Warning($"Skipping '{ns}' on {b.Bridge}: its uplink {string.Join(" and ", uplinks)} no longer exists. Bring it back and run Restore-NamespaceNat again, or give the namespace another uplink: " +
                        $"Disable-NamespaceNat {ns} {b.Bridge}; Enable-NamespaceNat {ns} {b.Bridge} -Outbound <uplink>.");
                    continue;
                }
                var families = Ordered(group.Select(x => AddressFamilyProfile.Parse(x.Family))).ToArray();
                requests.Add(new EnableRequest(ns, b.Bridge, null, group.Select(x => x.Dns).FirstOrDefault(d => d != null)?.ToArray(), group.Select(x => x.Subnet).ToArray(),
                    families, group.ToDictionary(x => AddressFamilyProfile.Parse(x.Family), x => x.Outbound)) { Kind = KindOf(b) });
            }
            if (requests.Count == 0) return;
            var restored = new List<NamespaceNatResult>();
            // Each binding in the backend it was enabled with (its request's Kind).
            Enable(requests, r =>
            {
                restored.Add(r);
                emit(r);
            });
            // Their published ports too, once their bridges' rules stand again (under -WhatIf, shown for every namespace asked for).
            var paths = requests.Where(q => _host.WhatIf || restored.Any(r => r.Namespace == q.Namespace.Display && r.Bridge == q.Bridge)).Select(q => (q.Namespace.Path, q.Bridge)).ToHashSet();
            if (paths.Count > 0) new PortMappingService(_host, _backendOf).Reapply(m => paths.Contains((m.NamespacePath, m.Bridge)));
        }

        private string BackendName(AddressFamilyProfile family, NatBackendKind kind) => Backend(family, kind).Read(_host.Token).BackendName;
    }
}
