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
            var family = AddressFamilyProfile.Parse(AddressFamily);
            var service = new ForwardingService(this);
            var state = service.Set(family, Value);
            if (state != null && family == AddressFamilyProfile.IPv6) AfterIpv6(service, state);
            if (state != null) WriteObject(state);
        });

        /// <summary>
        /// IPv6 forwarding and router advertisements: turned on, a warning when the uplink's accept_ra is 1 (the kernel
        /// then ignores its router advertisements); turned off, the accept_ra values NetnsNat raised go back.
        /// </summary>
        private void AfterIpv6(ForwardingService service, IpForwardingState state)
        {
            if (state.Enabled)
            {
                var uplink = Linux.IpRoute2.DefaultRouteInterface(AddressFamilyProfile.IPv6);
                if (uplink != null && ForwardingService.ReadAcceptRa(uplink) == 1)
                {
                    WriteWarning($"With IPv6 forwarding on, the kernel ignores router advertisements on {uplink} (net.ipv6.conf.{uplink}.accept_ra = 1): an IPv6 default route it learned by SLAAC is lost when it expires. " +
                        $"Set it to 2 (sysctl -w net.ipv6.conf.{uplink}.accept_ra=2); Enable-NamespaceNat does that for the uplink it uses.");
                }
                return;
            }
            if (!state.Changed) return;
            using var tx = NatTransaction.Begin(this, Linux.Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            if (store.AcceptRaChanged.Count == 0 && !store.ForwardingTurnedOn.Contains(AddressFamilyProfile.IPv6.Name)) return;
            service.RestoreAcceptRa(store, tx);
            store.ForwardingTurnedOn.Remove(AddressFamilyProfile.IPv6.Name);
            StateStore.Save(store, tx.Lock);
            tx.Complete();
        }
    }
}
