using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Backends
{
    /// <summary>
    /// What a firewall backend does for NetnsNat: read the current state, plan the rules of a subnet's NAT (add and
    /// remove), describe a plan as the equivalent commands for -WhatIf, apply it as one transaction, and undo it.
    /// The services above never see a rule format; a second backend is a second implementation of this.
    /// </summary>
    internal interface INatBackend
    {
        AddressFamilyProfile Family { get; }

        /// <summary>The programs the backend runs, checked before a cmdlet starts (ToolNotFound names the package).</summary>
        IReadOnlyList<string> RequiredTools { get; }

        /// <summary>The programs reading alone needs.</summary>
        IReadOnlyList<string> ReadTools { get; }

        /// <summary>The current rules (a cached copy while the kernel says nothing changed).</summary>
        NatState Read(CancellationToken token);

        /// <summary>What makes the state hold the target's rules (nothing when they stand as they should).</summary>
        NatPlan PlanAdd(NatState state, SubnetNat target);

        /// <summary>
        /// What the plans made so far found that may block a bridge's traffic but could not tell (another table's rules
        /// NetnsNat does not evaluate), each once; emptied by the call. A drop it can tell fails PlanAdd instead.
        /// </summary>
        IReadOnlyList<string> TakeWarnings();

        /// <summary>What takes the target's rules away (every copy of each).</summary>
        NatPlan PlanRemove(NatState state, SubnetNat target);

        /// <summary>Several plans made against the same state, as one.</summary>
        NatPlan Merge(IReadOnlyList<NatPlan> plans);

        /// <summary>
        /// Applies a plan as one transaction (all of it or, after a failure, none of it), under the ruleset lock.
        /// Throws RulesetMovedException, having changed nothing, when another program changed the rules since the
        /// plan's state was read.
        /// </summary>
        AppliedPlan Apply(NatPlan plan, RulesetLock held, CancellationToken token);

        /// <summary>
        /// Undoes what an applied plan did for one of the plans merged into it (or for all of it), under the same lock;
        /// runs even after Ctrl+C.
        /// </summary>
        void Undo(AppliedPlan applied, NatPlan part, RulesetLock held);

        /// <summary>Every rule the target needs, in the backend's own text (what the state store and the result objects hold).</summary>
        IReadOnlyList<string> Rules(SubnetNat target);

        /// <summary>The rules of the target that stand now, in the backend's own text (what the state store records).</summary>
        IReadOnlyList<string> Present(NatState state, SubnetNat target);

        /// <summary>What takes away the given rules of the target (one copy each): the ones NetnsNat added, not the ones it found.</summary>
        NatPlan PlanRemoveOwned(NatState state, SubnetNat target, IReadOnlyCollection<string> owned);

        /// <summary>The tables the target's rules go into that do not exist yet ("ip nat"), which the write will create.</summary>
        IReadOnlyList<string> MissingTables(NatState state, SubnetNat target);

        /// <summary>Deletes those of the tables that are empty (no rules, no chains of anyone's, policies ACCEPT); returns the ones deleted.</summary>
        IReadOnlyList<string> DeleteEmptyTables(IReadOnlyCollection<string> tables, RulesetLock held);

        /// <summary>The masquerade rules there are (NetnsNat's and others'), with what NetnsNat keeps beside them.</summary>
        IReadOnlyList<MasqueradeEntry> Masquerades(NatState state);

        /// <summary>The subnet NATs whose FORWARD rules of NetnsNat's name this bridge.</summary>
        IReadOnlyList<SubnetNat> OwnTargetsOnBridge(NatState state, string bridge);

        /// <summary>
        /// NetnsNat's port mappings in the rules; complete gives what the state store knows of one (its bridge, subnet
        /// and uplink), or null, and the rules are asked then.
        /// </summary>
        IReadOnlyList<PortMapping> Mappings(NatState state, Func<PortMapping, PortMapping?> complete);

        /// <summary>
        /// Whether a write of a mapping whose external port another mapping in the rules takes fails whole (nftables' map
        /// holds no two overlapping keys); when it does, a caller needs no listing of the mappings to find the one in the way.
        /// </summary>
        bool RefusesTakenPorts { get; }

        /// <summary>What makes the state hold the mappings' rules (nothing when they stand as they should).</summary>
        NatPlan PlanAddMappings(NatState state, IReadOnlyList<PortMapping> mappings);

        /// <summary>What takes a mapping's rules away, but not those that mappings which stay share with it.</summary>
        NatPlan PlanRemoveMapping(NatState state, PortMapping mapping, IReadOnlyList<PortMapping> staying);

        /// <summary>Every rule of a mapping, in the backend's own text.</summary>
        IReadOnlyList<string> MappingRules(PortMapping mapping);

        /// <summary>The rules of a mapping that do not stand now, in the backend's own text (or, when its table was changed by hand, that table).</summary>
        IReadOnlyList<string> MissingMappingRules(NatState state, PortMapping mapping);

        /// <summary>
        /// Another program's rule that takes the mapping's connections before NetnsNat's does, in the backend's own text,
        /// with the command that deletes it; null when none.
        /// </summary>
        (string Rule, string DeleteCommand)? MappingShadowedBy(NatState state, PortMapping mapping);

        /// <summary>
        /// What else on the forward hook drops a new connection to the mapping from its uplink, which the backend's own
        /// rules cannot override, with the command that lets it through; Certain is false when NetnsNat could not evaluate
        /// it (another nftables table's rules). Null when nothing does.
        /// </summary>
        (string Why, string Fix, bool Certain)? MappingBlockedBy(NatState state, PortMapping mapping);
    }

    /// <summary>A backend's view of the rules at one moment; never changed once read.</summary>
    internal abstract class NatState
    {
        /// <summary>Which backend holds the rules, as result objects name it ("nf_tables", "legacy").</summary>
        public abstract string BackendName { get; }
    }

    /// <summary>One change of a plan, as the command that makes it (what -WhatIf shows and -Confirm asks about).</summary>
    /// <param name="Tool">The program whose command line makes the change.</param>
    /// <param name="Arguments">Its arguments.</param>
    /// <param name="IsAddition">True when the change adds a rule (or element), false when it removes one.</param>
    /// <param name="RuleText">The rule (or element) the change is about, as the backend's own listing shows it.</param>
    /// <param name="Structural">A change of a table itself (its creation or deletion), not of a rule or element: not counted as one.</param>
    internal sealed record PlannedChange(string Tool, IReadOnlyList<string> Arguments, bool IsAddition, string RuleText, bool Structural = false)
    {
        public string CommandLine => ProcessRunner.FormatCommandLine(Tool, Arguments);
    }

    /// <summary>A backend's plan: its changes in order, each describable as a command.</summary>
    internal abstract class NatPlan
    {
        public abstract IReadOnlyList<PlannedChange> Changes { get; }

        public bool IsEmpty => Changes.Count == 0;

        public int Count => Changes.Count;

        /// <summary>The rules (or elements) the plan adds; a table's creation is not one.</summary>
        public int Additions => Changes.Count(c => c.IsAddition && !c.Structural);

        /// <summary>The rules (or elements) the plan deletes; a table's deletion is not one.</summary>
        public int Deletions => Changes.Count(c => !c.IsAddition && !c.Structural);

        /// <summary>The plan with only the changes a -Confirm answer approved.</summary>
        public abstract NatPlan Only(ICollection<PlannedChange> approved);
    }

    /// <summary>What Apply did: enough to undo it, and how it was written (for -Verbose).</summary>
    internal abstract class AppliedPlan
    {
        /// <summary>"one nf_tables netlink batch (0.13 ms)", "one iptables-restore (3.20 ms)".</summary>
        public abstract string How { get; }

        public abstract int Count { get; }
    }

    /// <summary>A masquerade rule as Get-NatMasquerade lists it.</summary>
    internal sealed record MasqueradeEntry(string Subnet, string Outbound, string? Bridge, IReadOnlyList<string> Rules, bool Removable, string? Note);

    /// <summary>The kernel's ruleset changed between the read a plan was made from and its write; nothing was applied.</summary>
    internal sealed class RulesetMovedException : Exception
    {
        public RulesetMovedException()
            : base("Another program changed the ruleset between NetnsNat's read and its write; nothing of this call was applied.")
        {
        }
    }

    /// <summary>Picks the backend for an address family: iptables (through nf_tables or legacy) or NetnsNat's own nftables table.</summary>
    internal static class BackendFactory
    {
        public static INatBackend Create(ProcessRunner runner, AddressFamilyProfile family, NatBackendKind kind, Action<string>? debug = null, NftablesSession? session = null) => Resolve(kind) switch
        {
            NatBackendKind.Nftables => new NftablesBackend(family, ProcessRunner.Which(family.IptablesSave) != null ? new IptablesBackend(runner, family, debug) : null, debug, session),
            _ => new IptablesBackend(runner, family, debug),
        };

        /// <summary>
        /// Auto: iptables when iptables is installed (the lesson's checks keep working): the iptables program, or the
        /// iptables-save and iptables-restore the backend runs; else nftables.
        /// </summary>
        public static NatBackendKind Resolve(NatBackendKind kind) =>
            kind != NatBackendKind.Auto ? kind
            : ProcessRunner.Which("iptables") != null || (ProcessRunner.Which("iptables-save") != null && ProcessRunner.Which("iptables-restore") != null) ? NatBackendKind.Iptables
            : NatBackendKind.Nftables;

        /// <summary>
        /// The backends a listing looks in: the one given; for Auto, iptables when installed and nftables when the kernel has
        /// nf_tables (NetnsNat's table is read only when it exists).
        /// </summary>
        public static IReadOnlyList<NatBackendKind> Listed(NatBackendKind kind, AddressFamilyProfile family)
        {
            if (kind != NatBackendKind.Auto) return new[] { kind };
            var kinds = new List<NatBackendKind>();
            if (ProcessRunner.Which(family.IptablesSave) != null) kinds.Add(NatBackendKind.Iptables);
            if (NftGeneration.Read() != null) kinds.Add(NatBackendKind.Nftables);
            return kinds;
        }

        /// <summary>A backend as result objects name it ("iptables-nft", "iptables-legacy", "nftables", and 0.1's "nf_tables" and "legacy").</summary>
        public static NatBackendKind? FromResultName(string? name) => name?.ToLowerInvariant() switch
        {
            "iptables-nft" or "iptables-legacy" or "nf_tables" or "legacy" or "iptables" => NatBackendKind.Iptables,
            "nftables" => NatBackendKind.Nftables,
            _ => null,
        };

        /// <summary>The kind the state store records a binding's backend by ("iptables", "nftables").</summary>
        public static string StoreName(NatBackendKind kind) => Resolve(kind) == NatBackendKind.Nftables ? NftablesBackend.Name : "iptables";

        /// <summary>The kind of a binding's backend as the state store records it.</summary>
        public static NatBackendKind FromStoreName(string? name) => name == NftablesBackend.Name ? NatBackendKind.Nftables : NatBackendKind.Iptables;
    }
}
