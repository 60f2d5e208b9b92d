using System.Management.Automation;
using System.Net;
using System.Threading;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>A namespace's default route, read and set over rtnetlink inside the namespace (no process).</summary>
    internal sealed class RouteService
    {
        private readonly ICommandHost _host;

        public RouteService(ICommandHost host) => _host = host;

        public static string[] ReplaceArguments(string ns, IPAddress gateway) =>
            AddressFamilyProfile.Of(gateway) == AddressFamilyProfile.IPv6
                ? new[] { "-6", "-n", ns, "route", "replace", "default", "via", gateway.ToString() }
                : new[] { "-n", ns, "route", "replace", "default", "via", gateway.ToString() };

        public static string[] DeleteArguments(string ns, AddressFamilyProfile family) =>
            family == AddressFamilyProfile.IPv6 ? new[] { "-6", "-n", ns, "route", "del", "default" } : new[] { "-n", ns, "route", "del", "default" };

        private static NamespaceRoutes Open(string ns)
        {
            if (!IpRoute2.NamespaceExists(ns)) throw new NamespaceNotFoundException(ns);
            return NamespaceRoutes.Open(IpRoute2.NamespacePath(ns), ns);
        }

        /// <summary>The namespace's default route of a family, or null.</summary>
        public DefaultRoute? Read(string ns, AddressFamilyProfile family)
        {
            _host.Token.ThrowIfCancellationRequested();
            using var routes = Open(ns);
            return routes.GetDefault(family);
        }

        /// <summary>
        /// Replaces the namespace's default route when it does not go via the gateway already; null under -WhatIf.
        /// With a transaction, the route it had is put back if the call fails.
        /// </summary>
        public NamespaceRoute? SetDefault(string ns, IPAddress gateway, NatTransaction? tx = null, object? group = null)
        {
            _host.Token.ThrowIfCancellationRequested();
            var family = AddressFamilyProfile.Of(gateway);
            using var routes = Open(ns);
            var before = routes.GetDefault(family);
            if (gateway.Equals(before?.Gateway))
            {
                _host.Verbose($"The default route of '{ns}' already goes via {gateway}.");
                return new NamespaceRoute(ns, gateway.ToString(), before!.Device, gateway.ToString(), false);
            }
            if (!_host.ShouldProcess($"namespace {ns}", ProcessRunner.FormatCommandLine("ip", ReplaceArguments(ns, gateway)))) return null;
            _host.Verbose($"Setting the default route of '{ns}' via {gateway}.");
            Replace(routes, ns, gateway);
            var previous = before?.Gateway;
            tx?.Record(group, previous == null ? $"the default route of '{ns}'" : $"the default route of '{ns}' via {previous}", () =>
            {
                if (previous == null) Delete(ns, family);
                else Replace(ns, previous);
            });
            var after = routes.GetDefault(family);
            return new NamespaceRoute(ns, gateway.ToString(), after?.Device, previous?.ToString(), true);
        }

        /// <summary>ip -n NS route replace default via GATEWAY, on a socket of its own.</summary>
        public static void Replace(string ns, IPAddress gateway)
        {
            using var routes = Open(ns);
            Replace(routes, ns, gateway);
        }

        /// <summary>ip -n NS route del default; no error when there is none.</summary>
        public static void Delete(string ns, AddressFamilyProfile family)
        {
            using var routes = Open(ns);
            routes.DeleteDefault(family);
        }

        /// <summary>Replaces the default route on an open socket, turning "no such gateway on a link" into a clear error.</summary>
        private static void Replace(NamespaceRoutes routes, string ns, IPAddress gateway)
        {
            try
            {
                routes.ReplaceDefault(gateway);
            }
            catch (NetlinkException ex) when (ex.Errno == 22 || ex.Errno == 101 || ex.Errno == 113)
            {
                throw new NetnsNatException(
                    $"The gateway {gateway} is not on any link of the namespace '{ns}' ({ex.Message}). Give the namespace an address in the bridge subnet " +
                    $"(ip -n {ns} addr add ADDRESS/PREFIX dev IFACE; ip -n {ns} link set IFACE up) or use the bridge address as the gateway.",
                    "GatewayUnreachable", ErrorCategory.InvalidArgument, ex);
            }
        }
    }
}
