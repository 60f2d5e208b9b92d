using System;
using System.Globalization;
using System.IO;

namespace NetnsNat.Linux
{
    /// <summary>
    /// What the environment configures: NETNSNAT_TIMEOUT_SECONDS, the longest an external command may run and a call
    /// may wait for the ruleset lock. An invalid value is not silently ignored: Warning says so, and the defaults hold.
    /// </summary>
    internal static class Settings
    {
        public const string TimeoutVariable = "NETNSNAT_TIMEOUT_SECONDS";
        public static readonly TimeSpan DefaultCommandTimeout = TimeSpan.FromSeconds(30);
        public static readonly TimeSpan DefaultLockTimeout = TimeSpan.FromSeconds(60);

        /// <summary>The configured timeout, or null when the variable is unset or invalid.</summary>
        public static TimeSpan? Timeout
        {
            get
            {
                var text = Environment.GetEnvironmentVariable(TimeoutVariable);
                return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
            }
        }

        /// <summary>Why the variable is ignored, or null when it is unset or valid.</summary>
        public static string? Warning
        {
            get
            {
                var text = Environment.GetEnvironmentVariable(TimeoutVariable);
                if (text == null || Timeout != null) return null;
                return $"{TimeoutVariable}='{text}' is not a whole number of seconds above 0; using {DefaultCommandTimeout.TotalSeconds:0} s for commands and {DefaultLockTimeout.TotalSeconds:0} s for the lock. Set it to a number such as 60.";
            }
        }

        public static TimeSpan CommandTimeout => Timeout ?? DefaultCommandTimeout;

        public static TimeSpan LockTimeout => Timeout ?? DefaultLockTimeout;
    }

    /// <summary>The network namespace this process works in, as the kernel names it: what the lock and the state store belong to.</summary>
    internal static class NetnsIdentity
    {
        /// <summary>The nsfs inode number of the current thread's network namespace ("4026531840" for the machine's own).</summary>
        public static string Current()
        {
            var target = new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty;
            int open = target.IndexOf('['), close = target.IndexOf(']');
            return open >= 0 && close > open ? target.Substring(open + 1, close - open - 1) : "unknown";
        }
    }
}
