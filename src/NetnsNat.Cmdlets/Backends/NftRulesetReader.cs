using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Net;
using System.Text;
using NetnsNat.Linux;
using NetnsNat.Model;
using static NetnsNat.Linux.NetlinkAttributes;
using static NetnsNat.Linux.Nfnl;

namespace NetnsNat.Backends
{
    /// <summary>
    /// The iptables-nft ruleset of a family read over nfnetlink (three dumps: tables, chains, rules) and turned into
    /// what iptables-save would have printed, so that a fresh session's first call starts no process. Every rule must
    /// be of a shape this reader knows (the interfaces, addresses, conntrack states, comment and targets NetnsNat
    /// writes, plus jumps, gotos, RETURN and negations); one it does not know, or a ruleset that moved between the
    /// dumps, makes <see cref="TryRead"/> return null, and the caller runs iptables-save as before. Like
    /// iptables-save, it lists only iptables' own tables (filter, nat, mangle, raw, security) with all of their
    /// built-in chains, whether nf_tables holds them yet or not.
    /// </summary>
    internal static class NftRulesetReader
    {
        private const ushort NFTA_TABLE_NAME = 1;
        private const ushort NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5;
        private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_EXPRESSIONS = 4, NFTA_RULE_COMPAT = 5, NFTA_RULE_USERDATA = 7;
        private const ushort NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2, NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2;
        private const uint NFT_META_IIFNAME = 6, NFT_META_OIFNAME = 7, NFT_META_L4PROTO = 16, NFT_PAYLOAD_NETWORK_HEADER = 1, NFT_PAYLOAD_TRANSPORT_HEADER = 2;
        private const uint NFT_CMP_EQ = 0, NFT_CMP_NEQ = 1;
        private const int NF_DROP = 0, NF_ACCEPT = 1, NFT_JUMP = -3, NFT_GOTO = -4, NFT_RETURN = -5;

        /// <summary>iptables' tables in the order iptables-nft-save lists them, each with its built-in chains.</summary>
        private static readonly string[][] BuiltinTables =
        {
            new[] { "mangle", "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING" },
            new[] { "security", "INPUT", "FORWARD", "OUTPUT" },
            new[] { "raw", "PREROUTING", "OUTPUT" },
            new[] { "filter", "INPUT", "FORWARD", "OUTPUT" },
            new[] { "nat", "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING" },
        };

