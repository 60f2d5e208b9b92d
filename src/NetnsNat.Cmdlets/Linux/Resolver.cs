using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;

namespace NetnsNat.Linux
{
    /// <summary>
    /// The resolver a namespace sees. "ip netns exec NAME" binds /etc/netns/NAME/resolv.conf over /etc/resolv.conf
    /// when that file exists; otherwise the namespace reads the host's /etc/resolv.conf.
    /// </summary>
    internal static class Resolver
    {
        public const string Marker = "# Written by NetnsNat (Enable-NamespaceNat); Disable-NamespaceNat removes it.";
        public const string HostResolvConf = "/etc/resolv.conf";
        public const string SystemdUpstream = "/run/systemd/resolve/resolv.conf";

        public static string NamespaceDirectory(string ns) => Path.Combine("/etc/netns", ns);

        public static string NamespaceResolvConf(string ns) => Path.Combine(NamespaceDirectory(ns), "resolv.conf");

        /// <summary>The file a namespace's processes read as /etc/resolv.conf.</summary>
        public static string EffectiveResolvConf(string ns) => File.Exists(NamespaceResolvConf(ns)) ? NamespaceResolvConf(ns) : HostResolvConf;

        public static IReadOnlyList<string> Nameservers(string text) =>
            text.Split('\n')
                .Select(l => l.Trim())
                .Where(l => l.StartsWith("nameserver", StringComparison.Ordinal))
                .Select(l => l.Substring("nameserver".Length).Trim())
                .Where(a => a.Length > 0)
                .ToArray();

        public static IReadOnlyList<string> NameserversOf(string path) => File.Exists(path) ? Nameservers(File.ReadAllText(path)) : Array.Empty<string>();

        /// <summary>127.0.0.0/8 or ::1: a resolver on the host's loopback, which no other network namespace can reach.</summary>
        public static bool IsLoopback(string address) => IPAddress.TryParse(address.Split('%')[0], out var ip) && IPAddress.IsLoopback(ip);

        public static bool IsOwnFile(string path) => File.Exists(path) && File.ReadAllText(path).StartsWith(Marker, StringComparison.Ordinal);

        public static string Render(IEnumerable<string> nameservers) =>
            Marker + "\n" + string.Concat(nameservers.Select(n => "nameserver " + n + "\n"));
    }
}
