using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>The host's interfaces as the NAT flow needs them: one by name, a bridge's subnets, the uplink.</summary>
    internal sealed class InterfaceService
    {
        private readonly ICommandHost _host;
        private readonly IpRoute2 _ip;

        public InterfaceService(ICommandHost host)
        {
            _host = host;
            _ip = new IpRoute2(host.Runner);
        }

        public IpRoute2 Ip => _ip;

        /// <summary>One interface by name (no walk over all of them), or a clear error naming the ones there are.</summary>
        public LinkInfo RequireInterface(string name, string parameter) => RequireInterface(_ip.Link(name, _host.Token), name, parameter);

        /// <summary>Fails when the bridge vanished while the call ran (checked before declaring success).</summary>
        public void RequireBridgeStillThere(string bridge)
        {
            // /sys/class/net answers when it showed this namespace's interfaces to the earlier look-ups of the call.
            if (_ip.SysfsIsOurs ? System.IO.Directory.Exists(System.IO.Path.Combine("/sys/class/net", bridge)) : InterfaceTable.Exists(bridge)) return;
            throw new NetnsNatException(
                $"The bridge '{bridge}' was removed while NAT was being set up; what this call applied has been rolled back. Create the bridge again and rerun.",
                "BridgeRemoved", ErrorCategory.ObjectNotFound);
        }

        public static LinkInfo RequireInterface(LinkInfo? link, string name, string parameter)
        {
            if (link != null) return link;
            var all = InterfaceTable.Names().Where(n => n != "lo").ToArray();
            var names = all.Length > 12 ? string.Join(", ", all.Take(12)) + $" and {all.Length - 12} more" : string.Join(", ", all);
            throw new NetnsNatException(
                $"-{parameter}: there is no interface '{name}' in this network namespace (it has: {(names.Length == 0 ? "none" : names)}). " +
                (parameter == "Bridge" || parameter == "Name"
                    ? $"Create the bridge first: ip link add {name} type bridge; ip addr add 10.0.0.1/24 dev {name}; ip link set {name} up."
                    : "Use the interface that 'ip route show default' names after 'dev'."),
                "InterfaceNotFound", ErrorCategory.ObjectNotFound);
        }

        /// <summary>The subnets of a bridge by name; throws a clear error when it is missing, not a bridge, unaddressed, or (if asked) down.</summary>
        public IReadOnlyList<BridgeSubnet> BridgeSubnets(string bridge, bool requireUp, string parameter = "Bridge", IReadOnlyList<AddressFamilyProfile>? families = null) =>
            BridgeSubnets(RequireInterface(bridge, parameter), requireUp, families);

        /// <summary>Both families, IPv4 first.</summary>
        public static readonly IReadOnlyList<AddressFamilyProfile> AllFamilies = AddressFamilyProfile.All;

        /// <summary>
        /// The subnets of a bridge (IPv4 first, then IPv6 global and unique-local; never link-local) of the families asked
        /// (all by default); throws a clear error when it is not a bridge, has no address of those families, or (if
        /// asked) is down.
        /// </summary>
        public static IReadOnlyList<BridgeSubnet> BridgeSubnets(LinkInfo link, bool requireUp, IReadOnlyList<AddressFamilyProfile>? families = null)
        {
            var name = link.Name;
            if (!link.IsBridge)
            {
                throw new NetnsNatException(
                    $"'{name}' is a {link.Kind ?? "plain"} interface, not a bridge. Give the bridge the namespaces are attached to (list them with 'ip link show type bridge').",
                    "NotABridge", ErrorCategory.InvalidArgument);
            }
            var wanted = families ?? AllFamilies;
            var subnets = wanted.SelectMany(f => link.Of(f).Select(a => ToSubnet(name, a, link.IsUp))).ToArray();
            if (subnets.Length == 0)
            {
                if (wanted.Count == 1 && wanted[0] == AddressFamilyProfile.IPv6)
                {
                    throw new NetnsNatException(
                        $"The bridge '{name}' has no IPv6 address but link-local ones, so there is no IPv6 subnet to masquerade and no gateway. Give it one (nodad: no wait for duplicate address detection): ip -6 addr add fd00:0:0:1::1/64 dev {name} nodad.",
                        "BridgeHasNoIpv6Address", ErrorCategory.ObjectNotFound);
                }
                if (wanted.Count == 1)
                {
                    throw new NetnsNatException(
                        $"The bridge '{name}' has no IPv4 address, so there is no IPv4 subnet to masquerade and no gateway for the namespaces. Give it one: ip addr add 10.0.0.1/24 dev {name}.",
                        "BridgeHasNoIpv4Address", ErrorCategory.ObjectNotFound);
                }
                throw new NetnsNatException(
                    $"The bridge '{name}' has no address (link-local IPv6 ones do not count), so there is no subnet to masquerade and no gateway for the namespaces. Give it one: ip addr add 10.0.0.1/24 dev {name} (or ip -6 addr add fd00:0:0:1::1/64 dev {name} nodad).",
                    "BridgeHasNoAddress", ErrorCategory.ObjectNotFound);
            }
            if (requireUp && !link.IsUp)
            {
                throw new NetnsNatException(
                    $"The bridge '{name}' is down, so nothing can pass through it. Bring it up: ip link set {name} up.",
                    "BridgeDown", ErrorCategory.InvalidOperation);
            }
            return subnets;
        }

        public static BridgeSubnet ToSubnet(string bridge, IpPrefix address, bool isUp) =>
            new BridgeSubnet(bridge, address.Address.ToString(), address.PrefixLength, Cidr.Format(address.Network), isUp);

        /// <summary>The interface of the host's default route for a family, or a clear error.</summary>
        public static string DefaultOutbound(AddressFamilyProfile family)
        {
            return IpRoute2.DefaultRouteInterface(family) ?? throw new NetnsNatException(
                $"This network namespace has no {family.Name} default route, so there is no uplink to masquerade out of. Pass -Outbound with the uplink interface, " +
                $"or add a default route first ({(family == AddressFamilyProfile.IPv6 ? "ip -6 route" : "ip route")} add default via ROUTER dev IFACE).",
                "NoDefaultRoute", ErrorCategory.ObjectNotFound);
        }
    }
}
