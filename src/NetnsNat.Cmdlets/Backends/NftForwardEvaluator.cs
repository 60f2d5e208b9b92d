using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;
using NetnsNat.Linux;
using NetnsNat.Model;
using static NetnsNat.Linux.NetlinkAttributes;
using static NetnsNat.Linux.Nfnl;

namespace NetnsNat.Backends
{
    /// <summary>What a base chain of another nftables table does with a packet on the forward hook.</summary>
    internal enum NftChainOutcome
    {
        /// <summary>A rule accepts it, or the policy does: the packet goes on to the hook's next chain.</summary>
        Accepted,

        /// <summary>A rule drops or rejects it, or the policy drops it: no accept elsewhere brings it back.</summary>
        Dropped,

        /// <summary>It depends on rules NetnsNat does not evaluate (a set, a port, a mark, a jump to another chain).</summary>
        Unknown,
    }

    /// <summary>A chain's verdict on one packet.</summary>
    /// <param name="Chain">"family table chain", as nft names it.</param>
    /// <param name="By">What decided: "rule handle 4 (accept)", "policy drop"; for Unknown, the rule that leaves it open.</param>
    /// <param name="Uncertain">Rules before the verdict that may drop the packet, with matches NetnsNat does not evaluate.</param>
    internal sealed record NftChainVerdict(string Chain, NftChainOutcome Outcome, string By, IReadOnlyList<string> Uncertain);

    /// <summary>
    /// Walks a packet through a base chain of another table as the kernel would, for the matches NetnsNat models: the
    /// interface names (with nft's "br*" prefixes), the family, the conntrack state and the addresses, compared with
    /// ==, != and prefixes; the verdicts accept, drop, reject and return. Anything else (a set, a port, a mark, a limit,
    /// a jump into another chain) is not evaluated: a rule with such a match may or may not apply, which is said, not
    /// guessed. Rules are read from the kernel's dump (netlink expressions), as nft -a lists them by handle.
    /// </summary>
    internal static class NftForwardEvaluator
    {
        private enum Verdict { None, Accept, Drop, Return, Jump, Other }

        private const ushort NFTA_RULE_HANDLE = 3, NFTA_RULE_EXPRESSIONS = 4;
        private const uint NFT_META_IIFNAME = 6, NFT_META_OIFNAME = 7, NFT_META_NFPROTO = 15, NFT_CT_STATE = 0;
        private const uint NFT_PAYLOAD_NETWORK_HEADER = 1;
        private const uint NFT_CMP_EQ = 0, NFT_CMP_NEQ = 1;

        /// <summary>The chain's verdict on the packet; policyDrop is the chain's policy.</summary>
        public static NftChainVerdict Evaluate(string chain, bool policyDrop, IReadOnlyList<byte[]> rules, AddressFamilyProfile family, ForwardPacket packet)
        {
            var uncertain = new List<string>();
            string? mayAccept = null;
            foreach (var payload in rules)
            {
                var (matches, verdict, handle) = Rule(payload, family, packet);
                if (matches == false) continue;
                var rule = $"rule handle {handle}";
                if (matches == null)
                {
                    // Its matches may or may not hold for the packet.
                    if (verdict is Verdict.Drop or Verdict.Jump or Verdict.Other) uncertain.Add($"{rule} ({Word(verdict)})");
                    else if (verdict == Verdict.Accept) mayAccept ??= rule;
                    continue;
                }
                switch (verdict)
                {
                    case Verdict.None:
                        continue;
                    case Verdict.Accept:
                        return new NftChainVerdict(chain, NftChainOutcome.Accepted, $"{rule} (accept)", uncertain);
                    case Verdict.Drop:
                        return new NftChainVerdict(chain, mayAccept == null ? NftChainOutcome.Dropped : NftChainOutcome.Unknown,
                            mayAccept == null ? $"{rule} (drop)" : $"{mayAccept} (accept, with matches NetnsNat does not evaluate) or else {rule} (drop)", uncertain);
                    case Verdict.Return:
                        break;
                    default:
                        return new NftChainVerdict(chain, NftChainOutcome.Unknown, $"{rule} ({Word(verdict)}, which NetnsNat does not follow)", uncertain);
                }
                break;
            }
            if (!policyDrop) return new NftChainVerdict(chain, NftChainOutcome.Accepted, "policy accept", uncertain);
            return mayAccept == null
                ? new NftChainVerdict(chain, NftChainOutcome.Dropped, rules.Count == 0 ? "policy drop, no rules" : "policy drop", uncertain)
                : new NftChainVerdict(chain, NftChainOutcome.Unknown, $"{mayAccept} (accept, with matches NetnsNat does not evaluate) or else policy drop", uncertain);
        }

