using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>
    /// The whole lesson in one call: forwarding on, the bridge's subnet, MASQUERADE and FORWARD rules, and the
    /// namespace's default route via the bridge. What a failed call had applied is rolled back.
    /// </summary>
    [Cmdlet(VerbsLifecycle.Enable, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class EnableNamespaceNatCommand : NetnsCmdlet
    {
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string[] Namespace { get; set; } = Array.Empty<string>();

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string Bridge { get; set; } = string.Empty;

        /// <summary>The uplink; by default the interface of this namespace's IPv4 default route.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        /// <summary>Nameservers for the namespace, written to /etc/netns/NAME/resolv.conf.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? Dns { get; set; }

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("iptables-save", "iptables-restore");
        }

        /// <summary>One namespace of the call, as it came down the pipeline.</summary>
        private sealed class Item
        {
            public Item(string ns, string bridge, string? outbound, string[]? dns)
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
        }

        private readonly List<Item> _items = new List<Item>();

        /// <summary>Checks and collects; the work is done in EndProcessing, so a pipeline of namespaces shares one transaction.</summary>
        protected override void ProcessRecord()
        {
            if (!CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Dns != null && !CheckNameservers(Dns)) return;
            foreach (var ns in Namespace)
            {
                if (CheckNamespaceName(ns)) _items.Add(new Item(ns, Bridge, Outbound, Dns));
            }
        }

        private bool CheckNameservers(string[] servers)
        {
            foreach (var server in servers)
            {
                if (Ipv4Cidr.TryParseAddress(server, out _) || (server.Contains(':') && System.Net.IPAddress.TryParse(server, out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)) continue;
                WriteError(new ErrorRecord(new ArgumentException($"-Dns '{server}' is not an IP address. Give the nameservers' addresses, for example -Dns 192.0.2.53.", "Dns"),
                    "InvalidDns", ErrorCategory.InvalidArgument, server));
                return false;
            }
            if (servers.Length == 0 || servers.Any(Resolver.IsLoopback))
            {
                WriteError(new ErrorRecord(new ArgumentException("-Dns needs at least one nameserver, and none on the loopback (127.0.0.0/8, ::1): the namespace has a loopback of its own and cannot reach the host's.", "Dns"),
                    "InvalidDns", ErrorCategory.InvalidArgument, servers));
                return false;
            }
            return true;
        }

        /// <summary>
        /// The whole flow for every namespace of the call: inputs checked per namespace (errors reported per namespace),
        /// forwarding once, the rules of every bridge in one iptables-restore, then each namespace's route and resolver.
        /// A bridge whose namespaces all failed has its rules rolled back; if nothing succeeded, forwarding too.
        /// </summary>
        protected override void EndProcessing()
        {
            if (_items.Count == 0) return;
            Guard(null, () =>
            {
                var ready = new List<Item>();
                var subnets = new Dictionary<string, BridgeSubnet>(StringComparer.Ordinal);
                var uplinks = new HashSet<string>(StringComparer.Ordinal);
                foreach (var item in _items) Guard(item.Namespace, () => { Check(item, subnets, uplinks); ready.Add(item); });
                if (ready.Count == 0) return;
                Apply(ready);
            });
        }

        /// <summary>Checks one namespace's inputs; bridges and uplinks are looked up once per call.</summary>
        private void Check(Item item, Dictionary<string, BridgeSubnet> subnets, HashSet<string> uplinks)
        {
            if (!IpRoute2.NamespaceExists(item.Namespace)) throw new NamespaceNotFoundException(item.Namespace);
            item.Outbound ??= Steps.DefaultOutbound();
            if (!subnets.TryGetValue(item.Bridge, out var subnet))
            {
                subnet = Steps.BridgeSubnets(this, item.Bridge, requireUp: true)[0];
                subnets[item.Bridge] = subnet;
            }
            item.Subnet = subnet;
            if (!uplinks.Contains(item.Outbound))
            {
                Steps.RequireInterface(this, item.Outbound, "Outbound");
                uplinks.Add(item.Outbound);
            }
            if (item.Outbound == item.Bridge)
            {
                throw new NetnsNatException($"The uplink would be the bridge '{item.Bridge}' itself. Pass -Outbound with the interface toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
            }
        }

        private void Apply(List<Item> ready)
        {
            var groups = ready.GroupBy(i => (Subnet: i.Subnet!.Subnet, Outbound: i.Outbound!, Bridge: i.Bridge)).ToArray();
            foreach (var g in groups) WriteVerbose($"Setting up NAT on bridge {g.Key.Bridge} ({g.Key.Subnet}, gateway {g.First().Subnet!.Address}) via {g.Key.Outbound} for {g.Count()} namespace(s).");
            var forwarding = Steps.SetForwarding(this, "IPv4", true);
            Action? undoForwarding = forwarding?.Changed == true ? () => Steps.WriteSysctl(Sysctl.ForwardingPath("IPv4"), Sysctl.ForwardingKey("IPv4"), false) : null;
            var applied = new Dictionary<(string, string, string), (NatMasqueradeRule Rule, RulePlan Plan)>();
            int succeeded = 0;
            try
            {
                using var held = RulesetLock.Acquire(Token, Steps.LockTimeout);
                var rules = Steps.AddRulesForGroups(this, groups.Select(g => (g.Key.Subnet, g.Key.Outbound, (string?)g.Key.Bridge)).ToArray());
                if (rules != null) foreach (var (key, value) in rules) applied[(key.Subnet, key.Outbound, key.Bridge!)] = value;

                var progress = new ProgressRecord(1, "Enable-NamespaceNat", "Setting default routes") { PercentComplete = 0 };
                int done = 0;
                var successes = new HashSet<(string, string, string)>();
                foreach (var g in groups)
                {
                    foreach (var item in g)
                    {
                        if (ready.Count > 20 && done++ % 10 == 0)
                        {
                            progress.StatusDescription = $"{item.Namespace} ({done} of {ready.Count})";
                            progress.PercentComplete = done * 100 / ready.Count;
                            WriteProgress(progress);
                        }
                        bool ok = false;
                        Guard(item.Namespace, () => ok = EnableOne(item, forwarding, applied.TryGetValue(g.Key, out var r) ? r.Rule : null));
                        if (ok) { successes.Add(g.Key); succeeded++; }
                    }
                }
                if (ready.Count > 20)
                {
                    progress.RecordType = ProgressRecordType.Completed;
                    WriteProgress(progress);
                }
                // A bridge none of whose namespaces got through keeps nothing of this call.
                foreach (var (key, value) in applied.Where(a => !successes.Contains(a.Key)))
                {
                    Steps.RollBack(this, value.Plan);
                }
            }
            catch (Exception) when (succeeded == 0)
            {
                foreach (var value in applied.Values) TryUndo(() => Steps.RollBack(this, value.Plan));
                if (undoForwarding != null) TryUndo(undoForwarding);
                throw;
            }
            if (succeeded == 0 && undoForwarding != null && applied.Count > 0) TryUndo(undoForwarding);
        }

        /// <summary>Route and resolver for one namespace; undoes its own steps when a later one fails.</summary>
        private bool EnableOne(Item item, IpForwardingState? forwarding, NatMasqueradeRule? rule)
        {
            var ns = item.Namespace;
            var undo = new Stack<Action>();
            try
            {
                var route = SetNamespaceDefaultRouteCommand.Apply(this, ns, item.Subnet!.Address);
                if (route?.Changed == true && route.PreviousGateway == null) undo.Push(() => Ip.DeleteDefaultRoute(ns, CancellationToken.None));
                else if (route?.Changed == true) undo.Push(() => Ip.ReplaceDefaultRoute(ns, route.PreviousGateway!, CancellationToken.None));
                var dnsWritten = Steps.WriteNamespaceResolver(this, ns, item.Dns);
                if (dnsWritten != null) undo.Push(dnsWritten);
                if (forwarding == null || rule == null || route == null) return false; // -WhatIf
                Steps.RequireBridgeStillThere(item.Bridge);
                var resolvConf = Resolver.EffectiveResolvConf(ns);
                WriteObject(new NamespaceNatResult(ns, item.Bridge, item.Subnet.Subnet, item.Outbound!, item.Subnet.Address, true, forwarding, rule, route,
                    Resolver.NameserversOf(resolvConf), resolvConf));
                return true;
            }
            catch (Exception)
            {
                while (undo.Count > 0) TryUndo(undo.Pop());
                throw;
            }
        }

        private void TryUndo(Action step)
        {
            try
            {
                step();
            }
            catch (Exception ex) when (ex is not PipelineStoppedException)
            {
                WriteWarning($"Rolling back a step failed: {ex.Message}");
            }
        }
    }

    /// <summary>Undoes Enable-NamespaceNat: the rules for the bridge's subnet and the namespace's default route via the bridge.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class DisableNamespaceNatCommand : NetnsCmdlet
    {
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string[] Namespace { get; set; } = Array.Empty<string>();

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string Bridge { get; set; } = string.Empty;

        /// <summary>The uplink; by default whichever NetnsNat's FORWARD rules for the bridge name, else the default-route interface.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        /// <summary>Also turn IPv4 forwarding off (other things on the host may need it on).</summary>
        [Parameter]
        public SwitchParameter DisableForwarding { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("iptables-save", "iptables-restore");
        }

        protected override void ProcessRecord()
        {
            if (!CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            foreach (var ns in Namespace)
            {
                if (!CheckNamespaceName(ns)) continue;
                Guard(ns, () => DisableOne(ns));
            }
        }

        private void DisableOne(string ns)
        {
            var link = Ip.Link(Bridge, Token);
            using var held = RulesetLock.Acquire(Token, Steps.LockTimeout);
            var snapshot = Iptables.Save(Token);

            // What to remove: the bridge's subnets (when it still exists) and whatever NetnsNat's FORWARD rules name for it.
            var pairs = new List<(string Subnet, string Outbound)>();
            foreach (var rule in snapshot.Chain("filter", "FORWARD").Where(NatRules.IsOwnForward))
            {
                if (rule.InInterface == Bridge && rule.Source != null && rule.OutInterface != null && (Outbound == null || rule.OutInterface == Outbound))
                {
                    pairs.Add((rule.Source, rule.OutInterface));
                }
            }
            var subnets = link?.IsBridge == true ? link.Ipv4.Select(a => a.Network.ToString()).ToList() : new List<string>();
            if (subnets.Count > 0)
            {
                var uplink = Outbound ?? (pairs.Count > 0 ? null : IpRoute2.DefaultRouteInterface());
                if (uplink != null) pairs.AddRange(subnets.Select(s => (s, uplink)));
            }
            else if (pairs.Count == 0)
            {
                if (link == null)
                {
                    throw new NetnsNatException($"There is no interface '{Bridge}' and no NetnsNat rules for it: nothing to disable. Check the name with 'ip link show type bridge'.",
                        "InterfaceNotFound", ErrorCategory.ObjectNotFound);
                }
                Steps.BridgeSubnets(link, requireUp: false); // throws the precise error
            }
            pairs = pairs.Distinct().ToList();
            var gateways = link?.Ipv4.Select(a => a.AddressText).ToHashSet() ?? new HashSet<string>();

            // Rules first, in one iptables-restore; then the route. If the route step fails, the rules come back.
            var plans = pairs.Select(p => NatRules.PlanRemove(snapshot, p.Subnet, p.Outbound, Bridge)).ToArray();
            var removedRules = plans.Length == 0 ? null : Steps.RemoveMany(this, snapshot, plans, Bridge);
            NamespaceRoute? route = null;
            try
            {
                if (IpRoute2.NamespaceExists(ns))
                {
                    var current = Ip.NamespaceDefaultRoute(ns, Token);
                    bool viaBridge = current?.Gateway != null && (gateways.Contains(current.Gateway)
                        || (gateways.Count == 0 && pairs.Any(p => Ipv4Cidr.TryParse(p.Subnet, out var c, out _) && Ipv4Cidr.TryParseAddress(current.Gateway, out var g) && c.Contains(g))));
                    if (viaBridge && ShouldRun($"namespace {ns}", "ip", IpRoute2.DeleteDefaultRouteArguments(ns)))
                    {
                        WriteVerbose($"Removing the default route of '{ns}' via {current!.Gateway}.");
                        Ip.DeleteDefaultRoute(ns, Token);
                        route = new NamespaceRoute(ns, null, null, current.Gateway, true);
                    }
                    else
                    {
                        route = new NamespaceRoute(ns, current?.Gateway, current?.Device, current?.Gateway, false);
                    }
                }
                else
                {
                    WriteWarning($"The namespace '{ns}' does not exist any more; removing only the rules of bridge {Bridge}.");
                }
            }
            catch (Exception) when (removedRules?.Applied.IsEmpty == false)
            {
                Steps.RollBack(this, removedRules.Value.Applied);
                throw;
            }
            NatMasqueradeRule? removed = removedRules?.Rule;
            Steps.RemoveNamespaceResolver(this, ns);

            var forwarding = DisableForwarding ? Steps.SetForwarding(this, "IPv4", false) : null;
            forwarding ??= new IpForwardingState("IPv4", Sysctl.ForwardingKey("IPv4"), Sysctl.ReadFlag(Sysctl.ForwardingPath("IPv4")), false);
            if (PassThru)
            {
                var first = pairs.FirstOrDefault();
                removed ??= new NatMasqueradeRule(first.Subnet ?? string.Empty, first.Outbound ?? Outbound ?? string.Empty, Bridge, Steps.Backend(snapshot), Array.Empty<string>(), 0);
                WriteObject(new NamespaceNatResult(ns, Bridge, removed.Subnet, removed.Outbound, null, false, forwarding, removed, route));
            }
        }
    }
}
