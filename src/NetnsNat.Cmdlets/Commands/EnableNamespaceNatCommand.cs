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
    public sealed class EnableNamespaceNatCommand : NamespaceNatCmdlet
    {

        /// <summary>Nameservers for the namespace, written to /etc/netns/NAME/resolv.conf.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? Dns { get; set; }

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
        /// forwarding once, the rules of every bridge in one write (one nf_tables batch or one iptables-restore), then
        /// each namespace's route and resolver.
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
}