        /// <summary>
        /// The ruleset as iptables-save lists it, read at the given nf_tables generation; null when a rule is of a shape
        /// not known here, the ruleset moved during the read, or nf_tables refused a dump.
        /// </summary>
        public static IptablesSnapshot? TryRead(AddressFamilyProfile family, uint generation)
        {
            try
            {
                using var socket = NetfilterSocket.Open(0);
                var tables = new HashSet<string>(StringComparer.Ordinal);
                foreach (var payload in Dump(socket, family, 1, 0, "list the nf_tables tables"))
                {
                    if (!SameGeneration(payload, generation)) return null;
                    var name = Text(Find(Attributes(payload, 4), NFTA_TABLE_NAME));
                    if (name != null) tables.Add(name);
                }
                // Chains: "table/CHAIN" to the policy of a base chain, or "-" for a chain of its own.
                var policies = new Dictionary<string, string>(StringComparer.Ordinal);
                var userChains = new Dictionary<string, List<string>>(StringComparer.Ordinal);
                foreach (var payload in Dump(socket, family, 4, 3, "list the nf_tables chains"))
                {
                    if (!SameGeneration(payload, generation)) return null;
                    string? table = null, name = null, policy = "-";
                    bool hooked = false;
                    foreach (var (attr, data) in Attributes(payload, 4))
                    {
                        if (attr == NFTA_CHAIN_TABLE) table = Text(data);
                        else if (attr == NFTA_CHAIN_NAME) name = Text(data);
                        else if (attr == NFTA_CHAIN_HOOK) hooked = true;
                        else if (attr == NFTA_CHAIN_POLICY && data.Length == 4) policy = BinaryPrimitives.ReadInt32BigEndian(data) == NF_ACCEPT ? "ACCEPT" : "DROP";
                    }
                    if (table == null || name == null || BuiltinChains(table) is not { } builtin) continue;
                    bool isBuiltin = Array.IndexOf(builtin, name, 1) > 0;
                    // A base chain iptables does not know, or a built-in name that is not a base chain: iptables-save
                    // would call the table incompatible. Leave it to iptables-save.
                    if (isBuiltin != hooked) return null;
                    policies[table + "/" + name] = isBuiltin ? policy : "-";
                    if (!isBuiltin)
                    {
                        if (!userChains.TryGetValue(table, out var list)) userChains[table] = list = new List<string>();
                        list.Add(name);
                    }
                }
                var rulesByChain = new Dictionary<string, List<IptablesRule>>(StringComparer.Ordinal);
                foreach (var payload in Dump(socket, family, 7, 6, "list the nf_tables rules"))
                {
                    if (!SameGeneration(payload, generation)) return null;
                    string? table = null, chain = null;
                    byte[] expressions = Array.Empty<byte>(), userData = Array.Empty<byte>(), compat = Array.Empty<byte>();
                    foreach (var (attr, data) in Attributes(payload, 4))
                    {
                        if (attr == NFTA_RULE_TABLE) table = Text(data);
                        else if (attr == NFTA_RULE_CHAIN) chain = Text(data);
                        else if (attr == NFTA_RULE_EXPRESSIONS) expressions = data;
                        else if (attr == NFTA_RULE_USERDATA) userData = data;
                        else if (attr == NFTA_RULE_COMPAT) compat = data;
                    }
                    if (table == null || chain == null || BuiltinChains(table) == null) continue;
                    var compatProtocol = CompatProtocol(compat);
                    if (compatProtocol == null) return null;
                    var tokens = Decode(family, expressions, userData, compatProtocol.Value);
                    if (tokens == null) return null;
                    var key = table + "/" + chain;
                    if (!rulesByChain.TryGetValue(key, out var rules)) rulesByChain[key] = rules = new List<IptablesRule>();
                    rules.Add(IptablesRule.Create(table, chain, tokens));
                }

                // As iptables-save lists them: tables in its order, built-in chains first (all of them, ACCEPT when
                // nf_tables has none yet), then the table's own chains by name.
                var allRules = new List<IptablesRule>();
                var listed = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var builtin in BuiltinTables)
                {
                    var table = builtin[0];
                    if (!tables.Contains(table)) continue;
                    var chains = new List<string>();
                    for (int i = 1; i < builtin.Length; i++) chains.Add(builtin[i]);
                    if (userChains.TryGetValue(table, out var own))
                    {
                        own.Sort(StringComparer.Ordinal);
                        chains.AddRange(own);
                    }
                    foreach (var chain in chains)
                    {
                        var key = table + "/" + chain;
                        listed[key] = policies.TryGetValue(key, out var policy) ? policy : "ACCEPT";
                        if (rulesByChain.TryGetValue(key, out var rules)) allRules.AddRange(rules);
                    }
                }
                // A rule in a chain of a table that does not exist cannot be; a dump that says so moved under us.
                foreach (var key in rulesByChain.Keys)
                {
                    if (!listed.ContainsKey(key)) return null;
                }
                return new IptablesSnapshot(allRules, listed, "nf_tables");
            }
            catch (NftablesException)
            {
                return null;
            }
        }

