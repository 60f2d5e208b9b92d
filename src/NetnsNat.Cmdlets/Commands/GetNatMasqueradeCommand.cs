using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Lists the MASQUERADE rules of nat POSTROUTING with their subnets, uplinks and NetnsNat's FORWARD rules.</summary>
    [Cmdlet(VerbsCommon.Get, "NatMasquerade")]
    [OutputType(typeof(NatMasqueradeRule))]
    public sealed class GetNatMasqueradeCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string? Subnet { get; set; }

        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        /// <summary>Only the rules of this family (iptables or ip6tables); both by default.</summary>
        [Parameter]
        [ValidateSet("IPv4", "IPv6")]
        public string? AddressFamily { get; set; }

        /// <summary>Iptables or Nftables: only that backend's rules. By default both: iptables' (when installed) and NetnsNat's nftables table (when it exists).</summary>
        [Parameter]
        public NatBackendKind Backend { get; set; }

        protected override void Begin()
        {
            RequireNetAdmin();
            if (Backend == NatBackendKind.Iptables) RequireTools(BackendFor(AddressFamilyProfile.IPv4, NatBackendKind.Iptables).ReadTools.ToArray());
        }

        protected override void ProcessRecord()
        {
            string? subnet = null;
            if (Subnet != null)
            {
                if (!TryNormalizeSubnet(Subnet, "Subnet", out var network, forNat: false)) return;
                subnet = Cidr.Format(network);
            }
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            Guard(subnet, () =>
            {
                var families = subnet != null ? new[] { AddressFamilyProfile.Of(System.Net.IPNetwork.Parse(subnet)) }
                    : AddressFamilyProfile.Select(AddressFamily) ?? AddressFamilyProfile.All;
                foreach (var family in families) List(family, subnet);
            });
        }

        /// <summary>The masquerade rules of one family, filtered: of each backend asked for.</summary>
        private void List(AddressFamilyProfile family, string? subnet)
        {
            var kinds = Backends.BackendFactory.Listed(Backend, family);
            foreach (var kind in kinds) List(family, subnet, kind);
        }

        private void List(AddressFamilyProfile family, string? subnet, NatBackendKind kind)
        {
            var backend = BackendFor(family, kind);
            var state = backend.Read(Token);
            foreach (var entry in backend.Masquerades(state))
            {
                if (subnet != null && entry.Subnet != subnet) continue;
                if (Outbound != null && entry.Outbound != Outbound) continue;
                if (Bridge != null && entry.Bridge != Bridge) continue;
                WriteObject(new NatMasqueradeRule(entry.Subnet, entry.Outbound, entry.Bridge, state.BackendName, entry.Rules, 0, entry.Removable, entry.Note));
            }
        }
    }
}
