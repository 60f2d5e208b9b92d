using System;
using System.Management.Automation;
using System.Net;
using NetnsNat.Core;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>What Get-NatSession and Remove-NatSession share: root, and the checks of the filter parameters.</summary>
    public abstract class NatSessionCmdlet : NetnsCmdlet
    {
        protected override void Begin() => RequireNetAdmin();

        /// <summary>
        /// Parses the filter parameters (strictly: a bad value is an error that changes nothing); the namespace's
        /// addresses are read later, by WithNamespace, inside Guard. False, with the error written, when one is bad.
        /// </summary>
        internal bool TryParseFilter(string? ns, string? subnet, string? protocol, string? port, bool includeUntranslated, out SessionFilter filter)
        {
            filter = new SessionFilter { IncludeUntranslated = includeUntranslated };
            if (ns != null && !CheckNamespaceName(ns)) return false;
            if (subnet != null)
            {
                if (!Cidr.TryParsePrefix(subnet, out var prefix, out var reason))
                {
                    WriteError(new ErrorRecord(
                        new ArgumentException($"-Subnet '{subnet}' is not a network: {reason}. Write it as ADDRESS/PREFIX, for example 10.0.0.0/24 or fd00::/64.", "Subnet"),
                        "InvalidSubnet", ErrorCategory.InvalidArgument, subnet));
                    return false;
                }
                filter = filter with { Subnet = prefix.Network };
            }
            if (protocol != null)
            {
                if (!SessionFilter.TryParseProtocol(protocol, out var p))
                {
                    WriteError(new ErrorRecord(
                        new ArgumentException($"-Protocol '{protocol}' is not one of the protocols NAT sessions are filtered by: use {string.Join(", ", SessionFilter.ProtocolNames)}, or leave -Protocol out to take every protocol.", "Protocol"),
                        "InvalidProtocol", ErrorCategory.InvalidArgument, protocol));
                    return false;
                }
                filter = filter with { Protocol = p };
            }
            if (port != null)
            {
                if (!SessionFilter.TryParsePort(port, out var number))
                {
                    WriteError(new ErrorRecord(
                        new ArgumentException($"-Port '{port}' is not a port number: give a number from 1 to 65535, for example -Port 8080 (service names such as http are not looked up).", "Port"),
                        "InvalidPort", ErrorCategory.InvalidArgument, port));
                    return false;
                }
                filter = filter with { Port = number };
            }
            return true;
        }

        /// <summary>The filter with the addresses of -Namespace (read inside the namespace); throws NamespaceNotFoundException.</summary>
        internal static SessionFilter WithNamespace(ConntrackService service, SessionFilter filter, string? ns) =>
            ns == null ? filter : filter with { Addresses = service.NamespaceAddresses(ns) };
    }
}
