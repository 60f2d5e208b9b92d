using System.Management.Automation;

namespace NetnsNat.Commands
{
    /// <summary>Turns on packet forwarding in the kernel of the current network namespace.</summary>
    [Cmdlet(VerbsLifecycle.Enable, "IpForwarding", SupportsShouldProcess = true)]
    [OutputType(typeof(IpForwardingState))]
    public sealed class EnableIpForwardingCommand : IpForwardingCommand
    {
        protected override bool Value => true;
    }
}
