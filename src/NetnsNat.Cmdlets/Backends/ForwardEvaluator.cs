using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using NetnsNat.Linux;

namespace NetnsNat.Backends
{
    /// <summary>A packet to walk through the filter FORWARD chain.</summary>
    /// <param name="State">The conntrack state: NEW for the first packet out, ESTABLISHED for a reply.</param>
    internal sealed record ForwardPacket(string InInterface, string OutInterface, IPAddress Source, IPAddress Destination, string State);

    /// <summary>Where a packet ends in FORWARD: accepted or blocked, by which rule or the policy, and any rule that might interfere.</summary>
    /// <param name="By">The deciding rule in iptables-save form, or "policy DROP" and the like.</param>
    /// <param name="Uncertain">DROP or REJECT rules before the verdict with matches this evaluator cannot decide (ports, marks, ...).</param>
    internal sealed record ForwardVerdict(bool Accepted, string By, IReadOnlyList<string> Uncertain);

    /// <summary>
    /// Walks a packet through filter FORWARD as the kernel would for the matches NetnsNat models (interfaces with
    /// '+' wildcards, addresses, conntrack state), following jumps into user chains and RETURN.
    /// </summary>
    internal static class ForwardEvaluator
    {
        private static readonly HashSet<string> Terminal = new HashSet<string>(StringComparer.Ordinal) { "ACCEPT", "DROP", "REJECT" };

        /// <summary>
        /// Whether some of a chain's first rules decide a packet (following jumps): the verdict and the deciding rule,
        /// or null when the packet passes them all. Used to see if anything stands above NetnsNat's rules that blocks
        /// what they accept.
        /// </summary>
        public static (bool Accepted, string By)? Decides(IptablesSnapshot snapshot, IReadOnlyList<IptablesRule> rules, ForwardPacket packet)
        {
            var uncertain = new List<string>();
            return WalkRules(snapshot, rules, packet, uncertain, 0);
        }

        public static ForwardVerdict Evaluate(IptablesSnapshot snapshot, ForwardPacket packet)
        {
            var uncertain = new List<string>();
            var verdict = Walk(snapshot, "FORWARD", packet, uncertain, 0);
            if (verdict != null) return new ForwardVerdict(verdict.Value.Accepted, verdict.Value.By, uncertain);
            var policy = snapshot.Policies.TryGetValue("filter/FORWARD", out var p) ? p : "ACCEPT";
            return new ForwardVerdict(policy == "ACCEPT", "policy " + policy, uncertain);
        }

        private static (bool Accepted, string By)? Walk(IptablesSnapshot snapshot, string chain, ForwardPacket packet, List<string> uncertain, int depth) =>
            depth > 8 ? null : WalkRules(snapshot, snapshot.Chain("filter", chain), packet, uncertain, depth);

        private static (bool Accepted, string By)? WalkRules(IptablesSnapshot snapshot, IReadOnlyList<IptablesRule> rules, ForwardPacket packet, List<string> uncertain, int depth)
        {
            foreach (var rule in rules)
            {
                if (!Matches(rule, packet)) continue;
                var target = rule.Target ?? string.Empty;
                if (rule.HasOtherMatches)
                {
                    if (target == "DROP" || target == "REJECT") uncertain.Add(rule.ToString());
                    continue;
                }
                if (Terminal.Contains(target)) return (target == "ACCEPT", rule.ToString());
                if (target == "RETURN") return null;
                if (IsUserChain(snapshot, target))
                {
                    var inner = Walk(snapshot, target, packet, uncertain, depth + 1);
                    if (inner != null) return inner;
                }
            }
            return null;
        }

        private static bool IsUserChain(IptablesSnapshot snapshot, string target) =>
            snapshot.Policies.TryGetValue("filter/" + target, out var policy) && policy == "-";

        private static bool Matches(IptablesRule rule, ForwardPacket packet) =>
            (rule.InInterface == null || InterfaceMatches(rule.InInterface, packet.InInterface) != rule.InNegated)
            && (rule.OutInterface == null || InterfaceMatches(rule.OutInterface, packet.OutInterface) != rule.OutNegated)
            && (rule.Source == null || AddressMatches(rule.Source, packet.Source) != rule.SourceNegated)
            && (rule.Destination == null || AddressMatches(rule.Destination, packet.Destination) != rule.DestinationNegated)
            && (rule.ConnectionStates == null || rule.ConnectionStates.Split(',').Contains(packet.State));

        public static bool InterfaceMatches(string? pattern, string name) =>
            pattern == null || (pattern.EndsWith("+", StringComparison.Ordinal) ? name.StartsWith(pattern.Substring(0, pattern.Length - 1), StringComparison.Ordinal) : pattern == name);

        private static bool AddressMatches(string? cidr, IPAddress address) =>
            cidr == null || (Cidr.TryParseNetwork(cidr, out var net) && net.BaseAddress.AddressFamily == address.AddressFamily && net.Contains(address));
    }
}
