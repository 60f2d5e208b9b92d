using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NetnsNat.Linux;
using NetnsNat.Model;
using static NetnsNat.Linux.NetlinkAttributes;
using static NetnsNat.Linux.Nfnl;

namespace NetnsNat.Backends
{
    /// <summary>One rule as the kernel lists it: its handle, NFTA_RULE_EXPRESSIONS and NFTA_RULE_USERDATA, byte for byte.</summary>
    internal sealed record NftRuleDump(ulong Handle, byte[] Expressions, byte[] UserData);

    /// <summary>A rule encoded for NFT_MSG_NEWRULE: its expressions and its user data (the comment), empty when none.</summary>
    /// <param name="Protocol">The rule's -p as NFTA_RULE_COMPAT gives it to the kernel's xt checks (0: none).</param>
    internal sealed record NftRuleEncoding(byte[] Expressions, byte[] UserData, uint Protocol = 0);

    /// <summary>How a plan fared on the netlink path.</summary>
    internal enum NftWriteResult
    {
        /// <summary>Applied, as one kernel transaction.</summary>
        Written,

        /// <summary>Not for this path (a deletion, a rule the encoder does not know, a chain not created yet); nothing changed.</summary>
        NotForThisPath,

        /// <summary>The ruleset changed since the plan's generation: the kernel refused the batch, nothing changed.</summary>
        RulesetMoved,
    }

    /// <summary>
    /// iptables rules written straight to nf_tables over netlink, all changes of a call in one batch (one kernel
    /// transaction, across tables), with the expressions iptables-nft 1.8 gives them: meta/cmp for -i and -o, payload
    /// (and bitwise for a prefix that is not whole bytes)/cmp for -s and -d, the xt "conntrack" match, a counter, then
    /// the verdict or the xt MASQUERADE target. The comment is the one exception: it is stored the way nft stores
    /// comments, as rule user data, which iptables-nft reads back as "-m comment --comment" (so iptables -L, -C, -D and
    /// iptables-save see the same rule), instead of iptables-nft's 256-byte xt "comment" match, which makes the
    /// kernel's rebuild of a long FORWARD chain on every commit about three times as slow. What this saves over
    /// iptables-nft-restore is a process and its load of every chain it writes to, which grows with the ruleset.
    /// </summary>
    internal static class NftRuleWriter
    {
        private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_HANDLE = 3, NFTA_RULE_EXPRESSIONS = 4, NFTA_RULE_COMPAT = 5;
        private const ushort NFTA_RULE_POSITION = 6, NFTA_RULE_USERDATA = 7, NFTA_RULE_ID = 9, NFTA_RULE_POSITION_ID = 10;
        private const ushort NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2, NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2;
        private const uint NFT_REG_VERDICT = 0, NFT_REG_1 = 1, NFT_META_IIFNAME = 6, NFT_META_OIFNAME = 7, NFT_META_L4PROTO = 16, NFT_PAYLOAD_NETWORK_HEADER = 1, NFT_PAYLOAD_TRANSPORT_HEADER = 2;
        private const uint NF_DROP = 0, NF_ACCEPT = 1;
        private const int ConntrackInfoSize = 168;

        /// <summary>
        /// The expressions and user data for a rule, or null when the rule is not of a shape this encoder knows
        /// (anything but the interfaces, addresses, conntrack state, a comment as the last match, and ACCEPT, DROP or
        /// MASQUERADE, which is what this module writes).
        /// </summary>
        public static NftRuleEncoding? Encode(IptablesRule rule, AddressFamilyProfile family)
        {
            if (PortMappingRules.IsOwn(rule)) return EncodeMapping(rule, family);
            if (rule.HasOtherMatches || rule.HasNegation || rule.HasTargetOptions) return null;
            var expressions = new List<byte[]>();
            if (!Interface(expressions, NFT_META_IIFNAME, rule.InInterface) || !Interface(expressions, NFT_META_OIFNAME, rule.OutInterface)) return null;
            if (!Address(expressions, family, family.SourceOffset, rule.Source) || !Address(expressions, family, family.DestinationOffset, rule.Destination)) return null;
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
                "MASQUERADE" when rule.Table == "nat" && rule.Chain == "POSTROUTING" => XtExtension("target", "MASQUERADE", 0, family.MasqueradeInfo),
                _ => null,
            };
            if (target == null) return null;
            expressions.Add(target);
            byte[] userData = Array.Empty<byte>();
            if (rule.Comment != null)
            {
                if (!FitsUserData(rule.Comment)) return null;
                userData = CommentUserData(rule.Comment);
            }
            return new NftRuleEncoding(Concat(expressions.ToArray()), userData);
        }

