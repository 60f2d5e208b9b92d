using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Adds the MASQUERADE rule for a subnet out of an uplink and, with -Bridge, the FORWARD rules for it.</summary>
    [Cmdlet(VerbsCommon.Add, "NatMasquerade", SupportsShouldProcess = true)]
    [OutputType(typeof(NatMasqueradeRule))]
    public sealed class AddNatMasqueradeCommand : NetnsCmdlet
    {
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string Subnet { get; set; } = string.Empty;

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string Outbound { get; set; } = string.Empty;

        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        /// <summary>Iptables, Nftables (NetnsNat's own table, inet netnsnat), or Auto: iptables when an iptables program is installed.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [NatBackendTransformation]
        public NatBackendKind Backend { get; set; }

        internal override NatBackendKind BackendChoice => Backend;

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(System.Linq.Enumerable.ToArray(BackendFor(AddressFamilyProfile.IPv4).RequiredTools));
        }

        protected override void ProcessRecord()
        {
            if (!TryNormalizeSubnet(Subnet, "Subnet", out var network) || !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            var target = new SubnetNat(network, Outbound, Bridge);
            Guard(target.SubnetText, () =>
            {
                RequireTools(BackendFor(target.Family).RequiredTools.ToArray());
                var interfaces = new InterfaceService(this);
                interfaces.RequireInterface(Outbound, "Outbound");
                if (Bridge != null)
                {
                    interfaces.BridgeSubnets(Bridge, requireUp: false, families: new[] { target.Family });
                    if (Bridge == Outbound)
                    {
                        throw new NetnsNatException($"-Outbound and -Bridge are both '{Bridge}'. -Outbound is the uplink toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
                    }
                }
                using var tx = NatTransaction.Begin(this, Linux.Settings.LockTimeout);
                var outcomes = new RuleService(this, BackendFor(target.Family)).Add(new[] { target }, tx, _ => null);
                if (outcomes != null && Bridge != null)
                {
                    StoreNotes.Added(new SubnetNatKey(target.Family.Name, target.SubnetText, Outbound, Bridge, Backends.BackendFactory.StoreName(Backend)), outcomes[0].Plan.Changes.Where(c => c.IsAddition && !c.Structural).Select(c => c.RuleText).Intersect(outcomes[0].Rule.Rules), tx);
                }
                tx.Complete();
                if (outcomes != null && outcomes.Count > 0) WriteObject(outcomes[0].Rule);
            });
        }
    }
}
