using System.Management.Automation;

namespace NetnsNat.Commands
{
    /// <summary>Turns off packet forwarding in the kernel of the current network namespace.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "IpForwarding", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(IpForwardingState))]
    public sealed class DisableIpForwardingCommand : IpForwardingCommand
    {
        protected override bool Value => false;
    }
}
