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
    internal sealed partial class RulesetLock : IDisposable
    {
        /// <summary>
        /// The lock of the network namespace this process works in: /run/netnsnat/netns-INODE.lock. Hosts that share
        /// /run (containers, the lab's hosts) each have their own firewall, and so their own lock.
        /// </summary>
        public static string DefaultPath => "/run/netnsnat/netns-" + Linux.NetnsIdentity.Current() + ".lock";
        private const int LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
        private int _fd;

        private RulesetLock(int fd, string path)
        {
            _fd = fd;
            Path = path;
        }

        /// <summary>The lock file.</summary>
        public string Path { get; }

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int open(string path, int flags, int mode);

        [LibraryImport("libc", SetLastError = true)]
        private static partial int flock(int fd, int operation);

        [LibraryImport("libc", SetLastError = true)]
        private static partial int close(int fd);

        /// <summary>True until Dispose.</summary>
        public bool IsHeld => _fd >= 0;

        /// <summary>Waits for the lock up to the timeout; onWait is told once when another process holds it.</summary>
        public static RulesetLock Acquire(CancellationToken cancellationToken, TimeSpan timeout, Action<string>? onWait = null, string? path = null)
        {
            const int O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
            path ??= DefaultPath;
            var folder = System.IO.Path.GetDirectoryName(path);
            if (folder != null && !Directory.Exists(folder))
            {
                Directory.CreateDirectory(folder);
                File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            }
            int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, Convert.ToInt32("600", 8));
            if (fd < 0) throw new IOException($"Could not open the lock file {path} (errno {Marshal.GetLastWin32Error()}).");
            var deadline = DateTime.UtcNow + timeout;
            bool told = false;
            while (flock(fd, LOCK_EX | LOCK_NB) != 0)
            {
                if (!told)
                {
                    onWait?.Invoke($"Another NetnsNat command holds {path}; waiting up to {timeout.TotalSeconds:0} s for it (NETNSNAT_TIMEOUT_SECONDS sets the wait).");
                    told = true;
                }
                if (cancellationToken.IsCancellationRequested || DateTime.UtcNow > deadline)
                {
                    close(fd);
                    cancellationToken.ThrowIfCancellationRequested();
                    throw new TimeoutException($"Another NetnsNat command held {path} for more than {timeout.TotalSeconds:0} seconds. Find it with 'fuser {path}', or wait longer with NETNSNAT_TIMEOUT_SECONDS.");
                }
                Thread.Sleep(5);
            }
            return new RulesetLock(fd, path);
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
