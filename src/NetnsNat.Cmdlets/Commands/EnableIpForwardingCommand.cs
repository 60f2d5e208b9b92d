using System.Management.Automation;

namespace NetnsNat.Commands
{
    /// <summary>Turns on packet forwarding in the kernel of the current network namespace.</summary>
    [Cmdlet(VerbsLifecycle.Enable, "IpForwarding", SupportsShouldProcess = true)]
    [OutputType(typeof(IpForwardingState))]
    public sealed class EnableIpForwardingCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6")]
        public string AddressFamily { get; set; } = "IPv4";

        protected override void BeginProcessing() => RequireNetAdmin();

        protected override void ProcessRecord() => Guard(AddressFamily, () =>
        {
            var state = Steps.SetForwarding(this, AddressFamily, true);
            if (state != null) WriteObject(state);
        });
    }

    /// <summary>Turns off packet forwarding in the kernel of the current network namespace.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "IpForwarding", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(IpForwardingState))]
    public sealed class DisableIpForwardingCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6")]
        public string AddressFamily { get; set; } = "IPv4";

        protected override void BeginProcessing() => RequireNetAdmin();

        protected override void ProcessRecord() => Guard(AddressFamily, () =>
        {
            var state = Steps.SetForwarding(this, AddressFamily, false);
            if (state != null) WriteObject(state);
        });
    }
}
