using System;
using System.IO;

namespace NetnsNat.Linux
{
    /// <summary>Reads and writes sysctls of the current network namespace through /proc/sys.</summary>
    internal static class Sysctl
    {
        public static bool ReadFlag(string path) => File.ReadAllText(path).Trim() == "1";

        /// <summary>
        /// An interface's sysctl as sysctl(8) names it: net.ipv6.conf.IFACE.accept_ra, with the dots of a VLAN's name
        /// (eth0.100) as slashes, or sysctl would read them as separators.
        /// </summary>
        public static string InterfaceKey(string protocol, string iface, string setting) => $"net.{protocol}.conf.{iface.Replace('.', '/')}.{setting}";

        /// <summary>
        /// Writes "1" or "0". File.WriteAllText, not PowerShell's Set-Content: the latter writes nothing to /proc/sys.
        /// </summary>
        public static void WriteFlag(string path, bool value)
        {
            File.WriteAllText(path, value ? "1\n" : "0\n");
            if (ReadFlag(path) != value) throw new IOException($"Wrote {(value ? 1 : 0)} to {path} but it still reads {(value ? 0 : 1)}.");
        }
    }

    /// <summary>Whether this process may change the network configuration.</summary>
    internal static class Privileges
    {
        private const int CapNetAdmin = 12;

        /// <summary>True when the effective capability set holds CAP_NET_ADMIN (root has it; sudo gives it).</summary>
        public static bool HasNetAdmin(string statusPath = "/proc/self/status")
        {
            foreach (var line in File.ReadAllLines(statusPath))
            {
                if (!line.StartsWith("CapEff:", StringComparison.Ordinal)) continue;
                var hex = line.Substring(7).Trim();
                return ulong.TryParse(hex, System.Globalization.NumberStyles.HexNumber, null, out var caps) && (caps & (1UL << CapNetAdmin)) != 0;
            }
            return false;
        }
    }
}