        private static string Word(Verdict verdict) => verdict switch
        {
            Verdict.Drop => "drop",
            Verdict.Jump => "jump",
            Verdict.Accept => "accept",
            _ => "a verdict NetnsNat does not evaluate",
        };

        /// <summary>
        /// Whether the rule's matches hold for the packet (null: NetnsNat cannot tell), its verdict, and its handle. The
        /// registers are modelled as the kernel's 64 bytes, each byte known (from the packet) or not.
        /// </summary>
        private static (bool? Matches, Verdict Verdict, ulong Handle) Rule(byte[] payload, AddressFamilyProfile family, ForwardPacket packet)
        {
            ulong handle = 0;
            byte[] expressions = Array.Empty<byte>();
            foreach (var (attr, value) in Attributes(payload, 4))
            {
                if (attr == NFTA_RULE_HANDLE && value.Length == 8) handle = BinaryPrimitives.ReadUInt64BigEndian(value);
                else if (attr == NFTA_RULE_EXPRESSIONS) expressions = value;
            }
            var registers = new byte[64];
            var known = new bool[64];
            bool unknown = false;
            var verdict = Verdict.None;
            foreach (var (_, element) in Attributes(expressions, 0))
            {
                string? name = null;
                var fields = new List<NlAttribute>();
                foreach (var (attr, value) in Attributes(element, 0))
                {
                    if (attr == 1) name = TextOf(value);
                    else if (attr == 2) fields = Attributes(value, 0);
                }
                switch (name)
                {
                    case "counter":
                    case "log":
                        break;
                    case "meta" when Find(fields, 1) is { } dreg:
                    {
                        // NFTA_META_DREG 1, KEY 2.
                        var key = U32(fields, 2);
                        var value = key switch
                        {
                            NFT_META_IIFNAME => Name(packet.InInterface),
                            NFT_META_OIFNAME => Name(packet.OutInterface),
                            NFT_META_NFPROTO => new[] { family.NfProto, (byte)0, (byte)0, (byte)0 },
                            _ => null,
                        };
                        Store(registers, known, Register(dreg), value, 16);
                        break;
                    }
                    case "ct" when Find(fields, 1) is { } dreg:
                    {
                        // NFTA_CT_DREG 1, KEY 2: the state as NF_CT_STATE_BIT (host order): established 2, related 4, new 8.
                        byte[]? value = null;
                        if (U32(fields, 2) == NFT_CT_STATE)
                        {
                            value = new byte[4];
                            BitConverter.TryWriteBytes(value, packet.State == "NEW" ? 8u : packet.State == "RELATED" ? 4u : 2u);
                        }
                        Store(registers, known, Register(dreg), value, 16);
                        break;
                    }
                    case "payload" when Find(fields, 1) is { } dreg:
                    {
                        // NFTA_PAYLOAD_DREG 1, BASE 2, OFFSET 3, LEN 4: the addresses of the network header.
                        int length = (int)(U32(fields, 4) ?? 0);
                        var offset = U32(fields, 3);
                        byte[]? value = null;
                        if (U32(fields, 2) == NFT_PAYLOAD_NETWORK_HEADER && length > 0 && length <= family.AddressBytes && packet.Source.AddressFamily == family.Family)
                        {
                            if (offset == family.SourceOffset) value = packet.Source.GetAddressBytes().AsSpan(0, length).ToArray();
                            else if (offset == family.DestinationOffset) value = packet.Destination.GetAddressBytes().AsSpan(0, length).ToArray();
                        }
                        Store(registers, known, Register(dreg), value, Math.Max(length, 1));
                        break;
                    }
                    case "bitwise":
                    {
                        // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5, OP 6 (absent or 0: mask and xor; shifts are not evaluated).
                        int sreg = Register(Find(fields, 1)), dreg = Register(Find(fields, 2)), length = (int)(U32(fields, 3) ?? 0);
                        var mask = Value(Find(fields, 4));
                        var xor = Value(Find(fields, 5));
                        byte[]? value = null;
                        if ((U32(fields, 6) ?? 0) == 0 && sreg >= 0 && mask != null && xor != null && mask.Length == length && xor.Length == length && Known(known, sreg, length))
                        {
                            value = new byte[length];
                            for (int i = 0; i < length; i++) value[i] = (byte)((registers[sreg + i] & mask[i]) ^ xor[i]);
                        }
                        Store(registers, known, dreg, value, Math.Max(length, 1));
                        break;
                    }
                    case "cmp":
                    {
                        // NFTA_CMP_SREG 1, OP 2, DATA 3.
                        int sreg = Register(Find(fields, 1));
                        var op = U32(fields, 2);
                        var data = Value(Find(fields, 3));
                        if (sreg < 0 || data == null || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ) || !Known(known, sreg, data.Length))
                        {
                            unknown = true;
                            break;
                        }
                        bool equal = registers.AsSpan(sreg, data.Length).SequenceEqual(data);
                        if (equal != (op == NFT_CMP_EQ)) return (false, Verdict.None, handle);
                        break;
                    }
                    case "immediate":
                    {
                        // NFTA_IMMEDIATE_DREG 1 (0: the verdict), DATA 2 > NFTA_DATA_VERDICT 2 > CODE 1.
                        var data = Find(fields, 2);
                        if (U32(fields, 1) != 0)
                        {
                            Store(registers, known, Register(Find(fields, 1)), data == null ? null : Value(data), 16);
                            break;
                        }
                        var code = data == null ? null : Find(Attributes(data, 0), 2) is { } v ? U32(Attributes(v, 0), 1) : null;
                        verdict = code switch
                        {
                            1 => Verdict.Accept,
                            0 => Verdict.Drop,
                            0xfffffffb => Verdict.Return,
                            0xfffffffd or 0xfffffffc => Verdict.Jump,
                            0xffffffff => Verdict.None,
                            _ => Verdict.Other,
                        };
                        break;
                    }
                    case "reject":
                        verdict = Verdict.Drop;
                        break;
                    default:
                        // A set lookup, a range, a limit, a port, a mark...: whether the rule applies is not known.
                        unknown = true;
                        break;
                }
            }
            return (unknown ? null : true, verdict, handle);
        }

