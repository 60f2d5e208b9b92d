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
        public EnableRequest(NamespaceRef ns, string bridge, string? outbound, string[]? dns, string? subnet = null)
        {
            Namespace = ns;
            Bridge = bridge;
            Outbound = outbound;
            Dns = dns;
            Subnet = subnet;
        }

        public NamespaceRef Namespace { get; }
        public string Bridge { get; }
        public string? Outbound { get; set; }
        public string[]? Dns { get; }

        /// <summary>-Subnet: which of the bridge's subnets; null to take the one the namespace's address is on.</summary>
        public string? Subnet { get; }

        public BridgeSubnet? BridgeSubnet { get; set; }
        public NatBinding? Binding { get; set; }
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
        private readonly InterfaceService _interfaces;
        private readonly ForwardingService _forwarding;
        private readonly RuleService _rules;
        private readonly RouteService _routes;
        private readonly ResolverService _resolver;

        public NamespaceNatService(ICommandHost host, INatBackend backend)
        {
            _host = host;
            _interfaces = new InterfaceService(host);
            _forwarding = new ForwardingService(host);
            _rules = new RuleService(host, backend);
            _routes = new RouteService(host);
            _resolver = new ResolverService(host);
        }

        private INatBackend Backend => _rules.Backend;

        private AddressFamilyProfile Family => Backend.Family;

        private const string BackendKind = "iptables";

        /// <summary>
        /// The whole flow for every namespace of the call: inputs checked per namespace (errors reported per namespace),
        /// forwarding once, the rules of every bridge in one write (one nf_tables batch or one iptables-restore), then
        /// each namespace's route and resolver, and the bindings recorded. A bridge whose namespaces all failed has its
        /// rules rolled back; if nothing succeeded, forwarding too.
        /// </summary>
        public void Enable(IReadOnlyList<EnableRequest> requests, Action<NamespaceNatResult> emit)
        {
            var ready = new List<EnableRequest>();
            var links = new Dictionary<string, LinkInfo>(StringComparer.Ordinal);
            var uplinks = new HashSet<string>(StringComparer.Ordinal);
            foreach (var request in requests) _host.Try(request.Namespace.Display, () => { Check(request, links, uplinks); ready.Add(request); });
            if (ready.Count == 0) return;

            var groups = ready.GroupBy(r => r.Binding!.Rules).ToArray();
            foreach (var g in groups) _host.Verbose($"Setting up NAT on bridge {g.Key.Bridge} ({g.Key.SubnetText}, gateway {g.First().Binding!.Gateway}) via {g.Key.Outbound} for {g.Count()} namespace(s).");
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var forwarding = _forwarding.Set(Family, true, tx);
            var outcomes = _rules.Add(groups.Select(g => g.Key).ToArray(), tx, target => target);
            var byTarget = outcomes?.ToDictionary(o => o.Target) ?? new Dictionary<SubnetNat, RuleService.Outcome>();

            // The rules of a bridge are written once for all its namespaces: the first result reports the change.
            var reported = new HashSet<SubnetNat>();
            NatMasqueradeRule? RuleFor(SubnetNat key)
            {
                if (!byTarget.TryGetValue(key, out var outcome)) return null;
                return reported.Add(key) ? outcome.Rule : outcome.Rule with { ChangedRules = 0 };
            }

            var progress = new ProgressRecord(1, "Enable-NamespaceNat", "Setting default routes") { PercentComplete = 0 };
            int done = 0;
            var enabled = new List<(EnableRequest Request, bool WroteResolvConf)>();
            foreach (var g in groups)
            {
                foreach (var request in g)
                {
                    if (ready.Count > 20 && done++ % 10 == 0)
                    {
                        progress.StatusDescription = $"{request.Namespace} ({done} of {ready.Count})";
                        progress.PercentComplete = done * 100 / ready.Count;
                        _host.Progress(progress);
                    }
                    bool wrote = false;
                    NamespaceNatResult? result = null;
                    if (_host.Try(request.Namespace.Display, () => result = EnableOne(request, forwarding, () => RuleFor(g.Key), tx, out wrote)) && result != null)
                    {
                        enabled.Add((request, wrote));
                        emit(result);
                    }
                }
            }
            if (ready.Count > 20)
            {
                progress.RecordType = ProgressRecordType.Completed;
                _host.Progress(progress);
            }
            // A bridge none of whose namespaces got through keeps nothing of this call.
            var succeeded = enabled.Select(e => e.Request.Binding!.Rules).ToHashSet();
            foreach (var g in groups.Where(g => !succeeded.Contains(g.Key))) tx.RollBack(g.Key);
            // With nothing enabled, disposing the transaction rolls back the rest (forwarding); otherwise it is recorded.
            if (enabled.Count == 0) return;

            if (forwarding?.Changed == true) store.ForwardingTurnedOn.Add(Family.Name);
            foreach (var target in succeeded)
            {
                var outcome = byTarget[target];
                RecordRules(store, target, outcome.Found);
                foreach (var table in outcome.CreatedTables) store.CreatedTables.Add(table);
            }
            var now = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            foreach (var (request, wrote) in enabled) Bind(store, request, wrote, now, tx);
            StateStore.Save(store, tx.Lock);
            tx.Complete();
        }

        /// <summary>
        /// Records which of a target's rules NetnsNat found standing (never removed by it) and which it added. A rule it
        /// found once and that has gone since is NetnsNat's when it writes it again.
        /// </summary>
        private void RecordRules(StoreContent store, SubnetNat target, IReadOnlyList<string> presentBefore)
        {
            var desired = Backend.Rules(target);
            var key = StoredRules.KeyOf(Family.Name, target.SubnetText, target.Outbound, target.Bridge!);
            var existing = store.Rules.FirstOrDefault(r => r.Key == key);
            var before = presentBefore.ToHashSet(StringComparer.Ordinal);
            var found = (existing == null ? desired : existing.Found).Where(before.Contains).ToArray();
            var added = desired.Except(found, StringComparer.Ordinal).ToArray();
            if (existing != null) store.Rules.Remove(existing);
            store.Rules.Add(new StoredRules(Family.Name, target.SubnetText, target.Outbound, target.Bridge!, BackendKind, added, found));
        }

        /// <summary>
        /// Records a namespace's binding, replacing the one it had on the bridge. When the earlier binding used another
        /// uplink or subnet, the rules NetnsNat added for it go (unless another binding still uses them), and a warning
        /// says so: Enable makes the binding what was asked.
        /// </summary>
        private void Bind(StoreContent store, EnableRequest request, bool wroteResolvConf, string now, NatTransaction tx)
        {
            var b = request.Binding!;
            var old = store.Bindings.FirstOrDefault(x => x.SameNamespace(request.Namespace.Path, request.Bridge, Family.Name));
            if (old != null) store.Bindings.Remove(old);
            var binding = new StoredBinding(request.Namespace.Display, request.Namespace.Path, request.Bridge, Family.Name, b.Rules.SubnetText, b.Gateway.ToString(),
                b.Outbound, BackendKind, request.Dns, wroteResolvConf || (old?.WroteResolvConf ?? false), old?.EnabledAt ?? now);
            store.Bindings.Add(binding);
            if (old == null || old.RulesKey == binding.RulesKey) return;
            if (store.Using(old.RulesKey).Any()) return;
            var entry = store.Rules.FirstOrDefault(r => r.Key == old.RulesKey);
            if (entry == null) return;
            store.Rules.Remove(entry);
            if (!Cidr.TryParseNetwork(old.Subnet, out var oldSubnet)) return;
            var stale = new SubnetNat(oldSubnet, old.Outbound, old.Bridge);
            var removed = _rules.RemoveOwned(stale, entry.Added, $"{stale} (no longer used)", tx, null);
            if (removed != null && removed.ChangedRules > 0)
            {
                _host.Warning($"Removed the {removed.ChangedRules} rules NetnsNat had added for '{request.Namespace}' via {old.Outbound} ({old.Subnet}): " +
                    $"it now goes via {b.Outbound} ({b.Rules.SubnetText}), and no other namespace NetnsNat enabled uses them.");
            }
        }

        /// <summary>Checks one namespace's inputs; bridges and uplinks are looked up once per call.</summary>
        private void Check(EnableRequest request, Dictionary<string, LinkInfo> links, HashSet<string> uplinks)
        {
            request.Namespace.RequireExists();
            request.Outbound ??= InterfaceService.DefaultOutbound(Family);
            if (!links.TryGetValue(request.Bridge, out var link))
            {
                link = _interfaces.RequireInterface(request.Bridge, "Bridge");
                InterfaceService.BridgeSubnets(link, requireUp: true);
                links[request.Bridge] = link;
            }
            var subnets = InterfaceService.BridgeSubnets(link, requireUp: true);
            request.BridgeSubnet = ChooseSubnet(request, link, subnets);
            if (!uplinks.Contains(request.Outbound))
            {
                _interfaces.RequireInterface(request.Outbound, "Outbound");
                uplinks.Add(request.Outbound);
            }
            if (request.Outbound == request.Bridge)
            {
                throw new NetnsNatException($"The uplink would be the bridge '{request.Bridge}' itself. Pass -Outbound with the interface toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
            }
            Cidr.TryParseNetwork(request.BridgeSubnet.Subnet, out var network);
            Cidr.TryParseAddress(request.BridgeSubnet.Address, out var gateway);
            request.Binding = new NatBinding(request.Namespace.Display, request.Bridge, network, gateway, request.Outbound);
        }

        /// <summary>
        /// The bridge subnet a namespace uses: the one -Subnet names; else the one its own address is on (a bridge
        /// can have several); else the bridge's first, and the route step then says the namespace has no address there.
        /// </summary>
        private BridgeSubnet ChooseSubnet(EnableRequest request, LinkInfo link, IReadOnlyList<BridgeSubnet> subnets)
        {
            if (request.Subnet != null)
            {
                var named = Cidr.NormalizeNetwork(request.Subnet);
                return subnets.FirstOrDefault(s => s.Subnet == named) ?? throw new NetnsNatException(
                    $"-Subnet {request.Subnet} is not a subnet of the bridge '{link.Name}' (it has {string.Join(", ", subnets.Select(s => s.Subnet))}). Give one of those, or leave -Subnet out to take the one the namespace's address is on.",
                    "SubnetNotOnBridge", ErrorCategory.InvalidArgument);
            }
            if (subnets.Count == 1) return subnets[0];
            var addresses = _routes.Addresses(request.Namespace, Family);
            foreach (var subnet in subnets)
            {
                if (Cidr.TryParseNetwork(subnet.Subnet, out var network) && addresses.Any(a => network.Contains(a.Address.Address))) return subnet;
            }
            return subnets[0];
        }

        /// <summary>Route and resolver for one namespace; undoes its own steps when a later one fails. Null under -WhatIf.</summary>
        private NamespaceNatResult? EnableOne(EnableRequest request, IpForwardingState? forwarding, Func<NatMasqueradeRule?> ruleOf, NatTransaction tx, out bool wroteResolvConf)
        {
            var ns = request.Namespace;
            var binding = request.Binding!;
            wroteResolvConf = false;
            try
            {
                var route = _routes.SetDefault(ns, binding.Gateway, tx, request);
                if (ns.Name != null) wroteResolvConf = _resolver.Write(ns.Name, request.Dns, tx, request);
                var rule = route == null ? null : ruleOf();
                if (forwarding == null || rule == null || route == null) return null; // -WhatIf
                _interfaces.RequireBridgeStillThere(request.Bridge);
                var resolvConf = ns.Name != null ? Resolver.EffectiveResolvConf(ns.Name) : null;
                return new NamespaceNatResult(ns.Display, request.Bridge, binding.Rules.SubnetText, binding.Outbound, binding.Gateway.ToString(), true, forwarding, rule, route,
                    resolvConf == null ? null : Resolver.NameserversOf(resolvConf), resolvConf);
            }
            catch (Exception)
            {
                tx.RollBack(request);
                throw;
            }
        }

        /// <summary>
        /// Undoes Enable-NamespaceNat for one namespace on a bridge: the rules NetnsNat added for it, when no other
        /// namespace it enabled still uses them (never the rules it found); the namespace's default route when it goes
        /// via the bridge; the resolv.conf NetnsNat wrote; with disableForwarding, forwarding, when no namespace
        /// NetnsNat enabled still needs it. A namespace NetnsNat never enabled there is an error that changes nothing.
        /// A failed step puts back the ones before it.
        /// </summary>
        public NamespaceNatResult? Disable(NamespaceRef ns, string bridge, string? outbound, bool disableForwarding)
        {
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var binding = store.Bindings.FirstOrDefault(b => b.SameNamespace(ns.Path, bridge, Family.Name));
            if (binding == null)
            {
                var elsewhere = store.Bindings.Where(b => b.NamespacePath == ns.Path && b.Family == Family.Name).Select(b => b.Bridge).ToArray();
                throw new NetnsNatException(
                    $"NetnsNat has not enabled NAT for '{ns}' on the bridge {bridge}{(elsewhere.Length > 0 ? $" (it has on {string.Join(", ", elsewhere)})" : string.Empty)}, so there is nothing of its to disable; nothing was changed. " +
                    "Get-NamespaceNat lists what it has enabled; rules written some other way are removed with Remove-NatMasquerade.",
                    "NotEnabled", ErrorCategory.ObjectNotFound);
            }
            if (outbound != null && outbound != binding.Outbound)
            {
                throw new NetnsNatException(
                    $"'{ns}' on {bridge} goes out by {binding.Outbound}, not {outbound}. Leave -Outbound out, or give {binding.Outbound}.",
                    "OutboundMismatch", ErrorCategory.InvalidArgument);
            }
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
                removed = _rules.RemoveOwned(target, entry.Added, $"bridge {bridge}", tx, null);
                store.Rules.Remove(entry);
            }

            NamespaceRoute? route = null;
            Cidr.TryParseAddress(binding.Gateway, out var gateway);
            if (ns.Exists)
            {
                var current = _routes.Read(ns, Family);
                if (current?.Gateway != null && current.Gateway.Equals(gateway) && _host.ShouldProcess($"namespace {ns}", RouteService.DeleteCommand(ns, Family)))
                {
                    _host.Verbose($"Removing the default route of '{ns}' via {current.Gateway}.");
                    RouteService.Delete(ns, Family);
                    var previous = current.Gateway;
                    tx.Record(null, $"the default route of '{ns}' via {previous}", () => RouteService.Replace(ns, previous));
                    route = new NamespaceRoute(ns.Display, null, null, previous.ToString(), true);
                }
                else
                {
                    route = new NamespaceRoute(ns.Display, current?.Gateway?.ToString(), current?.Device, current?.Gateway?.ToString(), false);
                }
            }
            else
            {
                _host.Warning($"The namespace '{ns}' does not exist any more; removing only what NetnsNat had set up for it on the host.");
            }
            if (ns.Name != null && binding.WroteResolvConf) _resolver.Remove(ns.Name);

            IpForwardingState? forwarding = null;
            var needing = store.Bindings.Where(b => b.Family == Family.Name).Select(b => b.Namespace).Distinct().ToArray();
            if (disableForwarding && needing.Length > 0)
            {
                _host.Warning($"{Family.ForwardingKey} stays on: {needing.Length} other namespace(s) NetnsNat enabled still need it ({string.Join(", ", needing.Take(5))}{(needing.Length > 5 ? ", ..." : string.Empty)}).");
            }
            else if (disableForwarding)
            {
                forwarding = _forwarding.Set(Family, false, tx);
                if (forwarding?.Changed == true) store.ForwardingTurnedOn.Remove(Family.Name);
            }
            if (needing.Length == 0 && store.CreatedTables.Count > 0
                && _host.ShouldProcess(string.Join(", ", store.CreatedTables), "Delete the tables NetnsNat's rules created, when nothing is left in them"))
            {
                foreach (var table in Backend.DeleteEmptyTables(store.CreatedTables.ToArray(), tx.Lock)) store.CreatedTables.Remove(table);
            }
            // Under -WhatIf nothing changed, and the store keeps the binding.
            if (_host.ShouldProcess(StateStore.CurrentPath, $"Record that '{ns}' on {bridge} is no longer enabled")) StateStore.Save(store, tx.Lock);
            tx.Complete();

            forwarding ??= ForwardingService.Read(Family);
            removed ??= new NatMasqueradeRule(binding.Subnet, binding.Outbound, bridge, BackendName(), Array.Empty<string>(), 0);
            return new NamespaceNatResult(ns.Display, bridge, binding.Subnet, binding.Outbound, null, false, forwarding, removed, route);
        }

        /// <summary>The bindings of the state store that match, each with whether it is in force now.</summary>
        public IReadOnlyList<NamespaceNatBinding> List(Func<StoredBinding, bool> match)
        {
            StoreContent store;
            using (var held = RulesetLock.Acquire(_host.Token, Settings.LockTimeout, _host.Verbose))
            {
                store = StateStore.Load(held);
            }
            var bindings = store.Bindings.Where(b => b.Family == Family.Name && match(b)).ToArray();
            if (bindings.Length == 0) return Array.Empty<NamespaceNatBinding>();
            var state = Backend.Read(_host.Token);
            var result = new List<NamespaceNatBinding>(bindings.Length);
            foreach (var b in bindings)
            {
                var ns = b.Namespace == b.NamespacePath ? NamespaceRef.AtPath(b.NamespacePath) : NamespaceRef.Named(b.Namespace);
                var (status, detail) = Health(b, ns, state);
                result.Add(new NamespaceNatBinding(ns.Name, b.NamespacePath, b.Bridge, b.Subnet, b.Gateway, b.Outbound, b.Family, state.BackendName, b.Dns,
                    status == "InForce", status, detail, DateTime.Parse(b.EnabledAt, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind)));
            }
            return result;
        }

        /// <summary>Whether a binding is in force: its namespace and bridge exist, its rules stand, its route goes via its gateway.</summary>
        private (string Status, string? Detail) Health(StoredBinding b, NamespaceRef ns, NatState state)
        {
            if (!ns.Exists) return ("NamespaceGone", $"{b.NamespacePath} no longer exists.");
            if (!InterfaceTable.Exists(b.Bridge)) return ("BridgeGone", $"The bridge {b.Bridge} no longer exists.");
            if (!Cidr.TryParseNetwork(b.Subnet, out var subnet)) return ("RulesMissing", $"The stored subnet '{b.Subnet}' is not a network.");
            var target = new SubnetNat(subnet, b.Outbound, b.Bridge);
            var missing = Backend.Rules(target).Except(Backend.Present(state, target), StringComparer.Ordinal).ToArray();
            if (missing.Length > 0) return ("RulesMissing", $"{missing.Length} of its rules do not stand: {string.Join("; ", missing)}.");
            var route = _routes.Read(ns, Family);
            if (route?.Gateway == null || route.Gateway.ToString() != b.Gateway) return ("RouteMissing", $"Its default route goes {(route?.Gateway == null ? "nowhere" : "via " + route.Gateway)}, not via {b.Gateway}.");
            return ("InForce", null);
        }

        /// <summary>
        /// Re-applies the bindings that match, as Enable-NamespaceNat would with what they record: after a firewall
        /// reload, a flushed ruleset or a lost route. Idempotent. A binding whose namespace or bridge is gone is
        /// reported (a warning) and skipped; it stays recorded.
        /// </summary>
        public void Restore(Func<StoredBinding, bool> match, Action<NamespaceNatResult> emit)
        {
            StoreContent store;
            using (var held = RulesetLock.Acquire(_host.Token, Settings.LockTimeout, _host.Verbose))
            {
                store = StateStore.Load(held);
            }
            var requests = new List<EnableRequest>();
            foreach (var b in store.Bindings.Where(b => b.Family == Family.Name && match(b)))
            {
                var ns = b.Namespace == b.NamespacePath ? NamespaceRef.AtPath(b.NamespacePath) : NamespaceRef.Named(b.Namespace);
                if (!ns.Exists)
                {
                    _host.Warning($"Skipping '{ns}' on {b.Bridge}: the namespace no longer exists. Disable-NamespaceNat forgets it; re-create the namespace and run Restore-NamespaceNat again to bring it back.");
                    continue;
                }
                if (!InterfaceTable.Exists(b.Bridge))
                {
                    _host.Warning($"Skipping '{ns}' on {b.Bridge}: the bridge no longer exists. Create it again (with {b.Gateway} on {b.Subnet}) and run Restore-NamespaceNat again.");
                    continue;
                }
                requests.Add(new EnableRequest(ns, b.Bridge, b.Outbound, b.Dns?.ToArray(), b.Subnet));
            }
            if (requests.Count > 0) Enable(requests, emit);
        }

        private string BackendName() => Backend.Read(_host.Token).BackendName;
    }
}
