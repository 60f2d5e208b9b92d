using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Undoes Enable-NamespaceNat: the rules for the bridge's subnet and the namespace's default route via the bridge.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class DisableNamespaceNatCommand : NamespaceNatCmdlet
    {
        /// <summary>Also turn IPv4 forwarding off (other things on the host may need it on).</summary>
        [Parameter]
        public SwitchParameter DisableForwarding { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            if (!CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            var service = new NamespaceNatService(this, Backend(AddressFamilyProfile.IPv4));
            foreach (var given in Namespace)
            {
                if (NamespaceName(given) is not { } ns) continue;
                Guard(ns, () =>
                {
                    var result = service.Disable(ns, Bridge, Outbound, DisableForwarding);
                    if (PassThru && result != null) WriteObject(result);
                });
            }
        }
    }
}
