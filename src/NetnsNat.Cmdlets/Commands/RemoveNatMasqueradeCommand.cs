using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Removes a MASQUERADE rule and the FORWARD rules Add-NatMasquerade made for it, and nothing else.</summary>
    [Cmdlet(VerbsCommon.Remove, "NatMasquerade", SupportsShouldProcess = true, DefaultParameterSetName = ByObjectSet)]
    [OutputType(typeof(NatMasqueradeRule))]
    public sealed class RemoveNatMasqueradeCommand : NetnsCmdlet
    {
        private const string ByFieldsSet = "ByFields";
        private const string ByObjectSet = "ByObject";

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string Subnet { get; set; } = string.Empty;

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string Outbound { get; set; } = string.Empty;

        [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByObjectSet)]
        public NatMasqueradeRule[] InputObject { get; set; } = new NatMasqueradeRule[0];

        /// <summary>Iptables, Nftables, or Auto: iptables when an iptables program is installed. A rule object piped in names its own.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [NatBackendTransformation]
        public NatBackendKind Backend { get; set; }

        internal override NatBackendKind BackendChoice => Backend;

        /// <summary>Emit the removed rule.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        /// <summary>Removes the rules even when namespaces NetnsNat enabled still use them (their bindings stay, RulesMissing).</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(System.Linq.Enumerable.ToArray(BackendFor(AddressFamilyProfile.IPv4).RequiredTools));
        }

        /// <summary>
        /// Auto: where the subnet's NAT is: NetnsNat's nftables table when it holds the subnet's masquerade element, else
        /// the host's default backend (iptables when installed).
        /// </summary>
        private NatBackendKind WhereIs(SubnetNat target)
        {
            if (Linux.NftGeneration.Read() != null)
            {
                var nft = (Backends.NftablesBackend)BackendFor(target.Family, NatBackendKind.Nftables);
                var state = nft.Read(Token);
                if (state.Content.Exists && state.Content.Owned && state.Content.Has(Backends.NftablesBackend.ElementsOf(target)[0])) return NatBackendKind.Nftables;
            }
            return Backends.BackendFactory.Resolve(NatBackendKind.Auto);
        }

        /// <summary>
        /// The rules of a namespace NetnsNat enabled are its Disable's to remove: without -Force, an error that names the
        /// namespaces and changes nothing (removed, they would be left without NAT, and their subnet without the drop of
        /// new connections from outside).
        /// </summary>
        private static void RequireUnused(SubnetNat target, NatBackendKind kind, NatTransaction tx)
        {
            var backend = Backends.BackendFactory.StoreName(kind);
            var users = StateStore.Load(tx.Lock).Bindings
                .Where(b => b.Family == target.Family.Name && b.Subnet == target.SubnetText && b.Outbound == target.Outbound && (target.Bridge == null || b.Bridge == target.Bridge) && b.Backend == backend)
                .ToArray();
            if (users.Length == 0) return;
            var names = string.Join(", ", users.Select(b => $"'{b.Namespace}' on {b.Bridge}").Distinct(StringComparer.Ordinal));
            var disable = string.Join("; ", users.Select(b => $"Disable-NamespaceNat {b.Namespace} {b.Bridge}").Distinct(StringComparer.Ordinal));
            throw new NetnsNatException(
                $"The NAT of {target.SubnetText} via {target.Outbound} is what Enable-NamespaceNat set up for {names}, which still {(users.Length == 1 ? "uses" : "use")} it: removed, {(users.Length == 1 ? "that namespace" : "those namespaces")} would lose NAT (Get-NamespaceNat: RulesMissing), and the subnet the drop of new connections from outside. Nothing was changed. " +
                $"Disable {(users.Length == 1 ? "it" : "them")} instead ({disable}), which removes the rules once no namespace uses them, or add -Force to remove them anyway.",
                "RulesInUse", ErrorCategory.ResourceBusy);
        }

        protected override void ProcessRecord()
        {
            var items = new List<(string Subnet, string Outbound, string? Bridge, NatBackendKind Kind)>();
            if (ParameterSetName == ByObjectSet)
            {
                foreach (var rule in InputObject)
                {
                    if (!rule.Removable)
                    {
                        // A rule of another shape (Docker's "! -o docker0", ports, options): never a silent nothing.
                        WriteError(new ErrorRecord(new InvalidOperationException(rule.Note ?? $"The MASQUERADE rule for {rule.Subnet} via {rule.Outbound} is not of NetnsNat's shape; remove it with iptables -t nat -D POSTROUTING."),
                            "RuleNotRemovable", ErrorCategory.InvalidOperation, rule));
                        continue;
                    }
                    items.Add((rule.Subnet, rule.Outbound, rule.Bridge, Backends.BackendFactory.FromResultName(rule.Backend) ?? NatBackendKind.Iptables));
                }
            }
            else
            {
                items.Add((Subnet, Outbound, Bridge, Backend));
            }
            foreach (var item in items)
            {
                if (!TryNormalizeSubnet(item.Subnet, "Subnet", out var network, forNat: false) || !CheckInterfaceName(item.Outbound, "Outbound")) continue;
                if (item.Bridge != null && !CheckInterfaceName(item.Bridge, "Bridge")) continue;
                var target = new SubnetNat(network, item.Outbound, item.Bridge);
                Guard(target.SubnetText, () =>
                {
                    var kind = item.Kind == NatBackendKind.Auto ? WhereIs(target) : item.Kind;
                    var backend = BackendFor(target.Family, kind);
                    RequireTools(backend.RequiredTools.ToArray());
                    using var tx = NatTransaction.Begin(this, Linux.Settings.LockTimeout);
                    if (!Force) RequireUnused(target, kind, tx);
                    var removed = new RuleService(this, backend).Remove(new[] { target }, target.ToString(), tx, null, item.Bridge);
                    if (removed != null) StoreNotes.Removed(target.Family.Name, target.SubnetText, item.Outbound, item.Bridge, Backends.BackendFactory.StoreName(kind), tx);
                    tx.Complete();
                    if (removed != null && PassThru) WriteObject(removed);
                });
            }
        }
    }
}