        /// <summary>An interface name as the registers hold it: padded with NULs to 16 bytes.</summary>
        private static byte[] Name(string name)
        {
            var bytes = new byte[16];
            Encoding.ASCII.GetBytes(name, 0, Math.Min(name.Length, 15), bytes, 0);
            return bytes;
        }

        /// <summary>The byte offset of a register in the 64 bytes: NFT_REG_1..4 are 16 bytes each, NFT_REG32_00..15 4 bytes; -1 for another.</summary>
        private static int Register(byte[]? attribute)
        {
            if (attribute == null || attribute.Length != 4) return -1;
            uint r = BinaryPrimitives.ReadUInt32BigEndian(attribute);
            return r is >= 1 and <= 4 ? (int)(r - 1) * 16 : r is >= 8 and <= 23 ? (int)(r - 8) * 4 : -1;
        }

        /// <summary>Writes a value into a register (or marks its bytes unknown when the value is null).</summary>
        private static void Store(byte[] registers, bool[] known, int at, byte[]? value, int length)
        {
            if (at < 0) return;
            int n = Math.Min(value?.Length ?? length, registers.Length - at);
            for (int i = 0; i < n; i++)
            {
                registers[at + i] = value == null ? (byte)0 : value[i];
                known[at + i] = value != null;
            }
        }

        private static bool Known(bool[] known, int at, int length)
        {
            if (at + length > known.Length) return false;
            for (int i = 0; i < length; i++)
            {
                if (!known[at + i]) return false;
            }
            return true;
        }

        private static byte[]? Find(List<NlAttribute> fields, ushort type)
        {
            foreach (var (attr, value) in fields)
            {
                if (attr == type) return value;
            }
            return null;
        }

        private static uint? U32(List<NlAttribute> fields, ushort type) => Find(fields, type) is { Length: 4 } v ? BinaryPrimitives.ReadUInt32BigEndian(v) : null;

        /// <summary>NFTA_DATA_VALUE inside a nested data attribute.</summary>
        private static byte[]? Value(byte[]? nested) => nested == null ? null : Find(Attributes(nested, 0), 1);

        /// <summary>For messages: an outcome as a word.</summary>
        public static string Describe(NftChainVerdict verdict) => verdict.Outcome switch
        {
            NftChainOutcome.Accepted => "accepts",
            NftChainOutcome.Dropped => "drops",
            _ => "may drop",
        } + $" it ({verdict.By})";
    }
}
