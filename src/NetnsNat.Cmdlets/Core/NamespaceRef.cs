using System.IO;
using NetnsNat.Linux;

namespace NetnsNat.Core
{
    /// <summary>
    /// A network namespace as the user named it: by name (what 'ip netns' knows, /run/netns/NAME) or by the path of a
    /// file that holds it (Docker's /run/docker/netns/ID, a process's /proc/PID/ns/net).
    /// </summary>
    /// <param name="Display">The name, or the path: how messages and objects name it.</param>
    /// <param name="Path">The file to open to enter it.</param>
    /// <param name="IsNamed">True for a named namespace (ip netns exec, /etc/netns/NAME work for it).</param>
    internal sealed record NamespaceRef(string Display, string Path, bool IsNamed)
    {
        public static NamespaceRef Named(string name) => new NamespaceRef(name, IpRoute2.NamespacePath(name), true);

        public static NamespaceRef AtPath(string path) => new NamespaceRef(path, path, false);

        /// <summary>A namespace as the state store records it: its name and path, the path twice for one given by path.</summary>
        public static NamespaceRef Of(string name, string path) => name == path ? AtPath(path) : Named(name);

        /// <summary>The parameter that names it in a command line: "-Namespace NAME" or "-NamespacePath PATH".</summary>
        public string Parameter => IsNamed ? "-Namespace " + Display : "-NamespacePath " + Path;

        /// <summary>The name for ip netns and /etc/netns; null for a namespace given by path.</summary>
        public string? Name => IsNamed ? Display : null;

        public bool Exists => File.Exists(Path);

        public void RequireExists()
        {
            if (!Exists) throw new NamespaceNotFoundException(Display, IsNamed);
        }

        public override string ToString() => Display;
    }
}
