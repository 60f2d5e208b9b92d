using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace NetnsNat.Linux
{
    /// <summary>What one call changes in the ruleset, applied as one iptables-restore.</summary>
    public sealed class RulePlan
    {
        public RulePlan(IReadOnlyList<IptablesRule> delete, IReadOnlyList<IptablesRule> append, IReadOnlyList<IptablesRule> insert)
        {
            Delete = delete;
            Append = append;
            Insert = insert;
        }

        /// <summary>Rules to delete, as they stand in the ruleset.</summary>
        public IReadOnlyList<IptablesRule> Delete { get; }

        /// <summary>Rules to append to their chain (MASQUERADE).</summary>
        public IReadOnlyList<IptablesRule> Append { get; }

        /// <summary>FORWARD rules to put at the top of the chain, in their final top-down order.</summary>
        public IReadOnlyList<IptablesRule> Insert { get; }

        public bool IsEmpty => Delete.Count == 0 && Append.Count == 0 && Insert.Count == 0;

        public int Count => Delete.Count + Append.Count + Insert.Count;

        /// <summary>Each change as the iptables command that makes it, for -WhatIf and -Confirm.</summary>
        public IEnumerable<(IptablesRule Rule, IReadOnlyList<string> Arguments)> Commands() =>
            Delete.Select(r => (r, r.CommandArguments("-D")))
                .Concat(Append.Select(r => (r, r.CommandArguments("-A"))))
                .Concat(Insert.Select(r => (r, r.CommandArguments("-I"))));

        /// <summary>Keeps only the changes a -Confirm answer approved.</summary>
        public RulePlan Only(ICollection<IptablesRule> approved) =>
            new RulePlan(Delete.Where(approved.Contains).ToArray(), Append.Where(approved.Contains).ToArray(), Insert.Where(approved.Contains).ToArray());

        /// <summary>Input for "iptables-restore --noflush": deletes, then appends, then inserts bottom-up at position 1.</summary>
        public string Script()
        {
            var text = new StringBuilder();
            foreach (var table in new[] { "nat", "filter" })
            {
                var lines = Delete.Where(r => r.Table == table).Select(r => r.DeleteLine)
                    .Concat(Append.Where(r => r.Table == table).Select(r => "-A " + r.SaveLine.Substring(3)))
                    .Concat(Insert.Where(r => r.Table == table).Reverse().Select(r => "-I " + r.Chain + " 1 " + r.SaveLine.Substring(3 + r.Chain.Length + 1)))
                    .ToArray();
                if (lines.Length == 0) continue;
                text.Append('*').Append(table).Append('\n');
                foreach (var line in lines) text.Append(line).Append('\n');
                text.Append("COMMIT\n");
            }
            return text.ToString();
        }

        public static RulePlan Merge(IEnumerable<RulePlan> plans)
        {
            var all = plans.ToArray();
            return new RulePlan(all.SelectMany(p => p.Delete).Distinct().ToArray(), all.SelectMany(p => p.Append).ToArray(), all.SelectMany(p => p.Insert).ToArray());
        }

        /// <summary>The plan that undoes this one (deleted rules come back at the top of their chain).</summary>
        public RulePlan Inverse() =>
            new RulePlan(Append.Concat(Insert).ToArray(), Delete.Where(r => r.Chain != "FORWARD").ToArray(), Delete.Where(r => r.Chain == "FORWARD").ToArray());
    }

    /// <summary>
    /// The rules that give one bridge subnet NAT out of one uplink:
    /// nat POSTROUTING "-s SUBNET -o OUTBOUND -j MASQUERADE" (exactly the lesson's rule, so the lesson's own
    /// "iptables -t nat -D POSTROUTING ..." removes it), and, with a bridge, three FORWARD rules at the top of the
    /// chain, marked with the comment "netnsnat": new traffic from the subnet out of the uplink; replies back in;
    /// and everything else from the uplink to the subnet dropped, so nobody outside can open a connection in.
    /// </summary>
    public static class NatRules
    {
        public const string Comment = "netnsnat";
        public const string ReplyStates = "RELATED,ESTABLISHED";
        private static readonly string NormalizedReplyStates = IptablesRule.NormalizeStates(ReplyStates);

        public static IptablesRule Masquerade(string subnet, string outbound) =>
            IptablesRule.Create("nat", "POSTROUTING", new[] { "-s", subnet, "-o", outbound, "-j", "MASQUERADE" });

        public static IptablesRule ForwardOut(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-s", subnet, "-i", bridge, "-o", outbound, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IptablesRule ForwardReply(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-d", subnet, "-i", outbound, "-o", bridge, "-m", "conntrack", "--ctstate", ReplyStates, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IptablesRule ForwardDrop(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-d", subnet, "-i", outbound, "-o", bridge, "-m", "comment", "--comment", Comment, "-j", "DROP" });

        /// <summary>The FORWARD rules for a bridge, in the order they must stand.</summary>
        public static IReadOnlyList<IptablesRule> Forward(string subnet, string bridge, string outbound) =>
            new[] { ForwardOut(subnet, bridge, outbound), ForwardReply(subnet, bridge, outbound), ForwardDrop(subnet, bridge, outbound) };

        public static IReadOnlyList<IptablesRule> For(string subnet, string outbound, string? bridge) =>
            bridge == null ? new[] { Masquerade(subnet, outbound) } : new[] { Masquerade(subnet, outbound) }.Concat(Forward(subnet, bridge, outbound)).ToArray();

        public static bool IsMasquerade(IptablesRule rule) => rule.Table == "nat" && rule.Chain == "POSTROUTING" && rule.Target == "MASQUERADE";

        /// <summary>A FORWARD rule this module wrote, whatever its subnet and interfaces.</summary>
        public static bool IsOwnForward(IptablesRule rule) =>
            rule.Table == "filter" && rule.Chain == "FORWARD" && rule.Comment == Comment && (rule.Target == "ACCEPT" || rule.Target == "DROP") && !rule.HasOtherMatches && !rule.HasTargetOptions;

        /// <summary>The bridge a rule of ours is for: the in-interface of the outgoing rule, the out-interface of the others.</summary>
        public static string? BridgeOf(IptablesRule rule) => rule.Source != null ? rule.InInterface : rule.OutInterface;

        /// <summary>The FORWARD rules this module wrote for a subnet and uplink (any bridge, or just the one given), in chain order.</summary>
        public static IEnumerable<IptablesRule> OwnForwardRules(IptablesSnapshot snapshot, string subnet, string outbound, string? bridge) =>
            snapshot.WithAddress("filter", "FORWARD", subnet).Where(r => IsOwnForward(r) && (
                (r.Source == subnet && r.OutInterface == outbound && r.Destination == null && r.ConnectionStates == null && r.Target == "ACCEPT") ||
                (r.Destination == subnet && r.InInterface == outbound && r.Source == null && r.Target == "ACCEPT" && r.ConnectionStates == NormalizedReplyStates) ||
                (r.Destination == subnet && r.InInterface == outbound && r.Source == null && r.Target == "DROP" && r.ConnectionStates == null))
                && (bridge == null || BridgeOf(r) == bridge));

        /// <summary>
        /// What makes the ruleset hold the rules for (subnet, outbound, bridge): the MASQUERADE rule appended when
        /// missing; the FORWARD rules left alone when all three stand in order, otherwise (some missing, or out of
        /// order) the ones there are deleted and all three inserted at the top in order.
        /// </summary>
        public static RulePlan PlanAdd(IptablesSnapshot snapshot, string subnet, string outbound, string? bridge)
        {
            var masquerade = Masquerade(subnet, outbound);
            var append = snapshot.Count(masquerade) > 0 ? Array.Empty<IptablesRule>() : new[] { masquerade };
            if (bridge == null) return new RulePlan(Array.Empty<IptablesRule>(), append, Array.Empty<IptablesRule>());
            var desired = Forward(subnet, bridge, outbound);
            var found = OwnForwardRules(snapshot, subnet, outbound, bridge).ToArray();
            bool inOrder = found.Length == desired.Count && found.Zip(desired, (a, b) => a.SameAs(b)).All(x => x);
            return inOrder
                ? new RulePlan(Array.Empty<IptablesRule>(), append, Array.Empty<IptablesRule>())
                : new RulePlan(found, append, desired);
        }

        /// <summary>Deletes every copy of the MASQUERADE rule and the FORWARD rules of ours for it (only -Bridge's when given).</summary>
        public static RulePlan PlanRemove(IptablesSnapshot snapshot, string subnet, string outbound, string? bridge)
        {
            var masquerade = Masquerade(subnet, outbound);
            var delete = snapshot.WithAddress("nat", "POSTROUTING", subnet).Where(r => r.SameAs(masquerade))
                .Concat(OwnForwardRules(snapshot, subnet, outbound, bridge)).ToArray();
            return new RulePlan(delete, Array.Empty<IptablesRule>(), Array.Empty<IptablesRule>());
        }
    }
}
