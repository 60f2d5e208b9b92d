using System;
using System.Collections.Generic;
using System.Linq;
using NetnsNat.Backends;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>
    /// A call's rule services, one per family and backend, each made when first needed. An array by family and backend,
    /// not a dictionary keyed by a value tuple: no generic code over a value type to JIT-compile in a fresh pwsh.
    /// </summary>
    internal sealed class RuleServices
    {
        // The backends (Auto, Iptables, Nftables): one slot each per family.
        private const int Kinds = (int)NatBackendKind.Nftables + 1;

        private readonly ICommandHost _host;
        private readonly Func<AddressFamilyProfile, NatBackendKind, INatBackend> _backendOf;
        private readonly RuleService?[] _services = new RuleService?[2 * Kinds];

        public RuleServices(ICommandHost host, Func<AddressFamilyProfile, NatBackendKind, INatBackend> backendOf)
        {
            _host = host;
            _backendOf = backendOf;
        }

        public RuleService Of(AddressFamilyProfile family, NatBackendKind kind) =>
            _services[(family == AddressFamilyProfile.IPv6 ? Kinds : 0) + (int)kind] ??= new RuleService(_host, _backendOf(family, kind));
    }

    /// <summary>
    /// Adds and removes the rules of subnet NATs through a backend: one read, a plan per target with -WhatIf and
    /// -Confirm asked per change, one write for all targets, its undo recorded in the caller's transaction.
    /// </summary>
    internal sealed class RuleService
    {
        /// <summary>How often a write refused because another program changed the rules in between is planned again.</summary>
        private const int Attempts = 3;

        private readonly ICommandHost _host;

        /// <summary>The warnings already given (a plan is made again when the ruleset moved under it: each is said once).</summary>
        private readonly HashSet<string> _warned = new HashSet<string>(StringComparer.Ordinal);

        public RuleService(ICommandHost host, INatBackend backend)
        {
            _host = host;
            Backend = backend;
        }

        public INatBackend Backend { get; }

        /// <summary>
        /// What one target of a call got: its rule object, the plan applied for it, which of its rules stood before the
        /// write (found, not NetnsNat's), and which tables the write created.
        /// </summary>
        public sealed record Outcome(SubnetNat Target, NatMasqueradeRule Rule, NatPlan Plan, IReadOnlyList<string> Found, IReadOnlyList<string> CreatedTables);

        /// <summary>
        /// Adds what is missing of the targets' rules in one write. Returns each approved target's outcome, or null
        /// under -WhatIf (changes were needed and none was approved). The undo of each target's part is recorded in
        /// the transaction under group(target).
        /// </summary>
        public IReadOnlyList<Outcome>? Add(IReadOnlyList<SubnetNat> targets, NatTransaction tx, Func<SubnetNat, object?> group)
        {
            for (int attempt = 1; ; attempt++)
            {
                var state = Backend.Read(_host.Token);
                var outcomes = new List<Outcome>();
                bool anyNeeded = false, anyApproved = false;
                foreach (var target in targets)
                {
                    WarnAboutOtherBackend(state, target);
                    var plan = Backend.PlanAdd(state, target);
                    foreach (var warning in Backend.TakeWarnings())
                    {
                        // Once per call, though a plan is made again when the ruleset moved under it.
                        if (_warned.Add(warning)) _host.Warning(warning);
                    }
                    anyNeeded |= !plan.IsEmpty;
                    int adds = plan.Additions, deletes = plan.Deletions;
                    _host.Verbose(plan.IsEmpty ? $"The rules for {target} are all in place."
                        : deletes == 0 ? $"{adds} rules to add for {target}."
                        : $"{adds} rules to add for {target}, after deleting {deletes} of its rules that stood out of order or below a rule that blocks them.");
                    var approved = Approve(plan, target.ToString());
                    if (approved == null) continue;
                    anyApproved |= !approved.IsEmpty;
                    var rule = new NatMasqueradeRule(target.SubnetText, target.Outbound, target.Bridge, state.BackendName,
                        Backend.Rules(target), approved.Additions);
                    outcomes.Add(new Outcome(target, rule, approved, Backend.Present(state, target), Backend.MissingTables(state, target)));
                }
                if (anyNeeded && !anyApproved) return null;
                try
                {
                    Write(outcomes, tx, group);
                    return outcomes;
                }
                catch (RulesetMovedException) when (attempt < Attempts)
                {
                    _host.Verbose("Another program changed the rules between the read and the write; reading them again.");
                }
            }
        }

        /// <summary>
        /// Removes every copy of the targets' rules in one write (what -WhatIf and -Confirm ask about is named by
        /// what). Returns the removed rules as one rule object, or null under -WhatIf. The undo is recorded under group.
        /// </summary>
        public NatMasqueradeRule? Remove(IReadOnlyList<SubnetNat> targets, string what, NatTransaction tx, object? group, string? bridge)
        {
            for (int attempt = 1; ; attempt++)
            {
                var state = Backend.Read(_host.Token);
                var plan = Backend.Merge(targets.Select(t => Backend.PlanRemove(state, t)).ToArray());
                var first = targets.FirstOrDefault();
                var foundBridge = bridge ?? Backend.Masquerades(state).FirstOrDefault(m => first != null && m.Subnet == first.SubnetText && m.Outbound == first.Outbound)?.Bridge;
                if (plan.IsEmpty) _host.Verbose($"No rules for {what}: nothing to remove.");
                var approved = Approve(plan, what);
                if (approved == null) return null;
                if (!approved.IsEmpty) _host.Verbose($"Deleting {approved.Count} rules for {what}.");
                var outcome = new Outcome(first ?? new SubnetNat(default, string.Empty, bridge), new NatMasqueradeRule(first?.SubnetText ?? string.Empty, first?.Outbound ?? string.Empty, foundBridge,
                    state.BackendName, approved.Changes.Select(c => c.RuleText).ToArray(), approved.Count), approved, Array.Empty<string>(), Array.Empty<string>());
                try
                {
                    Write(new[] { outcome }, tx, _ => group);
                    return outcome.Rule;
                }
                catch (RulesetMovedException) when (attempt < Attempts)
                {
                    _host.Verbose("Another program changed the rules between the read and the write; reading them again.");
                }
            }
        }

        /// <summary>
        /// Removes the rules NetnsNat added for a target (one copy each; never the ones it found), in one write.
        /// Returns them as one rule object, or null under -WhatIf. The undo is recorded under group.
        /// </summary>
        public NatMasqueradeRule? RemoveOwned(SubnetNat target, IReadOnlyCollection<string> owned, string what, NatTransaction tx, object? group)
        {
            for (int attempt = 1; ; attempt++)
            {
                var state = Backend.Read(_host.Token);
                var plan = Backend.PlanRemoveOwned(state, target, owned);
                if (plan.IsEmpty) _host.Verbose($"None of the rules NetnsNat added for {target} stands any more: nothing to remove.");
                var approved = Approve(plan, what);
                if (approved == null) return null;
                if (!approved.IsEmpty) _host.Verbose($"Deleting the {approved.Count} rules NetnsNat added for {target}.");
                var outcome = new Outcome(target, new NatMasqueradeRule(target.SubnetText, target.Outbound, target.Bridge, state.BackendName,
                    approved.Changes.Select(c => c.RuleText).ToArray(), approved.Count), approved, Array.Empty<string>(), Array.Empty<string>());
                try
                {
                    Write(new[] { outcome }, tx, _ => group);
                    return outcome.Rule;
                }
                catch (RulesetMovedException) when (attempt < Attempts)
                {
                    _host.Verbose("Another program changed the rules between the read and the write; reading them again.");
                }
            }
        }

        /// <summary>
        /// A plan the caller makes from a fresh read (made again when another program moved the rules before the write):
        /// -WhatIf/-Confirm asked per change, the approved changes written in one write, their undo recorded under group.
        /// Returns the approved plan (empty when everything stood), or null when changes were needed and none was approved.
        /// </summary>
        public NatPlan? Apply(Func<NatState, NatPlan> planner, string what, NatTransaction tx, object? group)
        {
            for (int attempt = 1; ; attempt++)
            {
                var state = Backend.Read(_host.Token);
                var plan = planner(state);
                if (plan.IsEmpty) _host.Verbose($"The rules for {what} are all in place.");
                var approved = Approve(plan, what);
                if (approved == null) return null;
                if (approved.IsEmpty) return approved;
                try
                {
                    var applied = Backend.Apply(approved, tx.Lock, _host.Token);
                    _host.Verbose($"Wrote {approved.Count} rule changes in {applied.How}.");
                    tx.Record(group, $"the {approved.Count} rule changes for {what}", () => Backend.Undo(applied, approved, tx.Lock));
                    return approved;
                }
                catch (RulesetMovedException) when (attempt < Attempts)
                {
                    _host.Verbose("Another program changed the rules between the read and the write; reading them again.");
                }
            }
        }

        /// <summary>
        /// A plan of changes the caller has had approved as a whole (one question per port mapping), made from a fresh
        /// read (made again when another program moved the rules before the write) and written in one write, its undo
        /// recorded under group. Returns what was applied (empty when everything stood).
        /// </summary>
        public NatPlan ApplyApproved(Func<NatState, NatPlan> planner, string what, NatTransaction tx, object? group)
        {
            for (int attempt = 1; ; attempt++)
            {
                var plan = planner(Backend.Read(_host.Token));
                if (plan.IsEmpty) return plan;
                try
                {
                    var applied = Backend.Apply(plan, tx.Lock, _host.Token);
                    _host.Verbose($"Wrote {plan.Count} rule changes for {what} in {applied.How}.");
                    tx.Record(group, $"the {plan.Count} rule changes for {what}", () => Backend.Undo(applied, plan, tx.Lock));
                    return plan;
                }
                catch (RulesetMovedException) when (attempt < Attempts)
                {
                    _host.Verbose("Another program changed the rules between the read and the write; reading them again.");
                }
            }
        }

        /// <summary>The outcomes' plans as one write; each target's undo recorded in the transaction.</summary>
        private void Write(IReadOnlyList<Outcome> outcomes, NatTransaction tx, Func<SubnetNat, object?> group)
        {
            var merged = Backend.Merge(outcomes.Select(o => o.Plan).ToArray());
            if (merged.IsEmpty) return;
            var applied = Backend.Apply(merged, tx.Lock, _host.Token);
            _host.Verbose($"Wrote {merged.Count} rule changes in {applied.How}.");
            foreach (var outcome in outcomes.Where(o => !o.Plan.IsEmpty))
            {
                tx.Record(group(outcome.Target), $"the {outcome.Plan.Count} rule changes for {outcome.Target}", () => Backend.Undo(applied, outcome.Plan, tx.Lock));
            }
        }

        /// <summary>Asks -WhatIf/-Confirm about each change; null when a change was needed and none was approved.</summary>
        private NatPlan? Approve(NatPlan plan, string target)
        {
            if (plan.IsEmpty) return plan;
            var approved = new HashSet<PlannedChange>(ReferenceEqualityComparer.Instance);
            foreach (var change in plan.Changes)
            {
                if (_host.ShouldProcess(target, change.CommandLine)) approved.Add(change);
            }
            if (approved.Count == 0) return null;
            return approved.Count == plan.Count ? plan : plan.Only(approved);
        }

        private void WarnAboutOtherBackend(NatState state, SubnetNat target)
        {
            if (Backend is not IptablesBackend iptables || state is not IptablesState s) return;
            var mix = iptables.OtherBackendRules(s, target.SubnetText, _host.Token);
            if (mix != null) _host.Warning(mix.Value.Message + " " + mix.Value.Fix + ".");
        }
    }
}
