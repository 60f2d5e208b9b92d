using System.Management.Automation;
using NetnsNat.Linux;

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

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("iptables-save", "iptables-restore");
        }

        protected override void ProcessRecord()
        {
            if (!TryNormalizeSubnet(Subnet, "Subnet", out var network) || !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            var subnet = network.ToString();
            Guard(subnet, () =>
            {
                Steps.RequireInterface(this, Outbound, "Outbound");
                if (Bridge != null)
                {
                    Steps.BridgeSubnets(this, Bridge, requireUp: false);
                    if (Bridge == Outbound)
                    {
                        throw new NetnsNatException($"-Outbound and -Bridge are both '{Bridge}'. -Outbound is the uplink toward the outside, such as eth0.", "OutboundIsBridge", ErrorCategory.InvalidArgument);
                    }
                }
                using var held = RulesetLock.Acquire(Token, Steps.LockTimeout);
                var result = Steps.AddRules(this, subnet, Outbound, Bridge);
                if (result != null) WriteObject(result.Value.Rule);
            });
        }
    }
}
