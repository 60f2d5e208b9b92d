using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>Undoes Enable-NamespaceNat: the rules for the bridge's subnet and the namespace's default route via the bridge.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class DisableNamespaceNatCommand : NamespaceNatCmdlet
    {

        /// <summary>Also turn IPv4 forwarding off (other things on the host may need it on).</summary>
        [Parameter]
        public SwitchParameter DisableForwarding { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

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
