using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Net;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>A namespace's default route and addresses, read and set over rtnetlink inside the namespace (no process).</summary>
    internal sealed class RouteService
    {
        private readonly ICommandHost _host;

        public RouteService(ICommandHost host) => _host = host;

        /// <summary>The ip command that does the same inside the namespace: ip -n NAME ..., or nsenter --net=PATH ip ... .</summary>
        public static string CommandLine(NamespaceRef ns, params string[] ipArguments) =>
            ns.IsNamed
                ? ProcessRunner.FormatCommandLine("ip", new[] { "-n", ns.Display }.Concat(ipArguments))
                : ProcessRunner.FormatCommandLine("nsenter", new[] { "--net=" + ns.Path, "ip" }.Concat(ipArguments));

        public static string ReplaceCommand(NamespaceRef ns, IPAddress gateway) =>
            CommandLine(ns, Family(AddressFamilyProfile.Of(gateway)).Concat(new[] { "route", "replace", "default", "via", gateway.ToString() }).ToArray());

        public static string DeleteCommand(NamespaceRef ns, AddressFamilyProfile family) =>
            CommandLine(ns, Family(family).Concat(new[] { "route", "del", "default" }).ToArray());

        private static string[] Family(AddressFamilyProfile family) => family == AddressFamilyProfile.IPv6 ? new[] { "-6" } : System.Array.Empty<string>();

        private static NamespaceRoutes Open(NamespaceRef ns)
        {
            ns.RequireExists();
            return NamespaceRoutes.Open(ns.Path, ns.Display);
        }

        /// <summary>The namespace's default route of a family (the one via a gateway, when given), or null.</summary>
        public DefaultRoute? Read(NamespaceRef ns, AddressFamilyProfile family, IPAddress? via = null)
        {
            _host.Token.ThrowIfCancellationRequested();
            using var routes = Open(ns);
            return routes.GetDefault(family, via);
        }

        /// <summary>The namespace's addresses of a family (not on lo, never link-local), with the interface index.</summary>
        public IReadOnlyList<(int Index, IpPrefix Address)> Addresses(NamespaceRef ns, AddressFamilyProfile family)
        {
            _host.Token.ThrowIfCancellationRequested();
            using var routes = Open(ns);
            return routes.AllAddresses()
                .Where(a => AddressFamilyProfile.Of(a.Address.Address) == family && !IPAddress.IsLoopback(a.Address.Address) && !a.Address.Address.IsIPv6LinkLocal)
                .ToArray();
        }

        /// <summary>
        /// Replaces the namespace's default route when it does not go via the gateway already; null under -WhatIf.
        /// With a transaction, the route it had is put back if the call fails.
        /// </summary>
        public NamespaceRoute? SetDefault(NamespaceRef ns, IPAddress gateway, NatTransaction? tx = null, object? group = null)
        {
            _host.Token.ThrowIfCancellationRequested();
            var family = AddressFamilyProfile.Of(gateway);
            using var routes = Open(ns);
            var before = routes.GetDefault(family);
            if (gateway.Equals(before?.Gateway))
            {
                _host.Verbose($"The default route of '{ns}' already goes via {gateway}.");
                return new NamespaceRoute(ns.Display, gateway.ToString(), before!.Device, gateway.ToString(), false, family.Name);
            }
            if (!_host.ShouldProcess($"namespace {ns}", ReplaceCommand(ns, gateway))) return null;
            _host.Verbose($"Setting the default route of '{ns}' via {gateway}.");
            Replace(routes, ns, gateway);
            var previous = before?.Gateway;
            tx?.Record(group, previous == null ? $"the default route of '{ns}'" : $"the default route of '{ns}' via {previous}", () =>
            {
                if (previous == null) Delete(ns, family, gateway);
                else Replace(ns, previous);
            });
            var after = routes.GetDefault(family);
            return new NamespaceRoute(ns.Display, gateway.ToString(), after?.Device, previous?.ToString(), true, family.Name);
        }

        /// <summary>ip route replace default via GATEWAY in the namespace, on a socket of its own.</summary>
        public static void Replace(NamespaceRef ns, IPAddress gateway)
        {
            using var routes = Open(ns);
            Replace(routes, ns, gateway);
        }

        /// <summary>ip route del default [via GATEWAY] in the namespace; no error when there is none.</summary>
        public static void Delete(NamespaceRef ns, AddressFamilyProfile family, IPAddress? via = null)
        {
            using var routes = Open(ns);
            routes.DeleteDefault(family, via);
        }

        /// <summary>Replaces the default route on an open socket, turning "no such gateway on a link" into a clear error.</summary>
        private static void Replace(NamespaceRoutes routes, NamespaceRef ns, IPAddress gateway)
        {
            try
            {
                routes.ReplaceDefault(gateway);
            }
            catch (NetlinkException ex) when (ex.Errno == 22 || ex.Errno == 101 || ex.Errno == 113)
            {
                var inside = ns.IsNamed ? $"ip -n {ns.Display}" : $"nsenter --net={ns.Path} ip";
                throw new NetnsNatException(
                    $"The gateway {gateway} is not on any link of the namespace '{ns}' ({ex.Message}). Give the namespace an address in the bridge subnet " +
                    $"({inside} addr add ADDRESS/PREFIX dev IFACE; {inside} link set IFACE up) or use the bridge address as the gateway.",
                    "GatewayUnreachable", ErrorCategory.InvalidArgument, ex);
            }
        }
    }
}
