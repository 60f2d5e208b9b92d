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
            if (family == AddressFamilyProfile.IPv6 && !Value)
            {
                DisableIpv6(service);
                return;
            }
            var state = service.Set(family, Value);
            if (state != null && family == AddressFamilyProfile.IPv6) WarnAboutRouterAdvertisements();
            if (state != null) WriteObject(state);
        });

        /// <summary>
        /// IPv6 forwarding turned on: a warning when the uplink's accept_ra is 1 (the kernel then ignores its router
        /// advertisements). Enable-NamespaceNat raises it itself.
        /// </summary>
        private void WarnAboutRouterAdvertisements()
        {
            var uplink = Linux.IpRoute2.DefaultRouteInterface(AddressFamilyProfile.IPv6);
            if (uplink == null || ForwardingService.ReadAcceptRa(uplink) != 1) return;
            var key = ForwardingService.AcceptRaKey(uplink);
            WriteWarning($"With IPv6 forwarding on, the kernel ignores router advertisements on {uplink} ({key} = 1): an IPv6 default route it learned by SLAAC is lost when it expires. " +
                $"Set it to 2 (sysctl -w {key}=2); Enable-NamespaceNat does that for the uplink it uses.");
        }

        /// <summary>
        /// IPv6 forwarding turned off, in one transaction under the lock: the sysctl, the accept_ra values NetnsNat
        /// raised put back, and the state store told; a lock that cannot be had or a store that cannot be read changes
        /// nothing.
        /// </summary>
        private void DisableIpv6(ForwardingService service)
        {
            var family = AddressFamilyProfile.IPv6;
            using var tx = NatTransaction.Begin(this, Linux.Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var state = service.Set(family, false, tx);
            if (state == null) return;
            if (state.Changed && (store.AcceptRaChanged.Count > 0 || store.ForwardingTurnedOn.Contains(family.Name)))
            {
                service.RestoreAcceptRa(store, tx);
                store.ForwardingTurnedOn.Remove(family.Name);
                StateStore.Save(store, tx.Lock);
            }
            tx.Complete();
            WriteObject(state);
        }
    }
}
