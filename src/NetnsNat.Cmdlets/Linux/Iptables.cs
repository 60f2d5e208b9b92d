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

        /// <summary>Applies a restore script in one call (used to undo: deletions always go through iptables-restore).</summary>
        public void Restore(string script, CancellationToken cancellationToken)
        {
            if (script.Length == 0) return;
            lock (CacheGate) _cache = null;
            RunRestore(script, cancellationToken);
        }

        /// <summary>
        /// Applies a plan computed from a snapshot, in one kernel transaction where nf_tables allows: a plan of additions
        /// on nf_tables, with the stock iptables-nft-restore on PATH, is written by NftRules as one netlink batch;
        /// anything else (deletions, the legacy backend, a table or chain iptables-nft has not created yet, or an
        /// iptables-restore on PATH that is not the stock one, which is then honoured) by one iptables-restore. When the
        /// kernel's generation moved by exactly this write, the cached snapshot becomes the snapshot with the plan
        /// applied; anything else empties the cache. Returns how it was written and how long the write took, for -Verbose.
        /// </summary>
        public string Apply(RulePlan plan, CancellationToken cancellationToken, IptablesSnapshot basis)
        {
            if (plan.IsEmpty) return "nothing to write";
            uint? before = null;
            lock (CacheGate)
            {
                if (_cache is { } c && ReferenceEquals(c.Snapshot, basis)) before = c.Generation;
                _cache = null;
            }
            cancellationToken.ThrowIfCancellationRequested();
            uint commits;
            string how;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            if (basis.Backend != "legacy" && IsStockNftRestore() && NftRules.TryWrite(plan))
            {
                commits = 1;
                how = "one nf_tables netlink batch";
            }
            else
            {
                var script = plan.Script();
                RunRestore(script, cancellationToken);
                // iptables-nft-restore commits each table section on its own: one generation per section.
                commits = (uint)script.Split('\n').Count(l => l.StartsWith('*'));
                how = "one iptables-restore";
            }
            how += $" ({clock.Elapsed.TotalMilliseconds.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)} ms)";
            if (before == null) return how;
            var after = NftGeneration.Read();
            if (after != before + commits) return how;
            lock (CacheGate)
            {
                _cache = (CurrentNetns(), after.Value, basis.With(plan));
            }
            return how;
        }

        private void RunRestore(string script, CancellationToken cancellationToken)
        {
            var result = _runner.Run("iptables-restore", new[] { "--noflush", "--wait", "10" }, cancellationToken, script);
            if (!result.Succeeded) throw new IptablesException(result);
        }

        /// <summary>Whether iptables-restore on PATH is iptables-nft's own (xtables-nft-multi), not a wrapper or legacy.</summary>
        private static bool IsStockNftRestore()
        {
            try
            {
                var path = ProcessRunner.Resolve("iptables-restore");
                var target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.Name ?? Path.GetFileName(path);
                return target == "xtables-nft-multi";
            }
            catch (Exception ex) when (ex is IOException || ex is ToolNotFoundException || ex is UnauthorizedAccessException)
            {
                return false;
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
