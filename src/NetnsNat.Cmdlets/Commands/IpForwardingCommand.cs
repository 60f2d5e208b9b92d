using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>What Enable-IpForwarding and Disable-IpForwarding share: the family, and one write when it differs.</summary>
    public abstract class IpForwardingCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6")]
        public string AddressFamily { get; set; } = "IPv4";

        /// <summary>The value this cmdlet sets.</summary>
        protected abstract bool Value { get; }

        protected override void Begin() => RequireNetAdmin();

        protected override void ProcessRecord() => Guard(AddressFamily, () =>
        {
            var state = new ForwardingService(this).Set(AddressFamilyProfile.Parse(AddressFamily), Value);
            if (state != null) WriteObject(state);
        });
    }
}
