using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;

namespace NetnsNat.Linux
{
    /// <summary>One network interface of the current namespace.</summary>
    /// <param name="Name">The interface name.</param>
    /// <param name="Kind">"bridge", "veth", ... or null for a plain device.</param>
    /// <param name="IsUp">Administratively up (the UP flag).</param>
    /// <param name="OperState">The operational state.</param>
    /// <param name="Ipv4">The IPv4 addresses with their prefix lengths.</param>
    public sealed record LinkInfo(string Name, string? Kind, bool IsUp, string OperState, IReadOnlyList<Ipv4Cidr> Ipv4)
    {
        public bool IsBridge => Kind == "bridge";
    }

    /// <summary>A default route read from a namespace.</summary>
    public sealed record DefaultRoute(string? Gateway, string? Device);

    /// <summary>A namespace that "ip netns" does not know.</summary>
    public sealed class NamespaceNotFoundException : Exception
    {
        public NamespaceNotFoundException(string name)
            : base($"The network namespace '{name}' does not exist. Create it with 'ip netns add {name}', or list the existing ones with 'ip netns list'.")
        {
            Namespace = name;
        }

        public string Namespace { get; }
    }

    /// <summary>An ip command failed.</summary>
    public sealed class IpCommandException : Exception
    {
        public IpCommandException(ProcessResult result, string? message = null)
            : base(message ?? $"'{result.CommandLine}' failed: {result.Diagnostic}")
        {
            Result = result;
        }

        public ProcessResult Result { get; }
    }

    /// <summary>What the module asks of iproute2 and of /proc about interfaces and routes.</summary>
    public sealed class IpRoute2
    {
        public const string NetnsDirectory = "/run/netns";
        private readonly ProcessRunner _runner;

        public IpRoute2(ProcessRunner runner) => _runner = runner;

        /// <summary>
        /// The interfaces of the current namespace: from getifaddrs and /sys (no process), or from "ip -j -d addr show"
        /// when /sys/class/net belongs to another namespace.
        /// </summary>
        public IReadOnlyList<LinkInfo> Links(CancellationToken cancellationToken)
        {
            var links = InterfaceTable.Read();
            if (links != null) return links;
            var result = _runner.Run("ip", new[] { "-j", "-d", "addr", "show" }, cancellationToken);
            if (!result.Succeeded) throw new IpCommandException(result);
            return ParseLinks(result.StandardOutput);
        }

        /// <summary>One interface of the current namespace by name, or null; falls back to Links() when sysfs is stale.</summary>
        public LinkInfo? Link(string name, CancellationToken cancellationToken)
        {
            try
            {
                return InterfaceTable.ReadOne(name);
            }
            catch (StaleSysfsException)
            {
                return Links(cancellationToken).FirstOrDefault(l => l.Name == name);
            }
        }

        /// <summary>The interfaces inside a named namespace.</summary>
        public IReadOnlyList<LinkInfo> NamespaceLinks(string ns, CancellationToken cancellationToken)
        {
            var result = _runner.Run("ip", new[] { "-n", ns, "-j", "-d", "addr", "show" }, cancellationToken);
            if (!result.Succeeded) throw NamespaceError(ns, result);
            return ParseLinks(result.StandardOutput);
        }

        public static IReadOnlyList<LinkInfo> ParseLinks(string json)
        {
            var links = new List<LinkInfo>();
            using var doc = JsonDocument.Parse(json.Length == 0 ? "[]" : json);
            foreach (var item in doc.RootElement.EnumerateArray())
            {
                if (!item.TryGetProperty("ifname", out var nameElement)) continue;
                var name = nameElement.GetString() ?? string.Empty;
                string? kind = null;
                if (item.TryGetProperty("linkinfo", out var linkinfo) && linkinfo.TryGetProperty("info_kind", out var kindElement))
                {
                    kind = kindElement.GetString();
                }
                bool up = item.TryGetProperty("flags", out var flags) && flags.EnumerateArray().Any(f => f.GetString() == "UP");
                var oper = item.TryGetProperty("operstate", out var operElement) ? operElement.GetString() ?? "UNKNOWN" : "UNKNOWN";
                var ipv4 = new List<Ipv4Cidr>();
                if (item.TryGetProperty("addr_info", out var addrs))
                {
                    foreach (var addr in addrs.EnumerateArray())
                    {
                        if (addr.TryGetProperty("family", out var family) && family.GetString() == "inet"
                            && addr.TryGetProperty("local", out var local) && Ipv4Cidr.TryParseAddress(local.GetString(), out var address)
                            && addr.TryGetProperty("prefixlen", out var prefix) && prefix.TryGetInt32(out var prefixLength))
                        {
                            ipv4.Add(new Ipv4Cidr(address, prefixLength));
                        }
                    }
                }
                links.Add(new LinkInfo(name, kind, up, oper, ipv4));
            }
            return links;
        }

