using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using static NetnsNat.Linux.NetlinkAttributes;

namespace NetnsNat.Linux
{
    /// <summary>nf_tables refused a request or a batch. A batch is one kernel transaction: none of a refused batch took effect.</summary>
    public sealed class NftablesException : Exception
    {
        internal NftablesException(string message, int errno)
            : base(message)
        {
            Errno = errno;
        }

        public int Errno { get; }
    }

    /// <summary>The constants and message framing of nfnetlink (struct nlmsghdr + struct nfgenmsg) that every netfilter request uses.</summary>
    internal static class Nfnl
    {
        public const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_NETFILTER = 12;
        public const int SOL_SOCKET = 1, SO_RCVTIMEO = 20, SO_SNDBUFFORCE = 32, SOL_NETLINK = 270, NETLINK_CAP_ACK = 10;
        public const int ENOENT = 2, EPERM = 1, EBUSY = 16, ENOBUFS = 105, ERESTART = 85, EEXIST = 17, EOPNOTSUPP = 95;
        public const ushort NFNL_MSG_BATCH_BEGIN = 16, NFNL_MSG_BATCH_END = 17, NFNL_SUBSYS_NFTABLES = 10, NFNL_BATCH_GENID = 1;
        public const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_DUMP = 0x300, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;
        public const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3, NLA_F_NESTED = 0x8000;

        public static ushort NftMessage(int type) => (ushort)((NFNL_SUBSYS_NFTABLES << 8) | type);

