using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace NetnsNat.Backends
{
    internal enum RuleChangeKind
    {
        /// <summary>Delete the rule (the first rule equal to it, as iptables -D does).</summary>
        Delete,

        /// <summary>Append the rule at the end of its chain.</summary>
        Append,

        /// <summary>Insert the rule so that it stands at Position (1 is the top of the chain).</summary>
        Insert,
    }

    /// <summary>One change of a plan: what happens to which rule, and for an insert, the position it takes.</summary>
    internal sealed record RuleChange(RuleChangeKind Kind, IptablesRule Rule, int Position = 0)
    {
        /// <summary>The change as arguments of the iptables command, runnable as printed, in plan order.</summary>
        public IReadOnlyList<string> CommandArguments() => Kind switch
        {
            RuleChangeKind.Delete => Rule.CommandArguments("-D"),
            RuleChangeKind.Append => Rule.CommandArguments("-A"),
            _ => Rule.CommandArguments("-I", Position),
        };

        /// <summary>The change as a line of iptables-restore input.</summary>
        public string RestoreLine() => Kind switch
        {
            RuleChangeKind.Delete => Rule.RestoreLine("-D"),
            RuleChangeKind.Append => Rule.RestoreLine("-A"),
            _ => Rule.RestoreLine("-I", Position),
        };

        public bool IsAddition => Kind != RuleChangeKind.Delete;
    }

    /// <summary>
    /// What one call changes in the ruleset: an ordered list of changes, each meant to run after the ones before it.
    /// This order is the one definition of where rules go; every writer (iptables-restore input, the nf_tables batch,
    /// the snapshot after the write, the undo) follows it change by change. Inserts carry their final position, so
    /// "-I FORWARD 1", "-I FORWARD 2", "-I FORWARD 3" run as printed give the chain the plan means.
    /// </summary>
    internal sealed class RulePlan
    {
        public static readonly RulePlan Empty = new RulePlan(Array.Empty<RuleChange>());

        public RulePlan(IReadOnlyList<RuleChange> changes) => Changes = changes;

        public IReadOnlyList<RuleChange> Changes { get; }

        public bool IsEmpty => Changes.Count == 0;

        public int Count => Changes.Count;

        public IEnumerable<IptablesRule> Deleted => Changes.Where(c => c.Kind == RuleChangeKind.Delete).Select(c => c.Rule);

        public IEnumerable<IptablesRule> Added => Changes.Where(c => c.IsAddition).Select(c => c.Rule);

        public int Additions => Changes.Count(c => c.IsAddition);

        /// <summary>
        /// A plan from its parts: deletions first, then appends in order, then the rules that must stand at the top of
        /// their chain, given top-down, at positions 1, 2, 3, ... of their chain.
        /// </summary>
        public static RulePlan Of(IEnumerable<IptablesRule> delete, IEnumerable<IptablesRule> append, IEnumerable<IptablesRule> top)
        {
            var changes = delete.Select(r => new RuleChange(RuleChangeKind.Delete, r)).Concat(append.Select(r => new RuleChange(RuleChangeKind.Append, r))).ToList();
            var positions = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var rule in top)
            {
                var chain = rule.Table + "/" + rule.Chain;
                positions[chain] = positions.TryGetValue(chain, out var p) ? p + 1 : 1;
                changes.Add(new RuleChange(RuleChangeKind.Insert, rule, positions[chain]));
            }
            return new RulePlan(changes);
        }

        /// <summary>
        /// Keeps only the changes a -Confirm answer approved. Inserts are renumbered so that the approved ones of each
        /// block still stand top-down in their order.
        /// </summary>
        public RulePlan Only(ICollection<RuleChange> approved)
        {
            var kept = new List<RuleChange>();
            var shift = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var change in Changes)
            {
                var chain = change.Rule.Table + "/" + change.Rule.Chain;
                if (approved.Contains(change))
                {
                    kept.Add(change.Kind == RuleChangeKind.Insert && shift.TryGetValue(chain, out var s) ? change with { Position = change.Position - s } : change);
                }
                else if (change.Kind == RuleChangeKind.Insert)
                {
                    shift[chain] = (shift.TryGetValue(chain, out var s) ? s : 0) + 1;
                }
            }
            return new RulePlan(kept);
        }

        /// <summary>Several plans as one: every deletion (each rule once), then the rest of each plan in turn.</summary>
        public static RulePlan Merge(IEnumerable<RulePlan> plans)
        {
            var all = plans.ToArray();
            if (all.Length == 1) return all[0];
            var deletes = new List<RuleChange>();
            var seen = new HashSet<IptablesRule>(ReferenceEqualityComparer.Instance);
            foreach (var plan in all)
            {
                foreach (var change in plan.Changes.Where(c => c.Kind == RuleChangeKind.Delete))
                {
                    if (seen.Add(change.Rule)) deletes.Add(change);
                }
            }
            return new RulePlan(deletes.Concat(all.SelectMany(p => p.Changes.Where(c => c.IsAddition))).ToArray());
        }

        /// <summary>Input for "iptables-restore --noflush": one section per table, the changes of each in plan order.</summary>
        public string Script()
        {
            var text = new StringBuilder();
            foreach (var table in Changes.Select(c => c.Rule.Table).Distinct())
            {
                text.Append('*').Append(table).Append('\n');
                foreach (var change in Changes.Where(c => c.Rule.Table == table)) text.Append(change.RestoreLine()).Append('\n');
                text.Append("COMMIT\n");
            }
            return text.ToString();
        }

        /// <summary>
        /// The plan that undoes the changes a plan made, as IptablesSnapshot.Apply reports them (deletions with the
        /// position the rule had): additions deleted and deleted rules inserted back where they stood, newest first.
        /// </summary>
        public static RulePlan Undo(IReadOnlyList<RuleChange> executed) =>
            new RulePlan(executed.Reverse().Select(c => c.Kind == RuleChangeKind.Delete
                ? new RuleChange(RuleChangeKind.Insert, c.Rule, c.Position)
                : new RuleChange(RuleChangeKind.Delete, c.Rule)).ToArray());
    }
}
