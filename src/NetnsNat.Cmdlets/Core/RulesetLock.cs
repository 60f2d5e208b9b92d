using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace NetnsNat.Core
{
    /// <summary>
    /// The lock that serializes the read-compute-write cycle of concurrent NetnsNat processes (an flock), so two of
    /// them never both see a rule missing and both add it. iptables' own xtables lock covers only one call. A value of
    /// this type is proof that the lock is held: every method that writes rules takes one, and only Acquire makes one.
    /// </summary>
    internal sealed class RulesetLock : IDisposable
    {
        public const string DefaultPath = "/run/netnsnat.lock";
        private const int LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
        private int _fd;

        private RulesetLock(int fd) => _fd = fd;

        [DllImport("libc", SetLastError = true)]
        private static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags, int mode);

        [DllImport("libc", SetLastError = true)]
        private static extern int flock(int fd, int operation);

        [DllImport("libc", SetLastError = true)]
        private static extern int close(int fd);

        /// <summary>True until Dispose.</summary>
        public bool IsHeld => _fd >= 0;

        /// <summary>Waits for the lock up to the timeout; onWait is told once when another process holds it.</summary>
        public static RulesetLock Acquire(CancellationToken cancellationToken, TimeSpan timeout, Action<string>? onWait = null, string path = DefaultPath)
        {
            const int O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
            int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, Convert.ToInt32("600", 8));
            if (fd < 0) throw new IOException($"Could not open the lock file {path} (errno {Marshal.GetLastWin32Error()}).");
            var deadline = DateTime.UtcNow + timeout;
            bool told = false;
            while (flock(fd, LOCK_EX | LOCK_NB) != 0)
            {
                if (!told)
                {
                    onWait?.Invoke($"Another NetnsNat command holds {path}; waiting up to {timeout.TotalSeconds:0} s for it.");
                    told = true;
                }
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

        /// <summary>Throws when a writer is handed a lock that was already released.</summary>
        public void Require()
        {
            if (!IsHeld) throw new InvalidOperationException("The ruleset lock was released before the write.");
        }

        public void Dispose()
        {
            if (_fd < 0) return;
            flock(_fd, LOCK_UN);
            close(_fd);
            _fd = -1;
        }
    }
}
