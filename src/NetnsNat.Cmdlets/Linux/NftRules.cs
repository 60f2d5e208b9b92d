using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using static NetnsNat.Linux.NetlinkAttributes;

namespace NetnsNat.Linux
{
    /// <summary>nf_tables refused a batch of rule changes. The batch was one kernel transaction: none of it took effect.</summary>
    public sealed class NftablesException : Exception
    {
        public NftablesException(string message, int errno)
            : base(message)
        {
            Errno = errno;
        }

        public int Errno { get; }
    }

    /// <summary>One rule as the kernel lists it: its handle, NFTA_RULE_EXPRESSIONS and NFTA_RULE_USERDATA, byte for byte.</summary>
    public sealed record NftRuleDump(ulong Handle, byte[] Expressions, byte[] UserData);

    /// <summary>A rule encoded for NFT_MSG_NEWRULE: its expressions and its user data (the comment), empty when none.</summary>
    public sealed record NftRuleEncoding(byte[] Expressions, byte[] UserData);

    /// <summary>
    /// This module's own rules written straight to nf_tables over netlink, all changes of a call in one batch (one
    /// kernel transaction, across tables), with the expressions iptables-nft 1.8 gives them: meta/cmp for -i and -o,
    /// payload (and bitwise for a prefix that is not whole bytes)/cmp for -s and -d, the xt "conntrack" match, a
    /// counter, then the verdict or the xt MASQUERADE target. The comment is the one exception: it is stored the way
    /// nft stores comments, as rule user data, which iptables-nft reads back as "-m comment --comment" (so iptables
    /// -L, -C, -D and iptables-save see the same rule), instead of iptables-nft's 256-byte xt "comment" match, which
    /// makes the kernel's rebuild of a long FORWARD chain on every commit about three times as slow. What this saves
    /// over iptables-nft-restore is a process and its load of every chain it writes to, which grows with the ruleset.
    /// </summary>
    public static class NftRules
    {
        private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_NETFILTER = 12, AF_INET = 2;
        private const int SOL_SOCKET = 1, SO_SNDBUFFORCE = 32, SOL_NETLINK = 270, NETLINK_CAP_ACK = 10, ENOENT = 2, ENOBUFS = 105;
        private const ushort NFNL_MSG_BATCH_BEGIN = 16, NFNL_MSG_BATCH_END = 17, NFNL_SUBSYS_NFTABLES = 10;
        private const ushort NFT_MSG_NEWRULE = (NFNL_SUBSYS_NFTABLES << 8) | 6, NFT_MSG_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | 7;
        private const ushort NFT_MSG_GETCHAIN = (NFNL_SUBSYS_NFTABLES << 8) | 4, NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3;
        private const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_DUMP = 0x300, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;
        private const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3, NLA_F_NESTED = 0x8000;
        private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_HANDLE = 3, NFTA_RULE_EXPRESSIONS = 4, NFTA_RULE_COMPAT = 5, NFTA_RULE_USERDATA = 7;
        private const ushort NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2, NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2;
        private const uint NFT_REG_VERDICT = 0, NFT_REG_1 = 1, NFT_META_IIFNAME = 6, NFT_META_OIFNAME = 7, NFT_PAYLOAD_NETWORK_HEADER = 1;
        private const uint NF_DROP = 0, NF_ACCEPT = 1;
        private const int ConntrackInfoSize = 168, MasqueradeInfoSize = 24;