        /// <summary>
        /// A port mapping's rule (<see cref="PortMappingRules"/>) as iptables-nft 1.8 encodes it: the interfaces, meta
        /// l4proto for -p tcp|udp, the addresses (a negated destination for OUTPUT's "! -d 127.0.0.0/8"), then the matches
        /// in order (a port as a 2-byte transport header payload, "-m addrtype --dst-type LOCAL", "--ctstate DNAT" as the
        /// xt "conntrack" match), a counter, and ACCEPT, MASQUERADE or the xt DNAT target (revision 2) to one address and
        /// port. The comment goes in user data, last, as for the other rules. Null for anything else.
        /// </summary>
        private static NftRuleEncoding? EncodeMapping(IptablesRule rule, AddressFamilyProfile family)
        {
            if (rule.SourceNegated || rule.InNegated || rule.OutNegated || rule.Comment == null) return null;
            uint protocol = rule.Protocol switch { "tcp" => 6u, "udp" => 17u, _ => 0u };
            if (protocol == 0) return null;
            var expressions = new List<byte[]>();
            if (!Interface(expressions, NFT_META_IIFNAME, rule.InInterface) || !Interface(expressions, NFT_META_OIFNAME, rule.OutInterface)) return null;
            expressions.Add(Expression("meta", U32(2, NFT_META_L4PROTO), U32(1, NFT_REG_1)));
            expressions.Add(Cmp(new[] { (byte)protocol }));
            if (!Address(expressions, family, family.SourceOffset, rule.Source) || !Address(expressions, family, family.DestinationOffset, rule.Destination, rule.DestinationNegated)) return null;
            var spec = rule.Specification;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool ports = false, comment = false;
            int i = 0;
            for (; i < spec.Count && spec[i] != "-j"; i++)
            {
                var token = spec[i];
                if (token == "!" && i + 1 < spec.Count && spec[i + 1] == "-d") continue;
                if (token is "-s" or "-d" or "-i" or "-o" or "-p") { i++; continue; }
                // "-m NAME OPTION VALUE", each match once, the comment last.
                if (token != "-m" || i + 3 >= spec.Count || comment || !seen.Add(spec[i + 1])) return null;
                string name = spec[i + 1], option = spec[i + 2], value = spec[i + 3];
                i += 3;
                switch (name)
                {
                    case "comment" when option == "--comment" && value == rule.Comment:
                        comment = true;
                        break;
                    case "tcp" or "udp" when name == rule.Protocol && (option == "--dport" || option == "--sport")
                        && ushort.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port > 0:
                        var bytes = new byte[2];
                        BinaryPrimitives.WriteUInt16BigEndian(bytes, port);
                        expressions.Add(Expression("payload", U32(1, NFT_REG_1), U32(2, NFT_PAYLOAD_TRANSPORT_HEADER), U32(3, option == "--sport" ? 0u : 2u), U32(4, 2)));
                        expressions.Add(Cmp(bytes));
                        ports = true;
                        break;
                    case "addrtype" when option == "--dst-type" && value == "LOCAL":
                        // struct xt_addrtype_info_v1: source 0, dest XT_ADDRTYPE_LOCAL (1 << 2), flags 0.
                        expressions.Add(XtExtension("match", "addrtype", 1, new byte[] { 0, 0, 4, 0, 0, 0, 0, 0 }));
                        break;
                    case "conntrack" when option == "--ctstate" && Conntrack(value) is { } match:
                        expressions.Add(match);
                        break;
                    default:
                        return null;
                }
            }
            if (!ports || !comment || i + 1 >= spec.Count) return null;
            var targetName = spec[i + 1];
            var options = spec.Skip(i + 2).ToArray();
            byte[]? target = (targetName, options.Length) switch
            {
                ("ACCEPT", 0) when rule.Table == "filter" => Verdict(NF_ACCEPT),
                ("MASQUERADE", 0) when rule.Table == "nat" && rule.Chain == "POSTROUTING" => XtExtension("target", "MASQUERADE", 0, family.MasqueradeInfo),
                ("DNAT", 2) when rule.Table == "nat" && (rule.Chain == "PREROUTING" || rule.Chain == "OUTPUT") && options[0] == "--to-destination" && DnatInfo(family, options[1]) is { } info
                    => XtExtension("target", "DNAT", 2, info),
                _ => null,
            };
            if (target == null) return null;
            expressions.Add(Expression("counter", U64(1, 0), U64(2, 0)));
            expressions.Add(target);
            if (!FitsUserData(rule.Comment)) return null;
            return new NftRuleEncoding(Concat(expressions.ToArray()), CommentUserData(rule.Comment), protocol);
        }

