using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Runtime.InteropServices;
using System.Threading;
using NetnsNat.Model;
using static NetnsNat.Linux.NetlinkAttributes;

namespace NetnsNat.Linux
{
    /// <summary>A netlink request the kernel refused, with its errno and the error id of the step that made it.</summary>
    public sealed class NetlinkException : Exception
    {
        internal NetlinkException(string operation, int errno, string errorId)
            : base($"{operation}: {Native.Strerror(errno)} (errno {errno})")
        {
            Errno = errno;
            ErrorId = errorId;
        }

        public int Errno { get; }

        /// <summary>The error id of the step that failed: RouteFailed for a namespace's routes, InterfaceReadFailed for the host's interfaces.</summary>
        public string ErrorId { get; }
    }

    /// <summary>
    /// The C library's calls, as source-generated P/Invokes: their marshalling is C# compiled with the module (so
    /// ReadyToRun code, like the rest), and with runtime marshalling off (AssemblyInfo.cs) the calls themselves need no
    /// stub made at run time: a fresh pwsh JIT-compiles none of them on its first call.
    /// </summary>
    internal static partial class Native
    {
        public const int CLONE_NEWNET = 0x40000000;
        public const int O_RDONLY = 0, O_CLOEXEC = 0x80000;

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] public static partial int open(string path, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial int close(int fd);

        /// <summary>statx(2) with a 256-byte struct statx: the same layout on every architecture.</summary>
        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] public static partial int statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] public static partial int link(string oldPath, string newPath);
        [LibraryImport("libc", SetLastError = true)] public static partial int setns(int fd, int nstype);
        [LibraryImport("libc", SetLastError = true)] public static partial int socket(int domain, int type, int protocol);
        [LibraryImport("libc", SetLastError = true)] public static partial nint send(int fd, byte[] buf, nint len, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial nint recv(int fd, byte[] buf, nint len, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial int setsockopt(int fd, int level, int name, long[] value, int len);
        [LibraryImport("libc", SetLastError = true, EntryPoint = "setsockopt")] public static partial int setsockoptInt(int fd, int level, int name, ref int value, int len);
        [LibraryImport("libc", SetLastError = true)] public static partial int getifaddrs(out IntPtr ifap);
        [LibraryImport("libc")] public static partial void freeifaddrs(IntPtr ifa);
        [LibraryImport("libc")] public static partial IntPtr strerror(int errnum);

        /// <summary>The C library's text for an errno.</summary>
        public static string Strerror(int errno) => Marshal.PtrToStringAnsi(strerror(errno)) ?? "error";
    }

    // Classes, not value tuples: code for a generic over a value type (List<(ushort, byte[])>) is not in a ReadyToRun
    // image when the generic lives in another assembly, so a fresh pwsh JIT-compiles it on the first call; over classes
    // it shares the precompiled List<__Canon> code (docs/performance.md, the cold start).

    /// <summary>One netlink attribute: its type (without the nested and byte-order flags) and its data.</summary>
    internal sealed record NlAttribute(ushort Type, byte[] Data);

    /// <summary>One netlink message of what a recv returned: its type, sequence number and payload after the 16-byte header.</summary>
    internal sealed record NlMessage(ushort Type, uint Seq, byte[] Payload);

    /// <summary>One message of an answer to a request: its type and payload.</summary>
    internal sealed record NlReply(ushort Type, byte[] Payload);

    /// <summary>Building and reading netlink attributes (struct nlattr: length, type, payload padded to 4 bytes).</summary>
    internal static class NetlinkAttributes
    {
        /// <summary>The data of the first attribute of a type among parsed ones; null when there is none.</summary>
        public static byte[]? Find(List<NlAttribute> fields, ushort type)
        {
            foreach (var (t, d) in fields)
            {
                if (t == type) return d;
            }
            return null;
        }

        /// <summary>A big-endian 32-bit attribute among parsed ones; null when it is absent or of another length.</summary>
        public static uint? U32(List<NlAttribute> fields, ushort type) =>
            Find(fields, type) is { Length: 4 } d ? BinaryPrimitives.ReadUInt32BigEndian(d) : null;

        /// <summary>NFTA_DATA_VALUE (1) inside a nested data attribute (a cmp's, a bitwise's mask, an element's key).</summary>
        public static byte[]? Value(byte[]? nested) => nested == null ? null : Find(Attributes(nested, 0), 1);

        public static byte[] Attribute(ushort type, byte[] data)
        {
            var attr = new byte[(4 + data.Length + 3) & ~3];
            BinaryPrimitives.WriteUInt16LittleEndian(attr, (ushort)(4 + data.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(attr.AsSpan(2), type);
            data.CopyTo(attr, 4);
            return attr;
        }

        public static byte[] BigEndian(uint value)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(b, value);
            return b;
        }

        public static byte[] Concat(params byte[][] parts)
        {
            var r = new byte[parts.Sum(p => p.Length)];
            int at = 0;
            foreach (var p in parts)
            {
                p.CopyTo(r, at);
                at += p.Length;
            }
            return r;
        }

        /// <summary>The attributes of a payload from an offset on, each as (type without flags, data).</summary>
        public static List<NlAttribute> Attributes(byte[] payload, int offset)
        {
            var attributes = new List<NlAttribute>();
            while (offset + 4 <= payload.Length)
            {
                int len = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(offset));
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(offset + 2));
                if (len < 4 || offset + len > payload.Length) break;
                attributes.Add(new NlAttribute((ushort)(type & 0x3FFF), payload.AsSpan(offset + 4, len - 4).ToArray()));
                offset += (len + 3) & ~3;
            }
            return attributes;
        }

        /// <summary>The messages in what one recv returned: (type, sequence number, payload after the 16-byte header).</summary>
        public static List<NlMessage> Messages(byte[] buffer, int length)
        {
            var messages = new List<NlMessage>();
            int offset = 0;
            while (offset + 16 <= length)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset));
                if (len < 16 || offset + len > length) break;
                messages.Add(new NlMessage(BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(offset + 4)),
                    BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset + 8)),
                    buffer.AsSpan(offset + 16, len - 16).ToArray()));
                offset += (len + 3) & ~3;
            }
            return messages;
        }
    }

    /// <summary>/sys/class/net shows another namespace's interfaces (entered without a sysfs of its own).</summary>
    internal sealed class StaleSysfsException : Exception
    {
        public StaleSysfsException()
            : base("/sys/class/net belongs to another network namespace.")
        {
        }
    }

    /// <summary>The interfaces of the current network namespace from getifaddrs(3) and /sys/class/net: no process.</summary>
    internal static class InterfaceTable
    {
        private const int AF_INET = 2, AF_INET6 = 10, IFF_UP = 1;

        /// <summary>
        /// Reads the interfaces and their addresses; the kind (bridge, veth, ...) comes from /sys/class/net. Returns
        /// null when /sys/class/net does not show this namespace's interfaces (a process that entered the namespace
        /// without mounting a sysfs of its own), so that the caller can fall back to "ip -d addr".
        /// </summary>
        public static IReadOnlyList<LinkInfo>? Read()
        {
            if (Native.getifaddrs(out var list) != 0) return null;
            var order = new List<string>();
            var flags = new Dictionary<string, uint>(StringComparer.Ordinal);
            var addresses = new Dictionary<string, List<IpPrefix>>(StringComparer.Ordinal);
            try
            {
                for (var p = list; p != IntPtr.Zero; p = Marshal.ReadIntPtr(p))
                {
                    var name = Marshal.PtrToStringAnsi(Marshal.ReadIntPtr(p, 8)) ?? string.Empty;
                    var ifaFlags = (uint)Marshal.ReadInt32(p, 16);
                    var addr = Marshal.ReadIntPtr(p, 24);
                    if (!flags.ContainsKey(name))
                    {
                        order.Add(name);
                        addresses[name] = new List<IpPrefix>();
                    }
                    flags[name] = ifaFlags;
                    if (addr == IntPtr.Zero) continue;
                    int family = Marshal.ReadInt16(addr);
                    if (family != AF_INET && family != AF_INET6) continue;
                    // sockaddr_in keeps the address at offset 4, sockaddr_in6 at offset 8.
                    int at = family == AF_INET ? 4 : 8, length = family == AF_INET ? 4 : 16;
                    var bytes = new byte[length];
                    Marshal.Copy(addr + at, bytes, 0, length);
                    var mask = Marshal.ReadIntPtr(p, 32);
                    int prefix = length * 8;
                    if (mask != IntPtr.Zero)
                    {
                        var maskBytes = new byte[length];
                        Marshal.Copy(mask + at, maskBytes, 0, length);
                        prefix = maskBytes.Sum(b => System.Numerics.BitOperations.PopCount(b));
                    }
                    addresses[name].Add(new IpPrefix(new IPAddress(bytes), prefix));
                }
            }
            finally
            {
                Native.freeifaddrs(list);
            }
            var links = new List<LinkInfo>(order.Count);
            foreach (var name in order)
            {
                var sys = Path.Combine("/sys/class/net", name);
                if (!Directory.Exists(sys)) return null; // stale sysfs: not this namespace's
                string? kind = Directory.Exists(Path.Combine(sys, "bridge")) ? "bridge" : ReadKind(sys);
                bool up = (flags[name] & IFF_UP) != 0;
                links.Add(new LinkInfo(name, kind, up, up ? "UP" : "DOWN", addresses[name], ReadMaster(sys)));
            }
            return links;
        }

        /// <summary>
        /// One interface by name, from /sys/class/net and one rtnetlink address dump: no process, and no walk over
        /// every interface (a host with thousands of veths costs the same as one with three). Null when it does not
        /// exist; throws StaleSysfsException when /sys/class/net belongs to another namespace.
        /// </summary>
        public static LinkInfo? ReadOne(string name)
        {
            var sys = Path.Combine("/sys/class/net", name);
            using var netlink = NamespaceRoutes.OpenCurrent();
            if (!File.Exists(Path.Combine(sys, "ifindex")))
            {
                // Missing from sysfs: really missing, or sysfs shows another namespace? The kernel knows.
                if (netlink.LinkExists(name)) throw new StaleSysfsException();
                return null;
            }
            int index = int.Parse(File.ReadAllText(Path.Combine(sys, "ifindex")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            if (netlink.NameOf(index) != name) throw new StaleSysfsException();
            uint flags = Convert.ToUInt32(File.ReadAllText(Path.Combine(sys, "flags")).Trim(), 16);
            string? kind = Directory.Exists(Path.Combine(sys, "bridge")) ? "bridge" : ReadKind(sys);
            bool up = (flags & IFF_UP) != 0;
            return new LinkInfo(name, kind, up, up ? "UP" : "DOWN", netlink.Addresses(index), ReadMaster(sys));
        }

        /// <summary>The interface names /sys/class/net lists (for messages and completion).</summary>
        public static IReadOnlyList<string> Names() =>
            Directory.Exists("/sys/class/net") ? Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal).ToArray() : Array.Empty<string>();

        /// <summary>Whether this namespace has an interface of that name: one RTM_GETLINK, so a stale sysfs cannot mislead it.</summary>
        public static bool Exists(string name)
        {
            using var netlink = NamespaceRoutes.OpenCurrent();
            return netlink.LinkExists(name);
        }

        private static string? ReadMaster(string sys)
        {
            var master = Path.Combine(sys, "master");
            try
            {
                return Directory.Exists(master) ? Path.GetFileName(new FileInfo(master).LinkTarget ?? string.Empty) : null;
            }
            catch (IOException)
            {
                return null;
            }
        }

        private static string? ReadKind(string sys)
        {
            // DEVTYPE in uevent names the kind for most virtual devices (veth, vlan, ...); absent for physical ones.
            var uevent = Path.Combine(sys, "uevent");
            if (!File.Exists(uevent)) return null;
            foreach (var line in File.ReadLines(uevent))
            {
                if (line.StartsWith("DEVTYPE=", StringComparison.Ordinal)) return line.Substring(8);
            }
            return Directory.Exists(Path.Combine(sys, "device")) ? null : (File.Exists(Path.Combine(sys, "tun_flags")) ? "tun" : "virtual");
        }
    }

    /// <summary>
    /// Sockets made inside other network namespaces by one thread of the process that enters them (setns affects only
    /// the thread that calls it): it enters the namespace, creates the socket (which stays in the namespace it was made
    /// in), and goes back to the namespace it started in, so that it never keeps a deleted namespace alive. One thread for
    /// every namespace of a call, not a thread each (about a third of a millisecond each, a thousand namespaces piped).
    /// </summary>
    internal static class NamespaceSockets
    {
        private sealed record Request(string Path, string Display, int Domain, int Type, int Protocol)
        {
            public (int Fd, int Errno, string Step) Result { get; set; }

            public ManualResetEventSlim Done { get; } = new ManualResetEventSlim(false);
        }

        private static readonly object Gate = new object();
        private static System.Collections.Concurrent.BlockingCollection<Request>? _queue;

        /// <summary>A socket(domain, type, protocol) in the namespace behind the file; the fd, or -1 with the errno and the step that failed.</summary>
        public static (int Fd, int Errno, string Step) Create(string path, string display, int domain, int type, int protocol)
        {
            var request = new Request(path, display, domain, type, protocol);
            lock (Gate)
            {
                while (true)
                {
                    if (_queue == null || _queue.IsAddingCompleted)
                    {
                        var queue = new System.Collections.Concurrent.BlockingCollection<Request>();
                        var thread = new Thread(() => Serve(queue), 256 * 1024) { IsBackground = true, Name = "NetnsNat namespace sockets" };
                        thread.Start();
                        _queue = queue;
                    }
                    try
                    {
                        _queue.Add(request);
                        break;
                    }
                    catch (InvalidOperationException)
                    {
                        // The thread ended between the check and the add: another one is started.
                        _queue = null;
                    }
                }
            }
            request.Done.Wait();
            request.Done.Dispose();
            return request.Result;
        }

        private static void Serve(System.Collections.Concurrent.BlockingCollection<Request> queue)
        {
            // The namespace this thread starts in: the one it goes back to after each socket.
            int home = Native.open("/proc/thread-self/ns/net", Native.O_RDONLY | Native.O_CLOEXEC);
            foreach (var request in queue.GetConsumingEnumerable())
            {
                bool lost = false;
                try
                {
                    request.Result = Make(request, home, out lost);
                }
                finally
                {
                    request.Done.Set();
                }
                if (lost)
                {
                    // Could not go back: this thread ends (and with it its hold on the namespace); the next request starts another.
                    queue.CompleteAdding();
                    foreach (var left in queue.GetConsumingEnumerable())
                    {
                        left.Result = (-1, 11 /* EAGAIN */, "a socket in another namespace (the thread that makes them had to end; run it again)");
                        left.Done.Set();
                    }
                    break;
                }
            }
            if (home >= 0) Native.close(home);
        }

        private static (int Fd, int Errno, string Step) Make(Request request, int home, out bool lost)
        {
            lost = false;
            if (home < 0)
            {
                // Without the way back this thread serves nothing: it ends, and the next request starts another.
                lost = true;
                return (-1, Marshal.GetLastWin32Error(), "open /proc/thread-self/ns/net");
            }
            // O_NONBLOCK: a path that is a FIFO, not a namespace, must not hold the one thread every namespace goes through.
            int target = Native.open(request.Path, Native.O_RDONLY | Native.O_CLOEXEC | 0x800 /* O_NONBLOCK */);
            if (target < 0) return (-1, Marshal.GetLastWin32Error(), "open " + request.Path);
            try
            {
                if (Native.setns(target, Native.CLONE_NEWNET) != 0) return (-1, Marshal.GetLastWin32Error(), "setns " + request.Display);
                int fd = Native.socket(request.Domain, request.Type, request.Protocol);
                int errno = fd < 0 ? Marshal.GetLastWin32Error() : 0;
                if (Native.setns(home, Native.CLONE_NEWNET) != 0) lost = true;
                return fd < 0 ? (-1, errno, "netlink socket") : (fd, 0, string.Empty);
            }
            finally
            {
                Native.close(target);
            }
        }
    }

    /// <summary>
    /// An rtnetlink socket inside a network namespace, made by <see cref="NamespaceSockets"/>, so reading and setting a
    /// namespace's default route needs no process.
    /// </summary>
    internal sealed class NamespaceRoutes : IDisposable
    {
        private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_ROUTE = 0, AF_UNSPEC = 0;
        private const ushort RTM_NEWADDR = 20, RTM_GETADDR = 22, IFA_ADDRESS = 1, IFA_LOCAL = 2;
        private const ushort RTM_GETLINK = 18, RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26, NLMSG_ERROR = 2, NLMSG_DONE = 3;
        private const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_DUMP = 0x300, NLM_F_REPLACE = 0x100, NLM_F_CREATE = 0x400;
        private const ushort RTA_OIF = 4, RTA_GATEWAY = 5, RTA_TABLE = 15, IFLA_IFNAME = 3;
        private const byte RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RTN_UNICAST = 1, RT_SCOPE_NOWHERE = 255;
        private const int ESRCH = 3, ENODEV = 19;
        private readonly int _fd;
        private readonly string _errorId;
        private readonly byte[] _buffer = new byte[65536];
        private uint _seq;

        private NamespaceRoutes(int fd, string errorId)
        {
            _fd = fd;
            _errorId = errorId;
        }

        /// <summary>An rtnetlink socket in the network namespace behind a file (/run/netns/NAME, /proc/PID/ns/net); errorId names its failures.</summary>
        public static NamespaceRoutes Open(string path, string display, string errorId = "RouteFailed")
        {
            var (fd, errno, step) = NamespaceSockets.Create(path, display, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
            if (fd < 0) throw new NetlinkException(step, errno, errorId);
            // A receive timeout, so a kernel that never answers cannot hang the cmdlet (SOL_SOCKET, SO_RCVTIMEO).
            Native.setsockopt(fd, 1, 20, new long[] { 5, 0 }, 16);
            return new NamespaceRoutes(fd, errorId);
        }

        /// <summary>An rtnetlink socket in the namespace this process runs in, for reading its interfaces.</summary>
        public static NamespaceRoutes OpenCurrent()
        {
            int fd = Native.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
            if (fd < 0) throw new NetlinkException("netlink socket", Marshal.GetLastWin32Error(), "InterfaceReadFailed");
            Native.setsockopt(fd, 1, 20, new long[] { 5, 0 }, 16);
            // NETLINK_GET_STRICT_CHK: the kernel filters address dumps by interface index itself.
            int on = 1;
            Native.setsockoptInt(fd, 270, 12, ref on, 4);
            return new NamespaceRoutes(fd, "InterfaceReadFailed");
        }

        public void Dispose() => Native.close(_fd);

        /// <summary>The addresses of one interface, both families (RTM_GETADDR dump filtered by index).</summary>
        public IReadOnlyList<IpPrefix> Addresses(int ifindex) => ReadAddresses(ifindex);


        private IReadOnlyList<IpPrefix> ReadAddresses(int ifindex)
        {
            var ifaddr = new byte[8];
            ifaddr[0] = AF_UNSPEC;
            BinaryPrimitives.WriteInt32LittleEndian(ifaddr.AsSpan(4), ifindex);
            var found = new List<IpPrefix>();
            foreach (var (type, payload) in Exchange(Message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, ifaddr), dump: true, "read the addresses"))
            {
                if (type != RTM_NEWADDR || payload.Length < 8) continue;
                int prefix = payload[1];
                int index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
                if (ifindex != 0 && index != ifindex) continue;
                byte[]? local = null, address = null;
                foreach (var (attr, data) in Attributes(payload, 8))
                {
                    if (attr == IFA_LOCAL && (data.Length == 4 || data.Length == 16)) local = data;
                    else if (attr == IFA_ADDRESS && (data.Length == 4 || data.Length == 16)) address = data;
                }
                var a = local ?? address;
                if (a != null) found.Add(new IpPrefix(new IPAddress(a), prefix));
            }
            // IPv4 first, as getifaddrs lists them.
            return found.OrderBy(p => p.IsIPv4 ? 0 : 1).ToArray();
        }

        /// <summary>Every address of every interface of the socket's namespace, both families, with the interface index.</summary>
        public IReadOnlyList<(int Index, IpPrefix Address)> AllAddresses()
        {
            var found = new List<(int, IpPrefix)>();
            foreach (var (type, payload) in Exchange(Message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, new byte[8]), dump: true, "read the addresses"))
            {
                if (type != RTM_NEWADDR || payload.Length < 8) continue;
                int prefix = payload[1];
                int index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
                byte[]? local = null, address = null;
                foreach (var (attr, data) in Attributes(payload, 8))
                {
                    if (attr == IFA_LOCAL && (data.Length == 4 || data.Length == 16)) local = data;
                    else if (attr == IFA_ADDRESS && (data.Length == 4 || data.Length == 16)) address = data;
                }
                var a = local ?? address;
                if (a != null) found.Add((index, new IpPrefix(new IPAddress(a), prefix)));
            }
            return found;
        }

        /// <summary>One interface of the socket's namespace as rtnetlink describes it.</summary>
        public sealed record LinkRecord(int Index, string Name, bool IsUp, string? Kind, int Master, int Peer);

        /// <summary>Every interface of the socket's namespace (RTM_GETLINK dump): index, name, up, kind, master index, peer index.</summary>
        public IReadOnlyList<LinkRecord> AllLinks()
        {
            const ushort IFLA_LINK = 5, IFLA_MASTER = 10, IFLA_LINKINFO = 18, IFLA_INFO_KIND = 1;
            var links = new List<LinkRecord>();
            foreach (var (type, payload) in Exchange(Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, new byte[16]), dump: true, "read the links"))
            {
                if (type != 16 /* RTM_NEWLINK */ || payload.Length < 16) continue;
                int index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
                uint flags = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(8));
                string name = string.Empty;
                string? kind = null;
                int master = 0, peer = 0;
                foreach (var (attr, data) in Attributes(payload, 16))
                {
                    if (attr == IFLA_IFNAME) name = System.Text.Encoding.ASCII.GetString(data).TrimEnd('\0');
                    else if (attr == IFLA_MASTER && data.Length >= 4) master = BinaryPrimitives.ReadInt32LittleEndian(data);
                    else if (attr == IFLA_LINK && data.Length >= 4) peer = BinaryPrimitives.ReadInt32LittleEndian(data);
                    else if (attr == IFLA_LINKINFO)
                    {
                        foreach (var (info, value) in Attributes(data, 0))
                        {
                            if (info == IFLA_INFO_KIND) kind = System.Text.Encoding.ASCII.GetString(value).TrimEnd('\0');
                        }
                    }
                }
                links.Add(new LinkRecord(index, name, (flags & 1) != 0, kind, master, peer));
            }
            return links;
        }

        /// <summary>Whether an interface of that name exists in this socket's namespace (RTM_GETLINK by IFLA_IFNAME).</summary>
        public bool LinkExists(string name)
        {
            var body = Concat(new byte[16], Attribute(IFLA_IFNAME, System.Text.Encoding.ASCII.GetBytes(name + "\0")));
            try
            {
                return Exchange(Message(RTM_GETLINK, NLM_F_REQUEST, body), dump: false, "read a link", expectReply: true).Count > 0;
            }
            catch (NetlinkException ex) when (ex.Errno == ENODEV)
            {
                return false;
            }
        }

        /// <summary>The name the kernel gives an interface index in this socket's namespace, or null when there is none.</summary>
        public string? NameOf(int ifindex)
        {
            try
            {
                return LinkName(ifindex);
            }
            catch (NetlinkException ex) when (ex.Errno == ENODEV)
            {
                return null;
            }
        }

        /// <summary>The default route of the main table for a family, or null.</summary>
        public DefaultRoute? GetDefault(AddressFamilyProfile family, IPAddress? via = null)
        {
            var request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, RouteHeader(family, 0, 0, 0, 0));
            DefaultRoute? found = null;
            foreach (var (type, payload) in Exchange(request, dump: true, "read the routes"))
            {
                if (type != RTM_NEWROUTE || payload.Length < 12 || payload[0] != family.RouteFamily) continue;
                byte dstLen = payload[1];
                uint table = payload[4];
                IPAddress? gateway = null;
                int oif = 0;
                foreach (var (attr, data) in Attributes(payload, 12))
                {
                    if (attr == RTA_TABLE && data.Length >= 4) table = BinaryPrimitives.ReadUInt32LittleEndian(data);
                    else if (attr == RTA_GATEWAY && data.Length == family.AddressBytes) gateway = new IPAddress(data);
                    else if (attr == RTA_OIF && data.Length >= 4) oif = BinaryPrimitives.ReadInt32LittleEndian(data);
                }
                if (dstLen != 0 || table != RT_TABLE_MAIN || found != null) continue;
                // With a gateway asked for, the default route through it (an IPv6 namespace can have several: one learned
                // from router advertisements via fe80::, another NetnsNat set).
                if (via != null && !via.Equals(gateway)) continue;
                found = new DefaultRoute(gateway, oif > 0 ? LinkName(oif) : null);
            }
            return found;
        }

        /// <summary>The interface the kernel routes a destination out of (RTM_GETROUTE for one address), or null.</summary>
        public string? RouteTo(IPAddress destination)
        {
            var family = AddressFamilyProfile.Of(destination);
            var header = RouteHeader(family, 0, 0, 0, 0);
            header[1] = (byte)family.MaxPrefix;
            var body = Concat(header, Attribute(1 /* RTA_DST */, destination.GetAddressBytes()));
            try
            {
                foreach (var (type, payload) in Exchange(Message(RTM_GETROUTE, NLM_F_REQUEST, body), dump: false, "look up a route", expectReply: true))
                {
                    if (type != RTM_NEWROUTE || payload.Length < 12) continue;
                    foreach (var (attr, data) in Attributes(payload, 12))
                    {
                        if (attr == RTA_OIF && data.Length >= 4) return LinkName(BinaryPrimitives.ReadInt32LittleEndian(data));
                    }
                }
            }
            catch (NetlinkException ex) when (ex.Errno == 101 || ex.Errno == 113 || ex.Errno == 22)
            {
                return null;
            }
            return null;
        }

        /// <summary>ip route replace default via GATEWAY.</summary>
        public void ReplaceDefault(IPAddress gateway)
        {
            var family = AddressFamilyProfile.Of(gateway);
            var body = Concat(RouteHeader(family, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST), Attribute(RTA_GATEWAY, gateway.GetAddressBytes()));
            Exchange(Message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body), dump: false, "set the default route");
        }

        /// <summary>ip route del default [via GATEWAY]; false when there was none.</summary>
        public bool DeleteDefault(AddressFamilyProfile family, IPAddress? via = null)
        {
            try
            {
                var header = RouteHeader(family, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0);
                var body = via == null ? header : Concat(header, Attribute(RTA_GATEWAY, via.GetAddressBytes()));
                Exchange(Message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, body), dump: false, "delete the default route");
                return true;
            }
            catch (NetlinkException ex) when (ex.Errno == ESRCH)
            {
                return false;
            }
        }

        private string? LinkName(int index)
        {
            var ifinfo = new byte[16];
            BinaryPrimitives.WriteInt32LittleEndian(ifinfo.AsSpan(4), index);
            foreach (var (type, payload) in Exchange(Message(RTM_GETLINK, NLM_F_REQUEST, ifinfo), dump: false, "read a link", expectReply: true))
            {
                foreach (var (attr, data) in Attributes(payload, 16))
                {
                    if (attr == IFLA_IFNAME) return System.Text.Encoding.ASCII.GetString(data).TrimEnd('\0');
                }
            }
            return null;
        }

        private static byte[] RouteHeader(AddressFamilyProfile family, byte table, byte protocol, byte scope, byte type) =>
            new byte[] { family.RouteFamily, 0, 0, 0, table, protocol, scope, type, 0, 0, 0, 0 };

        private byte[] Message(ushort type, ushort flags, byte[] body)
        {
            var message = new byte[16 + body.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), type);
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(6), flags);
            BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), ++_seq);
            body.CopyTo(message, 16);
            return message;
        }

        /// <summary>Sends one request and collects the answer: the messages of a dump, or the ack (or one reply).</summary>
        private List<NlReply> Exchange(byte[] request, bool dump, string operation, bool expectReply = false)
        {
            if (Native.send(_fd, request, request.Length, 0) < 0) throw new NetlinkException(operation, Marshal.GetLastWin32Error(), _errorId);
            uint seq = _seq;
            var messages = new List<NlReply>();
            while (true)
            {
                var n = (int)Native.recv(_fd, _buffer, _buffer.Length, 0);
                if (n < 0) throw new NetlinkException(operation, Marshal.GetLastWin32Error(), _errorId);
                foreach (var (type, msgSeq, payload) in Messages(_buffer, n))
                {
                    if (msgSeq != seq) continue;
                    if (type == NLMSG_DONE) return messages;
                    if (type == NLMSG_ERROR)
                    {
                        int error = BinaryPrimitives.ReadInt32LittleEndian(payload);
                        if (error != 0) throw new NetlinkException(operation, -error, _errorId);
                        return messages;
                    }
                    messages.Add(new NlReply(type, payload));
                    if (!dump && expectReply) return messages;
                }
            }
        }
    }
}
