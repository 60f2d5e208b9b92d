using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Text.Json;
using System.Threading;
using NetnsNat.Model;

namespace NetnsNat.Linux
{
    /// <summary>One network interface of a namespace.</summary>
    /// <param name="Name">The interface name.</param>
    /// <param name="Kind">"bridge", "veth", ... or null for a plain device.</param>
    /// <param name="IsUp">Administratively up (the UP flag).</param>
    /// <param name="OperState">The operational state.</param>
    /// <param name="Addresses">The addresses with their prefix lengths, IPv4 first.</param>
    /// <param name="Master">The bridge (or bond) the interface is enslaved to, if any.</param>
    internal sealed record LinkInfo(string Name, string? Kind, bool IsUp, string OperState, IReadOnlyList<IpPrefix> Addresses, string? Master = null)
    {
        public bool IsBridge => Kind == "bridge";

        /// <summary>The addresses of one family; for IPv6 only the routable ones (global and unique-local, never link-local).</summary>
        public IReadOnlyList<IpPrefix> Of(AddressFamilyProfile family) =>
            Addresses.Where(a => AddressFamilyProfile.Of(a.Address) == family && !a.Address.IsIPv6LinkLocal && !a.Address.IsIPv6Multicast).ToArray();

        public IReadOnlyList<IpPrefix> Ipv4 => Of(AddressFamilyProfile.IPv4);
    }

    /// <summary>A default route read from a namespace.</summary>
    internal sealed record DefaultRoute(IPAddress? Gateway, string? Device);

    /// <summary>A namespace that "ip netns" does not know.</summary>
    public sealed class NamespaceNotFoundException : Exception
    {
        internal NamespaceNotFoundException(string name, bool named = true)
            : base(named
                ? $"The network namespace '{name}' does not exist. Create it with 'ip netns add {name}', or list the existing ones with 'ip netns list'."
                : $"There is no network namespace at '{name}'. Give the path of a file that holds one, such as /proc/PID/ns/net of a process in it, or Docker's /run/docker/netns/ID.")
        {
            Namespace = name;
        }

        public string Namespace { get; }
    }

    /// <summary>An ip command failed.</summary>
    public sealed class IpCommandException : Exception
    {
        internal IpCommandException(string commandLine, string diagnostic)
            : base($"'{commandLine}' failed: {diagnostic}")
        {
        }
    }

    /// <summary>What the module asks of iproute2, /sys and /proc about interfaces, namespaces and the host's routes.</summary>
    internal sealed class IpRoute2
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
            if (!result.Succeeded) throw new IpCommandException(result.CommandLine, result.Diagnostic);
            return ParseLinks(result.StandardOutput);
        }

        /// <summary>Whether the last look-up by name found /sys/class/net to show this namespace's interfaces.</summary>
        public bool SysfsIsOurs { get; private set; }

        /// <summary>One interface of the current namespace by name, or null; falls back to Links() when sysfs is stale.</summary>
        public LinkInfo? Link(string name, CancellationToken cancellationToken)
        {
            try
            {
                var link = InterfaceTable.ReadOne(name);
                SysfsIsOurs = link != null;
                return link;
            }
            catch (StaleSysfsException)
            {
                SysfsIsOurs = false;
                return Links(cancellationToken).FirstOrDefault(l => l.Name == name);
            }
        }

        /// <summary>The interfaces inside a named namespace.</summary>
        public IReadOnlyList<LinkInfo> NamespaceLinks(string ns, CancellationToken cancellationToken)
        {
            var result = _runner.Run("ip", new[] { "-n", ns, "-j", "-d", "addr", "show" }, cancellationToken);
            if (!result.Succeeded)
            {
                if (result.StandardError.Contains("Cannot open network namespace", StringComparison.Ordinal)) throw new NamespaceNotFoundException(ns);
                throw new IpCommandException(result.CommandLine, result.Diagnostic);
            }
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
                string? master = item.TryGetProperty("master", out var masterElement) ? masterElement.GetString() : null;
                bool up = item.TryGetProperty("flags", out var flags) && flags.EnumerateArray().Any(f => f.GetString() == "UP");
                var oper = item.TryGetProperty("operstate", out var operElement) ? operElement.GetString() ?? "UNKNOWN" : "UNKNOWN";
                var addresses = new List<IpPrefix>();
                if (item.TryGetProperty("addr_info", out var addrs))
                {
                    foreach (var addr in addrs.EnumerateArray())
                    {
                        if (addr.TryGetProperty("family", out var family) && (family.GetString() == "inet" || family.GetString() == "inet6")
                            && addr.TryGetProperty("local", out var local) && Cidr.TryParseAddress(local.GetString(), out var address)
                            && addr.TryGetProperty("prefixlen", out var prefix) && prefix.TryGetInt32(out var prefixLength))
                        {
                            addresses.Add(new IpPrefix(address, prefixLength));
                        }
                    }
                }
                links.Add(new LinkInfo(name, kind, up, oper, addresses.OrderBy(a => a.IsIPv4 ? 0 : 1).ToArray(), master));
            }
            return links;
        }

        public static bool NamespaceExists(string name) => File.Exists(Path.Combine(NetnsDirectory, name));

        public static string NamespacePath(string name) => Path.Combine(NetnsDirectory, name);

        public static IReadOnlyList<string> Namespaces() =>
            Directory.Exists(NetnsDirectory) ? Directory.GetFiles(NetnsDirectory).Select(Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal).ToArray() : Array.Empty<string>();

        /// <summary>The interface of the default route of the current namespace for a family, from /proc/net/route or /proc/net/ipv6_route.</summary>
        public static string? DefaultRouteInterface(AddressFamilyProfile? family = null)
        {
            if (family == AddressFamilyProfile.IPv6)
            {
                const string v6 = "/proc/net/ipv6_route";
                return File.Exists(v6) ? ParseDefaultRouteInterface6(File.ReadAllText(v6)) : null;
            }
            const string procNetRoute = "/proc/net/route";
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

        /// <summary>The interface of ::/0 in /proc/net/ipv6_route (dest, dest_len, src, src_len, next hop, metric, refcnt, use, flags, iface).</summary>
        public static string? ParseDefaultRouteInterface6(string table)
        {
            string? best = null;
            long bestMetric = long.MaxValue;
            foreach (var line in table.Split('\n'))
            {
                var f = line.Split(new[] { '\t', ' ' }, StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10 || f[0] != new string('0', 32) || f[1] != "00" || f[9] == "lo") continue;
                // RTF_UP and a next hop (RTF_GATEWAY) or a device route; reject routes (RTF_REJECT 0x200) are not defaults.
                if (!long.TryParse(f[8], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var flags) || (flags & 1) == 0 || (flags & 0x200) != 0) continue;
                long.TryParse(f[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var metric);
                if (metric < bestMetric)
                {
                    best = f[9];
                    bestMetric = metric;
                }
            }
            return best;
        }
    }
}
