using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace NetnsNat.Linux
{
    /// <summary>An iptables tool ran and failed.</summary>
    public sealed class IptablesException : Exception
    {
        public IptablesException(ProcessResult result)
            : base($"'{result.CommandLine}' failed: {result.Diagnostic}")
        {
            Result = result;
        }

        public ProcessResult Result { get; }
    }

    /// <summary>Reads the ruleset with one iptables-save and changes it with one iptables-restore --noflush.</summary>
    public sealed class Iptables
    {
        private readonly ProcessRunner _runner;

        public Iptables(ProcessRunner runner) => _runner = runner;

        public IptablesSnapshot Save(CancellationToken cancellationToken)
        {
            var result = _runner.Run("iptables-save", Array.Empty<string>(), cancellationToken);
            if (!result.Succeeded) throw new IptablesException(result);
            return IptablesSnapshot.Parse(result.StandardOutput);
        }

        /// <summary>Applies a restore script in one call; with nf_tables the whole script is one kernel transaction.</summary>
        public void Restore(string script, CancellationToken cancellationToken)
        {
            if (script.Length == 0) return;
            var result = _runner.Run("iptables-restore", new[] { "--noflush", "--wait", "10" }, cancellationToken, script);
            if (!result.Succeeded) throw new IptablesException(result);
        }

        /// <summary>"nf_tables" or "legacy", from the iptables alternative on PATH, without running it.</summary>
        public static string BackendFromPath()
        {
            var path = ProcessRunner.Resolve("iptables");
            try
            {
                var target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.Name ?? Path.GetFileName(path);
                if (target.Contains("legacy", StringComparison.Ordinal)) return "legacy";
                if (target.Contains("nft", StringComparison.Ordinal)) return "nf_tables";
            }
            catch (IOException)
            {
            }
            return "unknown";
        }
    }

    /// <summary>
    /// Serializes the read-compute-write cycle of concurrent NetnsNat processes (an flock on /run/netnsnat.lock), so
    /// two of them never both see a rule missing and both add it. iptables' own xtables lock covers only one call.
    /// </summary>
    public sealed class RulesetLock : IDisposable
    {
        public const string DefaultPath = "/run/netnsnat.lock";
        private const int LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
        private readonly int _fd;

        private RulesetLock(int fd) => _fd = fd;

        [DllImport("libc", SetLastError = true)]
        private static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags, int mode);

        [DllImport("libc", SetLastError = true)]
        private static extern int flock(int fd, int operation);

        [DllImport("libc", SetLastError = true)]
        private static extern int close(int fd);

        public static RulesetLock Acquire(CancellationToken cancellationToken, TimeSpan timeout, string path = DefaultPath)
        {
            const int O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
            int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, Convert.ToInt32("600", 8));
            if (fd < 0) throw new IOException($"Could not open the lock file {path} (errno {Marshal.GetLastWin32Error()}).");
            var deadline = DateTime.UtcNow + timeout;
            while (flock(fd, LOCK_EX | LOCK_NB) != 0)
            {
                if (cancellationToken.IsCancellationRequested || DateTime.UtcNow > deadline)
                {
                    close(fd);
                    cancellationToken.ThrowIfCancellationRequested();
                    throw new TimeoutException($"Another NetnsNat command held {path} for more than {timeout.TotalSeconds:0} seconds.");
                }
                Thread.Sleep(5);
            }
            return new RulesetLock(fd);
        }

        public void Dispose()
        {
            flock(_fd, LOCK_UN);
            close(_fd);
        }
    }
}
