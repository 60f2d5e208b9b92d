using System;
using System.IO;
using System.Linq;
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

        private static readonly object CacheGate = new object();
        private static (string Netns, uint Generation, IptablesSnapshot Snapshot)? _cache;

        /// <summary>
        /// The current ruleset. With nf_tables, a snapshot this process read (or wrote) is reused while the kernel's
        /// ruleset generation is unchanged, so a warm session does not pay iptables-save's full dump on every call.
        /// </summary>
        public IptablesSnapshot Save(CancellationToken cancellationToken)
        {
            var netns = CurrentNetns();
            var generation = NftGeneration.Read();
            lock (CacheGate)
            {
                if (generation != null && _cache is { } c && c.Netns == netns && c.Generation == generation) return c.Snapshot;
            }
            var result = _runner.Run("iptables-save", Array.Empty<string>(), cancellationToken);
            if (!result.Succeeded) throw new IptablesException(result);
            var snapshot = IptablesSnapshot.Parse(result.StandardOutput);
            lock (CacheGate)
            {
                // The generation was read before the dump: a change during the dump only makes the cache miss next time.
                _cache = generation != null && snapshot.Backend != "legacy" ? (netns, generation.Value, snapshot) : null;
            }
            return snapshot;
        }

        /// <summary>Applies a restore script in one call; with nf_tables the whole script is one kernel transaction.</summary>
        public void Restore(string script, CancellationToken cancellationToken) => Restore(script, cancellationToken, null, null);

        /// <summary>
        /// Applies a plan computed from a snapshot. When the kernel's generation moved by exactly this one commit, the
        /// cached snapshot becomes the snapshot with the plan applied; anything else empties the cache.
        /// </summary>
        public void Restore(string script, CancellationToken cancellationToken, IptablesSnapshot? basis, RulePlan? plan)
        {
            if (script.Length == 0) return;
            uint? before = null;
            lock (CacheGate)
            {
                if (basis != null && _cache is { } c && ReferenceEquals(c.Snapshot, basis)) before = c.Generation;
                _cache = null;
            }
            var result = _runner.Run("iptables-restore", new[] { "--noflush", "--wait", "10" }, cancellationToken, script);
            if (!result.Succeeded) throw new IptablesException(result);
            if (before == null || plan == null) return;
            // iptables-nft-restore commits each table section on its own: one generation per section.
            var sections = (uint)script.Split('\n').Count(l => l.StartsWith('*'));
            var after = NftGeneration.Read();
            if (after != before + sections) return;
            lock (CacheGate)
            {
                _cache = (CurrentNetns(), after.Value, basis!.With(plan));
            }
        }

        private static string CurrentNetns() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty;

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
