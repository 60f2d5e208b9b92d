using System;
using System.Collections.Generic;
using System.Globalization;
using System.Net;
using NetnsNat.Linux;

namespace NetnsNat.Model
{
    /// <summary>
    /// One published port, as the core works with it: connections of a protocol to an external address (or to every
    /// address of the host, when ExternalAddress is null) and port go to a namespace's address and port on a NAT'd
    /// bridge, from the sources Remote allows (any when null).
    /// </summary>
    /// <param name="Protocol">"tcp" or "udp", as iptables writes it.</param>
    /// <param name="Bridge">The bridge the namespace is on.</param>
    /// <param name="Subnet">The bridge subnet the internal address is on (the sources that reach the mapping by hairpin).</param>
    /// <param name="Outbound">The uplink of the bridge's NAT: where connections from outside come in.</param>
    internal sealed record PortMapping(string Protocol, IPAddress? ExternalAddress, int ExternalPort, IPAddress InternalAddress, int InternalPort,
        IPNetwork? Remote, string Bridge, IPNetwork Subnet, string Outbound)
    {
        public AddressFamilyProfile Family => AddressFamilyProfile.Of(InternalAddress);

        /// <summary>Tcp or Udp, as parameters and objects name the protocol.</summary>
        public string ProtocolName => Protocol == "udp" ? "Udp" : "Tcp";

        /// <summary>The external address as objects show it: 0.0.0.0 or :: for every address of the host.</summary>
        public string ExternalText => (ExternalAddress ?? Family.Any).ToString();

        /// <summary>The DNAT target as iptables prints it: 10.0.0.2:80, [fd00::2]:80.</summary>
        public string TargetText => (Family == AddressFamilyProfile.IPv6 ? "[" + InternalAddress + "]" : InternalAddress.ToString()) + ":" + InternalPort.ToString(CultureInfo.InvariantCulture);

        /// <summary>The external side as a user reads it: tcp 198.51.100.1:8080, udp [::]:53.</summary>
        public string ExternalEndpoint => Protocol + " " + (Family == AddressFamilyProfile.IPv6 ? "[" + ExternalText + "]" : ExternalText) + ":" + ExternalPort.ToString(CultureInfo.InvariantCulture);

        /// <summary>Whether another mapping takes the same connections: the same family, protocol and port, and the same external address or either on every address.</summary>
        public bool Overlaps(PortMapping other) =>
            other.Family == Family && other.Protocol == Protocol && other.ExternalPort == ExternalPort
            && (ExternalAddress == null || other.ExternalAddress == null || ExternalAddress.Equals(other.ExternalAddress));

        /// <summary>The same external side, target and allowed sources: the same mapping.</summary>
        public bool SameAs(PortMapping other) =>
            Overlaps(other) && Equals(ExternalAddress, other.ExternalAddress) && InternalAddress.Equals(other.InternalAddress) && InternalPort == other.InternalPort
            && Equals(Remote, other.Remote);

        public override string ToString() => $"{ExternalEndpoint} -> {TargetText}";
    }
}

namespace NetnsNat
{
    /// <summary>A published port: connections to ExternalAddress:ExternalPort go to the namespace's InternalAddress:InternalPort.</summary>
    /// <param name="Namespace">The namespace the internal address belongs to (null when the state store does not know it).</param>
    /// <param name="Protocol">Tcp or Udp.</param>
    /// <param name="ExternalAddress">The host's address the mapping listens on; 0.0.0.0 or :: for every address of the host.</param>
    /// <param name="ExternalPort">The port on the host.</param>
    /// <param name="InternalAddress">The namespace's address.</param>
    /// <param name="InternalPort">The port in the namespace.</param>
    /// <param name="RemoteAddressPrefix">The sources allowed; null for any.</param>
    /// <param name="Bridge">The bridge the namespace is on.</param>
    /// <param name="Outbound">The uplink of the bridge's NAT.</param>
    /// <param name="Backend">Which firewall backend holds the rules (nf_tables, legacy).</param>
    /// <param name="Rules">The mapping's rules in iptables-save form.</param>
    /// <param name="ChangedRules">How many rules the call added (Add-) or deleted (Remove-); 0 for Get-NatPortMapping.</param>
    /// <param name="Status">InForce; RulesMissing when some of its rules do not stand (Get-NatPortMapping); Removed (Remove-NatPortMapping -PassThru).</param>
    /// <param name="Detail">What is missing, when not in force.</param>
    public sealed record NatPortMapping(string? Namespace, string Protocol, string ExternalAddress, int ExternalPort, string InternalAddress, int InternalPort,
        string? RemoteAddressPrefix, string Bridge, string Outbound, string Backend, IReadOnlyList<string> Rules, int ChangedRules, string Status = "InForce", string? Detail = null)
    {
        /// <summary>IPv4 or IPv6.</summary>
        public string AddressFamily => InternalAddress.IndexOf(':') >= 0 ? "IPv6" : "IPv4";

        /// <summary>Whether every rule of the mapping stands.</summary>
        public bool InForce => Status == "InForce";

        public override string ToString()
        {
            string Endpoint(string address, int port) => (address.IndexOf(':') >= 0 ? "[" + address + "]" : address) + ":" + port.ToString(CultureInfo.InvariantCulture);
            return $"{Protocol} {Endpoint(ExternalAddress, ExternalPort)} -> {Endpoint(InternalAddress, InternalPort)}";
        }
    }
}
