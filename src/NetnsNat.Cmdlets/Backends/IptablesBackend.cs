using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Threading;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Backends
{
    /// <summary>An iptables tool ran and failed.</summary>
    public sealed class IptablesException : Exception
    {
        internal IptablesException(string commandLine, string diagnostic)
            : base($"'{commandLine}' failed: {diagnostic}")
        {
        }
    }

    /// <summary>The rules of one family as the iptables backend read them, and the nf_tables generation they are of.</summary>
    internal sealed class IptablesState : NatState
    {
        public IptablesState(IptablesSnapshot snapshot, uint? generation, string backend)
        {
            Snapshot = snapshot;
            Generation = generation;
            Backend = backend;
        }

        public IptablesSnapshot Snapshot { get; }

        /// <summary>The nf_tables generation the snapshot was read at; null for legacy or when unknown.</summary>
        public uint? Generation { get; }

        /// <summary>"nf_tables" or "legacy".</summary>
        public string Backend { get; }

        /// <summary>As result objects name it: "iptables-nft" or "iptables-legacy".</summary>
        public override string BackendName => Backend switch { "legacy" => "iptables-legacy", "nf_tables" => "iptables-nft", _ => "iptables" };
    }

    /// <summary>A rule plan with the state it was made from.</summary>
    internal sealed class IptablesPlan : NatPlan
    {
        private readonly IReadOnlyList<PlannedChange> _changes;

        public IptablesPlan(IptablesState basis, RulePlan rules, AddressFamilyProfile family)
        {
            Basis = basis;
            Rules = rules;
            Family = family;
            _changes = rules.Changes.Select(c => new PlannedChange(family.Iptables, c.CommandArguments(), c.IsAddition, c.Rule.ToString())).ToArray();
        }

        public IptablesState Basis { get; }

        public RulePlan Rules { get; }

        public AddressFamilyProfile Family { get; }

        public override IReadOnlyList<PlannedChange> Changes => _changes;

        public override NatPlan Only(ICollection<PlannedChange> approved)
        {
            var keep = new HashSet<RuleChange>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < _changes.Count; i++)
            {
                if (approved.Contains(_changes[i])) keep.Add(Rules.Changes[i]);
            }
            return new IptablesPlan(Basis, Rules.Only(keep.Cast<RuleChange>().ToArray()), Family);
        }
    }

    /// <summary>What a write did, change by change (deletions with the positions the rules had), for its undo.</summary>
    internal sealed class IptablesApplied : AppliedPlan
    {
        public IptablesApplied(IReadOnlyList<RuleChange> executed, string how, string backend)
        {
            Executed = executed;
            How = how;
            Backend = backend;
        }

        /// <summary>"nf_tables" or "legacy": where the undo goes.</summary>
        public string Backend { get; }

        public IReadOnlyList<RuleChange> Executed { get; }

        public override string How { get; }

        public override int Count => Executed.Count;
    }

    /// <summary>
    /// The parsed ruleset this process last read or wrote, per network namespace and family, with the nf_tables
    /// generation it is of. While the kernel reports the same generation nobody changed the rules, so a warm session
    /// does not pay iptables-save's full dump on every call. Snapshots are immutable: callers share them.
    /// </summary>
    internal static class RulesetCache
    {
        private static readonly object Gate = new object();
        // Keyed "netns/family", with a class for the value: no generic over a value tuple to JIT-compile (see NlAttribute).
        private sealed record Entry(uint Generation, IptablesSnapshot Snapshot);

        private static readonly Dictionary<string, Entry> Entries = new Dictionary<string, Entry>(StringComparer.Ordinal);

        private static string Key(string netns, AddressFamilyProfile family) => netns + "/" + family.Name;

        public static IptablesSnapshot? Get(string netns, AddressFamilyProfile family, uint generation)
        {
            lock (Gate)
            {
                return Entries.TryGetValue(Key(netns, family), out var e) && e.Generation == generation ? e.Snapshot : null;
            }
        }

        /// <summary>The generation of the cached snapshot when it is this very snapshot; null otherwise.</summary>
        public static uint? GenerationOf(string netns, AddressFamilyProfile family, IptablesSnapshot snapshot)
        {
            lock (Gate)
            {
                return Entries.TryGetValue(Key(netns, family), out var e) && ReferenceEquals(e.Snapshot, snapshot) ? e.Generation : null;
            }
        }

        public static void Set(string netns, AddressFamilyProfile family, uint generation, IptablesSnapshot snapshot)
        {
            lock (Gate) Entries[Key(netns, family)] = new Entry(generation, snapshot);
        }

        /// <summary>Forgets every family's snapshot of the namespace: a write of any family moves the shared generation.</summary>
        public static void Invalidate(string netns)
        {
            lock (Gate)
            {
                foreach (var family in AddressFamilyProfile.All) Entries.Remove(Key(netns, family));
            }
        }
    }

    /// <summary>
    /// The iptables backend: reads with one iptables-save, writes additions as one nf_tables netlink batch (encoded as
    /// iptables-nft encodes them) and anything else with one iptables-restore --noflush; works on both iptables-nft
    /// and iptables-legacy, whichever the 'iptables' on PATH is.
    /// </summary>
    internal sealed class IptablesBackend : INatBackend
    {
        private readonly ProcessRunner _runner;
        private readonly Action<string> _debug;

        public IptablesBackend(ProcessRunner runner, AddressFamilyProfile family, Action<string>? debug = null)
        {
            _runner = runner;
            _debug = debug ?? (_ => { });
            Family = family;
            RequiredTools = new[] { family.IptablesSave, family.IptablesRestore };
            ReadTools = new[] { family.IptablesSave };
        }

        public AddressFamilyProfile Family { get; }

        public IReadOnlyList<string> RequiredTools { get; }

        public IReadOnlyList<string> ReadTools { get; }

        NatState INatBackend.Read(CancellationToken token) => Read(token);

        /// <summary>
        /// The current ruleset. With nf_tables, a snapshot this process read (or wrote) is reused while the kernel's
        /// ruleset generation is unchanged.
        /// </summary>
        public IptablesState Read(CancellationToken token)
        {
            // Another table's chains are listed again with the ruleset (a plan is made from one read of both).
            _foreignChains = null;
            var netns = CurrentNetns();
            var generation = NftGeneration.Read();
            if (generation is uint g && RulesetCache.Get(netns, Family, g) is { } cached)
            {
                _debug($"{Family.Name} ruleset: the cached snapshot (nf_tables generation {g} unchanged since this session read or wrote it).");
                return new IptablesState(cached, g, BackendOf(cached));
            }
            var clock = Stopwatch.StartNew();
            // With iptables-nft's own iptables-save on PATH, the same listing straight from nf_tables (no process: a
            // fresh session's first call starts none); iptables-save for a rule of a shape the reader does not know, for
            // the legacy backend and for a wrapper on PATH.
            string how = "over nf_tables netlink";
            var snapshot = generation is uint atGeneration && IsStockNft(Family.IptablesSave) ? NftRulesetReader.TryRead(Family, atGeneration) : null;
            if (snapshot == null)
            {
                var result = _runner.Run(Family.IptablesSave, Array.Empty<string>(), token);
                if (!result.Succeeded) throw new IptablesException(result.CommandLine, result.Diagnostic);
                snapshot = IptablesSnapshot.Parse(result.StandardOutput);
                how = "with " + Family.IptablesSave;
            }
            var backend = BackendOf(snapshot);
            _debug($"{Family.Name} ruleset: read {how} ({snapshot.Rules.Count} rules, {backend}, generation {generation?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}, {clock.Elapsed.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture)} ms).");
            // The generation was read before the dump: a change during the dump only makes the cache miss next time
            // (and the kernel refuse a batch that carries this generation).
            if (generation is uint read && backend != "legacy")
            {
                RulesetCache.Set(netns, Family, read, snapshot);
                return new IptablesState(snapshot, read, backend);
            }
            return new IptablesState(snapshot, null, backend);
        }

        private IReadOnlyList<NftablesChains.ForwardChain>? _foreignChains;

        private readonly List<string> _warnings = new List<string>();

        /// <summary>
        /// Another table's base chains on the forward hook (a host firewall's, another tool's), judged for a bridge's
        /// traffic before anything changes: ForwardBlocked when one drops it, whatever NetnsNat's FORWARD rules accept;
        /// a warning (<see cref="TakeWarnings"/>) when its verdict hangs on rules NetnsNat does not evaluate. iptables' own
        /// FORWARD is NetnsNat's to write, and left out. Listed once per call.
        /// </summary>
        private void RequireForeignForwardOpen(SubnetNat target)
        {
            if (target.Bridge == null) return;
            _foreignChains ??= NftablesChains.ForwardChains(Family, skipIptables: true);
            _warnings.AddRange(NftablesChains.RequireOpen(_foreignChains, Family, target.Bridge, target.Outbound, target.Subnet, target.SampleHost, Family.OutsideExample));
        }

        public IReadOnlyList<string> TakeWarnings()
        {
            var taken = _warnings.Distinct(StringComparer.Ordinal).ToArray();
            _warnings.Clear();
            return taken;
        }

        public NatPlan PlanAdd(NatState state, SubnetNat target)
        {
            RequireForeignForwardOpen(target);
            return PlanRules(state, target);
        }

        private NatPlan PlanRules(NatState state, SubnetNat target) => Plan(state, RulePlanner.PlanAdd(Snapshot(state), MasqueradeRules.Describe(target, Snapshot(state))));

        public NatPlan PlanRemove(NatState state, SubnetNat target) => Plan(state, RulePlanner.PlanRemove(Snapshot(state), MasqueradeRules.DescribeRemoval(target)));

        public NatPlan Merge(IReadOnlyList<NatPlan> plans)
        {
            if (plans.Count == 0) return new IptablesPlan(Read(CancellationToken.None), RulePlan.Empty, Family);
            var typed = plans.Cast<IptablesPlan>().ToArray();
            return new IptablesPlan(typed[0].Basis, RulePlan.Merge(typed.Select(p => p.Rules)), Family);
        }

        private IptablesPlan Plan(NatState state, RulePlan rules) => new IptablesPlan((IptablesState)state, rules, Family);

        private static IptablesSnapshot Snapshot(NatState state) => ((IptablesState)state).Snapshot;

        /// <summary>
        /// Writes a plan in one step: one nf_tables batch (all or nothing, refused when the ruleset moved since the
        /// plan's read) or one iptables-restore. iptables-restore commits each table on its own, so when it fails
        /// part-way (the nat table written, the filter table refused), the part that took effect is found by reading
        /// the ruleset again and is undone before the error goes on: nothing stays half-applied. The cache then holds
        /// the snapshot with the plan applied when the kernel's generation moved by exactly this write.
        /// </summary>
        public AppliedPlan Apply(NatPlan plan, RulesetLock held, CancellationToken token)
        {
            held.Require();
            var p = (IptablesPlan)plan;
            var basis = p.Basis;
            var after = basis.Snapshot.Apply(p.Rules, out var executed);
            if (p.Rules.IsEmpty) return new IptablesApplied(executed, "nothing to write", basis.Backend);
            var netns = CurrentNetns();
            uint? before = RulesetCache.GenerationOf(netns, Family, basis.Snapshot);
            RulesetCache.Invalidate(netns);
            token.ThrowIfCancellationRequested();
            foreach (var change in p.Changes) _debug($"Change: {change.CommandLine}");
            InternalHooks.BeforeRuleWrite?.Invoke();
            var clock = Stopwatch.StartNew();
            string how;
            uint commits;
            try
            {
                how = Write(p.Rules, basis.Backend, basis.Generation, token, out commits);
            }
            catch (Exception ex) when (ex is IptablesException || ex is OperationCanceledException || ex is TimeoutException)
            {
                // iptables-restore commits table by table: undo the part of a failed restore that took effect.
                var undoFailure = UndoPartialRestore(p.Rules, basis);
                if (undoFailure != null)
                {
                    throw new IptablesException(Family.IptablesRestore, $"{ex.Message}; undoing the part that took effect failed too ({undoFailure}): check '{Family.IptablesSave}'");
                }
                throw;
            }
            how += $" ({clock.Elapsed.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture)} ms)";
            if (before != null && NftGeneration.Read() is uint now && now == before + commits) RulesetCache.Set(netns, Family, now, after);
            return new IptablesApplied(executed, how, basis.Backend);
        }

        public void Undo(AppliedPlan applied, NatPlan part, RulesetLock held)
        {
            held.Require();
            var rules = new HashSet<IptablesRule>(((IptablesPlan)part).Rules.Changes.Select(c => c.Rule), ReferenceEqualityComparer.Instance);
            var done = (IptablesApplied)applied;
            var executed = done.Executed.Where(c => rules.Contains(c.Rule)).ToArray();
            if (executed.Length == 0) return;
            Restore(RulePlan.Undo(executed), done.Backend);
        }

        /// <summary>
        /// Writes a plan: one nf_tables netlink batch when the backend is nf_tables and iptables-restore is
        /// iptables-nft's own (a wrapper on PATH is honoured), otherwise one iptables-restore. Returns how, for -Verbose.
        /// </summary>
        private string Write(RulePlan plan, string backend, uint? generation, CancellationToken token, out uint commits)
        {
            if (backend != "legacy" && IsStockNftRestore())
            {
                var result = NftRuleWriter.TryWrite(plan, Family, generation);
                _debug($"nf_tables netlink batch of {plan.Count} changes, generation {generation?.ToString(CultureInfo.InvariantCulture) ?? "unchecked"}: {result}.");
                if (result == NftWriteResult.RulesetMoved) throw new RulesetMovedException();
                if (result == NftWriteResult.Written)
                {
                    commits = 1;
                    return "one nf_tables netlink batch";
                }
            }
            var script = plan.Script();
            RunRestore(script, token);
            // iptables-nft-restore commits each table section on its own: one generation per section.
            commits = (uint)script.Split('\n').Count(l => l.StartsWith('*'));
            return "one " + Family.IptablesRestore;
        }

        /// <summary>
        /// After a failed iptables-restore: reads the rules again and undoes whatever part of the plan took effect.
        /// Returns why the undo failed, or null.
        /// </summary>
        private string? UndoPartialRestore(RulePlan plan, IptablesState state)
        {
            try
            {
                var basis = state.Snapshot;
                var now = Read(CancellationToken.None).Snapshot;
                var done = plan.Changes.Where(c => c.Kind == RuleChangeKind.Delete ? now.Count(c.Rule) < basis.Count(c.Rule) : now.Count(c.Rule) > basis.Count(c.Rule)).ToArray();
                if (done.Length == 0) return null;
                basis.Apply(new RulePlan(done), out var executed);
                Restore(RulePlan.Undo(executed), state.Backend);
                return null;
            }
            catch (Exception undo) when (undo is IptablesException || undo is TimeoutException)
            {
                return undo.Message;
            }
        }

        /// <summary>
        /// Writes an undo, with no cancellation (an undo must finish): as one netlink batch against the rules as they
        /// are now (read again when another program moved them meanwhile), or one iptables-restore.
        /// </summary>
        private void Restore(RulePlan plan, string backend)
        {
            if (plan.IsEmpty) return;
            var netns = CurrentNetns();
            RulesetCache.Invalidate(netns);
            for (int attempt = 0; attempt < 3; attempt++)
            {
                try
                {
                    Write(plan, backend, NftGeneration.Read(), CancellationToken.None, out _);
                    RulesetCache.Invalidate(netns);
                    return;
                }
                catch (RulesetMovedException)
                {
                }
            }
            RunRestore(plan.Script(), CancellationToken.None);
            RulesetCache.Invalidate(netns);
        }

        private void RunRestore(string script, CancellationToken token)
        {
            var result = _runner.Run(Family.IptablesRestore, new[] { "--noflush", "--wait", "10" }, token, script);
            if (!result.Succeeded) throw new IptablesException(result.CommandLine, result.Diagnostic);
        }

        public IReadOnlyList<string> Rules(SubnetNat target) => MasqueradeRules.For(target).Select(r => r.ToString()).ToArray();

        public IReadOnlyList<string> Present(NatState state, SubnetNat target)
        {
            var snapshot = Snapshot(state);
            return MasqueradeRules.For(target).Where(r => snapshot.Count(r) > 0).Select(r => r.ToString()).ToArray();
        }

        public NatPlan PlanRemoveOwned(NatState state, SubnetNat target, IReadOnlyCollection<string> owned)
        {
            var snapshot = Snapshot(state);
            var delete = new List<IptablesRule>();
            foreach (var text in owned)
            {
                var rule = ParseRuleText(text);
                if (rule == null) continue;
                // One copy per rule NetnsNat added; the first that stands, as iptables -D takes it.
                var standing = snapshot.Chain(rule.Table, rule.Chain).FirstOrDefault(r => r.SameAs(rule) && !delete.Contains(r));
                if (standing != null) delete.Add(standing);
            }
            return Plan(state, RulePlan.Of(delete, Array.Empty<IptablesRule>(), Array.Empty<IptablesRule>()));
        }

        /// <summary>A rule as ToString wrote it ("-t nat -A POSTROUTING ...", "-A FORWARD ..."), or null.</summary>
        internal static IptablesRule? ParseRuleText(string text)
        {
            var table = "filter";
            if (text.StartsWith("-t ", StringComparison.Ordinal))
            {
                var space = text.IndexOf(' ', 3);
                if (space < 0) return null;
                table = text.Substring(3, space - 3);
                text = text.Substring(space + 1);
            }
            return IptablesRule.ParseSaveLine(table, text);
        }

        public IReadOnlyList<string> MissingTables(NatState state, SubnetNat target)
        {
            var s = (IptablesState)state;
            if (s.Backend == "legacy") return Array.Empty<string>();
            var policies = s.Snapshot.Policies;
            return MasqueradeRules.For(target).Select(r => r.Table).Distinct()
                .Where(table => !policies.Keys.Any(k => k.StartsWith(table + "/", StringComparison.Ordinal)))
                .Select(table => TableName(table)).ToArray();
        }

        public IReadOnlyList<string> DeleteEmptyTables(IReadOnlyCollection<string> tables, RulesetLock held)
        {
            held.Require();
            if (tables.Count == 0) return Array.Empty<string>();
            RulesetCache.Invalidate(CurrentNetns());
            var state = Read(CancellationToken.None);
            if (state.Backend == "legacy" || state.Generation == null) return Array.Empty<string>();
            var snapshot = state.Snapshot;
            var empty = tables.Where(name =>
            {
                var table = name.Substring(name.IndexOf(' ') + 1);
                if (TableName(table) != name) return false;
                var chains = snapshot.Policies.Where(p => p.Key.StartsWith(table + "/", StringComparison.Ordinal)).ToArray();
                return chains.Length > 0 && chains.All(c => c.Value == "ACCEPT") && !snapshot.Rules.Any(r => r.Table == table);
            }).ToArray();
            if (empty.Length == 0) return empty;
            var deleted = NftRuleWriter.DeleteTables(Family, empty.Select(n => n.Substring(n.IndexOf(' ') + 1)).ToArray(), state.Generation.Value);
            RulesetCache.Invalidate(CurrentNetns());
            _debug($"Deleted the empty tables NetnsNat had created: {string.Join(", ", deleted)}.");
            return deleted.Select(TableName).ToArray();
        }

        /// <summary>The nf_tables name of an iptables table of this family: "ip nat", "ip6 filter".</summary>
        private string TableName(string table) => (Family == AddressFamilyProfile.IPv6 ? "ip6 " : "ip ") + table;

        public IReadOnlyList<MasqueradeEntry> Masquerades(NatState state)
        {
            var snapshot = Snapshot(state);
            var entries = new List<MasqueradeEntry>();
            foreach (var rule in snapshot.Chain("nat", "POSTROUTING").Where(r => MasqueradeRules.IsMasquerade(r) && !PortMappingRules.IsOwn(r)))
            {
                var subnet = (rule.SourceNegated ? "!" : string.Empty) + (rule.Source ?? Family.Everything);
                var outbound = (rule.OutNegated ? "!" : string.Empty) + (rule.OutInterface ?? string.Empty);
                // NetnsNat's shape: -s SUBNET -o UPLINK -j MASQUERADE and nothing else. Anything else is listed as it is,
                // with what it has, and Remove-NatMasquerade will not pretend to remove it.
                bool plain = rule.Source != null && rule.OutInterface != null && !rule.HasNegation && !rule.HasOtherMatches && !rule.HasTargetOptions;
                var forward = plain ? MasqueradeRules.OwnForwardRules(snapshot, rule.Source!, rule.OutInterface!, null).ToArray() : Array.Empty<IptablesRule>();
                var bridge = forward.Select(MasqueradeRules.BridgeOf).FirstOrDefault();
                var lines = new[] { rule.ToString() }.Concat(forward.Select(r => r.ToString())).ToArray();
                string? note = null;
                if (!plain)
                {
                    var what = new List<string>();
                    if (rule.HasNegation) what.Add("a negated match (!)");
                    if (rule.Source == null) what.Add("no source subnet");
                    if (rule.OutInterface == null) what.Add("no uplink");
                    if (rule.HasOtherMatches) what.Add("matches NetnsNat does not write" + (rule.Protocol != null ? $" (-p {rule.Protocol})" : string.Empty));
                    if (rule.HasTargetOptions) what.Add($"target options ({string.Join(" ", rule.TargetOptions)})");
                    note = $"Not a rule of NetnsNat's shape: it has {string.Join(", ", what)}. Remove-NatMasquerade leaves it; to remove it: {ProcessRunner.FormatCommandLine(Family.Iptables, rule.CommandArguments("-D"))}";
                }
                entries.Add(new MasqueradeEntry(subnet, outbound, bridge, lines, plain, note));
            }
            return entries;
        }

        public IReadOnlyList<PortMapping> Mappings(NatState state, Func<PortMapping, PortMapping?> complete) => PortMappingRules.Parse(Snapshot(state), complete);

        /// <summary>The mapping's FORWARD rules stand at the top of the chain, laid there again when a drop gets above them (Test-NamespaceNat walks the chain).</summary>
        public (string Why, string Fix, bool Certain)? MappingBlockedBy(NatState state, PortMapping mapping) => null;

        /// <summary>iptables takes a second DNAT rule for a port (the first one wins): the mappings in the rules are listed.</summary>
        public bool RefusesTakenPorts => false;

        public NatPlan PlanAddMappings(NatState state, IReadOnlyList<PortMapping> mappings) =>
            Plan(state, mappings.Count == 0 ? RulePlan.Empty : RulePlanner.PlanAdd(Snapshot(state), PortMappingRules.Describe(mappings)));

        public NatPlan PlanRemoveMapping(NatState state, PortMapping mapping, IReadOnlyList<PortMapping> staying) =>
            Plan(state, RulePlan.Of(PortMappingRules.Removal(Snapshot(state), mapping, staying), Array.Empty<IptablesRule>(), Array.Empty<IptablesRule>()));

        public IReadOnlyList<string> MappingRules(PortMapping mapping) => PortMappingRules.For(mapping).Select(r => r.ToString()).ToArray();

        /// <summary>The identities of a snapshot's rules, made once per snapshot for the mapping checks (a thousand mappings, five rules each).</summary>
        private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IptablesSnapshot, HashSet<string>> RuleKeys =
            new System.Runtime.CompilerServices.ConditionalWeakTable<IptablesSnapshot, HashSet<string>>();

        public (string Rule, string DeleteCommand)? MappingShadowedBy(NatState state, PortMapping mapping) =>
            PortMappingRules.ShadowedBy(Snapshot(state), mapping) is { } rule ? (rule.ToString(), ProcessRunner.FormatCommandLine(Family.Iptables, rule.CommandArguments("-D"))) : null;

        public IReadOnlyList<string> MissingMappingRules(NatState state, PortMapping mapping)
        {
            var keys = RuleKeys.GetValue(Snapshot(state), s => s.Rules.Select(r => r.Key).ToHashSet(StringComparer.Ordinal));
            return PortMappingRules.For(mapping).Where(r => !keys.Contains(r.Key)).Select(r => r.ToString()).ToArray();
        }

        public IReadOnlyList<SubnetNat> OwnTargetsOnBridge(NatState state, string bridge)
        {
            var found = new List<SubnetNat>();
            foreach (var rule in Snapshot(state).Chain("filter", "FORWARD").Where(MasqueradeRules.IsOwnForward))
            {
                if (rule.InInterface != bridge || rule.Source == null || rule.OutInterface == null) continue;
                if (!Cidr.TryParseNetwork(rule.Source, out var subnet)) continue;
                var target = new SubnetNat(subnet, rule.OutInterface, bridge);
                if (!found.Contains(target)) found.Add(target);
            }
            return found;
        }

        /// <summary>
        /// The rules of the other iptables backend (legacy beside nf_tables, or the reverse), when it has any: both are
        /// evaluated by the kernel, and neither tool shows the other's rules. Null when it has none.
        /// </summary>
        public (string Tool, string Name, IptablesSnapshot Snapshot)? OtherBackend(IptablesState state, CancellationToken token)
        {
            string? otherTool = null;
            if (state.Backend == "nf_tables")
            {
                // Legacy tables register in /proc/net/ip_tables_names; read it instead of starting a process every call.
                if (File.Exists(Family.LegacyTablesFile) && File.ReadAllText(Family.LegacyTablesFile).Trim().Length > 0 && ProcessRunner.Which(Family.LegacySave) != null) otherTool = Family.LegacySave;
            }
            else if (state.Backend == "legacy" && ProcessRunner.Which(Family.NftSave) != null)
            {
                otherTool = Family.NftSave;
            }
            if (otherTool == null) return null;
            var result = _runner.Run(otherTool, Array.Empty<string>(), token);
            if (!result.Succeeded) return null;
            return (otherTool, otherTool == Family.LegacySave ? "legacy" : "nf_tables", IptablesSnapshot.Parse(result.StandardOutput));
        }

        /// <summary>What the other backend holds for the subnet, as a message and a fix; null when nothing.</summary>
        public (string Message, string Fix)? OtherBackendRules(IptablesState state, string subnet, CancellationToken token)
        {
            var other = OtherBackend(state, token);
            if (other == null) return null;
            var (otherTool, otherName, snapshot) = other.Value;
            var mentions = snapshot.Rules.Where(r => r.Source == subnet || r.Destination == subnet).ToArray();
            var blocking = snapshot.Policies.TryGetValue("filter/FORWARD", out var policy) && policy != "ACCEPT"
                ? $"its FORWARD policy is {policy}" : snapshot.Chain("filter", "FORWARD").Any(r => r.Target == "DROP" || r.Target == "REJECT") ? "its FORWARD chain has DROP or REJECT rules" : null;
            if (mentions.Length == 0 && blocking == null) return null;
            var what = mentions.Length > 0 ? $"has {mentions.Length} rule(s) for {subnet}" + (blocking != null ? $", and {blocking}" : string.Empty) : blocking;
            return (
                $"The {otherName} iptables backend is in use too: {what} (see '{otherTool}'), while NetnsNat writes to the {state.Backend} backend " +
                $"that '{Family.Iptables}' uses. The kernel applies both, so a DROP or a second MASQUERADE there still acts on this traffic, and '{Family.Iptables} -L' does not show it.",
                $"Remove the {otherName} rules (or set its FORWARD policy to ACCEPT), or make one backend the default with 'update-alternatives --config {Family.Iptables}'");
        }

        private string BackendOf(IptablesSnapshot snapshot) => snapshot.Backend ?? BackendFromPath();

        /// <summary>Whether the family's iptables-restore on PATH is iptables-nft's own (xtables-nft-multi), not a wrapper or legacy.</summary>
        private bool IsStockNftRestore() => IsStockNft(Family.IptablesRestore);

        /// <summary>Whether a tool on PATH is iptables-nft's own (xtables-nft-multi), not a wrapper or legacy.</summary>
        private static bool IsStockNft(string tool)
        {
            try
            {
                var path = ProcessRunner.Resolve(tool);
                var target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.Name ?? Path.GetFileName(path);
                return target == "xtables-nft-multi";
            }
            catch (Exception ex) when (ex is IOException || ex is ToolNotFoundException || ex is UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>The network namespace this thread is in, as the kernel names it ("net:[4026531840]").</summary>
        internal static string CurrentNetns() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty;

        /// <summary>"nf_tables" or "legacy", from the iptables alternative on PATH, without running it.</summary>
        private string BackendFromPath()
        {
            // iptables, or the iptables-save NetnsNat runs (a host may have only the tools of the backend's own package).
            var path = ProcessRunner.Which(Family.Iptables) ?? ProcessRunner.Which(Family.IptablesSave);
            if (path == null) return "unknown";
            try
            {
                var target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.Name ?? Path.GetFileName(path);
                if (target.Contains("legacy", StringComparison.Ordinal)) return "legacy";
                if (target.Contains("nft", StringComparison.Ordinal)) return "nf_tables";
            }
            catch (IOException)
            {
            }
            return "unknown";
        }
    }
}
