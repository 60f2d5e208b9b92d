using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>The steps of the lesson's flow, shared by the single-step cmdlets and the composite ones.</summary>
    internal static class Steps
    {
        public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(60);

        public static LinkInfo RequireInterface(IReadOnlyList<LinkInfo> links, string name, string parameter)
        {
            var link = links.FirstOrDefault(l => l.Name == name);
            if (link != null) return link;
            var names = string.Join(", ", links.Where(l => l.Name != "lo").Select(l => l.Name));
            throw new NetnsNatException(
                $"-{parameter}: there is no interface '{name}' in this network namespace (it has: {(names.Length == 0 ? "none" : names)}). " +
                (parameter == "Bridge"
                    ? $"Create the bridge first: ip link add {name} type bridge; ip addr add 10.0.0.1/24 dev {name}; ip link set {name} up."
                    : "Use the interface that 'ip route show default' names after 'dev'."),
                "InterfaceNotFound", ErrorCategory.ObjectNotFound);
        }

        /// <summary>The IPv4 subnets of a bridge; throws a clear error when it is missing, not a bridge, unaddressed, or (if asked) down.</summary>
        public static IReadOnlyList<BridgeSubnet> BridgeSubnets(IReadOnlyList<LinkInfo> links, string name, bool requireUp)
        {
            var link = RequireInterface(links, name, "Bridge");
            if (!link.IsBridge)
            {
                throw new NetnsNatException(
                    $"'{name}' is a {link.Kind ?? "plain"} interface, not a bridge. Give the bridge the namespaces are attached to (list them with 'ip link show type bridge').",
                    "NotABridge", ErrorCategory.InvalidArgument);
            }
            if (link.Ipv4.Count == 0)
            {
                throw new NetnsNatException(
                    $"The bridge '{name}' has no IPv4 address, so there is no subnet to masquerade and no gateway for the namespaces. Give it one: ip addr add 10.0.0.1/24 dev {name}.",
                    "BridgeHasNoIpv4Address", ErrorCategory.ObjectNotFound);
            }
            if (requireUp && !link.IsUp)
            {
                throw new NetnsNatException(
                    $"The bridge '{name}' is down, so nothing can pass through it. Bring it up: ip link set {name} up.",
                    "BridgeDown", ErrorCategory.InvalidOperation);
            }
            return link.Ipv4.Select(a => new BridgeSubnet(name, a.AddressText, a.PrefixLength, a.Network.ToString(), link.IsUp)).ToArray();
        }

        public static string DefaultOutbound()
        {
            return IpRoute2.DefaultRouteInterface() ?? throw new NetnsNatException(
                "This network namespace has no IPv4 default route, so there is no uplink to masquerade out of. Pass -Outbound with the uplink interface, " +
                "or add a default route first (ip route add default via ROUTER dev IFACE).",
                "NoDefaultRoute", ErrorCategory.ObjectNotFound);
        }

        /// <summary>Sets the forwarding sysctl; writes only when it differs. Returns null under -WhatIf when a write was needed.</summary>
        public static IpForwardingState? SetForwarding(NetnsCmdlet cmdlet, string family, bool value)
        {
            var path = Sysctl.ForwardingPath(family);
            var key = Sysctl.ForwardingKey(family);
            if (Sysctl.ReadFlag(path) == value) return new IpForwardingState(family, key, value, false);
            if (!cmdlet.ShouldRun(key, "sysctl", new[] { "-w", $"{key}={(value ? 1 : 0)}" })) return null;
            cmdlet.WriteVerbose($"Setting {key} to {(value ? 1 : 0)} ({path}).");
            Sysctl.WriteFlag(path, value);
            return new IpForwardingState(family, key, value, true);
        }

        public static string Backend(IptablesSnapshot snapshot) => snapshot.Backend ?? Iptables.BackendFromPath();

        /// <summary>
        /// Adds the rules that are missing, in one iptables-restore. The caller holds the ruleset lock. Returns the
        /// rule object and the rules this call added (to roll back), or null under -WhatIf.
        /// </summary>
        public static (NatMasqueradeRule Rule, IReadOnlyList<IptablesRule> Added)? AddRules(NetnsCmdlet cmdlet, string subnet, string outbound, string? bridge)
        {
            var snapshot = cmdlet.Iptables.Save(cmdlet.Token);
            var desired = NatRules.For(subnet, outbound, bridge);
            var missing = NatRules.Missing(snapshot, desired);
            cmdlet.WriteVerbose(missing.Count == 0
                ? $"The rules for {subnet} via {outbound} are all in place."
                : $"Adding {missing.Count} of {desired.Count} rules for {subnet} via {outbound}.");
            var approved = missing.Where(r => cmdlet.ShouldRun($"{subnet} via {outbound}", "iptables", r.CommandArguments(r.Chain == "FORWARD" ? "-I" : "-A"))).ToArray();
            if (approved.Length < missing.Count && approved.Length == 0) return null;
            cmdlet.Iptables.Restore(NatRules.AddScript(approved), cmdlet.Token);
            var rule = new NatMasqueradeRule(subnet, outbound, bridge, Backend(snapshot), desired.Select(r => r.ToString()).ToArray(), approved.Length);
            return (rule, approved);
        }

        /// <summary>Deletes, in one iptables-restore, the undo list of an earlier AddRules call.</summary>
        public static void RollBack(NetnsCmdlet cmdlet, IReadOnlyList<IptablesRule> added)
        {
            if (added.Count == 0) return;
            cmdlet.WriteVerbose($"Rolling back the {added.Count} rules this call added.");
            cmdlet.Iptables.Restore(NatRules.DeleteScript(added), cmdlet.Token);
        }

        /// <summary>
        /// Deletes the MASQUERADE rule (every copy) and the FORWARD rules NetnsNat made for it, in one iptables-restore.
        /// The caller holds the ruleset lock. Null under -WhatIf.
        /// </summary>
        public static NatMasqueradeRule? RemoveRules(NetnsCmdlet cmdlet, IptablesSnapshot snapshot, string subnet, string outbound, string? bridge)
        {
            var masquerade = NatRules.Masquerade(subnet, outbound);
            var doomed = snapshot.Chain("nat", "POSTROUTING").Where(r => r.SameAs(masquerade))
                .Concat(NatRules.OwnForwardRules(snapshot, subnet, outbound, bridge)).ToArray();
            var foundBridge = bridge ?? doomed.Where(NatRules.IsOwnForward).Select(r => r.Source == subnet ? r.InInterface : r.OutInterface).FirstOrDefault();
            if (doomed.Length == 0)
            {
                cmdlet.WriteVerbose($"No rules for {subnet} via {outbound}: nothing to remove.");
                return new NatMasqueradeRule(subnet, outbound, foundBridge, Backend(snapshot), Array.Empty<string>(), 0);
            }
            var approved = doomed.Where(r => cmdlet.ShouldRun($"{subnet} via {outbound}", "iptables", r.CommandArguments("-D"))).ToArray();
            if (approved.Length == 0) return null;
            cmdlet.WriteVerbose($"Deleting {approved.Length} rules for {subnet} via {outbound}.");
            cmdlet.Iptables.Restore(NatRules.DeleteScript(approved), cmdlet.Token);
            return new NatMasqueradeRule(subnet, outbound, foundBridge, Backend(snapshot), approved.Select(r => r.ToString()).ToArray(), approved.Length);
        }
    }
}