        /// <summary>
        /// struct nf_nat_range2 for "--to-destination ADDRESS:PORT" (flags MAP_IPS | PROTO_SPECIFIED, the address as
        /// minimum and maximum, the port likewise, network order), in the 48 bytes XT_ALIGN gives it; null for another form.
        /// </summary>
        internal static byte[]? DnatInfo(AddressFamilyProfile family, string destination)
        {
            if (!PortMappingRules.TryParseEndpoint(destination, out var address, out var port) || AddressFamilyProfile.Of(address) != family) return null;
            var info = new byte[48];
            BinaryPrimitives.WriteUInt32LittleEndian(info, 3);
            var bytes = address.GetAddressBytes();
            bytes.CopyTo(info, 4);
            bytes.CopyTo(info, 20);
            BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(36), (ushort)port);
            BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(38), (ushort)port);
            return info;
        }

        /// <summary>A rule of a chain while a batch is planned: one the kernel holds (by handle), or one this batch adds (by id).</summary>
        private sealed record Entry(ulong Handle, uint BatchId, string Signature);

        /// <summary>
        /// Writes a plan as one nf_tables batch, change by change in plan order: a deletion by the handle of the first
        /// rule of its chain that is the same rule (matched by <see cref="NftRuleSignature"/>, so a rule
        /// iptables-restore wrote is found too); an append at the end of its chain; an insert at position 1 at the
        /// head; an insert at position p after the rule then at p - 1 (by its handle, or NFTA_RULE_POSITION_ID when
        /// this batch adds it). A plan that deletes or inserts below a rule it did not write reads the chains it
        /// touches first and goes only with the generation it was planned at, which the batch carries: the kernel
        /// refuses it when anything changed in between. Anything else (a rule the encoder does not know, a rule to
        /// delete that is not found, a chain iptables-nft has not created yet other than filter FORWARD and nat
        /// POSTROUTING (and nat PREROUTING and OUTPUT), which the batch creates as iptables-nft would) is not for this path,
        /// and nothing changes.
        /// Throws NftablesException when the kernel refuses the batch for another reason.
        /// </summary>
        public static NftWriteResult TryWrite(RulePlan plan, AddressFamilyProfile family, uint? generation = null)
        {
            if (plan.IsEmpty) return NftWriteResult.Written;
            var encodings = new Dictionary<IptablesRule, NftRuleEncoding>(ReferenceEqualityComparer.Instance);
            foreach (var change in plan.Changes)
            {
                if (encodings.ContainsKey(change.Rule)) continue;
                var encoding = Encode(change.Rule, family);
                if (encoding == null) return NftWriteResult.NotForThisPath;
                encodings[change.Rule] = encoding;
            }
            // Chains whose existing rules the batch must know: those it deletes from or inserts below an old rule in.
            var full = new HashSet<string>(StringComparer.Ordinal);
            var heads = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var change in plan.Changes)
            {
                var chain = Key(change.Rule);
                heads.TryGetValue(chain, out var head);
                if (change.Kind == RuleChangeKind.Delete || (change.Kind == RuleChangeKind.Insert && change.Position - 1 > head)) full.Add(chain);
                if (change.Kind == RuleChangeKind.Insert && change.Position <= head + 1) heads[chain] = head + 1;
            }
            if (full.Count > 0 && generation == null) return NftWriteResult.NotForThisPath;

            int bytes = encodings.Values.Sum(e => e.Expressions.Length + e.UserData.Length + 160);
            using var socket = NetfilterSocket.Open(bytes);
            // A chain iptables-nft has not created yet: the built-in chains NetnsNat writes to (filter FORWARD, nat
            // POSTROUTING, and for port mappings nat PREROUTING and OUTPUT) are created in the same batch, with their
            // table, as iptables-nft creates them; any other is left to iptables-restore.
            var create = new List<string>();
            var exist = new HashSet<string>(StringComparer.Ordinal);
            foreach (var change in plan.Changes)
            {
                var key = Key(change.Rule);
                // One look-up per chain, not per change (a pipeline of port mappings is thousands of changes in four chains).
                if (exist.Contains(key) || create.Contains(key)) continue;
                if (socket.ChainExists(family.NfProto, change.Rule.Table, change.Rule.Chain))
                {
                    exist.Add(key);
                    continue;
                }
                // Into a chain made by this batch only appends and inserts at its head (a deletion or an insert below an old
                // rule needs rules that are not there).
                if (full.Contains(key) || BaseChain(change.Rule.Table, change.Rule.Chain) == null) return NftWriteResult.NotForThisPath;
                create.Add(key);
            }
            var chains = new Dictionary<string, List<Entry>>(StringComparer.Ordinal);
            foreach (var chain in full)
            {
                var parts = chain.Split('/');
                var dump = Dump(socket, family, parts[0], parts[1], out var dumpGeneration);
                // The dump must show the ruleset the plan was made from: the same generation, before and after it.
                if ((ushort)generation!.Value != dumpGeneration || NftGeneration.Read() != generation) return NftWriteResult.RulesetMoved;
                chains[chain] = dump.Select(r => new Entry(r.Handle, 0, NftRuleSignature.Of(r.Expressions, r.UserData))).ToList();
            }

            int count = plan.Count + 2 * create.Count;
            uint seq = socket.Reserve(count + 2);
            uint first = seq, last = seq + (uint)count;
            var messages = new List<byte[]>(count + 2) { BatchBegin(seq, generation) };
            foreach (var key in create)
            {
                var parts = key.Split('/');
                messages.Add(Message(NftMessage(0), (ushort)(NLM_F_REQUEST | NLM_F_CREATE), ++seq, family.NfProto, 0, Attribute(1 /* NFTA_TABLE_NAME */, Text(parts[0]))));
                messages.Add(Message(NftMessage(3), (ushort)(NLM_F_REQUEST | NLM_F_CREATE), ++seq, family.NfProto, 0, BaseChain(parts[0], parts[1])!));
            }
            uint nextId = 0;
            foreach (var change in plan.Changes)
            {
                var rule = change.Rule;
                var encoding = encodings[rule];
                var chain = Key(rule);
                if (!chains.TryGetValue(chain, out var entries)) chains[chain] = entries = new List<Entry>();
                bool complete = full.Contains(chain);
                ++seq;
                ushort ack = seq == last ? NLM_F_ACK : (ushort)0;
                var where = Concat(Attribute(NFTA_RULE_TABLE, Text(rule.Table)), Attribute(NFTA_RULE_CHAIN, Text(rule.Chain)));
                if (change.Kind == RuleChangeKind.Delete)
                {
                    var signature = NftRuleSignature.Of(encoding);
                    int at = entries.FindIndex(e => e.BatchId == 0 && e.Signature == signature);
                    if (at < 0) return NftWriteResult.NotForThisPath;
                    messages.Add(Message(NftMessage(8), (ushort)(NLM_F_REQUEST | ack), seq, family.NfProto, 0,
                        Concat(where, U64(NFTA_RULE_HANDLE, entries[at].Handle))));
                    entries.RemoveAt(at);
                    continue;
                }
                uint id = ++nextId;
                var entry = new Entry(0, id, string.Empty);
                byte[] position = Array.Empty<byte>();
                bool append = change.Kind == RuleChangeKind.Append;
                if (change.Kind == RuleChangeKind.Append)
                {
                    if (complete) entries.Add(entry);
                }
                else
                {
                    int slot = change.Position - 1;
                    if (slot < 0 || slot > entries.Count) return NftWriteResult.NotForThisPath;
                    if (slot > 0)
                    {
                        var after = entries[slot - 1];
                        position = after.BatchId != 0 ? U32(NFTA_RULE_POSITION_ID, after.BatchId) : U64(NFTA_RULE_POSITION, after.Handle);
                        append = true;
                    }
                    entries.Insert(slot, entry);
                }
                // Only the last message asks for an ack: errors come unasked, and before that ack, so one ack marks the
                // end of the answer whatever the size of the batch. NLM_F_APPEND: at the end, or after the position rule.
                var body = Concat(
                    where,
                    Attribute(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, encoding.Expressions),
                    Attribute(NFTA_RULE_COMPAT | NLA_F_NESTED, Concat(U32(1, encoding.Protocol), U32(2, 0))),
                    encoding.UserData.Length > 0 ? Attribute(NFTA_RULE_USERDATA, encoding.UserData) : Array.Empty<byte>(),
                    U32(NFTA_RULE_ID, id),
                    position);
                messages.Add(Message(NftMessage(6), (ushort)(NLM_F_REQUEST | NLM_F_CREATE | (append ? NLM_F_APPEND : 0) | ack), seq, family.NfProto, 0, body));
            }
            messages.Add(BatchEnd(++seq));
            var (errno, index) = socket.SendBatch(Concat(messages.ToArray()), first, last, "write the rules to nf_tables");
            if (errno == 0) return NftWriteResult.Written;
            // The index of a refused rule counts the table and chain messages before the rules.
            index -= 2 * create.Count;
            if (errno == ERESTART && index < 0) return NftWriteResult.RulesetMoved;
            // ENOENT: a chain or rule went away between the look-up and the batch; ENOBUFS: too many errors to read.
            // Either way nothing was applied, and iptables-restore writes the plan or reports why it cannot.
            if (errno == ENOENT || errno == ENOBUFS) return NftWriteResult.NotForThisPath;
            throw new NftablesException(Describe(errno, index >= 0 && index < plan.Count ? plan.Changes[index].Rule : null), errno);
        }

        /// <summary>
        /// Deletes tables of a family (NFT_MSG_DELTABLE) in one batch that goes only if the ruleset is still of the
        /// generation the caller checked them empty at. Returns the tables deleted (none when the ruleset moved).
        /// </summary>
        public static IReadOnlyList<string> DeleteTables(AddressFamilyProfile family, IReadOnlyList<string> tables, uint generation)
        {
            const ushort NFTA_TABLE_NAME = 1;
            using var socket = NetfilterSocket.Open(tables.Count * 64);
            uint seq = socket.Reserve(tables.Count + 2);
            uint first = seq, last = seq + (uint)tables.Count;
            var messages = new List<byte[]> { BatchBegin(seq, generation) };
            foreach (var table in tables)
            {
                ++seq;
                messages.Add(Message(NftMessage(2), (ushort)(NLM_F_REQUEST | (seq == last ? NLM_F_ACK : 0)), seq, family.NfProto, 0, Attribute(NFTA_TABLE_NAME, Text(table))));
            }
            messages.Add(BatchEnd(++seq));
            var (errno, index) = socket.SendBatch(Concat(messages.ToArray()), first, last, "delete the empty tables");
            if (errno == 0) return tables;
            if (errno == ERESTART || errno == ENOENT || errno == EBUSY) return Array.Empty<string>();
            throw new NftablesException($"nf_tables refused to delete the empty table{(tables.Count > 1 ? "s" : string.Empty)} {string.Join(", ", tables)}: {Strerror(errno)} (errno {errno}).", errno);
        }

        private static string Key(IptablesRule rule) => rule.Table + "/" + rule.Chain;

        /// <summary>Whether a comment fits user data: not empty, no NUL, at most 254 bytes with its NUL.</summary>
        private static bool FitsUserData(string comment) => comment.Length > 0 && !comment.Contains('\0') && Encoding.UTF8.GetByteCount(comment) + 1 <= 255;

        /// <summary>
        /// NFT_MSG_NEWCHAIN's attributes for a built-in chain NetnsNat writes to, as iptables-nft creates it on first use
        /// (a base chain of type filter or nat at iptables' hook and priority, policy ACCEPT); null for any other chain.
        /// </summary>
        private static byte[]? BaseChain(string table, string chain)
        {
            const ushort NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5, NFTA_CHAIN_TYPE = 7;
            const ushort NFTA_HOOK_HOOKNUM = 1, NFTA_HOOK_PRIORITY = 2;
            (uint Hook, int Priority, string Type)? spec = (table, chain) switch
            {
                ("filter", "FORWARD") => (2u /* NF_INET_FORWARD */, 0 /* NF_IP_PRI_FILTER */, "filter"),
                ("nat", "POSTROUTING") => (4u /* NF_INET_POST_ROUTING */, 100 /* NF_IP_PRI_NAT_SRC */, "nat"),
                ("nat", "PREROUTING") => (0u /* NF_INET_PRE_ROUTING */, -100 /* NF_IP_PRI_NAT_DST */, "nat"),
                ("nat", "OUTPUT") => (3u /* NF_INET_LOCAL_OUT */, -100 /* NF_IP_PRI_NAT_DST */, "nat"),
                _ => null,
            };
            if (spec is not { } s) return null;
            return Concat(
                Attribute(NFTA_CHAIN_TABLE, Text(table)),
                Attribute(NFTA_CHAIN_NAME, Text(chain)),
                Attribute(NFTA_CHAIN_HOOK | NLA_F_NESTED, Concat(U32(NFTA_HOOK_HOOKNUM, s.Hook), U32(NFTA_HOOK_PRIORITY, (uint)s.Priority))),
                U32(NFTA_CHAIN_POLICY, NF_ACCEPT),
                Attribute(NFTA_CHAIN_TYPE, Text(s.Type)));
        }

        private static IReadOnlyList<NftRuleDump> Dump(NetfilterSocket socket, AddressFamilyProfile family, string table, string chain, out ushort generation)
        {
            var request = Message(NftMessage(7), NLM_F_REQUEST | NLM_F_DUMP, socket.Next(), family.NfProto, 0,
                Concat(Attribute(NFTA_RULE_TABLE, Text(table)), Attribute(NFTA_RULE_CHAIN, Text(chain))));
            var rules = new List<NftRuleDump>();
            generation = 0;
            foreach (var payload in socket.Dump(request, NftMessage(6), $"list the rules of {table} {chain}"))
            {
                generation = NftRuleSignature.DumpGeneration(payload);
                rules.Add(Parse(payload));
            }
            if (rules.Count == 0) generation = (ushort)(NftGeneration.Read() ?? 0);
            return rules;
        }

        private static NftRuleDump Parse(byte[] payload)
        {
            ulong handle = 0;
            byte[] expressions = Array.Empty<byte>(), userData = Array.Empty<byte>();
            foreach (var (attr, data) in Attributes(payload, 4))
            {
                if (attr == NFTA_RULE_HANDLE && data.Length == 8) handle = BinaryPrimitives.ReadUInt64BigEndian(data);
                else if (attr == NFTA_RULE_EXPRESSIONS) expressions = data;
                else if (attr == NFTA_RULE_USERDATA) userData = data;
            }
            return new NftRuleDump(handle, expressions, userData);
        }

        /// <summary>The rules of one chain of a table as the kernel lists them (NFT_MSG_GETRULE dump, filtered by the kernel).</summary>
        public static IReadOnlyList<NftRuleDump> Dump(AddressFamilyProfile family, string table, string chain)
        {
            using var socket = NetfilterSocket.Open(0);
            return Dump(socket, family, table, chain, out _);
        }

        private static string Describe(int errno, IptablesRule? rule)
        {
            var what = rule == null ? "the batch" : $"'{rule}'";
            var hint = errno switch
            {
                EPERM => " Another program may own the table (nft 'flags owner'), or this process lacks CAP_NET_ADMIN: run PowerShell as root (sudo pwsh).",
                EBUSY => " The chain is busy; try again.",
                _ => string.Empty,
            };
            return $"nf_tables refused {what}: {Strerror(errno)} (errno {errno}). Nothing of this call's rule changes was applied.{hint}";
        }

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

        // -s/-d: the whole bytes of the prefix; a prefix that ends inside a byte loads the whole address and masks it first.
        private static bool Address(List<byte[]> expressions, AddressFamilyProfile family, uint offset, string? text, bool negated = false)
        {
            if (text == null) return true;
            if (!Cidr.TryParsePrefix(text, out var prefix, out _) || prefix.PrefixLength == 0 || AddressFamilyProfile.Of(prefix.Address) != family) return false;
            var network = prefix.Network;
            var value = network.BaseAddress.GetAddressBytes();
            var mask = Cidr.MaskBytes(network.PrefixLength, value.Length);
            bool bitwise = network.PrefixLength % 8 != 0;
            int length = bitwise ? value.Length : network.PrefixLength / 8;
            expressions.Add(Expression("payload", U32(1, NFT_REG_1), U32(2, NFT_PAYLOAD_NETWORK_HEADER), U32(3, offset), U32(4, (uint)length)));
            if (bitwise)
            {
                expressions.Add(Expression("bitwise", U32(1, NFT_REG_1), U32(2, NFT_REG_1), U32(3, (uint)length),
                    Attribute(4 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, mask)), Attribute(5 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, new byte[length]))));
            }
            expressions.Add(Cmp(value.AsSpan(0, length).ToArray(), negated));
            return true;
        }

        internal static byte[] Cmp(byte[] data, bool negated = false) =>
            Expression("cmp", U32(1, NFT_REG_1), U32(2, negated ? 1u /* NFT_CMP_NEQ */ : 0u /* NFT_CMP_EQ */), Attribute(3 | NLA_F_NESTED, Attribute(NFTA_DATA_VALUE, data)));

        // -m conntrack --ctstate: struct xt_conntrack_mtinfo3 with match_flags XT_CONNTRACK_STATE and the state bits.
        private static byte[]? Conntrack(string states) => ConntrackInfo(states) is { } info ? XtExtension("match", "conntrack", 3, info) : null;

        /// <summary>struct xt_conntrack_mtinfo3 for --ctstate alone (INVALID, ESTABLISHED, RELATED, NEW, DNAT), or null for another state.</summary>
        internal static byte[]? ConntrackInfo(string states)
        {
            ushort mask = 0;
            foreach (var state in states.Split(','))
            {
                ushort bit = state switch { "INVALID" => 1, "ESTABLISHED" => 2, "RELATED" => 4, "NEW" => 8, "DNAT" => 128, _ => 0 };
                if (bit == 0) return null;
                mask |= bit;
            }
            var info = new byte[ConntrackInfoSize];
            BinaryPrimitives.WriteUInt16LittleEndian(info.AsSpan(146), 1);
            BinaryPrimitives.WriteUInt16LittleEndian(info.AsSpan(150), mask);
            return info;
        }

        private static byte[] XtExtension(string kind, string name, uint revision, byte[] info) =>
            Expression(kind, Attribute(1, Text(name)), U32(2, revision), Attribute(3, info));

        internal static byte[] Verdict(uint code) =>
            Expression("immediate", U32(1, NFT_REG_VERDICT), Attribute(2 | NLA_F_NESTED, Attribute(NFTA_DATA_VERDICT | NLA_F_NESTED, U32(1, code))));

        internal static byte[] Expression(string name, params byte[][] attributes) =>
            Attribute(NFTA_LIST_ELEM | NLA_F_NESTED, Concat(Attribute(NFTA_EXPR_NAME, Text(name)), Attribute(NFTA_EXPR_DATA | NLA_F_NESTED, Concat(attributes))));
    }
}
