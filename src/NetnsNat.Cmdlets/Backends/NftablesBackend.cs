using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Backends
{
    /// <summary>NetnsNat's nftables table as one read found it.</summary>
    internal sealed class NftablesState : NatState
    {
        public NftablesState(NftTableContent content, uint? generation)
        {
            Content = content;
            Generation = generation;
        }

        public NftTableContent Content { get; }

        public uint? Generation { get; }

        public override string BackendName => NftablesBackend.Name;
    }

    /// <summary>
    /// A change of the table: the table laid again (with the elements it held) or created, elements added and deleted,
    /// the table deleted with its last elements. -WhatIf shows each as its nft command; -Confirm asks about each.
    /// </summary>
    internal sealed class NftablesPlan : NatPlan
    {
        private readonly List<PlannedChange> _changes = new List<PlannedChange>();
        private readonly Dictionary<PlannedChange, NftEntry> _added = new Dictionary<PlannedChange, NftEntry>(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<PlannedChange, NftEntry> _deleted = new Dictionary<PlannedChange, NftEntry>(ReferenceEqualityComparer.Instance);
        private readonly PlannedChange? _lay, _deleteAfter;

        /// <param name="showCreate">Whether -WhatIf shows the table's creation (not when another family's plan of the same call showed it already).</param>
        public NftablesPlan(NftablesState basis, bool deleteFirst, bool create, IReadOnlyList<NftEntry> relay, IReadOnlyList<NftEntry> add, IReadOnlyList<NftEntry> delete, bool deleteAfter, bool showCreate = true)
        {
            Basis = basis;
            Batch = new NftablesTable.Batch(deleteFirst, create, relay, add, delete, deleteAfter);
            if (create && (showCreate || deleteFirst))
            {
                // The table laid again is one question: its deletion, its definition and the elements it held, as nft commands.
                var commands = new List<string>();
                if (deleteFirst) commands.Add($"delete table inet {NftablesTable.Name}");
                commands.AddRange(NftablesTable.Definition());
                commands.AddRange(relay.Select(e => $"add element inet {NftablesTable.Name} {e.Set} {{ {e.Value} }}"));
                _lay = new PlannedChange("nft", new[] { string.Join("; ", commands) }, true, $"table inet {NftablesTable.Name}", Structural: true);
                _changes.Add(_lay);
            }
            foreach (var e in add)
            {
                var change = new PlannedChange("nft", new[] { "add", "element", "inet", NftablesTable.Name, e.Set, $"{{ {e.Value} }}" }, true, e.Text);
                _changes.Add(change);
                _added[change] = e;
            }
            foreach (var e in delete)
            {
                var change = new PlannedChange("nft", new[] { "delete", "element", "inet", NftablesTable.Name, e.Set, $"{{ {e.Value} }}" }, false, e.Text);
                _changes.Add(change);
                _deleted[change] = e;
            }
            if (deleteAfter)
            {
                _deleteAfter = new PlannedChange("nft", new[] { "delete", "table", "inet", NftablesTable.Name }, false, $"table inet {NftablesTable.Name}", Structural: true);
                _changes.Add(_deleteAfter);
            }
        }

        public NftablesState Basis { get; }

        public NftablesTable.Batch Batch { get; }

        public override IReadOnlyList<PlannedChange> Changes => _changes;

        /// <summary>Whether -WhatIf and -Confirm show the table's creation in this plan.</summary>
        public bool ShowsTable => _lay != null;

        public static NftablesPlan Empty(NftablesState basis) =>
            new NftablesPlan(basis, false, false, Array.Empty<NftEntry>(), Array.Empty<NftEntry>(), Array.Empty<NftEntry>(), false);

        /// <summary>
        /// The approved part. The elements to add need the table: when its creation (or laying again) was declined, none is
        /// added. The table goes only when its deletion and every deletion of an element were approved.
        /// </summary>
        public override NatPlan Only(ICollection<PlannedChange> approved)
        {
            bool tableOk = _lay == null || approved.Contains(_lay);
            var add = tableOk ? _added.Where(p => approved.Contains(p.Key)).Select(p => p.Value).ToArray() : Array.Empty<NftEntry>();
            var delete = _deleted.Where(p => approved.Contains(p.Key)).Select(p => p.Value).ToArray();
            bool lay = Batch.Create && _lay != null && approved.Contains(_lay) && (add.Length > 0 || Batch.DeleteFirst);
            // A creation -WhatIf did not show (another family's plan showed it) goes with the elements that need it.
            bool create = lay || (Batch.Create && _lay == null && add.Length > 0);
            bool deleteAfter = Batch.DeleteAfter && _deleteAfter != null && approved.Contains(_deleteAfter) && delete.Length == Batch.Delete.Count;
            return new NftablesPlan(Basis, lay && Batch.DeleteFirst, create, lay ? Batch.Relay : Array.Empty<NftEntry>(), add, delete, deleteAfter, _lay != null);
        }
    }

    /// <summary>What the nftables backends of one call (one per family) share.</summary>
    internal sealed class NftablesSession
    {
        /// <summary>The generation at which a plan showed the table's creation (-WhatIf writes nothing, so the next family's plan sees no table either).</summary>
        public uint? CreationShownAt { get; set; }
    }

    internal sealed class NftablesApplied : AppliedPlan
    {
        public NftablesApplied(NftablesPlan plan, string how)
        {
            Plan = plan;
            How = how;
        }

        public NftablesPlan Plan { get; }

        public override string How { get; }

        public override int Count => Plan.Count;
    }

    /// <summary>
    /// The nftables backend: NetnsNat's own table "inet netnsnat" (<see cref="NftablesTable"/>), read and written over
    /// netlink (no process), a subnet's NAT as elements of its sets, the table created with the first element and deleted
    /// with the last. Before adding a bridge it checks what would drop the bridge's traffic elsewhere on the forward
    /// hook (iptables' FORWARD in either backend, another table's base chain), because an accept in this table does not
    /// override their drop. A port mapping is elements too: its DNAT in a map (protocol and port to address and port), the
    /// accept of its connections and the masquerade of its hairpin in sets.
    /// </summary>
    internal sealed class NftablesBackend : INatBackend
    {
        public const string Name = "nftables";

        private readonly IptablesBackend? _iptables;
        private readonly NftablesSession? _session;
        private readonly Action<string> _debug;
        private CancellationToken _token;

        /// <param name="iptables">iptables' view of the same family, when iptables is installed: its FORWARD is on the hook too.</param>
        /// <param name="session">What the backends of one call share (both families' -WhatIf).</param>
        public NftablesBackend(AddressFamilyProfile family, IptablesBackend? iptables, Action<string>? debug = null, NftablesSession? session = null)
        {
            Family = family;
            _iptables = iptables;
            _session = session;
            _debug = debug ?? (_ => { });
        }

        public AddressFamilyProfile Family { get; }

        public IReadOnlyList<string> RequiredTools => Array.Empty<string>();

        public IReadOnlyList<string> ReadTools => Array.Empty<string>();

        NatState INatBackend.Read(CancellationToken token) => Read(token);

        public NftablesState Read(CancellationToken token)
        {
            _token = token;
            // A read after a write (another attempt, a later step of the call) looks at the forward hook again.
            _neighbours = null;
            var clock = Stopwatch.StartNew();
            var (content, generation) = NftablesTable.Read();
            _debug($"inet {NftablesTable.Name}: read over netlink ({(content.Exists ? (content.Intact ? "the table" : $"the table, not as NetnsNat made it: {content.Problem}") : "no table")}, generation {generation?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}, {clock.Elapsed.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture)} ms).");
            return new NftablesState(content, generation);
        }

        private static NftablesState State(NatState state) => (NftablesState)state;

        /// <summary>The elements a mapping needs: its DNAT, the hairpin's masquerade and the accept of its connections (the last two shared by the mappings to the same port of a namespace).</summary>
        public static IReadOnlyList<NftEntry> ElementsOf(PortMapping m) => new NftEntry[]
        {
            new NftMappingElement(NftSetKind.Dnat, m), new NftMappingElement(NftSetKind.Hairpin, m), new NftMappingElement(NftSetKind.Published, m),
        };

        /// <summary>The elements a target needs: the masquerade, and with a bridge the inbound one.</summary>
        public static IReadOnlyList<NftElement> ElementsOf(SubnetNat target)
        {
            var masquerade = new NftElement(NftSetKind.Masquerade, target.Subnet, null, target.Outbound);
            return target.Bridge == null ? new[] { masquerade } : new[] { masquerade, new NftElement(NftSetKind.Inbound, target.Subnet, target.Outbound, target.Bridge) };
        }

        public NatPlan PlanAdd(NatState state, SubnetNat target)
        {
            var s = State(state);
            var content = s.Content;
            RequireOwned(content);
            if (target.Bridge != null) RequireForwardOpen(target);
            return PlanElements(s, ElementsOf(target));
        }

        /// <summary>
        /// What adds the elements the table lacks: the table created with them when there is none, laid again whole (with
        /// the elements it holds) when it was changed by hand.
        /// </summary>
        private NftablesPlan PlanElements(NftablesState s, IReadOnlyList<NftEntry> wanted)
        {
            var content = s.Content;
            if (content.Exists && !content.Intact)
            {
                // A table changed by hand is laid again whole, with the elements it holds (an undo takes away only the new ones).
                if (content.Foreign > 0)
                {
                    throw new NetnsNatException(
                        $"inet {NftablesTable.Name} is not as NetnsNat made it ({content.Problem}), and its sets hold {content.Foreign} element(s) NetnsNat did not write, which laying the table again would lose; nothing was changed. " +
                        $"Look at it (nft list table inet {NftablesTable.Name}), take those elements out or delete the table (nft delete table inet {NftablesTable.Name}; Restore-NamespaceNat lays NetnsNat's part again), then run this again.",
                        "NftablesTableChanged", ErrorCategory.InvalidData);
                }
                _debug($"inet {NftablesTable.Name} is not as NetnsNat made it ({content.Problem}): laying it again with its {content.Elements.Count} elements.");
                var held = content.Elements.Select(e => e.Text).ToHashSet(StringComparer.Ordinal);
                return new NftablesPlan(s, true, true, content.Elements, wanted.Where(e => !held.Contains(e.Text)).ToArray(), Array.Empty<NftEntry>(), false);
            }
            var missing = content.Missing(wanted);
            if (missing.Count == 0) return NftablesPlan.Empty(s);
            bool create = !content.Exists;
            // Under -WhatIf nothing is written between the families' plans: the table's creation is shown once per call.
            bool show = true;
            if (create && _session != null)
            {
                if (s.Generation != null && _session.CreationShownAt == s.Generation) show = false;
                else _session.CreationShownAt = s.Generation;
            }
            return new NftablesPlan(s, false, create, Array.Empty<NftEntry>(), missing, Array.Empty<NftEntry>(), false, show);
        }

        public NatPlan PlanRemove(NatState state, SubnetNat target)
        {
            var s = State(state);
            RequireOwned(s.Content);
            var delete = s.Content.Subnets.Where(e => e.Subnet.Equals(target.Subnet) && (e.Kind == NftSetKind.Masquerade
                ? e.Out == target.Outbound
                : e.In == target.Outbound && (target.Bridge == null || e.Out == target.Bridge))).ToArray();
            return Deletion(s, delete);
        }

        public NatPlan PlanRemoveOwned(NatState state, SubnetNat target, IReadOnlyCollection<string> owned)
        {
            var s = State(state);
            RequireOwned(s.Content);
            var set = owned.ToHashSet(StringComparer.Ordinal);
            var mine = ElementsOf(target).Where(e => set.Contains(e.Text)).ToArray();
            var absent = s.Content.Missing(mine);
            return Deletion(s, mine.Except(absent).ToArray());
        }

        /// <summary>Deletes elements; the table goes too when they are its last.</summary>
        private static NftablesPlan Deletion(NftablesState s, IReadOnlyList<NftEntry> delete)
        {
            if (delete.Count == 0) return NftablesPlan.Empty(s);
            // A table changed by hand keeps what was added to it: only NetnsNat's elements go.
            bool last = s.Content.Intact && !s.Content.HasOtherThan(delete);
            return new NftablesPlan(s, false, false, Array.Empty<NftEntry>(), Array.Empty<NftEntry>(), delete, last);
        }

        public NatPlan Merge(IReadOnlyList<NatPlan> plans)
        {
            var parts = plans.Cast<NftablesPlan>().ToArray();
            if (parts.Length == 1) return parts[0];
            if (parts.Length == 0) throw new ArgumentException("No plans to merge.", nameof(plans));
            var basis = parts[0].Basis;
            var relay = parts.SelectMany(p => p.Batch.Relay).DistinctBy(e => e.Text).ToArray();
            var add = parts.SelectMany(p => p.Batch.Add).DistinctBy(e => e.Text).ToArray();
            var delete = parts.SelectMany(p => p.Batch.Delete).DistinctBy(e => e.Text).ToArray();
            bool deleteFirst = parts.Any(p => p.Batch.DeleteFirst);
            bool create = parts.Any(p => p.Batch.Create);
            bool last = add.Length == 0 && relay.Length == 0 && delete.Length > 0 && basis.Content.Intact && !basis.Content.HasOtherThan(delete);
            return new NftablesPlan(basis, deleteFirst, create, relay, add, delete, last, parts.Any(p => p.ShowsTable));
        }

        public AppliedPlan Apply(NatPlan plan, RulesetLock held, CancellationToken token)
        {
            held.Require();
            token.ThrowIfCancellationRequested();
            var p = (NftablesPlan)plan;
            foreach (var change in p.Changes) _debug("Change: " + change.CommandLine);
            InternalHooks.BeforeRuleWrite?.Invoke();
            var clock = Stopwatch.StartNew();
            Write(p.Batch, p.Basis.Generation, "Nothing of this call's changes to the table was applied.");
            return new NftablesApplied(p, $"one nf_tables netlink batch into inet {NftablesTable.Name} ({clock.Elapsed.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture)} ms)");
        }

        private static void Write(NftablesTable.Batch batch, uint? generation, string nothing)
        {
            var (errno, what) = NftablesTable.Write(batch, generation);
            if (errno == 0) return;
            if (errno == Nfnl.ERESTART && generation != null) throw new RulesetMovedException();
            var hint = errno switch
            {
                Nfnl.EEXIST or 39 /* ENOTEMPTY */ or 16 /* EBUSY */ when what.StartsWith("the elements of dnat", StringComparison.Ordinal) =>
                    $" An element of the map overlaps one it already holds (another range of the same port): look at them (nft list map inet {NftablesTable.Name} {what.Substring("the elements of ".Length, 5)}), delete the one NetnsNat's state store does not know, or publish on another port.",
                Nfnl.EEXIST or 39 /* ENOTEMPTY */ when what.StartsWith("the elements", StringComparison.Ordinal) => " The subnet overlaps one the table's set already holds for the same interfaces, and an nftables interval set holds no overlapping ranges: remove the other first (Get-NatMasquerade -Backend Nftables lists them), or use the same subnet.",
                Nfnl.EPERM => " Another program may own the table, or this process lacks CAP_NET_ADMIN: run PowerShell as root (sudo pwsh).",
                Nfnl.EOPNOTSUPP or Nfnl.ENOENT when what.Contains("creation", StringComparison.Ordinal) => " The kernel may lack an nf_tables feature this table needs (nf_tables with the inet family, nft_nat/nft_masq, nft_ct and concatenated interval sets, Linux 5.6 or later).",
                _ => string.Empty,
            };
            throw new NftablesException($"nf_tables refused {what}: {Nfnl.Strerror(errno)} (errno {errno}). {nothing}{hint}", errno);
        }

        /// <summary>
        /// Undoes an applied plan's part: the elements it added are deleted (never those a table laid again held before),
        /// the ones it deleted are added again (with the table, when it went), and a table it created goes when nothing
        /// else is left in it.
        /// </summary>
        public void Undo(AppliedPlan applied, NatPlan part, RulesetLock held)
        {
            held.Require();
            var p = (NftablesPlan)part;
            var (content, _) = NftablesTable.Read();
            if (content.Exists && !content.Owned) return;
            var delete = p.Batch.Add.Except(content.Missing(p.Batch.Add)).ToArray();
            var add = content.Missing(p.Batch.Delete).ToArray();
            bool deleteAfter = content.Exists && content.Intact && p.Batch.Create && !p.Batch.DeleteFirst && add.Length == 0 && !content.HasOtherThan(delete);
            if (delete.Length == 0 && add.Length == 0 && !deleteAfter) return;
            Write(new NftablesTable.Batch(false, add.Length > 0 && !content.Exists, Array.Empty<NftEntry>(), add, delete, deleteAfter), null, "The undo was not applied.");
        }

        public IReadOnlyList<string> Rules(SubnetNat target) => ElementsOf(target).Select(e => e.Text).ToArray();

        public IReadOnlyList<string> Present(NatState state, SubnetNat target)
        {
            var content = State(state).Content;
            if (!content.Owned || !content.Intact) return Array.Empty<string>();
            return ElementsOf(target).Where(content.Has).Select(e => e.Text).ToArray();
        }

        /// <summary>The table is created and deleted with its elements, in the same batches: nothing for the store to delete later.</summary>
        public IReadOnlyList<string> MissingTables(NatState state, SubnetNat target) => Array.Empty<string>();

        public IReadOnlyList<string> DeleteEmptyTables(IReadOnlyCollection<string> tables, RulesetLock held) => Array.Empty<string>();

        public IReadOnlyList<MasqueradeEntry> Masquerades(NatState state)
        {
            var content = State(state).Content;
            if (!content.Owned) return Array.Empty<MasqueradeEntry>();
            var result = new List<MasqueradeEntry>();
            var note = content.Intact ? null : $"inet {NftablesTable.Name} is not as NetnsNat made it ({content.Problem}); Enable-NamespaceNat or Add-NatMasquerade -Backend Nftables lays it again.";
            foreach (var m in content.Subnets.Where(e => e.Kind == NftSetKind.Masquerade && e.Family == Family))
            {
                var inbound = content.Subnets.Where(e => e.Kind == NftSetKind.Inbound && e.Subnet.Equals(m.Subnet) && e.In == m.Out).ToArray();
                if (inbound.Length == 0)
                {
                    result.Add(new MasqueradeEntry(Cidr.Format(m.Subnet), m.Out, null, new[] { m.Text }, true, note));
                }
                foreach (var i in inbound) result.Add(new MasqueradeEntry(Cidr.Format(m.Subnet), m.Out, i.Out, new[] { m.Text, i.Text }, true, note));
            }
            return result;
        }

        public IReadOnlyList<SubnetNat> OwnTargetsOnBridge(NatState state, string bridge) =>
            State(state).Content.Subnets.Where(e => e.Kind == NftSetKind.Inbound && e.Out == bridge && e.Family == Family)
                .Select(e => new SubnetNat(e.Subnet, e.In!, bridge)).ToArray();

        /// <summary>
        /// NetnsNat's mappings in the table: one per element of the family's DNAT map, with the bridge, subnet and uplink
        /// the state store recorded (or, failing that, what the table's other elements name).
        /// </summary>
        public IReadOnlyList<PortMapping> Mappings(NatState state, Func<PortMapping, PortMapping?> complete)
        {
            var content = State(state).Content;
            if (!content.Exists || !content.Owned) return Array.Empty<PortMapping>();
            var dnat = content.MappingElements(NftSetKind.Dnat, Family).ToArray();
            if (dnat.Length == 0) return Array.Empty<PortMapping>();
            var published = content.MappingElements(NftSetKind.Published, Family).ToArray();
            var hairpins = content.MappingElements(NftSetKind.Hairpin, Family).ToArray();
            var found = new List<PortMapping>(dnat.Length);
            foreach (var e in dnat)
            {
                var bare = e.Mapping;
                if (complete(bare) is { } known)
                {
                    found.Add(known);
                    continue;
                }
                bool Same(PortMapping p) => p.InternalAddress.Equals(bare.InternalAddress) && p.Protocol == bare.Protocol && p.InternalPort == bare.InternalPort;
                var result = bare;
                if (published.FirstOrDefault(p => Same(p.Mapping)) is { } accept) result = result with { Bridge = accept.Mapping.Bridge };
                if (hairpins.FirstOrDefault(h => Same(h.Mapping)) is { } hairpin)
                {
                    result = result with { Subnet = hairpin.Mapping.Subnet };
                    if (content.Subnets.FirstOrDefault(m => m.Kind == NftSetKind.Masquerade && m.Subnet.Equals(hairpin.Mapping.Subnet)) is { } masquerade) result = result with { Outbound = masquerade.Out };
                }
                found.Add(result);
            }
            return found;
        }

        /// <summary>The DNAT map holds no two overlapping keys: a write of a port that is taken fails whole, naming the element.</summary>
        public bool RefusesTakenPorts => true;

        public NatPlan PlanAddMappings(NatState state, IReadOnlyList<PortMapping> mappings)
        {
            var s = State(state);
            RequireOwned(s.Content);
            if (s.Content.Exists && s.Content.Intact) RequirePortsFree(mappings);
            return PlanElements(s, mappings.SelectMany(ElementsOf).DistinctBy(e => e.Text).ToArray());
        }

        /// <summary>
        /// Fails for a mapping whose external side an element of the DNAT map already takes for another target (written by
        /// hand, or left by a lost store): the kernel is asked which element holds the mapping's key.
        /// </summary>
        private static void RequirePortsFree(IReadOnlyList<PortMapping> mappings)
        {
            var keys = mappings.Select(m => (NftEntry)new NftMappingElement(NftSetKind.Dnat, m)).ToArray();
            var holders = NftablesTable.Holders(keys);
            for (int i = 0; i < keys.Length; i++)
            {
                if (holders[i] is not NftMappingElement other || other.Text == keys[i].Text) continue;
                var m = mappings[i];
                throw new NetnsNatException(
                    $"{m.ExternalEndpoint} is taken in inet {NftablesTable.Name}: its map {keys[i].Set} holds '{other.Value}', which NetnsNat's state store does not know (written by hand, or left by a lost store), for the same connections. Nothing was changed for {m}. " +
                    $"Delete it (nft delete element inet {NftablesTable.Name} {keys[i].Set} '{{ {other.KeyText} }}'), or publish on another -ExternalPort.",
                    "PortMappingConflict", ErrorCategory.ResourceExists);
            }
        }

        public NatPlan PlanRemoveMapping(NatState state, PortMapping mapping, IReadOnlyList<PortMapping> staying)
        {
            var s = State(state);
            RequireOwned(s.Content);
            // The hairpin and accept elements that mappings which stay share with this one stay too: only those to the same
            // namespace port can share one (a thousand removed in one call do not format a million elements).
            var kept = staying.Where(s => s.InternalPort == mapping.InternalPort && s.Protocol == mapping.Protocol && s.InternalAddress.Equals(mapping.InternalAddress))
                .SelectMany(ElementsOf).Select(e => e.Text).ToHashSet(StringComparer.Ordinal);
            var mine = ElementsOf(mapping).Where(e => !kept.Contains(e.Text)).ToArray();
            var absent = s.Content.Missing(mine);
            return Deletion(s, mine.Except(absent).ToArray());
        }

        public IReadOnlyList<string> MappingRules(PortMapping mapping) => ElementsOf(mapping).Select(e => e.Text).ToArray();

        public IReadOnlyList<string> MissingMappingRules(NatState state, PortMapping mapping)
        {
            var content = State(state).Content;
            var all = ElementsOf(mapping);
            if (!content.Exists || !content.Owned) return all.Select(e => e.Text).ToArray();
            // In a table changed by hand the elements may stand and do nothing: the table is what is missing until it is laid again.
            if (!content.Intact) return new[] { $"table inet {NftablesTable.Name} as NetnsNat makes it ({content.Problem})" };
            return content.Missing(all).Select(e => e.Text).ToArray();
        }

        /// <summary>
        /// A DNAT of iptables' nat PREROUTING for the mapping's port: both chains are on the same hook at the same priority,
        /// and the first DNAT a connection meets takes it, so the mapping may do nothing while that rule stands.
        /// </summary>
        public (string Rule, string DeleteCommand)? MappingShadowedBy(NatState state, PortMapping mapping) =>
            _iptables?.MappingShadowedBy(_iptables.Read(_token), mapping);

        /// <summary>
        /// iptables' FORWARD (either backend) that drops a new connection from the uplink to the mapping's port, or another
        /// table's forward chain whose policy is drop (certain when it has no rules; NetnsNat does not evaluate nftables
        /// rules): an accept in this table does not override their drop.
        /// </summary>
        public (string Why, string Fix, bool Certain)? MappingBlockedBy(NatState state, PortMapping mapping)
        {
            var (snapshots, chains) = Neighbours();
            var packet = PortMappingRules.InboundPacket(mapping, mapping.Outbound);
            foreach (var (name, tool, snapshot) in snapshots)
            {
                var verdict = ForwardEvaluator.Evaluate(snapshot, packet);
                if (verdict.Accepted) continue;
                return ($"the FORWARD chain of {tool} ({name}) drops its connections ({verdict.By}), and an accept in inet {NftablesTable.Name} does not override a drop in another table",
                    $"{tool} -I FORWARD -d {mapping.InternalAddress} -o {mapping.Bridge} -p {mapping.Protocol} --dport {mapping.InternalPort} -m conntrack --ctstate DNAT -j ACCEPT", true);
            }
            foreach (var (chain, empty) in chains.Where(c => c.PolicyDrop).Select(c => (c.Name, c.Rules.Count == 0)))
            {
                var fix = $"nft insert rule {chain} ct status dnat {(Family == AddressFamilyProfile.IPv4 ? "ip" : "ip6")} daddr {mapping.InternalAddress} {mapping.Protocol} dport {mapping.InternalPort} accept";
                return empty
                    ? ($"the nftables chain '{chain}' on the forward hook drops everything by its policy, and an accept in inet {NftablesTable.Name} does not override it", fix, true)
                    : ($"the nftables chain '{chain}' on the forward hook drops by its policy what its rules do not accept (NetnsNat does not evaluate its rules); if they do not accept the mapping's connections, an accept in inet {NftablesTable.Name} does not override it", fix, false);
            }
            return null;
        }

        /// <summary>A table named netnsnat that NetnsNat did not create is never touched.</summary>
        private static void RequireOwned(NftTableContent content)
        {
            if (!content.Exists || content.Owned) return;
            throw new NetnsNatException(
                $"The nftables table 'inet {NftablesTable.Name}' exists, and NetnsNat did not create it (it lacks NetnsNat's comment), so NetnsNat leaves it alone; nothing was changed. " +
                $"Look at it with 'nft list table inet {NftablesTable.Name}'; delete it ('nft delete table inet {NftablesTable.Name}') if nothing needs it, or use -Backend Iptables.",
                "NftablesTableNotOwned", ErrorCategory.ResourceExists);
        }

        /// <summary>
        /// Fails, before anything changes, when another chain on the forward hook drops the bridge's traffic: iptables'
        /// FORWARD (in the iptables-nft and the legacy backend: Docker and ufw set its policy to DROP), or another table's
        /// base chain whose rules or policy drop it (<see cref="NftForwardEvaluator"/>). An accept in NetnsNat's table does
        /// not override their drop. A chain whose verdict depends on rules NetnsNat does not evaluate is a warning
        /// (<see cref="TakeWarnings"/>).
        /// </summary>
        private void RequireForwardOpen(SubnetNat target)
        {
            var bridge = target.Bridge!;
            var host = target.SampleHost;
            var outside = Family.OutsideExample;
            var (snapshots, chains) = Neighbours();
            foreach (var (name, tool, snapshot) in snapshots)
            {
                var outgoing = ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(bridge, target.Outbound, host, outside, "NEW"));
                var reply = ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(target.Outbound, bridge, outside, host, "ESTABLISHED"));
                if (outgoing.Accepted && reply.Accepted) continue;
                var what = !outgoing.Accepted ? $"new traffic from {bridge} out of {target.Outbound} ({outgoing.By})" : $"replies from {target.Outbound} back to {bridge} ({reply.By})";
                throw new NetnsNatException(
                    $"The FORWARD chain of {tool} ({name}) drops {what}, and an accept in NetnsNat's nftables table does not override a drop in another table: the namespaces on {bridge} would not get out. Nothing was changed. " +
                    $"Let the traffic through FORWARD ('{tool} -I FORWARD -i {bridge} -o {target.Outbound} -j ACCEPT' and '{tool} -I FORWARD -i {target.Outbound} -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'), " +
                    "or use -Backend Iptables, which puts NetnsNat's FORWARD rules above the drop.",
                    "ForwardBlocked", ErrorCategory.ResourceUnavailable);
            }
            // Another table's base chains on the hook: their rules walked for the two packets.
            _warnings.AddRange(NftablesChains.RequireOpen(chains, Family, bridge, target.Outbound, target.Subnet, host, outside));
        }

        private readonly List<string> _warnings = new List<string>();

        public IReadOnlyList<string> TakeWarnings()
        {
            var taken = _warnings.Distinct(StringComparer.Ordinal).ToArray();
            _warnings.Clear();
            return taken;
        }

        /// <summary>iptables' rules in one backend: the backend's result name, its program, and the rules.</summary>
        private sealed record Neighbour(string Name, string Tool, IptablesSnapshot Snapshot);

        private sealed record Neighbourhood(IReadOnlyList<Neighbour> Snapshots, IReadOnlyList<NftablesChains.ForwardChain> Chains);

        private Neighbourhood? _neighbours;

        /// <summary>
        /// What else is on the forward hook, read once per backend (a call's targets and mappings share it): iptables' rules
        /// in the backend iptables uses and in the other one, and other tables' chains whose policy is drop (and whether
        /// they have no rule, when they drop everything).
        /// </summary>
        private Neighbourhood Neighbours()
        {
            if (_neighbours is { } known) return known;
            var snapshots = new List<Neighbour>();
            if (_iptables != null)
            {
                var state = _iptables.Read(_token);
                snapshots.Add(new Neighbour(state.BackendName, Family.Iptables, state.Snapshot));
                if (_iptables.OtherBackend(state, _token) is { } other) snapshots.Add(new Neighbour("iptables-" + (other.Name == "legacy" ? "legacy" : "nft"), other.Tool.Replace("-save", string.Empty, StringComparison.Ordinal), other.Snapshot));
            }
            var result = new Neighbourhood(snapshots, NftablesChains.ForwardChains(Family, skipIptables: _iptables != null));
            _neighbours = result;
            return result;
        }

    }
}
