using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>The steps of the lesson's flow, shared by the single-step cmdlets and the composite ones.</summary>
    internal static class Steps
    {
        public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(60);

        /// <summary>One interface by name (no walk over all of them), or a clear error naming the ones there are.</summary>
        public static LinkInfo RequireInterface(NetnsCmdlet cmdlet, string name, string parameter) =>
            RequireInterface(cmdlet.Ip.Link(name, cmdlet.Token), name, parameter);

        public static IReadOnlyList<BridgeSubnet> BridgeSubnets(NetnsCmdlet cmdlet, string name, bool requireUp) =>
            BridgeSubnets(RequireInterface(cmdlet, name, "Bridge"), requireUp);

        public static LinkInfo RequireInterface(LinkInfo? link, string name, string parameter)
        {
            if (link != null) return link;
            var all = InterfaceTable.Names().Where(n => n != "lo").ToArray();
            var names = all.Length > 12 ? string.Join(", ", all.Take(12)) + $" and {all.Length - 12} more" : string.Join(", ", all);
            throw new NetnsNatException(
                $"-{parameter}: there is no interface '{name}' in this network namespace (it has: {(names.Length == 0 ? "none" : names)}). " +
                (parameter == "Bridge"
                    ? $"Create the bridge first: ip link add {name} type bridge; ip addr add 10.0.0.1/24 dev {name}; ip link set {name} up."
                    : "Use the interface that 'ip route show default' names after 'dev'."),
                "InterfaceNotFound", ErrorCategory.ObjectNotFound);
        }

        /// <summary>The IPv4 subnets of a bridge; throws a clear error when it is missing, not a bridge, unaddressed, or (if asked) down.</summary>
        public static IReadOnlyList<BridgeSubnet> BridgeSubnets(LinkInfo link, bool requireUp)
        {
            var name = link.Name;
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
            WriteSysctl(path, key, value);
            return new IpForwardingState(family, key, value, true);
        }

        /// <summary>Writes a sysctl, turning a read-only or forbidden /proc/sys into an error that says what to do.</summary>
        public static void WriteSysctl(string path, string key, bool value)
        {
            try
            {
                Sysctl.WriteFlag(path, value);
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw new NetnsNatException(
                    $"Could not write {key} ({path}): {ex.Message}. /proc/sys is read-only here (a container, or a read-only mount): set {key}={(value ? 1 : 0)} " +
                    "where it can be written (on the host, or with 'docker run --sysctl'), then run again.",
                    "SysctlNotWritable", ErrorCategory.PermissionDenied, ex);
            }
        }

        public static string Backend(IptablesSnapshot snapshot) => snapshot.Backend ?? Iptables.BackendFromPath();

        /// <summary>
        /// Adds what is missing of the rules for (subnet, outbound, bridge) in one write. The caller holds
        /// the ruleset lock. Returns the rule object and the plan that was applied (its Inverse rolls it back), or
        /// null under -WhatIf.
        /// </summary>
        public static (NatMasqueradeRule Rule, RulePlan Applied)? AddRules(NetnsCmdlet cmdlet, string subnet, string outbound, string? bridge)
        {
            var result = AddRulesForGroups(cmdlet, new[] { (subnet, outbound, bridge) });
            return result != null && result.TryGetValue((subnet, outbound, bridge), out var added) ? added : null;
        }

        /// <summary>
        /// AddRules for several (subnet, outbound, bridge) sets at once: one read of the ruleset, one write for all of
        /// them. Returns each set's rule object and applied plan, or null under -WhatIf. The caller holds the lock.
        /// </summary>
        public static Dictionary<(string Subnet, string Outbound, string? Bridge), (NatMasqueradeRule Rule, RulePlan Plan)>? AddRulesForGroups(
            NetnsCmdlet cmdlet, IReadOnlyList<(string Subnet, string Outbound, string? Bridge)> sets)
        {
            var snapshot = cmdlet.Iptables.Save(cmdlet.Token);
            var backend = Backend(snapshot);
            var result = new Dictionary<(string, string, string?), (NatMasqueradeRule, RulePlan)>();
            bool anyApproved = false, anyNeeded = false;
            foreach (var set in sets)
            {
                WarnAboutOtherBackend(cmdlet, snapshot, set.Subnet);
                var plan = NatRules.PlanAdd(snapshot, set.Subnet, set.Outbound, set.Bridge);
                anyNeeded |= !plan.IsEmpty;
                cmdlet.WriteVerbose(plan.IsEmpty
                    ? $"The rules for {set.Subnet} via {set.Outbound} are all in place."
                    : $"{plan.Count} rule changes for {set.Subnet} via {set.Outbound}.");
                var approved = Approve(cmdlet, plan, $"{set.Subnet} via {set.Outbound}");
                if (approved == null) continue;
                anyApproved |= !approved.IsEmpty;
                var desired = NatRules.For(set.Subnet, set.Outbound, set.Bridge);
                result[set] = (new NatMasqueradeRule(set.Subnet, set.Outbound, set.Bridge, backend, desired.Select(r => r.ToString()).ToArray(), approved.Append.Count + approved.Insert.Count), approved);
            }
            if (anyNeeded && !anyApproved) return null;
            var merged = RulePlan.Merge(result.Values.Select(v => v.Item2));
            ApplyPlan(cmdlet, snapshot, merged);
            return result;
        }

        /// <summary>Asks -WhatIf/-Confirm about each change; null when a change was needed and none was approved.</summary>
        private static RulePlan? Approve(NetnsCmdlet cmdlet, RulePlan plan, string target)
        {
            if (plan.IsEmpty) return plan;
            var approved = new HashSet<IptablesRule>();
            foreach (var (rule, arguments) in plan.Commands())
            {
                if (cmdlet.ShouldRun(target, "iptables", arguments)) approved.Add(rule);
            }
            return approved.Count == 0 ? null : plan.Only(approved);
        }

        /// <summary>
        /// Writes a plan in one step: one nf_tables batch (all or nothing) or one iptables-restore. iptables-restore
        /// commits each table on its own, so when it fails part-way (the nat table written, the filter table refused),
        /// the part that took effect is found by reading the ruleset again and is undone before the error goes on:
        /// nothing stays half-applied.
        /// </summary>
        public static void ApplyPlan(NetnsCmdlet cmdlet, IptablesSnapshot basis, RulePlan plan)
        {
            try
            {
                var how = cmdlet.Iptables.Apply(plan, cmdlet.Token, basis);
                if (!plan.IsEmpty) cmdlet.WriteVerbose($"Wrote {plan.Count} rule changes in {how}.");
            }
            catch (Exception ex) when (ex is IptablesException || ex is OperationCanceledException || ex is TimeoutException)
            {
                try
                {
                    var now = cmdlet.Iptables.Save(CancellationToken.None);
                    var partial = new RulePlan(
                        plan.Delete.Where(r => now.Count(r) < basis.Count(r)).ToArray(),
                        plan.Append.Where(r => now.Count(r) > basis.Count(r)).ToArray(),
                        plan.Insert.Where(r => now.Count(r) > basis.Count(r)).ToArray());
                    if (!partial.IsEmpty)
                    {
                        cmdlet.WriteVerbose($"iptables-restore failed after writing {partial.Count} of {plan.Count} changes; undoing those.");
                        cmdlet.Iptables.Restore(partial.Inverse().Script(), CancellationToken.None);
                    }
                }
                catch (Exception undo) when (undo is IptablesException || undo is TimeoutException)
                {
                    cmdlet.WriteWarning($"Undoing a partly applied iptables-restore failed: {undo.Message}");
                }
                throw;
            }
        }

        /// <summary>Undoes an applied plan in one iptables-restore; runs even after Ctrl+C, with its own timeout.</summary>
        public static void RollBack(NetnsCmdlet cmdlet, RulePlan applied)
        {
            if (applied.IsEmpty) return;
            cmdlet.WriteVerbose($"Rolling back the {applied.Count} rule changes this call made.");
            cmdlet.Iptables.Restore(applied.Inverse().Script(), CancellationToken.None);
        }

        /// <summary>
        /// Deletes the MASQUERADE rule (every copy) and the FORWARD rules NetnsNat made for it, in one iptables-restore.
        /// The caller holds the ruleset lock. Returns the rule object and the applied plan, or null under -WhatIf.
        /// </summary>
        public static (NatMasqueradeRule Rule, RulePlan Applied)? RemoveRules(NetnsCmdlet cmdlet, IptablesSnapshot snapshot, string subnet, string outbound, string? bridge)
        {
            var plan = NatRules.PlanRemove(snapshot, subnet, outbound, bridge);
            var foundBridge = bridge ?? plan.Delete.Where(NatRules.IsOwnForward).Select(NatRules.BridgeOf).FirstOrDefault();
            if (plan.IsEmpty) cmdlet.WriteVerbose($"No rules for {subnet} via {outbound}: nothing to remove.");
            var applied = Approve(cmdlet, plan, $"{subnet} via {outbound}");
            if (applied == null) return null;
            if (!applied.IsEmpty) cmdlet.WriteVerbose($"Deleting {applied.Count} rules for {subnet} via {outbound}.");
            ApplyPlan(cmdlet, snapshot, applied);
            return (new NatMasqueradeRule(subnet, outbound, foundBridge, Backend(snapshot), applied.Delete.Select(r => r.ToString()).ToArray(), applied.Count), applied);
        }

        /// <summary>Several removals (one per subnet and uplink) as one iptables-restore; null under -WhatIf.</summary>
        public static (NatMasqueradeRule Rule, RulePlan Applied)? RemoveMany(NetnsCmdlet cmdlet, IptablesSnapshot snapshot, IReadOnlyList<RulePlan> plans, string bridge)
        {
            var plan = RulePlan.Merge(plans);
            var first = plan.Delete.FirstOrDefault(NatRules.IsMasquerade) ?? plan.Delete.FirstOrDefault();
            var subnet = first == null ? string.Empty : first.Source ?? first.Destination ?? string.Empty;
            var outbound = first == null ? string.Empty : (NatRules.IsMasquerade(first) || first.Source != null ? first.OutInterface : first.InInterface) ?? string.Empty;
            var applied = Approve(cmdlet, plan, $"bridge {bridge}");
            if (applied == null) return null;
            if (!applied.IsEmpty) cmdlet.WriteVerbose($"Deleting {applied.Count} rules for bridge {bridge}.");
            ApplyPlan(cmdlet, snapshot, applied);
            return (new NatMasqueradeRule(subnet, outbound, bridge, Backend(snapshot), applied.Delete.Select(r => r.ToString()).ToArray(), applied.Count), applied);
        }

        /// <summary>
        /// Warns when the other iptables backend (legacy beside nf_tables, or the reverse) holds rules for the subnet:
        /// both are evaluated by the kernel, and neither tool shows the other's rules.
        /// </summary>
        public static void WarnAboutOtherBackend(NetnsCmdlet cmdlet, IptablesSnapshot snapshot, string subnet)
        {
            var mix = OtherBackendRules(cmdlet, snapshot, subnet);
            if (mix != null) cmdlet.WriteWarning(mix.Value.Message + " " + mix.Value.Fix + ".");
        }

        /// <summary>What the other backend holds for the subnet, as a message and a fix; null when nothing.</summary>
        public static (string Message, string Fix)? OtherBackendRules(NetnsCmdlet cmdlet, IptablesSnapshot snapshot, string subnet)
        {
            var backend = Backend(snapshot);
            string? otherTool = null;
            if (backend == "nf_tables")
            {
                // Legacy tables register in /proc/net/ip_tables_names; read it instead of starting a process every call.
                const string names = "/proc/net/ip_tables_names";
                if (File.Exists(names) && File.ReadAllText(names).Trim().Length > 0 && ProcessRunner.Which("iptables-legacy-save") != null) otherTool = "iptables-legacy-save";
            }
            else if (backend == "legacy" && ProcessRunner.Which("iptables-nft-save") != null)
            {
                otherTool = "iptables-nft-save";
            }
            if (otherTool == null) return null;
            var result = cmdlet.Runner.Run(otherTool, Array.Empty<string>(), cmdlet.Token);
            if (!result.Succeeded) return null;
            var other = IptablesSnapshot.Parse(result.StandardOutput);
            var mentions = other.Rules.Where(r => r.Source == subnet || r.Destination == subnet).ToArray();
            if (mentions.Length == 0) return null;
            var otherName = otherTool.StartsWith("iptables-legacy", StringComparison.Ordinal) ? "legacy" : "nf_tables";
            return (
                $"The {otherName} iptables backend also has {mentions.Length} rule(s) for {subnet} (see '{otherTool}'), while NetnsNat writes to the {backend} backend " +
                "that 'iptables' uses. The kernel applies both, so a DROP or a second MASQUERADE there still acts on this traffic, and 'iptables -L' does not show it.",
                $"Remove the {otherName} rules, or make one backend the default with 'update-alternatives --config iptables'");
        }

        /// <summary>
        /// Gives the namespace a resolver it can reach, in /etc/netns/NAME/resolv.conf (never the host's
        /// /etc/resolv.conf): the -Dns servers; or, when the host's resolvers are all loopback addresses, the upstream
        /// servers systemd-resolved lists. Returns the undo action when it wrote the file.
        /// </summary>
        public static Action? WriteNamespaceResolver(NetnsCmdlet cmdlet, string ns, IReadOnlyList<string>? dns)
        {
            var servers = dns;
            if (servers == null)
            {
                var host = Resolver.NameserversOf(Resolver.HostResolvConf);
                if (host.Count == 0 || !host.All(Resolver.IsLoopback)) return null;
                var upstream = Resolver.NameserversOf(Resolver.SystemdUpstream).Where(a => !Resolver.IsLoopback(a)).ToArray();
                if (upstream.Length == 0)
                {
                    cmdlet.WriteWarning($"The host resolves through {string.Join(", ", host)} on its loopback, which the namespace '{ns}' cannot reach, and " +
                        $"{Resolver.SystemdUpstream} has no upstream servers to use instead. Name lookups in the namespace will fail: pass -Dns with a reachable nameserver.");
                    return null;
                }
                cmdlet.WriteVerbose($"The host's resolver {string.Join(", ", host)} is on its loopback; giving '{ns}' the upstream servers from {Resolver.SystemdUpstream}.");
                servers = upstream;
            }
            var path = Resolver.NamespaceResolvConf(ns);
            var content = Resolver.Render(servers);
            string? previous = File.Exists(path) ? File.ReadAllText(path) : null;
            if (previous == content) return null;
            if (previous != null && !previous.StartsWith(Resolver.Marker, StringComparison.Ordinal))
            {
                cmdlet.WriteWarning($"{path} exists and was not written by NetnsNat; leaving it as it is. Remove it to let Enable-NamespaceNat manage the namespace's resolver.");
                return null;
            }
            if (!cmdlet.ShouldProcess(path, $"Write resolv.conf for namespace {ns}: nameserver {string.Join(", nameserver ", servers)}")) return null;
            var directory = Resolver.NamespaceDirectory(ns);
            bool createdDirectory = !Directory.Exists(directory);
            Directory.CreateDirectory(directory);
            File.WriteAllText(path, content);
            return () =>
            {
                if (previous != null) File.WriteAllText(path, previous);
                else File.Delete(path);
                if (createdDirectory && Directory.Exists(directory) && !Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
            };
        }

        /// <summary>Removes /etc/netns/NAME/resolv.conf when NetnsNat wrote it (and the folder when that leaves it empty).</summary>
        public static void RemoveNamespaceResolver(NetnsCmdlet cmdlet, string ns)
        {
            var path = Resolver.NamespaceResolvConf(ns);
            if (!Resolver.IsOwnFile(path) || !cmdlet.ShouldProcess(path, "Remove the resolv.conf NetnsNat wrote")) return;
            File.Delete(path);
            var directory = Resolver.NamespaceDirectory(ns);
            if (!Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
        }

        /// <summary>Fails when the bridge vanished while the call ran (checked before declaring success).</summary>
        public static void RequireBridgeStillThere(string bridge)
        {
            if (Directory.Exists(Path.Combine("/sys/class/net", bridge))) return;
            throw new NetnsNatException(
                $"The bridge '{bridge}' was removed while NAT was being set up; what this call applied has been rolled back. Create the bridge again and rerun.",
                "BridgeRemoved", ErrorCategory.ObjectNotFound);
        }
    }
}
