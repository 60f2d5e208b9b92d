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
        /// <summary>Also turn forwarding off for the families disabled, when no namespace NetnsNat enabled still needs it (other things on the host may).</summary>
        [Parameter]
        public SwitchParameter DisableForwarding { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            if (!CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            var service = Service();
            // Both is every family NetnsNat enabled there, as no -AddressFamily is.
            var families = Families?.Count > 1 ? null : Families;
            foreach (var ns in Namespaces())
            {
                Guard(ns.Display, () =>
                {
                    var result = service.Disable(ns, Bridge, Outbound, DisableForwarding, families);
                    if (PassThru && result != null) WriteObject(result);
                });
            }
        }
    }
}