        /// <summary>
        /// The tokens iptables-save prints after "-A CHAIN" for a rule's expressions and user data, in its order (-s, -d,
        /// -i, -o, the matches, the comment, the target); null for a rule of a shape not known here.
        /// </summary>
        internal static List<string>? Decode(AddressFamilyProfile family, byte[] expressions, byte[] userData, uint compatProtocol = 0)
        {
            string? source = null, destination = null, inInterface = null, outInterface = null, protocol = null;
            uint protocolNumber = 0;
            bool notSource = false, notDestination = false, notIn = false, notOut = false;
            var matches = new List<string>();
            var target = new List<string>();
            // A value loaded into a register (meta, payload), possibly masked (bitwise), until a cmp uses it.
            string? loaded = null;
            uint loadedRegister = 0, length = 0;
            byte[]? mask = null;
            foreach (var (type, element) in Attributes(expressions, 0))
            {
                if (type != NFTA_LIST_ELEM || target.Count > 0) return null;
                string? name = null;
                byte[] data = Array.Empty<byte>();
                foreach (var (attr, value) in Attributes(element, 0))
                {
                    if (attr == NFTA_EXPR_NAME) name = Text(value);
                    else if (attr == NFTA_EXPR_DATA) data = value;
                }
                var fields = Attributes(data, 0);
                switch (name)
                {
                    case "counter":
                        break;
                    case "meta" when loaded == null:
                        // NFTA_META_DREG 1, NFTA_META_KEY 2
                        var key = U32(fields, 2);
                        loaded = key == NFT_META_IIFNAME ? "-i" : key == NFT_META_OIFNAME ? "-o" : key == NFT_META_L4PROTO ? "-p" : null;
                        loadedRegister = U32(fields, 1) ?? 0;
                        if (loaded == null) return null;
                        break;
                    case "payload" when loaded == null && U32(fields, 2) == NFT_PAYLOAD_TRANSPORT_HEADER:
                        // A port of -p tcp/udp (-m tcp --dport 80): 2 bytes at offset 0 (source) or 2 (destination).
                        if (protocol == null || U32(fields, 4) != 2 || U32(fields, 3) is not (0 or 2)) return null;
                        loaded = U32(fields, 3) == 0 ? "--sport" : "--dport";
                        length = 2;
                        loadedRegister = U32(fields, 1) ?? 0;
                        break;
                    case "payload" when loaded == null:
                        // NFTA_PAYLOAD_DREG 1, BASE 2, OFFSET 3, LEN 4
                        if (U32(fields, 2) != NFT_PAYLOAD_NETWORK_HEADER) return null;
                        var offset = U32(fields, 3);
                        loaded = offset == family.SourceOffset ? "-s" : offset == family.DestinationOffset ? "-d" : null;
                        length = U32(fields, 4) ?? 0;
                        loadedRegister = U32(fields, 1) ?? 0;
                        if (loaded == null || length == 0 || length > family.AddressBytes) return null;
                        break;
                    case "bitwise" when (loaded == "-s" || loaded == "-d") && mask == null:
                        // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5: a prefix that is not whole bytes.
                        if (U32(fields, 1) != loadedRegister || U32(fields, 2) != loadedRegister || U32(fields, 3) != length) return null;
                        mask = Value(Find(fields, 4));
                        var xor = Value(Find(fields, 5));
                        if (mask == null || mask.Length != length || xor == null || xor.Length != length || Array.Exists(xor, b => b != 0)) return null;
                        break;
                    case "cmp" when loaded != null:
                        // NFTA_CMP_SREG 1, OP 2, DATA 3
                        var op = U32(fields, 2);
                        var compared = Value(Find(fields, 3));
                        if (U32(fields, 1) != loadedRegister || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ) || compared == null) return null;
                        bool negated = op == NFT_CMP_NEQ;
                        if (loaded == "-p")
                        {
                            // Only -p tcp and -p udp, as NetnsNat's port mappings write them.
                            if (negated || protocol != null || compared.Length != 1 || compared[0] is not (6 or 17)) return null;
                            protocolNumber = compared[0];
                            protocol = protocolNumber == 6 ? "tcp" : "udp";
                        }
                        else if (loaded == "--sport" || loaded == "--dport")
                        {
                            if (negated || compared.Length != 2) return null;
                            matches.AddRange(new[] { "-m", protocol!, loaded, BinaryPrimitives.ReadUInt16BigEndian(compared).ToString(System.Globalization.CultureInfo.InvariantCulture) });
                        }
                        else if (loaded == "-i" || loaded == "-o")
                        {
                            var text = Interface(compared);
                            if (text == null) return null;
                            if (loaded == "-i") { if (inInterface != null) return null; inInterface = text; notIn = negated; }
                            else { if (outInterface != null) return null; outInterface = text; notOut = negated; }
                        }
                        else
                        {
                            var text = Address(family, compared, (int)length, mask);
                            if (text == null) return null;
                            if (loaded == "-s") { if (source != null) return null; source = text; notSource = negated; }
                            else { if (destination != null) return null; destination = text; notDestination = negated; }
                        }
                        loaded = null;
                        mask = null;
                        break;
                    case "match" when loaded == null:
                        // NFTA_MATCH_NAME 1, REV 2, INFO 3
                        var match = Text(Find(fields, 1));
                        var revision = U32(fields, 2);
                        var info = Find(fields, 3) ?? Array.Empty<byte>();
                        if (match == "comment" && revision == 0)
                        {
                            int end = Array.IndexOf(info, (byte)0);
                            matches.AddRange(new[] { "-m", "comment", "--comment", Encoding.UTF8.GetString(info, 0, end < 0 ? info.Length : end) });
                        }
                        else if (match == "conntrack" && revision == 3 && ConntrackStates(info) is { } states)
                        {
                            matches.AddRange(new[] { "-m", "conntrack", "--ctstate", states });
                        }
                        else if (match == "addrtype" && revision == 1 && info.Length == 8 && BinaryPrimitives.ReadUInt16LittleEndian(info) == 0
                            && BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(2)) == XT_ADDRTYPE_LOCAL && BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(4)) == 0)
                        {
                            // struct xt_addrtype_info_v1: source, dest, flags; --dst-type LOCAL alone.
                            matches.AddRange(new[] { "-m", "addrtype", "--dst-type", "LOCAL" });
                        }
                        else
                        {
                            return null;
                        }
                        break;
                    case "immediate" when loaded == null:
                        // NFTA_IMMEDIATE_DREG 1 (0: the verdict register), DATA 2 > NFTA_DATA_VERDICT > CODE 1, CHAIN 2
                        if (U32(fields, 1) != 0) return null;
                        var verdict = Find(Attributes(Find(fields, 2) ?? Array.Empty<byte>(), 0), NFTA_DATA_VERDICT);
                        if (verdict == null) return null;
                        var verdictFields = Attributes(verdict, 0);
                        var code = U32(verdictFields, 1);
                        var chain = Text(Find(verdictFields, 2));
                        switch (code is uint c ? (int)c : int.MinValue)
                        {
                            case NF_ACCEPT: target.AddRange(new[] { "-j", "ACCEPT" }); break;
                            case NF_DROP: target.AddRange(new[] { "-j", "DROP" }); break;
                            case NFT_RETURN: target.AddRange(new[] { "-j", "RETURN" }); break;
                            case NFT_JUMP when chain != null: target.AddRange(new[] { "-j", chain }); break;
                            case NFT_GOTO when chain != null: target.AddRange(new[] { "-g", chain }); break;
                            default: return null;
                        }
                        break;
                    case "target" when loaded == null:
                        // NFTA_TARGET_NAME 1, REV 2, INFO 3: MASQUERADE with no options, or DNAT to one address and port
                        // (as NetnsNat's port mappings write them).
                        var targetInfo = Find(fields, 3) ?? Array.Empty<byte>();
                        var targetName = Text(Find(fields, 1));
                        if (targetName == "MASQUERADE" && U32(fields, 2) == 0 && targetInfo.AsSpan().SequenceEqual(family.MasqueradeInfo))
                        {
                            target.AddRange(new[] { "-j", "MASQUERADE" });
                        }
                        else if (targetName == "DNAT" && U32(fields, 2) == 2 && DnatDestination(family, targetInfo) is { } to)
                        {
                            target.AddRange(new[] { "-j", "DNAT", "--to-destination", to });
                        }
                        else
                        {
                            return null;
                        }
                        break;
                    default:
                        return null;
                }
            }
            // NFTA_RULE_COMPAT is not in the kernel's dumps (it only checks an xt extension when the rule is made); a
            // protocol given there by a caller must be the rule's.
            if (loaded != null || (compatProtocol != 0 && compatProtocol != protocolNumber)) return null;
            var comment = UserDataComment(userData, out bool userDataKnown);
            if (!userDataKnown) return null;
            var tokens = new List<string>(16);
            Add(tokens, notSource, "-s", source);
            Add(tokens, notDestination, "-d", destination);
            Add(tokens, notIn, "-i", inInterface);
            Add(tokens, notOut, "-o", outInterface);
            Add(tokens, false, "-p", protocol);
            tokens.AddRange(matches);
            if (comment != null) tokens.AddRange(new[] { "-m", "comment", "--comment", comment });
            tokens.AddRange(target);
            return tokens;
        }

        private static void Add(List<string> tokens, bool negated, string option, string? value)
        {
            if (value == null) return;
            if (negated) tokens.Add("!");
            tokens.Add(option);
            tokens.Add(value);
        }

        private static List<byte[]> Dump(NetfilterSocket socket, AddressFamilyProfile family, int request, int reply, string operation) =>
            socket.Dump(Message(NftMessage(request), NLM_F_REQUEST | NLM_F_DUMP, socket.Next(), family.NfProto, 0, Array.Empty<byte>()), NftMessage(reply), operation);

        private static bool SameGeneration(byte[] payload, uint generation) => NftRuleSignature.DumpGeneration(payload) == (ushort)generation;

        private static string[]? BuiltinChains(string table)
        {
            foreach (var t in BuiltinTables)
            {
                if (t[0] == table) return t;
            }
            return null;
        }

        /// <summary>NFTA_RULE_COMPAT (protocol, flags): iptables-nft sets it for -p; only a rule without one is known here.</summary>
        /// <summary>
        /// NFTA_RULE_COMPAT's protocol (NFTA_RULE_COMPAT_PROTO 1; 0 when there is none), or null when it has flags (a
        /// negated -p), which the reader does not know.
        /// </summary>
        private static uint? CompatProtocol(byte[] compat)
        {
            uint protocol = 0;
            foreach (var (type, data) in Attributes(compat, 0))
            {
                if (data.Length != 4) continue;
                var value = BinaryPrimitives.ReadUInt32BigEndian(data);
                if (type == 1) protocol = value;
                else if (value != 0) return null;
            }
            return protocol;
        }

        private const ushort XT_ADDRTYPE_LOCAL = 1 << 2;
        private const uint NF_NAT_RANGE_MAP_IPS = 1, NF_NAT_RANGE_PROTO_SPECIFIED = 2;

        /// <summary>
        /// struct nf_nat_range2 (flags; min_addr, max_addr: 16 bytes each; min_proto, max_proto, base_proto: 2 bytes
        /// each) of a DNAT to one address and one port, as "10.0.0.2:80" or "[fd00::2]:80"; null for anything else.
        /// </summary>
        internal static string? DnatDestination(AddressFamilyProfile family, byte[] info)
        {
            if (info.Length < 42) return null;
            var span = info.AsSpan();
            if (BinaryPrimitives.ReadUInt32LittleEndian(span) != (NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)) return null;
            if (!span.Slice(4, 16).SequenceEqual(span.Slice(20, 16)) || !span.Slice(36, 2).SequenceEqual(span.Slice(38, 2))) return null;
            if (span.Slice(4 + family.AddressBytes, 16 - family.AddressBytes).IndexOfAnyExcept((byte)0) >= 0 || span.Slice(40).IndexOfAnyExcept((byte)0) >= 0) return null;
            var address = new System.Net.IPAddress(span.Slice(4, family.AddressBytes));
            var port = BinaryPrimitives.ReadUInt16BigEndian(span.Slice(36, 2));
            if (port == 0) return null;
            var text = family == AddressFamilyProfile.IPv6 ? "[" + address + "]" : address.ToString();
            return text + ":" + port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        /// <summary>An interface name as cmp compares it: up to a NUL exactly, or without one a prefix, which iptables writes as NAME+.</summary>
        private static string? Interface(byte[] data)
        {
            int end = Array.IndexOf(data, (byte)0);
            var name = Encoding.ASCII.GetString(data, 0, end < 0 ? data.Length : end);
            if (end >= 0)
            {
                for (int i = end; i < data.Length; i++)
                {
                    if (data[i] != 0) return null;
                }
            }
            if (name.Length == 0 || name.Length > Names.MaxInterfaceName || name.Contains('+')) return null;
            return end < 0 ? name + "+" : name;
        }

        /// <summary>The network a payload compare matches, as iptables prints it ("10.0.0.0/24", "10.0.0.7/32"), or null.</summary>
        private static string? Address(AddressFamilyProfile family, byte[] compared, int length, byte[]? mask)
        {
            if (compared.Length != length) return null;
            int prefix;
            var bytes = new byte[family.AddressBytes];
            compared.CopyTo(bytes, 0);
            if (mask == null)
            {
                prefix = length * 8;
            }
            else
            {
                if (length != family.AddressBytes) return null;
                prefix = 0;
                bool ended = false;
                foreach (var b in mask)
                {
                    for (int bit = 7; bit >= 0; bit--)
                    {
                        bool set = (b & (1 << bit)) != 0;
                        if (set && ended) return null;
                        if (set) prefix++;
                        else ended = true;
                    }
                }
            }
            if (prefix == 0) return null;
            // The compare must be of the network address, as iptables writes it: no bits set past the prefix.
            var netmask = Cidr.MaskBytes(prefix, bytes.Length);
            for (int i = 0; i < bytes.Length; i++)
            {
                if ((bytes[i] & ~netmask[i]) != 0) return null;
            }
            return new IPAddress(bytes) + "/" + prefix.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        /// <summary>--ctstate of struct xt_conntrack_mtinfo3 that matches on the state alone, in iptables' order; null otherwise.</summary>
        private static string? ConntrackStates(byte[] info)
        {
            if (info.Length < 152) return null;
            ushort states = BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(150));
            var names = new List<string>(4);
            // INVALID 1, ESTABLISHED 2, RELATED 4, NEW 8; iptables prints INVALID,NEW,RELATED,ESTABLISHED.
            if ((states & 1) != 0) names.Add("INVALID");
            if ((states & 8) != 0) names.Add("NEW");
            if ((states & 4) != 0) names.Add("RELATED");
            if ((states & 2) != 0) names.Add("ESTABLISHED");
            if ((states & 128) != 0) names.Add("DNAT");
            if (names.Count == 0 || (states & ~(15 | 128)) != 0) return null;
            // Nothing else in the struct: the same bytes the encoder writes for these states, or not a shape known here.
            var expected = NftRuleWriter.ConntrackInfo(string.Join(",", names));
            return expected != null && expected.AsSpan().SequenceEqual(info) ? string.Join(",", names) : null;
        }

        /// <summary>NFTNL_UDATA_RULE_COMMENT (type 0) in rule user data; known is false for user data of another kind.</summary>
        private static string? UserDataComment(byte[] userData, out bool known)
        {
            known = true;
            string? comment = null;
            int at = 0;
            while (at + 2 <= userData.Length)
            {
                int type = userData[at], length = userData[at + 1];
                if (at + 2 + length > userData.Length || type != 0 || length == 0) { known = false; return null; }
                comment = Encoding.UTF8.GetString(userData, at + 2, length).TrimEnd('\0');
                at += 2 + length;
            }
            if (at != userData.Length) known = false;
            return comment;
        }


        private static string? Text(byte[]? data) => data == null ? null : TextOf(data);
    }
}