        public static byte[] Message(ushort type, ushort flags, uint seq, byte family, ushort resId, byte[] body)
        {
            var message = new byte[20 + body.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), type);
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(6), flags);
            BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), seq);
            // struct nfgenmsg: family, version NFNETLINK_V0, res_id (big-endian; the subsystem for a batch)
            message[16] = family;
            BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(18), resId);
            body.CopyTo(message, 20);
            return message;
        }

        /// <summary>The message that opens an nf_tables batch; with a generation, the kernel refuses the batch (ERESTART) when the ruleset moved since.</summary>
        public static byte[] BatchBegin(uint seq, uint? generation) =>
            Message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES,
                generation is uint g && g != 0 ? Attribute(NFNL_BATCH_GENID, BigEndian(g)) : Array.Empty<byte>());

        public static byte[] BatchEnd(uint seq) => Message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, Array.Empty<byte>());

        public static byte[] Text(string value) => Encoding.ASCII.GetBytes(value + "\0");

        /// <summary>A string attribute as the kernel sends it: the text up to its NUL.</summary>
        public static string TextOf(byte[] data)
        {
            int end = Array.IndexOf(data, (byte)0);
            return Encoding.UTF8.GetString(data, 0, end < 0 ? data.Length : end);
        }

        /// <summary>User data holding a comment as nft and iptables-nft store it (NFTNL_UDATA_*_COMMENT: type 0, a one-byte length, the text with its NUL).</summary>
        public static byte[] CommentUserData(string comment)
        {
            var text = Encoding.UTF8.GetBytes(comment + "\0");
            return Concat(new byte[] { 0, (byte)text.Length }, text);
        }

        /// <summary>The comment (type 0) in user data, or null.</summary>
        public static string? CommentOf(byte[] userData)
        {
            int at = 0;
            while (at + 2 <= userData.Length)
            {
                int type = userData[at], length = userData[at + 1];
                if (at + 2 + length > userData.Length) break;
                if (type == 0) return Encoding.UTF8.GetString(userData, at + 2, length).TrimEnd('\0');
                at += 2 + length;
            }
            return null;
        }

        public static byte[] U32(ushort type, uint value) => Attribute(type, BigEndian(value));

        public static byte[] U64(ushort type, ulong value)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(b, value);
            return Attribute(type, b);
        }

        public static string Strerror(int errno) => Native.Strerror(errno);
    }

    /// <summary>A NETLINK_NETFILTER socket sized for one batch and its acks, with a receive timeout.</summary>
    internal sealed class NetfilterSocket : IDisposable
    {
        private readonly int _fd;
        private readonly byte[] _buffer;
        private uint _seq;

        private NetfilterSocket(int fd, int receiveBytes)
        {
            _fd = fd;
            _buffer = new byte[receiveBytes];
        }

        /// <summary>Opens the socket; receiveBytes stays under 85000 so that the buffer is not a large-object allocation.</summary>
        public static NetfilterSocket Open(int batchBytes, int receiveBytes = 65536, int timeoutSeconds = 5)
        {
            int fd = Native.socket(Nfnl.AF_NETLINK, Nfnl.SOCK_RAW | Nfnl.SOCK_CLOEXEC, Nfnl.NETLINK_NETFILTER);
            if (fd < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                throw new NftablesException($"Opening a netfilter netlink socket failed: {Nfnl.Strerror(errno)} (errno {errno}). The kernel may lack nf_tables (CONFIG_NF_TABLES).", errno);
            }
            Native.setsockopt(fd, Nfnl.SOL_SOCKET, Nfnl.SO_RCVTIMEO, new long[] { timeoutSeconds, 0 }, 16);
            // A large batch does not fit the default send buffer (about 200 KB); CAP_NET_ADMIN may raise it.
            int send = batchBytes + 65536;
            if (send > 200000) Native.setsockoptInt(fd, Nfnl.SOL_SOCKET, Nfnl.SO_SNDBUFFORCE, ref send, 4);
            // NETLINK_CAP_ACK: an error carries the header of the refused message, not all of it.
            int on = 1;
            Native.setsockoptInt(fd, Nfnl.SOL_NETLINK, Nfnl.NETLINK_CAP_ACK, ref on, 4);
            return new NetfilterSocket(fd, receiveBytes);
        }

        /// <summary>The first of a run of sequence numbers for one batch.</summary>
        public uint Reserve(int count)
        {
            uint first = _seq + 1;
            _seq += (uint)count;
            return first;
        }

        public uint Next() => ++_seq;

        /// <summary>Whether a table of the family has a chain of that name (NFT_MSG_GETCHAIN).</summary>
        public bool ChainExists(byte family, string table, string chain)
        {
            const ushort NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3;
            uint seq = Next();
            Send(Nfnl.Message(Nfnl.NftMessage(4), Nfnl.NLM_F_REQUEST, seq, family, 0,
                Concat(Attribute(NFTA_CHAIN_TABLE, Nfnl.Text(table)), Attribute(NFTA_CHAIN_NAME, Nfnl.Text(chain)))), "look up a chain");
            while (true)
            {
                foreach (var (type, msgSeq, payload) in Receive("look up a chain"))
                {
                    if (msgSeq != seq) continue;
                    if (type != Nfnl.NLMSG_ERROR) return true;
                    int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                    if (error == 0) return true;
                    if (error == Nfnl.ENOENT) return false;
                    throw new NftablesException($"Looking up chain {chain} of table {table}: {Nfnl.Strerror(error)} (errno {error}).", error);
                }
            }
        }

        /// <summary>Sends a dump request and collects the payloads of its messages of one type, until NLMSG_DONE.</summary>
        public List<byte[]> Dump(byte[] request, ushort type, string operation)
        {
            Send(request, operation);
            var found = new List<byte[]>();
            while (true)
            {
                foreach (var (msgType, _, payload) in Receive(operation))
                {
                    if (msgType == Nfnl.NLMSG_DONE) return found;
                    if (msgType == Nfnl.NLMSG_ERROR)
                    {
                        int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                        if (error == 0) return found;
                        throw new NftablesException($"Could not {operation}: {Nfnl.Strerror(error)} (errno {error}).", error);
                    }
                    if (msgType == type) found.Add(payload);
                }
            }
        }

        public void Send(byte[] data, string operation)
        {
            if (Native.send(_fd, data, data.Length, 0) < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                throw new NftablesException($"Could not {operation}: {Nfnl.Strerror(errno)} (errno {errno}).", errno);
            }
        }

        /// <summary>One recv into the socket's own buffer, for a reader that parses a large dump in place: the bytes stay valid until the next receive.</summary>
        public ReadOnlySpan<byte> ReceiveInPlace(string operation)
        {
            var n = (int)Native.recv(_fd, _buffer, _buffer.Length, 0);
            if (n < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                throw new NftablesException($"Could not {operation}: {Nfnl.Strerror(errno)} (errno {errno}).", errno);
            }
            return _buffer.AsSpan(0, n);
        }

        public List<NlMessage> Receive(string operation)
        {
            var n = (int)Native.recv(_fd, _buffer, _buffer.Length, 0);
            if (n < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                throw new NftablesException($"Could not {operation}: {Nfnl.Strerror(errno)} (errno {errno}).", errno);
            }
            return Messages(_buffer, n);
        }

        /// <summary>
        /// Sends a batch whose messages carry sequence numbers first..last (BEGIN is first, END is last + 1), of which
        /// only the one numbered last asked for an ack, and reads the answer: 0 when the batch was applied, or the
        /// first errno and the index (from 0, after BEGIN) of the message it was about; -1 for the batch as a whole.
        /// </summary>
        public (int Errno, int Index) SendBatch(byte[] batch, uint first, uint last, string operation)
        {
            Send(batch, operation);
            int errno = 0, index = -1;
            while (true)
            {
                List<NlMessage> answer;
                try
                {
                    answer = Receive(operation);
                }
                catch (NftablesException ex) when (ex.Errno == Nfnl.ENOBUFS)
                {
                    // More errors than the socket holds: the batch was refused (one transaction, nothing applied).
                    return (Nfnl.ENOBUFS, -1);
                }
                foreach (var (type, msgSeq, payload) in answer)
                {
                    if (type != Nfnl.NLMSG_ERROR || msgSeq < first || msgSeq > last || payload.Length < 4) continue;
                    int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                    if (error != 0 && errno == 0)
                    {
                        errno = error;
                        index = (int)(msgSeq - first) - 1;
                    }
                    // The ack of the last message ends the answer; a refused BEGIN (the generation moved) is all there is.
                    if (msgSeq == last || (msgSeq == first && error != 0)) return (errno, index);
                }
            }
        }

        public void Dispose() => Native.close(_fd);
    }

    /// <summary>
    /// The nf_tables ruleset generation of the current network namespace (NFT_MSG_GETGEN): it changes with every
    /// committed change, by anyone, so an unchanged number means an unchanged ruleset.
    /// </summary>
    internal static class NftGeneration
    {
        private const ushort NFTA_GEN_ID = 1;

        /// <summary>The generation id, or null when nf_tables cannot tell (no nf_tables, or an error).</summary>
        public static uint? Read()
        {
            try
            {
                using var socket = NetfilterSocket.Open(0, receiveBytes: 4096, timeoutSeconds: 2);
                socket.Send(Nfnl.Message(Nfnl.NftMessage(16), Nfnl.NLM_F_REQUEST, 1, 0, 0, Array.Empty<byte>()), "read the ruleset generation");
                foreach (var (type, _, payload) in socket.Receive("read the ruleset generation"))
                {
                    if (type != Nfnl.NftMessage(15)) continue;
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
}