        public static bool NamespaceExists(string name) => File.Exists(Path.Combine(NetnsDirectory, name));

        public static IReadOnlyList<string> Namespaces() =>
            Directory.Exists(NetnsDirectory) ? Directory.GetFiles(NetnsDirectory).Select(Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal).ToArray() : Array.Empty<string>();

        /// <summary>The namespace's IPv4 default route, read over rtnetlink inside the namespace (no process).</summary>
        public DefaultRoute? NamespaceDefaultRoute(string ns, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var routes = NamespaceRoutes.Open(ns);
            return routes.GetDefault();
        }

        public static string[] ReplaceDefaultRouteArguments(string ns, string gateway) => new[] { "-n", ns, "route", "replace", "default", "via", gateway };

        public static string[] DeleteDefaultRouteArguments(string ns) => new[] { "-n", ns, "route", "del", "default" };

        /// <summary>ip -n NS route replace default via GATEWAY, over rtnetlink.</summary>
        public void ReplaceDefaultRoute(string ns, string gateway, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var routes = NamespaceRoutes.Open(ns);
            ReplaceDefaultRoute(routes, ns, gateway);
        }

        /// <summary>Replaces the default route on an open socket, turning "no such gateway on a link" into a clear error.</summary>
        public static void ReplaceDefaultRoute(NamespaceRoutes routes, string ns, string gateway)
        {
            if (!Ipv4Cidr.TryParseAddress(gateway, out var address)) throw new ArgumentException($"'{gateway}' is not an IPv4 address.", nameof(gateway));
            try
            {
                routes.ReplaceDefault(address);
            }
            catch (NetlinkException ex) when (ex.Errno == 22 || ex.Errno == 101 || ex.Errno == 113)
            {
                throw new NetnsNatException(
                    $"The gateway {gateway} is not on any link of the namespace '{ns}' ({ex.Message}). Give the namespace an address in the bridge subnet " +
                    $"(ip -n {ns} addr add ADDRESS/PREFIX dev IFACE; ip -n {ns} link set IFACE up) or use the bridge address as the gateway.",
                    "GatewayUnreachable", System.Management.Automation.ErrorCategory.InvalidArgument, ex);
            }
        }

        /// <summary>ip -n NS route del default, over rtnetlink; no error when there is none.</summary>
        public void DeleteDefaultRoute(string ns, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var routes = NamespaceRoutes.Open(ns);
            routes.DeleteDefault();
        }

        private static Exception NamespaceError(string ns, ProcessResult result) =>
            result.StandardError.Contains("Cannot open network namespace", StringComparison.Ordinal)
                ? new NamespaceNotFoundException(ns)
                : new IpCommandException(result);

        /// <summary>The interface of the IPv4 default route of the current namespace, from /proc/net/route.</summary>
        public static string? DefaultRouteInterface(string procNetRoute = "/proc/net/route")
        {
            if (!File.Exists(procNetRoute)) return null;
            return ParseDefaultRouteInterface(File.ReadAllText(procNetRoute));
        }

        public static string? ParseDefaultRouteInterface(string table)
        {
            string? best = null;
            long bestMetric = long.MaxValue;
            foreach (var line in table.Split('\n').Skip(1))
            {
                var f = line.Split(new[] { '\t', ' ' }, StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 8) continue;
                // Iface Destination Gateway Flags RefCnt Use Metric Mask; flags 0x1 = RTF_UP
                if (f[1] != "00000000" || f[7] != "00000000") continue;
                if (!int.TryParse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var flags) || (flags & 1) == 0) continue;
                long.TryParse(f[6], NumberStyles.Integer, CultureInfo.InvariantCulture, out var metric);
                if (metric < bestMetric)
                {
                    best = f[0];
                    bestMetric = metric;
                }
            }
            return best;
        }
    }
}
