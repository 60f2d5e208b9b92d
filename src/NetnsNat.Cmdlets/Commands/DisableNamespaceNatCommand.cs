using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Undoes Enable-NamespaceNat for a namespace: its route via the bridge, its resolver, and the rules NetnsNat added
    /// for it once no other namespace it enabled uses them.
    /// </summary>
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
            foreach (var ns in Namespaces())
            {
                Guard(ns.Display, () =>
                {
                    var result = service.Disable(ns, Bridge, Outbound, DisableForwarding);
                    if (PassThru && result != null) WriteObject(result);
                });
            }
        }
    }
}
