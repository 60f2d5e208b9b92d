using System.Net;
using NetnsNat.Linux;

namespace NetnsNat.Model
{
    /// <summary>The NAT of one subnet out of one uplink, with the FORWARD rules of a bridge when Bridge is set.</summary>
    /// <param name="Subnet">The network that is masqueraded.</param>
    /// <param name="Outbound">The uplink its traffic leaves by.</param>
    /// <param name="Bridge">The bridge the namespaces are on; null for the MASQUERADE rule alone.</param>
    internal sealed record SubnetNat(IPNetwork Subnet, string Outbound, string? Bridge)
    {
        public AddressFamilyProfile Family => AddressFamilyProfile.Of(Subnet);

        /// <summary>The subnet as iptables prints it.</summary>
        public string SubnetText => Cidr.Format(Subnet);

        /// <summary>An address of the subnet to evaluate rules with: its first host (the network address of a /31, /32, /127, /128).</summary>
        public IPAddress SampleHost
        {
            get
            {
                var bytes = Subnet.BaseAddress.GetAddressBytes();
                if (Subnet.PrefixLength < Family.MaxPrefix - 1) bytes[^1] |= 1;
                return new IPAddress(bytes);
            }
        }

        public override string ToString() => $"{SubnetText} via {Outbound}";
    }

    /// <summary>
    /// One namespace's NAT, as the core works with it: the namespace, the bridge it is on and the bridge subnet its
    /// address is in, the gateway (the bridge's address on that subnet), the uplink, and the family.
    /// </summary>
    internal sealed record NatBinding(string Namespace, string Bridge, IPNetwork Subnet, IPAddress Gateway, string Outbound)
    {
        public AddressFamilyProfile Family => AddressFamilyProfile.Of(Subnet);

        /// <summary>The rules this binding needs (shared with every other namespace on the same bridge, subnet and uplink).</summary>
        public SubnetNat Rules => new SubnetNat(Subnet, Outbound, Bridge);
    }
}