        /// <summary>
        /// The expressions and user data for a rule, or null when the rule is not of a shape this encoder knows
        /// (anything but the interfaces, addresses, conntrack state, a comment as the last match, and ACCEPT, DROP or
        /// MASQUERADE, which is what this module writes).
        /// </summary>
        public static NftRuleEncoding? Encode(IptablesRule rule)
        {
            if (rule.HasOtherMatches || rule.HasTargetOptions) return null;
            var expressions = new List<byte[]>();
            if (!Interface(expressions, NFT_META_IIFNAME, rule.InInterface) || !Interface(expressions, NFT_META_OIFNAME, rule.OutInterface)) return null;
            if (!Address(expressions, 12, rule.Source) || !Address(expressions, 16, rule.Destination)) return null;
            var matches = new HashSet<string>(StringComparer.Ordinal);
            var spec = rule.Specification;
            for (int i = 0; i + 1 < spec.Count; i++)
            {
                if (spec[i] != "-m") continue;
                var name = spec[i + 1];
                if (!matches.Add(name)) return null;
                // iptables-nft puts a user-data comment after the other matches: only a comment given last reads back the same.
                if (name == "comment") continue;
                if (matches.Contains("comment")) return null;
                byte[]? match = name switch
                {
                    "conntrack" when rule.ConnectionStates != null => Conntrack(rule.ConnectionStates),
                    _ => null,
                };
                if (match == null) return null;
                expressions.Add(match);
            }
            if ((rule.Comment != null) != matches.Contains("comment") || (rule.ConnectionStates != null) != matches.Contains("conntrack")) return null;
            expressions.Add(Expression("counter", U64(1, 0), U64(2, 0)));
            byte[]? target = rule.Target switch
            {
                "ACCEPT" => Verdict(NF_ACCEPT),
                "DROP" => Verdict(NF_DROP),
                "MASQUERADE" when rule.Table == "nat" && rule.Chain == "POSTROUTING" => Masquerade(),
                _ => null,
            };
            if (target == null) return null;
            expressions.Add(target);
            byte[] userData = Array.Empty<byte>();
            if (rule.Comment != null)
            {
                // NFTNL_UDATA_RULE_COMMENT: type 0, a one-byte length, the text with its NUL.
                var text = Encoding.UTF8.GetBytes(rule.Comment + "\0");
                if (text.Length > 255 || rule.Comment.Length == 0 || rule.Comment.Contains('\0')) return null;
                userData = Concat(new byte[] { 0, (byte)text.Length }, text);
            }
            return new NftRuleEncoding(Concat(expressions.ToArray()), userData);
        }

        /// <summary>
        /// Writes the appends and inserts of a plan in one nf_tables batch. Returns false, having changed nothing, when
        /// the plan is not for this path (it deletes, or holds a rule the encoder does not know) or when a table or
        /// chain it writes to does not exist yet (iptables-nft creates those on first use, so iptables-restore should
        /// write this plan). Throws NftablesException when the kernel refuses the batch for another reason.
        /// </summary>
        public static bool TryWrite(RulePlan plan)
        {
            if (plan.Delete.Count > 0) return false;
            // Appends in order at the end of their chain; inserts bottom-up at the head, so they stand in plan order.
            var rules = plan.Append.Select(r => (Rule: r, Append: true)).Concat(plan.Insert.Reverse().Select(r => (Rule: r, Append: false))).ToArray();
            var encoded = new List<(IptablesRule Rule, bool Append, NftRuleEncoding Encoding)>(rules.Length);
            foreach (var (rule, append) in rules)
            {
                var encoding = Encode(rule);
                if (encoding == null) return false;
                encoded.Add((rule, append, encoding));
            }
            if (encoded.Count == 0) return true;

            using var socket = NetfilterSocket.Open(encoded.Sum(e => e.Encoding.Expressions.Length + e.Encoding.UserData.Length + 128));
            // A chain iptables-nft has not created yet: leave the plan to iptables-restore, which creates it.
            foreach (var (table, chain) in encoded.Select(e => (e.Rule.Table, e.Rule.Chain)).Distinct())
            {
                if (!socket.ChainExists(table, chain)) return false;
            }

            uint seq = socket.Reserve(encoded.Count + 2);
            uint first = seq, last = seq + (uint)encoded.Count;
            var messages = new List<byte[]> { Message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, Array.Empty<byte>()) };
            foreach (var (rule, append, encoding) in encoded)
            {
                var body = Concat(
                    Attribute(NFTA_RULE_TABLE, Text(rule.Table)),
                    Attribute(NFTA_RULE_CHAIN, Text(rule.Chain)),
                    Attribute(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, encoding.Expressions),
                    Attribute(NFTA_RULE_COMPAT | NLA_F_NESTED, Concat(U32(1, 0), U32(2, 0))),
                    encoding.UserData.Length > 0 ? Attribute(NFTA_RULE_USERDATA, encoding.UserData) : Array.Empty<byte>());
                // Only the last rule asks for an ack: errors come unasked, and before that ack, so one ack marks the end
                // of the answer whatever the size of the batch.
                ++seq;
                ushort flags = (ushort)(NLM_F_REQUEST | NLM_F_CREATE | (append ? NLM_F_APPEND : 0) | (seq == last ? NLM_F_ACK : 0));
                messages.Add(Message(NFT_MSG_NEWRULE, flags, seq, AF_INET, 0, body));
            }
            messages.Add(Message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++seq, 0, NFNL_SUBSYS_NFTABLES, Array.Empty<byte>()));
            socket.Send(Concat(messages.ToArray()), "write the rules to nf_tables");

