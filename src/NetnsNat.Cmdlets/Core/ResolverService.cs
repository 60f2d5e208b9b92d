using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NetnsNat.Linux;

namespace NetnsNat.Core
{
    /// <summary>
    /// A namespace's resolver, in /etc/netns/NAME/resolv.conf (never the host's /etc/resolv.conf): written with the
    /// -Dns servers, or, when the host resolves through its loopback, with the upstream servers systemd-resolved lists.
    /// </summary>
    internal sealed class ResolverService
    {
        private readonly ICommandHost _host;

        public ResolverService(ICommandHost host) => _host = host;

        /// <summary>
        /// Gives the namespace a resolver it can reach. Records the undo in the transaction under group when it wrote
        /// the file.
        /// </summary>
        /// <returns>True when it wrote (or had written) the namespace's resolv.conf.</returns>
        public bool Write(string ns, IReadOnlyList<string>? dns, NatTransaction tx, object? group)
        {
            var servers = dns;
            if (servers == null)
            {
                var host = Resolver.NameserversOf(Resolver.HostResolvConf);
                if (host.Count == 0 || !host.All(Resolver.IsLoopback)) return Resolver.IsOwnFile(Resolver.NamespaceResolvConf(ns));
                var upstream = Resolver.NameserversOf(Resolver.SystemdUpstream).Where(a => !Resolver.IsLoopback(a)).ToArray();
                if (upstream.Length == 0)
                {
                    _host.Warning($"The host resolves through {string.Join(", ", host)} on its loopback, which the namespace '{ns}' cannot reach, and " +
                        $"{Resolver.SystemdUpstream} has no upstream servers to use instead. Name lookups in the namespace will fail: pass -Dns with a reachable nameserver.");
                    return false;
                }
                _host.Verbose($"The host's resolver {string.Join(", ", host)} is on its loopback; giving '{ns}' the upstream servers from {Resolver.SystemdUpstream}.");
                servers = upstream;
            }
            var path = Resolver.NamespaceResolvConf(ns);
            var content = Resolver.Render(servers);
            string? previous = File.Exists(path) ? File.ReadAllText(path) : null;
            if (previous == content) return true;
            if (previous != null && !previous.StartsWith(Resolver.Marker, StringComparison.Ordinal))
            {
                _host.Warning($"{path} exists and was not written by NetnsNat; leaving it as it is. Remove it to let Enable-NamespaceNat manage the namespace's resolver.");
                return false;
            }
            if (!_host.ShouldProcess(path, $"Write resolv.conf for namespace {ns}: nameserver {string.Join(", nameserver ", servers)}")) return false;
            var directory = Resolver.NamespaceDirectory(ns);
            bool createdDirectory = !Directory.Exists(directory);
            // Modes set explicitly, whatever the umask (077 is common for root): every process in the namespace reads it.
            if (!Directory.Exists(Resolver.NetnsRoot))
            {
                Directory.CreateDirectory(Resolver.NetnsRoot);
                File.SetUnixFileMode(Resolver.NetnsRoot, Resolver.DirectoryMode);
            }
            if (createdDirectory)
            {
                Directory.CreateDirectory(directory);
                File.SetUnixFileMode(directory, Resolver.DirectoryMode);
            }
            File.WriteAllText(path, content);
            File.SetUnixFileMode(path, Resolver.FileMode);
            tx.Record(group, $"{path}", () =>
            {
                if (previous != null) File.WriteAllText(path, previous);
                else File.Delete(path);
                if (createdDirectory && Directory.Exists(directory) && !Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
            });
            return true;
        }

        /// <summary>Removes /etc/netns/NAME/resolv.conf when NetnsNat wrote it (and the folder when that leaves it empty).</summary>
        public void Remove(string ns)
        {
            var path = Resolver.NamespaceResolvConf(ns);
            if (!Resolver.IsOwnFile(path) || !_host.ShouldProcess(path, "Remove the resolv.conf NetnsNat wrote")) return;
            File.Delete(path);
            var directory = Resolver.NamespaceDirectory(ns);
            if (!Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
        }
    }
}
