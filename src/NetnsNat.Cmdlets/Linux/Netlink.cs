using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Linq;
using System.Threading;
using static NetnsNat.Linux.NetlinkAttributes;

namespace NetnsNat.Linux
{
    /// <summary>A netlink request the kernel refused, with its errno.</summary>
    public sealed class NetlinkException : Exception
    {
        public NetlinkException(string operation, int errno)
            : base($"{operation}: {Native.Strerror(errno)} (errno {errno})")
        {
            Errno = errno;
        }

        public int Errno { get; }
    }

    internal static class Native
    {
        public const int CLONE_NEWNET = 0x40000000;
        public const int O_RDONLY = 0, O_CLOEXEC = 0x80000;

        [DllImport("libc", SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
        [DllImport("libc", SetLastError = true)] public static extern int setns(int fd, int nstype);
        [DllImport("libc", SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
        [DllImport("libc", SetLastError = true)] public static extern nint send(int fd, byte[] buf, nint len, int flags);
        [DllImport("libc", SetLastError = true)] public static extern nint recv(int fd, byte[] buf, nint len, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int setsockopt(int fd, int level, int name, long[] value, int len);
        [DllImport("libc", SetLastError = true, EntryPoint = "setsockopt")] public static extern int setsockoptInt(int fd, int level, int name, ref int value, int len);
        [DllImport("libc", SetLastError = true)] public static extern int getifaddrs(out IntPtr ifap);
        [DllImport("libc")] public static extern void freeifaddrs(IntPtr ifa);
        [DllImport("libc")] public static extern IntPtr strerror(int errnum);

        /// <summary>The C library's text for an errno.</summary>
        public static string Strerror(int errno) => Marshal.PtrToStringAnsi(strerror(errno)) ?? "error";
    }

    /// <summary>Building and reading netlink attributes (struct nlattr: length, type, payload padded to 4 bytes).</summary>
    internal static class NetlinkAttributes
    {
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
        public static List<(ushort Type, byte[] Data)> Attributes(byte[] payload, int offset)
        {
            var attributes = new List<(ushort, byte[])>();
            while (offset + 4 <= payload.Length)
            {
                int len = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(offset));
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(offset + 2));
                if (len < 4 || offset + len > payload.Length) break;
                attributes.Add(((ushort)(type & 0x3FFF), payload.AsSpan(offset + 4, len - 4).ToArray()));
                offset += (len + 3) & ~3;
            }
            return attributes;
        }

        /// <summary>The messages in what one recv returned: (type, sequence number, payload after the 16-byte header).</summary>
        public static List<(ushort Type, uint Seq, byte[] Payload)> Messages(byte[] buffer, int length)
        {
            var messages = new List<(ushort, uint, byte[])>();
            int offset = 0;
            while (offset + 16 <= length)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset));
                if (len < 16 || offset + len > length) break;
                messages.Add((BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(offset + 4)),
                    BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset + 8)),
                    buffer.AsSpan(offset + 16, len - 16).ToArray()));
                offset += (len + 3) & ~3;
            }
            return messages;
        }
    }

    /// <summary>
    /// The nf_tables ruleset generation of the current network namespace (NFT_MSG_GETGEN): it changes with every
    /// committed change, by anyone, so an unchanged number means an unchanged ruleset.
    /// </summary>
    public static class NftGeneration
    {
        private const ushort NFT_MSG_GETGEN = (10 << 8) | 16, NFT_MSG_NEWGEN = (10 << 8) | 15, NLM_F_REQUEST = 1, NFTA_GEN_ID = 1;

        /// <summary>The generation id, or null when nf_tables cannot tell (no nf_tables, or an error).</summary>
        public static uint? Read()
        {
            try
            {
                using var socket = NftRules.NetfilterSocket.Open(0, receiveBytes: 4096, timeoutSeconds: 2);
                socket.Send(NftRules.Message(NFT_MSG_GETGEN, NLM_F_REQUEST, 1, 0, 0, Array.Empty<byte>()), "read the ruleset generation");
                foreach (var (type, _, payload) in socket.Receive("read the ruleset generation"))
                {
                    if (type != NFT_MSG_NEWGEN) continue;
                    foreach (var (attr, data) in Attributes(payload, 4))
                    {
                        if (attr == NFTA_GEN_ID && data.Length >= 4) return BinaryPrimitives.ReadUInt32BigEndian(data);
                    }
                }
                return null;
            }
            catch (NftablesException)
            {
                return null;
            }
        }
    }

    /// <summary>/sys/class/net shows another namespace's interfaces (entered without a sysfs of its own).</summary>
    public sealed class StaleSysfsException : Exception
    {
        public StaleSysfsException()
            : base("/sys/class/net belongs to another network namespace.")
        {
        }
    }

    /// <summary>The interfaces of the current network namespace from getifaddrs(3): no process, one system call.</summary>
    public static class InterfaceTable
    {
        private const int AF_INET = 2, AF_PACKET = 17, IFF_UP = 1;

        /// <summary>
        /// Reads the interfaces and their IPv4 addresses; the kind (bridge, veth, ...) comes from /sys/class/net. Returns
        /// null when /sys/class/net does not show this namespace's interfaces (a process that entered the namespace
        /// without mounting a sysfs of its own), so that the caller can fall back to "ip -d addr".
        /// </summary>
        public static IReadOnlyList<LinkInfo>? Read()
        {
            if (Native.getifaddrs(out var list) != 0) return null;
            var order = new List<string>();
            var flags = new Dictionary<string, uint>(StringComparer.Ordinal);
            var addresses = new Dictionary<string, List<Ipv4Cidr>>(StringComparer.Ordinal);
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
                        addresses[name] = new List<Ipv4Cidr>();
                    }
                    flags[name] = ifaFlags;
                    if (addr == IntPtr.Zero || Marshal.ReadInt16(addr) != AF_INET) continue;
                    var mask = Marshal.ReadIntPtr(p, 32);
                    uint ip = BinaryPrimitives.ReverseEndianness((uint)Marshal.ReadInt32(addr, 4));
                    uint netmask = mask == IntPtr.Zero ? uint.MaxValue : BinaryPrimitives.ReverseEndianness((uint)Marshal.ReadInt32(mask, 4));
                    addresses[name].Add(new Ipv4Cidr(ip, PrefixOf(netmask)));
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
                links.Add(new LinkInfo(name, kind, up, up ? "UP" : "DOWN", addresses[name]));
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
            return new LinkInfo(name, kind, up, up ? "UP" : "DOWN", netlink.Ipv4Addresses(index));
        }

        /// <summary>The interface names /sys/class/net lists (for messages and completion).</summary>
        public static IReadOnlyList<string> Names() =>
            Directory.Exists("/sys/class/net") ? Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal).ToArray() : Array.Empty<string>();

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

        private static int PrefixOf(uint mask)
        {
            int n = 0;
            while ((mask & 0x80000000u) != 0) { n++; mask <<= 1; }
            return n;
        }
    }

    /// <summary>
    /// An rtnetlink socket inside a named network namespace, opened from a short-lived thread that enters the
    /// namespace (setns affects only that thread), so reading and setting a namespace's default route needs no process.
    /// </summary>
    public sealed class NamespaceRoutes : IDisposable
    {
        private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_ROUTE = 0, AF_INET = 2;
        private const ushort RTM_NEWADDR = 20, RTM_GETADDR = 22, IFA_ADDRESS = 1, IFA_LOCAL = 2;
        private const ushort RTM_GETLINK = 18, RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26, NLMSG_ERROR = 2, NLMSG_DONE = 3;
        private const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_DUMP = 0x300, NLM_F_REPLACE = 0x100, NLM_F_CREATE = 0x400;
        private const ushort RTA_OIF = 4, RTA_GATEWAY = 5, RTA_TABLE = 15, IFLA_IFNAME = 3;
        private const byte RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RTN_UNICAST = 1, RT_SCOPE_NOWHERE = 255;
        private const int ESRCH = 3;
        private readonly int _fd;
        private readonly byte[] _buffer = new byte[65536];
        private uint _seq;

        private NamespaceRoutes(int fd) => _fd = fd;

        public static NamespaceRoutes Open(string ns)
        {
            var path = Path.Combine(IpRoute2.NetnsDirectory, ns);
            if (!File.Exists(path)) throw new NamespaceNotFoundException(ns);
            int fd = -1, errno = 0;
            string step = string.Empty;
            var thread = new Thread(() =>
            {
                int target = Native.open(path, Native.O_RDONLY | Native.O_CLOEXEC);
                if (target < 0) { errno = Marshal.GetLastWin32Error(); step = "open " + path; return; }
                try
                {
                    // This thread exits after creating the socket; the socket stays in the namespace it was made in.
                    if (Native.setns(target, Native.CLONE_NEWNET) != 0) { errno = Marshal.GetLastWin32Error(); step = "setns " + ns; return; }
                    fd = Native.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
                    if (fd < 0) { errno = Marshal.GetLastWin32Error(); step = "netlink socket"; }
                }
                finally
                {
                    Native.close(target);
                }
            }, 256 * 1024);
            thread.Start();
            thread.Join();
            if (fd < 0) throw new NetlinkException(step, errno);
            // A receive timeout, so a kernel that never answers cannot hang the cmdlet (SOL_SOCKET, SO_RCVTIMEO).
            Native.setsockopt(fd, 1, 20, new long[] { 5, 0 }, 16);
            return new NamespaceRoutes(fd);
        }

        /// <summary>An rtnetlink socket in the namespace this process runs in.</summary>
        public static NamespaceRoutes OpenCurrent()
        {
            int fd = Native.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
            if (fd < 0) throw new NetlinkException("netlink socket", Marshal.GetLastWin32Error());
            Native.setsockopt(fd, 1, 20, new long[] { 5, 0 }, 16);
            // NETLINK_GET_STRICT_CHK: the kernel filters address dumps by interface index itself.
            int on = 1;
            Native.setsockoptInt(fd, 270, 12, ref on, 4);
            return new NamespaceRoutes(fd);
        }

        public void Dispose() => Native.close(_fd);

        /// <summary>The IPv4 addresses of one interface (RTM_GETADDR dump of the IPv4 family, filtered by index).</summary>
        public IReadOnlyList<Ipv4Cidr> Ipv4Addresses(int ifindex)
        {
            var ifaddr = new byte[8];
            ifaddr[0] = AF_INET;
            BinaryPrimitives.WriteInt32LittleEndian(ifaddr.AsSpan(4), ifindex);
            var found = new List<Ipv4Cidr>();
            foreach (var (type, payload) in Exchange(Message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, ifaddr), dump: true, "read the addresses"))
            {
                if (type != RTM_NEWADDR || payload.Length < 8) continue;
                int prefix = payload[1];
                int index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
                if (index != ifindex) continue;
                byte[]? local = null, address = null;
                foreach (var (attr, data) in Attributes(payload, 8))
                {
                    if (attr == IFA_LOCAL && data.Length == 4) local = data;
                    else if (attr == IFA_ADDRESS && data.Length == 4) address = data;
                }
                var a = local ?? address;
                if (a != null) found.Add(new Ipv4Cidr(BinaryPrimitives.ReadUInt32BigEndian(a), prefix));
            }
            return found;
        }

        /// <summary>Whether an interface of that name exists in this socket's namespace (RTM_GETLINK by IFLA_IFNAME).</summary>
        public bool LinkExists(string name)
        {
            var body = Concat(new byte[16], Attribute(IFLA_IFNAME, System.Text.Encoding.ASCII.GetBytes(name + "\0")));
            try
            {
                return Exchange(Message(RTM_GETLINK, NLM_F_REQUEST, body), dump: false, "read a link", expectReply: true).Count > 0;
            }
            catch (NetlinkException ex) when (ex.Errno == 19)
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
            catch (NetlinkException ex) when (ex.Errno == 19)
            {
                return null;
            }
        }

        /// <summary>The IPv4 default route of the main table, or null.</summary>
        public DefaultRoute? GetDefault()
        {
            var request = Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, RouteHeader(0, 0, 0, 0));
            DefaultRoute? found = null;
            foreach (var (type, payload) in Exchange(request, dump: true, "read the routes"))
            {
                if (type != RTM_NEWROUTE || payload.Length < 12) continue;
                byte dstLen = payload[1];
                uint table = payload[4];
                string? gateway = null;
                int oif = 0;
                foreach (var (attr, data) in Attributes(payload, 12))
                {
                    if (attr == RTA_TABLE && data.Length >= 4) table = BinaryPrimitives.ReadUInt32LittleEndian(data);
                    else if (attr == RTA_GATEWAY && data.Length == 4) gateway = Ipv4Cidr.FormatAddress(BinaryPrimitives.ReadUInt32BigEndian(data));
                    else if (attr == RTA_OIF && data.Length >= 4) oif = BinaryPrimitives.ReadInt32LittleEndian(data);
                }
                if (dstLen != 0 || table != RT_TABLE_MAIN || found != null) continue;
                found = new DefaultRoute(gateway, oif > 0 ? LinkName(oif) : null);
            }
            return found;
        }

        /// <summary>ip route replace default via GATEWAY.</summary>
        public void ReplaceDefault(uint gateway)
        {
            var body = Concat(RouteHeader(RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST), Attribute(RTA_GATEWAY, BigEndian(gateway)));
            Exchange(Message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body), dump: false, "set the default route");
        }

        /// <summary>ip route del default; false when there was none.</summary>
        public bool DeleteDefault()
        {
            try
            {
                Exchange(Message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, RouteHeader(RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0)), dump: false, "delete the default route");
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

        private static byte[] RouteHeader(byte table, byte protocol, byte scope, byte type) =>
            new byte[] { AF_INET, 0, 0, 0, table, protocol, scope, type, 0, 0, 0, 0 };

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
        private List<(ushort Type, byte[] Payload)> Exchange(byte[] request, bool dump, string operation, bool expectReply = false)
        {
            if (Native.send(_fd, request, request.Length, 0) < 0) throw new NetlinkException(operation, Marshal.GetLastWin32Error());
            uint seq = _seq;
            var messages = new List<(ushort, byte[])>();
            while (true)
            {
                var n = (int)Native.recv(_fd, _buffer, _buffer.Length, 0);
                if (n < 0) throw new NetlinkException(operation, Marshal.GetLastWin32Error());
                foreach (var (type, msgSeq, payload) in Messages(_buffer, n))
                {
                    if (msgSeq != seq) continue;
                    if (type == NLMSG_DONE) return messages;
                    if (type == NLMSG_ERROR)
                    {
                        int error = BinaryPrimitives.ReadInt32LittleEndian(payload);
                        if (error != 0) throw new NetlinkException(operation, -error);
                        return messages;
                    }
                    messages.Add((type, payload));
                    if (!dump && expectReply) return messages;
                }
            }
        }
    }
}
