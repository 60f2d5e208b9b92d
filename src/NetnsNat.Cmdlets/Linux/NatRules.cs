using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace NetnsNat.Linux
{
    /// <summary>
    /// The rules that give one bridge subnet NAT out of one uplink:
    /// nat POSTROUTING "-s SUBNET -o OUTBOUND -j MASQUERADE" (exactly the lesson's rule, so the lesson's own
    /// "iptables -t nat -D POSTROUTING ..." removes it), and, with a bridge, two FORWARD rules marked with the
    /// comment "netnsnat": new traffic from the subnet out of the uplink, and only replies back in.
    /// </summary>
    public static class NatRules
    {
        public const string Comment = "netnsnat";
        public const string ReplyStates = "RELATED,ESTABLISHED";

        public static IptablesRule Masquerade(string subnet, string outbound) =>
            IptablesRule.Create("nat", "POSTROUTING", new[] { "-s", subnet, "-o", outbound, "-j", "MASQUERADE" });

        public static IptablesRule ForwardOut(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-s", subnet, "-i", bridge, "-o", outbound, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IptablesRule ForwardReply(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-d", subnet, "-i", outbound, "-o", bridge, "-m", "conntrack", "--ctstate", ReplyStates, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IReadOnlyList<IptablesRule> For(string subnet, string outbound, string? bridge) =>
            bridge == null
                ? new[] { Masquerade(subnet, outbound) }
                : new[] { Masquerade(subnet, outbound), ForwardOut(subnet, bridge, outbound), ForwardReply(subnet, bridge, outbound) };

        public static bool IsMasquerade(IptablesRule rule) => rule.Table == "nat" && rule.Chain == "POSTROUTING" && rule.Target == "MASQUERADE";

        /// <summary>A FORWARD rule this module wrote (either direction), whatever its subnet and interfaces.</summary>
        public static bool IsOwnForward(IptablesRule rule) =>
            rule.Table == "filter" && rule.Chain == "FORWARD" && rule.Comment == Comment && rule.Target == "ACCEPT" && !rule.HasOtherMatches;

        /// <summary>The FORWARD rules this module wrote for a subnet and uplink, any bridge (or just the one given).</summary>
        public static IEnumerable<IptablesRule> OwnForwardRules(IptablesSnapshot snapshot, string subnet, string outbound, string? bridge) =>
            snapshot.Chain("filter", "FORWARD").Where(r => IsOwnForward(r) && (
                (r.Source == subnet && r.OutInterface == outbound && r.Destination == null && r.ConnectionStates == null && (bridge == null || r.InInterface == bridge)) ||
                (r.Destination == subnet && r.InInterface == outbound && r.Source == null && r.ConnectionStates == IptablesRule.NormalizeStates(ReplyStates) && (bridge == null || r.OutInterface == bridge))));

        /// <summary>The desired rules that the snapshot lacks, in order.</summary>
        public static IReadOnlyList<IptablesRule> Missing(IptablesSnapshot snapshot, IEnumerable<IptablesRule> desired)
        {
            var missing = new List<IptablesRule>();
            foreach (var rule in desired)
            {
                if (!snapshot.Rules.Any(r => r.SameAs(rule)) && !missing.Any(r => r.SameAs(rule))) missing.Add(rule);
            }
            return missing;
        }

        /// <summary>
        /// Input for "iptables-restore --noflush" that adds the rules: MASQUERADE appended to POSTROUTING, FORWARD
        /// rules inserted at the top so that a DROP policy or a trailing REJECT cannot shadow them.
        /// </summary>
        public static string AddScript(IEnumerable<IptablesRule> rules) =>
            Script(rules, r => (r.Chain == "FORWARD" ? "-I " : "-A ") + r.SaveLine.Substring(3));

        /// <summary>Input for "iptables-restore --noflush" that deletes each of the rules once.</summary>
        public static string DeleteScript(IEnumerable<IptablesRule> rules) => Script(rules, r => r.DeleteLine);

        private static string Script(IEnumerable<IptablesRule> rules, Func<IptablesRule, string> line)
        {
            var text = new StringBuilder();
            foreach (var table in rules.GroupBy(r => r.Table))
            {
                text.Append('*').Append(table.Key).Append('\n');
                foreach (var rule in table) text.Append(line(rule)).Append('\n');
                text.Append("COMMIT\n");
            }
            return text.ToString();
        }
    }
}
