using System.Collections.Generic;
using System.Management.Automation;
using System.Net;
using NetnsNat.Core;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Publishes a port of a namespace NetnsNat enabled: connections to the host's address and port go to the
    /// namespace's address and port (DNAT), from outside, from the host itself and from the bridge's other namespaces.
    /// </summary>
    [Cmdlet(VerbsCommon.Add, "NatPortMapping", SupportsShouldProcess = true, DefaultParameterSetName = ByNameSet)]
    [OutputType(typeof(NatPortMapping))]
    public sealed class AddNatPortMappingCommand : PortMappingCmdlet
    {
        private const string ByNameSet = "ByName";
        private const string ByPathSet = "ByPath";
        private const string ByAddressSet = "ByAddress";

        /// <summary>The namespace whose port is published (its address on the NAT'd bridge).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByNameSet)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string Namespace { get; set; } = string.Empty;

        /// <summary>A namespace by the file that holds it (/proc/PID/ns/net, /run/docker/netns/ID).</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByPathSet)]
        public string NamespacePath { get; set; } = string.Empty;

        /// <summary>The address to send connections to: an address of a namespace NetnsNat enabled.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByAddressSet)]
        public string InternalAddress { get; set; } = string.Empty;

        /// <summary>Tcp or Udp.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(PortMappingProtocolCompleter))]
        public string Protocol { get; set; } = string.Empty;

        /// <summary>The port on the host.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
        public string ExternalPort { get; set; } = string.Empty;

        /// <summary>The port in the namespace; by default the external port.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? InternalPort { get; set; }

        /// <summary>The host's address to publish on; by default the addresses of the uplink of the namespace's NAT; 0.0.0.0 or :: for every address of the host.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? ExternalAddress { get; set; }

        /// <summary>The sources allowed to connect (ADDRESS/PREFIX); by default any.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? RemoteAddressPrefix { get; set; }

        /// <summary>IPv4, IPv6 or Both; by default every family NetnsNat enabled for the namespace.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6", "Both")]
        public string? AddressFamily { get; set; }

        private readonly List<MappingRequest> _requests = new List<MappingRequest>();

        /// <summary>Checks and collects; the work is done in EndProcessing, so a pipeline of mappings is one transaction.</summary>
        protected override void ProcessRecord()
        {
            if (!TryParseProtocol(Protocol, out var protocol) || !TryParsePort(ExternalPort, "ExternalPort", out var external)) return;
            int inside = external;
            if (InternalPort != null && !TryParsePort(InternalPort, "InternalPort", out inside)) return;
            IPAddress? externalAddress = null;
            if (ExternalAddress != null && !TryParseAddress(ExternalAddress, "ExternalAddress", out externalAddress)) return;
            IPNetwork? remote = null;
            if (RemoteAddressPrefix != null)
            {
                if (!TryParsePrefix(RemoteAddressPrefix, out var network)) return;
                remote = network;
            }
            if (ParameterSetName == ByAddressSet)
            {
                if (!TryParseAddress(InternalAddress, "InternalAddress", out var address)) return;
                _requests.Add(new MappingRequest(null, address, protocol, external, inside, externalAddress, remote, Model.AddressFamilyProfile.Select(AddressFamily), Backend));
                return;
            }
            foreach (var ns in NamespaceRefs(ParameterSetName == ByNameSet ? new[] { Namespace } : null, ParameterSetName == ByPathSet ? new[] { NamespacePath } : null))
            {
                _requests.Add(new MappingRequest(ns, null, protocol, external, inside, externalAddress, remote, Model.AddressFamilyProfile.Select(AddressFamily), Backend));
            }
        }

        protected override void EndProcessing()
        {
            if (_requests.Count == 0) return;
            Guard(null, () => Service().Add(_requests, WriteObject));
        }
    }
}
