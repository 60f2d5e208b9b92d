using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Net;
using NetnsNat.Core;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>What the port mapping cmdlets share: root, and strict checks of ports, protocols and addresses.</summary>
    public abstract class PortMappingCmdlet : NetnsCmdlet
    {
        internal static readonly IReadOnlyList<string> ProtocolNames = new[] { "Tcp", "Udp" };

        internal PortMappingService Service() => new PortMappingService(this, BackendFor);

        /// <summary>Iptables or Nftables: the backend of the mappings (a mapping is in the backend of its namespace's NAT). Auto by default.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [NatBackendTransformation]
        public NatBackendKind Backend { get; set; }

        internal override NatBackendKind BackendChoice => Backend;

        protected override void Begin()
        {
            RequireNetAdmin();
            // iptables' tools are needed where its rules are read or written: on a host that has them, or when asked for.
            if (Backends.BackendFactory.Resolve(Backend) == NatBackendKind.Iptables) RequireTools(BackendFor(Model.AddressFamilyProfile.IPv4, NatBackendKind.Iptables).RequiredTools.ToArray());
        }

        /// <summary>Tcp or Udp (any case), as iptables writes it: "tcp", "udp".</summary>
        internal bool TryParseProtocol(string? text, out string protocol)
        {
            protocol = string.Empty;
            if (SessionFilter.TryParseProtocol(text, out var parsed) && (parsed == System.Net.Sockets.ProtocolType.Tcp || parsed == System.Net.Sockets.ProtocolType.Udp))
            {
                protocol = parsed == System.Net.Sockets.ProtocolType.Tcp ? "tcp" : "udp";
                return true;
            }
            WriteError(new ErrorRecord(
                new ArgumentException($"-Protocol '{text}' is not a protocol of port mappings: they are Tcp or Udp (ports belong to those). Use -Protocol Tcp or -Protocol Udp.", "Protocol"),
                "InvalidProtocol", ErrorCategory.InvalidArgument, text));
            return false;
        }

        /// <summary>A port from 1 to 65535 in digits; service names such as http are not looked up.</summary>
        internal bool TryParsePort(string? text, string parameter, out int port)
        {
            if (SessionFilter.TryParsePort(text, out port)) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{text}' is not a port number: give a number from 1 to 65535, for example -{parameter} 8080 (service names such as http are not looked up).", parameter),
                "InvalidPort", ErrorCategory.InvalidArgument, text));
            return false;
        }

        internal bool TryParseAddress(string? text, string parameter, out IPAddress address)
        {
            if (Cidr.TryParseAddress(text, out address)) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{text}' is not an IP address. Give one such as 198.51.100.1 or 2001:db8::1{(parameter == "ExternalAddress" ? ", or 0.0.0.0 (::) for every address of the host" : string.Empty)}.", parameter),
                "InvalidAddress", ErrorCategory.InvalidArgument, text));
            return false;
        }

        internal bool TryParsePrefix(string? text, out IPNetwork network)
        {
            network = default;
            if (Cidr.TryParsePrefix(text, out var prefix, out var reason))
            {
                network = prefix.Network;
                return true;
            }
            WriteError(new ErrorRecord(
                new ArgumentException($"-RemoteAddressPrefix '{text}' is not a network: {reason}. Write it as ADDRESS/PREFIX, for example 192.0.2.0/24 or 2001:db8::/32 (a single address: 192.0.2.7/32).", "RemoteAddressPrefix"),
                "InvalidPrefix", ErrorCategory.InvalidArgument, text));
            return false;
        }
    }
}