            int errno = 0;
            IptablesRule? refused = null;
            bool done = false;
            while (!done)
            {
                List<(ushort Type, uint Seq, byte[] Payload)> answer;
                try
                {
                    answer = socket.Receive("read nf_tables' answer");
                }
                catch (NftablesException ex) when (ex.Errno == ENOBUFS)
                {
                    // More errors than the socket holds: the batch was refused (one transaction, nothing applied).
                    // iptables-restore then writes the plan or reports why it cannot.
                    return false;
                }
                foreach (var (type, msgSeq, payload) in answer)
                {
                    if (type != NLMSG_ERROR || msgSeq < first || msgSeq > last || payload.Length < 4) continue;
                    int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                    if (error != 0 && errno == 0)
                    {
                        errno = error;
                        int index = (int)(msgSeq - first) - 1;
                        refused = index >= 0 ? encoded[index].Rule : null;
                    }
                    done |= msgSeq == last;
                }
            }
            if (errno == 0) return true;
            if (errno == ENOENT) return false;
            throw new NftablesException(Describe(errno, refused), errno);
        }

        /// <summary>The rules of one chain of an IPv4 table as the kernel lists them (NFT_MSG_GETRULE dump, filtered by the kernel).</summary>
        public static IReadOnlyList<NftRuleDump> Dump(string table, string chain)
        {
            var request = Message(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 1, AF_INET, 0,
                Concat(Attribute(NFTA_RULE_TABLE, Text(table)), Attribute(NFTA_RULE_CHAIN, Text(chain))));
            using var socket = NetfilterSocket.Open(request.Length);
            socket.Send(request, "list the rules");
            var rules = new List<NftRuleDump>();
            while (true)
            {
                foreach (var (type, _, payload) in socket.Receive("list the rules"))
                {
                    if (type == NLMSG_DONE) return rules;
                    if (type == NLMSG_ERROR)
                    {
                        int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                        if (error == 0) return rules;
                        throw new NftablesException($"Listing {table} {chain}: {Strerror(error)} (errno {error}).", error);
                    }
                    if (type != NFT_MSG_NEWRULE) continue;
                    ulong handle = 0;
                    byte[] expressions = Array.Empty<byte>(), userData = Array.Empty<byte>();
                    foreach (var (attr, data) in Attributes(payload, 4))
                    {
                        if (attr == NFTA_RULE_HANDLE && data.Length == 8) handle = BinaryPrimitives.ReadUInt64BigEndian(data);
                        else if (attr == NFTA_RULE_EXPRESSIONS) expressions = data;
                        else if (attr == NFTA_RULE_USERDATA) userData = data;
                    }
                    rules.Add(new NftRuleDump(handle, expressions, userData));
                }
            }
        }

        private static string Describe(int errno, IptablesRule? rule)
        {
            var what = rule == null ? "the batch" : $"'{rule}'";
            var hint = errno switch
            {
                1 => " Another program may own the table (nft 'flags owner'), or this process lacks CAP_NET_ADMIN: run PowerShell as root (sudo pwsh).",
                16 => " The chain is busy; try again.",
                _ => string.Empty,
            };
            return $"nf_tables refused {what}: {Strerror(errno)} (errno {errno}). Nothing of this call's rule changes was applied.{hint}";
        }

        private static string Strerror(int errno) => Native.Strerror(errno);

        // -i/-o: iptables compares the name with its NUL (an exact match), or only the prefix before a '+' wildcard.
        private static bool Interface(List<byte[]> expressions, uint key, string? name)
        {
            if (name == null) return true;
            if (name.Length == 0 || name.Length > Names.MaxInterfaceName || name.Contains('!')) return false;
            bool wildcard = name.EndsWith('+');
            expressions.Add(Expression("meta", U32(2, key), U32(1, NFT_REG_1)));
            if (wildcard && name.Length == 1) return true;
            var bytes = Encoding.ASCII.GetBytes(wildcard ? name.Substring(0, name.Length - 1) : name + "\0");
            expressions.Add(Cmp(bytes));
            return true;
        }

        // -s/-d: the whole bytes of the prefix; a prefix that ends inside a byte loads all four and masks them first.
        private static bool Address(List<byte[]> expressions, uint offset, string? text)
        {
            if (text == null) return true;
            if (!Ipv4Cidr.TryParse(text, out var cidr, out _) || cidr.PrefixLength == 0) return false;
            var value = new byte[4];
            var mask = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(value, cidr.NetworkAddress);
            BinaryPrimitives.WriteUInt32BigEndian(mask, cidr.Mask);
            bool bitwise = cidr.PrefixLength % 8 != 0;
            int length = bitwise ? 4 : cidr.PrefixLength / 8;
            expressions.Add(Expression("payload", U32(1, NFT_REG_1), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, offset), U32(4, (uint)length)));
            if (bitwise)
            {
                expressions.Add(Expression("bitwise", U32(1, NFT_REG_1), U32(2, NFT_REG_1), U32(3, 4),
                    Attribute(4 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, mask)), Attribute(5 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, new byte[4]))));
            }
            expressions.Add(Cmp(value.AsSpan(0, length).ToArray()));
            return true;
        }

        private static byte[] Cmp(byte[] data) =>
            Expression("cmp", U32(1, NFT_REG_1), U32(2, 0 /* NFT_CMP_EQ */), Attribute(3 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, data)));

        // -m conntrack --ctstate: struct xt_conntrack_mtinfo3 with match_flags XT_CONNTRACK_STATE and the state bits.
        private static byte[]? Conntrack(string states)
        {
            ushort mask = 0;
            foreach (var state in states.Split(','))
            {
                ushort bit = state switch { "INVALID" => 1, "ESTABLISHED" => 2, "RELATED" => 4, "NEW" => 8, _ => 0 };
                if (bit == 0) return null;
                mask |= bit;
            }
            var info = new byte[ConntrackInfoSize];
            BinaryPrimitives.WriteUInt16LittleEndian(info.AsSpan(146), 1);
            BinaryPrimitives.WriteUInt16LittleEndian(info.AsSpan(150), mask);
            return XtExtension("match", "conntrack", 3, info);
        }

        // -j MASQUERADE: struct nf_nat_ipv4_multi_range_compat with rangesize 1 and no ports or addresses.
        private static byte[] Masquerade()
        {
            var info = new byte[MasqueradeInfoSize];
            BinaryPrimitives.WriteUInt32LittleEndian(info, 1);
            return XtExtension("target", "MASQUERADE", 0, info);
        }

        private static byte[] XtExtension(string kind, string name, uint revision, byte[] info) =>
            Expression(kind, Attribute(1, Text(name)), U32(2, revision), Attribute(3, info));

        private static byte[] Verdict(uint code) =>
            Expression("immediate", U32(1, NFT_REG_VERDICT), Attribute(2 | NLA_F_NESTED, Attribute(NFTA_DATA_VERDICT | NLA_F_NESTED, U32(1, code))));

        private static byte[] Expression(string name, params byte[][] attributes) =>
            Attribute(NFTA_LIST_ELEM | NLA_F_NESTED, Concat(Attribute(NFTA_EXPR_NAME, Text(name)), Attribute(NFTA_EXPR_DATA | NLA_F_NESTED, Concat(attributes))));

        private static byte[] U32(ushort type, uint value) => Attribute(type, BigEndian(value));

        private static byte[] U64(ushort type, ulong value)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(b, value);
            return Attribute(type, b);
        }

        private static byte[] Text(string value) => Encoding.ASCII.GetBytes(value + "\0");

        internal static byte[] Message(ushort type, ushort flags, uint seq, byte family, ushort resId, byte[] body)
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
                int fd = Native.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
                if (fd < 0) throw new NftablesException($"Opening a netfilter netlink socket failed: {Strerror(Marshal.GetLastWin32Error())}.", Marshal.GetLastWin32Error());
                Native.setsockopt(fd, SOL_SOCKET, 20, new long[] { timeoutSeconds, 0 }, 16);
                // A large batch does not fit the default send buffer (about 200 KB); CAP_NET_ADMIN may raise it.
                int send = batchBytes + 65536;
                if (send > 200000) Native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, ref send, 4);
                // NETLINK_CAP_ACK: an error carries the header of the refused message, not all of it.
                int on = 1;
                Native.setsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, ref on, 4);
                return new NetfilterSocket(fd, receiveBytes);
            }

            /// <summary>The first of a run of sequence numbers for one batch.</summary>
            public uint Reserve(int count)
            {
                uint first = _seq + 1;
                _seq += (uint)count;
                return first;
            }

            /// <summary>Whether an IPv4 table has a chain of that name (NFT_MSG_GETCHAIN).</summary>
            public bool ChainExists(string table, string chain)
            {
                var request = Message(NFT_MSG_GETCHAIN, NLM_F_REQUEST, ++_seq, AF_INET, 0,
                    Concat(Attribute(NFTA_CHAIN_TABLE, Text(table)), Attribute(NFTA_CHAIN_NAME, Text(chain))));
                Send(request, "look up a chain");
                while (true)
                {
                    foreach (var (type, msgSeq, payload) in Receive("look up a chain"))
                    {
                        if (msgSeq != _seq) continue;
                        if (type != NLMSG_ERROR) return true;
                        int error = -BinaryPrimitives.ReadInt32LittleEndian(payload);
                        if (error == 0) return true;
                        if (error == ENOENT) return false;
                        throw new NftablesException($"Looking up chain {chain} of table ip {table}: {Strerror(error)} (errno {error}).", error);
                    }
                }
            }

            public void Send(byte[] data, string operation)
            {
                if (Native.send(_fd, data, data.Length, 0) < 0)
                {
                    int errno = Marshal.GetLastWin32Error();
                    throw new NftablesException($"Could not {operation}: {Strerror(errno)} (errno {errno}).", errno);
                }
            }

            public List<(ushort Type, uint Seq, byte[] Payload)> Receive(string operation)
            {
                var n = (int)Native.recv(_fd, _buffer, _buffer.Length, 0);
                if (n < 0)
                {
                    int errno = Marshal.GetLastWin32Error();
                    throw new NftablesException($"Could not {operation}: {Strerror(errno)} (errno {errno}).", errno);
                }
                return Messages(_buffer, n);
            }

            public void Dispose() => Native.close(_fd);
        }
    }
}
