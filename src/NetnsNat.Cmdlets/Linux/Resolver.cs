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

        public const string NetnsRoot = "/etc/netns";

        /// <summary>0755 and 0644: what the namespace's processes, root or not, need to read the file.</summary>
        public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

        public static string NamespaceDirectory(string ns) => Path.Combine(NetnsRoot, ns);

        /// <summary>
        /// Why a process that is not root cannot read the file (a folder on its path others cannot enter, or the file
        /// others cannot read), or null when it can.
        /// </summary>
        public static string? UnreadableByOthers(string path)
        {
            if (!File.Exists(path)) return null;
            if ((File.GetUnixFileMode(path) & UnixFileMode.OtherRead) == 0) return $"{path} is mode {Mode(path)}: only root can read it";
            for (var folder = Path.GetDirectoryName(path); !string.IsNullOrEmpty(folder) && folder != "/"; folder = Path.GetDirectoryName(folder))
            {
                if ((File.GetUnixFileMode(folder) & UnixFileMode.OtherExecute) == 0) return $"{folder} is mode {Mode(folder)}: other users cannot enter it";
            }
            return null;
        }

        private static string Mode(string path) => Convert.ToString((int)File.GetUnixFileMode(path), 8).PadLeft(4, '0');

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
