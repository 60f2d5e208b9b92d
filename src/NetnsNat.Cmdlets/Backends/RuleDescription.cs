using System;
using System.Collections.Generic;
using System.Linq;

namespace NetnsNat.Backends
{
    /// <summary>
    /// Rules that belong together in one chain, as a binding needs them: either each somewhere in the chain (appended
    /// when missing), or all of them at the top of the chain in this order. Existing finds the rules of the group that
    /// stand in the chain now (NetnsNat's own, or the very rules asked for), in chain order.
    /// </summary>
    /// <remarks>
    /// Blocked, for a group on top: whether a rule that stands above the group's first rule stops what the group lets
    /// through (a DROP inserted above it); the planner then lays the group on top again. AnyOrder, for a group on
    /// top: its rules may stand in any order among themselves (each port mapping's rules were laid on top in turn).
    /// </remarks>
    internal sealed record RuleGroup(string Table, string Chain, IReadOnlyList<IptablesRule> Rules, bool AtTop, Func<IptablesSnapshot, IReadOnlyList<IptablesRule>> Existing,
        Func<IptablesSnapshot, IReadOnlyList<IptablesRule>, bool>? Blocked = null, bool AnyOrder = false);

    /// <summary>The rules of one binding, group by group: what the planner makes stand (Add) or go (Remove).</summary>
    internal sealed record RuleDescription(string Name, IReadOnlyList<RuleGroup> Groups);

    /// <summary>
    /// Turns descriptions into plans against a snapshot. A new kind of rule (DNAT, say) is a new description; the
    /// planning stays this.
    /// </summary>
    internal static class RulePlanner
    {
        /// <summary>
        /// What makes the ruleset hold the described rules: a rule that goes anywhere is appended when no equal rule
        /// stands; a group that goes on top is left alone when its rules stand in order with nothing above them that
        /// blocks what they let through, otherwise the ones there are deleted and all of the group inserted at the top
        /// in order.
        /// </summary>
        public static RulePlan PlanAdd(IptablesSnapshot snapshot, RuleDescription description)
        {
            var delete = new List<IptablesRule>();
            var append = new List<IptablesRule>();
            var top = new List<IptablesRule>();
            foreach (var group in description.Groups)
            {
                if (!group.AtTop)
                {
                    if (group.Rules.Count <= 8)
                    {
                        append.AddRange(group.Rules.Where(r => snapshot.Count(r) == 0));
                        continue;
                    }
                    // Many rules (a pipeline of port mappings): the chain's rules once, by identity, not a walk per rule.
                    var present = snapshot.Chain(group.Table, group.Chain).Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
                    append.AddRange(group.Rules.Where(r => !present.Contains(r.Key)));
                    continue;
                }
                var found = group.Existing(snapshot);
                bool inOrder = found.Count == group.Rules.Count && (group.AnyOrder
                    ? found.Select(f => f.Key).ToHashSet(StringComparer.Ordinal).SetEquals(group.Rules.Select(r => r.Key))
                    : found.Zip(group.Rules, (a, b) => a.SameAs(b)).All(x => x));
                if (inOrder && (group.Blocked == null || !group.Blocked(snapshot, found))) continue;
                delete.AddRange(found);
                top.AddRange(group.Rules);
            }
            return RulePlan.Of(delete, append, top);
        }

        /// <summary>Deletes every rule of every group that stands in the ruleset (every copy).</summary>
        public static RulePlan PlanRemove(IptablesSnapshot snapshot, RuleDescription description) =>
            RulePlan.Of(description.Groups.SelectMany(g => g.Existing(snapshot)).Distinct(ReferenceEqualityComparer.Instance).Cast<IptablesRule>(),
                Array.Empty<IptablesRule>(), Array.Empty<IptablesRule>());
    }
}
