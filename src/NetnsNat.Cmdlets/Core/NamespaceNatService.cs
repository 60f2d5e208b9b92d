using System;
using System.Collections.Generic;
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
        public EnableRequest(string ns, string bridge, string? outbound, string[]? dns)
        {
            Namespace = ns;
            Bridge = bridge;
            Outbound = outbound;
            Dns = dns;
        }

        public string Namespace { get; }
        public string Bridge { get; }
        public string? Outbound { get; set; }
        public string[]? Dns { get; }
        public BridgeSubnet? Subnet { get; set; }
        public NatBinding? Binding { get; set; }
    }

    /// <summary>
    /// The composite flow behind Enable-NamespaceNat and Disable-NamespaceNat: checks, forwarding, rules, routes and
    /// the resolver, in one transaction under the ruleset lock, rolled back as a whole or per bridge.
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

        private AddressFamilyProfile Family => _rules.Backend.Family;

        /// <summary>
        /// The whole flow for every namespace of the call: inputs checked per namespace (errors reported per namespace),
        /// forwarding once, the rules of every bridge in one write (one nf_tables batch or one iptables-restore), then
        /// each namespace's route and resolver. A bridge whose namespaces all failed has its rules rolled back; if
        /// nothing succeeded, forwarding too.
        /// </summary>
        public void Enable(IReadOnlyList<EnableRequest> requests, Action<NamespaceNatResult> emit)
        {
            var ready = new List<EnableRequest>();
            var subnets = new Dictionary<string, BridgeSubnet>(StringComparer.Ordinal);
            var uplinks = new HashSet<string>(StringComparer.Ordinal);
            foreach (var request in requests) _host.Try(request.Namespace, () => { Check(request, subnets, uplinks); ready.Add(request); });
            if (ready.Count == 0) return;

            var groups = ready.GroupBy(r => r.Binding!.Rules).ToArray();
            foreach (var g in groups) _host.Verbose($"Setting up NAT on bridge {g.Key.Bridge} ({g.Key.SubnetText}, gateway {g.First().Binding!.Gateway}) via {g.Key.Outbound} for {g.Count()} namespace(s).");
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            int succeeded = 0;
            try
            {
                var forwarding = _forwarding.Set(Family, true, tx);
                var outcomes = _rules.Add(groups.Select(g => g.Key).ToArray(), tx, target => target);
                var rules = outcomes?.ToDictionary(o => o.Target, o => o.Rule) ?? new Dictionary<SubnetNat, NatMasqueradeRule>();

                // The rules of a bridge are written once for all its namespaces: the first result reports the change.
                var reported = new HashSet<SubnetNat>();
                NatMasqueradeRule? RuleFor(SubnetNat key)
                {
                    if (!rules.TryGetValue(key, out var rule)) return null;
                    return reported.Add(key) ? rule : rule with { ChangedRules = 0 };
                }

                var progress = new ProgressRecord(1, "Enable-NamespaceNat", "Setting default routes") { PercentComplete = 0 };
                int done = 0;
                var successes = new HashSet<SubnetNat>();
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
                        bool ok = false;
                        _host.Try(request.Namespace, () => ok = EnableOne(request, forwarding, () => RuleFor(g.Key), tx, emit));
                        if (ok)
                        {
                            successes.Add(g.Key);
                            succeeded++;
                        }
                    }
                }
                if (ready.Count > 20)
                {
                    progress.RecordType = ProgressRecordType.Completed;
                    _host.Progress(progress);
                }
                // A bridge none of whose namespaces got through keeps nothing of this call.
                foreach (var g in groups.Where(g => !successes.Contains(g.Key))) tx.RollBack(g.Key);
            }
            finally
            {
                // With nothing enabled, disposing the transaction rolls back the rest (forwarding); otherwise it stays.
                if (succeeded > 0) tx.Complete();
            }
        }

        /// <summary>Checks one namespace's inputs; bridges and uplinks are looked up once per call.</summary>
        private void Check(EnableRequest request, Dictionary<string, BridgeSubnet> subnets, HashSet<string> uplinks)
        {
            if (!IpRoute2.NamespaceExists(request.Namespace)) throw new NamespaceNotFoundException(request.Namespace);
            request.Outbound ??= InterfaceService.DefaultOutbound(Family);
            if (!subnets.TryGetValue(request.Bridge, out var subnet))
            {
                subnet = _interfaces.BridgeSubnets(request.Bridge, requireUp: true)[0];
                subnets[request.Bridge] = subnet;
            }
            request.Subnet = subnet;
            if (!uplinks.Contains(request.Outbound))
            {
                _interfaces.RequireInterface(request.Outbound, "Outbound");
                uplinks.Add(request.Outbound);
            }
            if (request.Outbound == request.Bridge)
            {
                throw new NetnsNatException($"The uplink would be the bridge '{request.Bridge}' itself. Pass -Outbound with the interface toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
            }
            Cidr.TryParseNetwork(subnet.Subnet, out var network);
            Cidr.TryParseAddress(subnet.Address, out var gateway);
            request.Binding = new NatBinding(request.Namespace, request.Bridge, network, gateway, request.Outbound);
        }

        /// <summary>Route and resolver for one namespace; undoes its own steps when a later one fails.</summary>
        private bool EnableOne(EnableRequest request, IpForwardingState? forwarding, Func<NatMasqueradeRule?> ruleOf, NatTransaction tx, Action<NamespaceNatResult> emit)
        {
            var ns = request.Namespace;
            var binding = request.Binding!;
            try
            {
                var route = _routes.SetDefault(ns, binding.Gateway, tx, request);
                _resolver.Write(ns, request.Dns, tx, request);
                var rule = route == null ? null : ruleOf();
                if (forwarding == null || rule == null || route == null) return false; // -WhatIf
                _interfaces.RequireBridgeStillThere(request.Bridge);
                var resolvConf = Resolver.EffectiveResolvConf(ns);
                emit(new NamespaceNatResult(ns, request.Bridge, binding.Rules.SubnetText, binding.Outbound, binding.Gateway.ToString(), true, forwarding, rule, route,
                    Resolver.NameserversOf(resolvConf), resolvConf));
                return true;
            }
            catch (Exception)
            {
                tx.RollBack(request);
                throw;
            }
        }

        /// <summary>
        /// Undoes Enable-NamespaceNat for one namespace: the rules of the bridge's subnets (and whatever NetnsNat's
        /// FORWARD rules name for the bridge), in one write; the namespace's default route when it goes via the
        /// bridge; the resolv.conf NetnsNat wrote; with disableForwarding, forwarding. A failed step puts back the
        /// ones before it. Returns the result object, or null under -WhatIf.
        /// </summary>
        public NamespaceNatResult? Disable(string ns, string bridge, string? outbound, bool disableForwarding)
        {
            var link = _interfaces.Ip.Link(bridge, _host.Token);
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var state = _rules.Backend.Read(_host.Token);

            // What to remove: the bridge's subnets (when it still exists) and whatever NetnsNat's FORWARD rules name for it.
            var targets = _rules.Backend.OwnTargetsOnBridge(state, bridge).Where(t => outbound == null || t.Outbound == outbound).ToList();
            var subnets = link?.IsBridge == true ? link.Of(Family).Select(a => a.Network).ToList() : new List<IPNetwork>();
            if (subnets.Count > 0)
            {
                var uplink = outbound ?? (targets.Count > 0 ? null : IpRoute2.DefaultRouteInterface(Family));
                if (uplink != null) targets.AddRange(subnets.Select(s => new SubnetNat(s, uplink, bridge)));
            }
            else if (targets.Count == 0)
            {
                if (link == null)
                {
                    throw new NetnsNatException($"There is no interface '{bridge}' and no NetnsNat rules for it: nothing to disable. Check the name with 'ip link show type bridge'.",
                        "InterfaceNotFound", ErrorCategory.ObjectNotFound);
                }
                InterfaceService.BridgeSubnets(link, requireUp: false); // throws the precise error
            }
            targets = targets.Distinct().ToList();
            var gateways = link?.Of(Family).Select(a => a.Address).ToList() ?? new List<IPAddress>();

            // Rules first, in one write; then the route. If a later step fails, the transaction puts back the earlier ones.
            var removed = targets.Count == 0 ? null : _rules.Remove(targets, $"bridge {bridge}", tx, null, bridge);
            NamespaceRoute? route = null;
            if (IpRoute2.NamespaceExists(ns))
            {
                var current = _routes.Read(ns, Family);
                bool viaBridge = current?.Gateway != null && (gateways.Contains(current.Gateway)
                    || (gateways.Count == 0 && targets.Any(t => t.Subnet.Contains(current.Gateway))));
                if (viaBridge && _host.ShouldProcess($"namespace {ns}", ProcessRunner.FormatCommandLine("ip", RouteService.DeleteArguments(ns, Family))))
                {
                    _host.Verbose($"Removing the default route of '{ns}' via {current!.Gateway}.");
                    RouteService.Delete(ns, Family);
                    var previous = current.Gateway!;
                    tx.Record(null, $"the default route of '{ns}' via {previous}", () => RouteService.Replace(ns, previous));
                    route = new NamespaceRoute(ns, null, null, previous.ToString(), true);
                }
                else
                {
                    route = new NamespaceRoute(ns, current?.Gateway?.ToString(), current?.Device, current?.Gateway?.ToString(), false);
                }
            }
            else
            {
                _host.Warning($"The namespace '{ns}' does not exist any more; removing only the rules of bridge {bridge}.");
            }
            _resolver.Remove(ns);
            var forwarding = disableForwarding ? _forwarding.Set(Family, false, tx) : null;
            tx.Complete();

            forwarding ??= ForwardingService.Read(Family);
            var first = targets.FirstOrDefault();
            removed ??= new NatMasqueradeRule(first?.SubnetText ?? string.Empty, first?.Outbound ?? outbound ?? string.Empty, bridge, state.BackendName, Array.Empty<string>(), 0);
            return new NamespaceNatResult(ns, bridge, removed.Subnet, removed.Outbound, null, false, forwarding, removed, route);
        }
    }
}
