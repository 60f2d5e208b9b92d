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

        /// <summary>
        /// The chain's verdict on the packet; policyDrop is the chain's policy. Of the packet's addresses only what all the
        /// bridge's traffic shares is known: the subnet's prefix of an address in it (the namespaces' addresses vary
        /// beyond it), nothing of another (the outside is any address), so a rule about one address decides nothing.
        /// </summary>
        public static NftChainVerdict Evaluate(string chain, bool policyDrop, IReadOnlyList<byte[]> rules, AddressFamilyProfile family, ForwardPacket packet, IPNetwork? subnet)
        {
            var uncertain = new List<string>();
            // A rule before the verdict that may end the walk without a drop (an accept, a jump, a return, a verdict map):
            // then a drop after it is no certainty.
            string? mayPass = null;
            foreach (var payload in rules)
            {
                var (matches, verdict, handle) = Rule(payload, family, packet, subnet);
                if (matches == false) continue;
                var rule = $"rule handle {handle}";
                if (matches == null)
                {
                    // Its matches may or may not hold for the packet.
                    if (verdict is Verdict.Drop or Verdict.Jump or Verdict.Other) uncertain.Add($"{rule} ({Word(verdict)})");
                    if (verdict is Verdict.Accept or Verdict.Jump or Verdict.Other or Verdict.Return) mayPass ??= rule;
                    continue;
                }
                switch (verdict)
                {
                    case Verdict.None:
                        continue;
                    case Verdict.Accept:
                        return new NftChainVerdict(chain, NftChainOutcome.Accepted, $"{rule} (accept)", uncertain);
                    case Verdict.Drop:
                        return new NftChainVerdict(chain, mayPass == null ? NftChainOutcome.Dropped : NftChainOutcome.Unknown,
                            mayPass == null ? $"{rule} (drop)" : $"{mayPass} (with matches NetnsNat does not evaluate) or else {rule} (drop)", uncertain);
                    case Verdict.Return:
                        break;
                    default:
                        return new NftChainVerdict(chain, NftChainOutcome.Unknown, $"{rule} ({Word(verdict)}, which NetnsNat does not follow)", uncertain);
                }
                break;
            }
            if (!policyDrop) return new NftChainVerdict(chain, NftChainOutcome.Accepted, "policy accept", uncertain);
            return mayPass == null
                ? new NftChainVerdict(chain, NftChainOutcome.Dropped, rules.Count == 0 ? "policy drop, no rules" : "policy drop", uncertain)
                : new NftChainVerdict(chain, NftChainOutcome.Unknown, $"{mayPass} (with matches NetnsNat does not evaluate) or else policy drop", uncertain);
        }

        private static string Word(Verdict verdict) => verdict switch
        {
            Verdict.Drop => "drop",
            Verdict.Jump => "jump",
            Verdict.Accept => "accept",
            _ => "a verdict map or a verdict NetnsNat does not evaluate",
        };

        /// <summary>
        /// Whether the rule's matches hold for the packet (null: NetnsNat cannot tell), its verdict, and its handle. The
        /// registers are modelled as the kernel's 64 bytes, each byte known (from the packet) or not.
        /// </summary>
        private static (bool? Matches, Verdict Verdict, ulong Handle) Rule(byte[] payload, AddressFamilyProfile family, ForwardPacket packet, IPNetwork? subnet)
        {
            ulong handle = 0;
            byte[] expressions = Array.Empty<byte>();
            foreach (var (attr, value) in Attributes(payload, 4))
            {
                if (attr == NFTA_RULE_HANDLE && value.Length == 8) handle = BinaryPrimitives.ReadUInt64BigEndian(value);
                else if (attr == NFTA_RULE_EXPRESSIONS) expressions = value;
            }
            var registers = new byte[64];
            // Which bits of each register byte are known (0xff: all of them).
            var known = new byte[64];
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
                        IPAddress? address = null;
                        if (U32(fields, 2) == NFT_PAYLOAD_NETWORK_HEADER && length > 0 && length <= family.AddressBytes && packet.Source.AddressFamily == family.Family)
                        {
                            address = offset == family.SourceOffset ? packet.Source : offset == family.DestinationOffset ? packet.Destination : null;
                        }
                        int at = Register(dreg);
                        Store(registers, known, at, null, Math.Max(length, 1));
                        if (address != null && at >= 0 && at + length <= registers.Length)
                        {
                            // Known: the subnet's prefix of an address in it; nothing of any other.
                            var bytes = address.GetAddressBytes();
                            int bits = subnet is IPNetwork n && n.Contains(address) ? n.PrefixLength : 0;
                            for (int i = 0; i < length; i++)
                            {
                                registers[at + i] = bytes[i];
                                int k = Math.Clamp(bits - 8 * i, 0, 8);
                                known[at + i] = (byte)(0xff << (8 - k));
                            }
                        }
                        break;
                    }
                    case "bitwise":
                    {
                        // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5, OP 6 (absent or 0: mask and xor; shifts are not evaluated).
                        int sreg = Register(Find(fields, 1)), dreg = Register(Find(fields, 2)), length = (int)(U32(fields, 3) ?? 0);
                        var mask = Value(Find(fields, 4));
                        var xor = Value(Find(fields, 5));
                        if ((U32(fields, 6) ?? 0) == 0 && sreg >= 0 && dreg >= 0 && mask != null && xor != null && mask.Length == length && xor.Length == length
                            && sreg + length <= registers.Length && dreg + length <= registers.Length)
                        {
                            // (value & mask) ^ xor: a bit the mask clears is known (the xor's), whatever the value.
                            var value = new byte[length];
                            var bits = new byte[length];
                            for (int i = 0; i < length; i++)
                            {
                                value[i] = (byte)((registers[sreg + i] & mask[i]) ^ xor[i]);
                                bits[i] = (byte)(known[sreg + i] | ~mask[i]);
                            }
                            value.CopyTo(registers, dreg);
                            bits.CopyTo(known, dreg);
                        }
                        else
                        {
                            Store(registers, known, dreg, null, Math.Max(length, 1));
                        }
                        break;
                    }
                    case "cmp":
                    {
                        // NFTA_CMP_SREG 1, OP 2, DATA 3.
                        int sreg = Register(Find(fields, 1));
                        var op = U32(fields, 2);
                        var data = Value(Find(fields, 3));
                        if (sreg < 0 || data == null || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ) || sreg + data.Length > registers.Length)
                        {
                            unknown = true;
                            break;
                        }
                        // Equal when every bit is; different when a known bit differs; else not known.
                        bool differs = false, whole = true;
                        for (int i = 0; i < data.Length; i++)
                        {
                            if (((registers[sreg + i] ^ data[i]) & known[sreg + i]) != 0) differs = true;
                            if (known[sreg + i] != 0xff) whole = false;
                        }
                        if (!differs && !whole)
                        {
                            unknown = true;
                            break;
                        }
                        if (!differs != (op == NFT_CMP_EQ)) return (false, Verdict.None, handle);
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
                    case "lookup" when Find(fields, 3) is { } lookupDreg:
                        // NFTA_LOOKUP_DREG 3: a map. Into the verdict register (0), a verdict map ("ct state vmap { ... }").
                        unknown = true;
                        if (lookupDreg.Length == 4 && BinaryPrimitives.ReadUInt32BigEndian(lookupDreg) == 0) verdict = Verdict.Other;
                        else Array.Clear(known);
                        break;
                    case "target":
                    {
                        // An xt target of iptables-nft: REJECT drops; NFQUEUE hands the verdict over; LOG, MARK and the like go on.
                        var target = Find(fields, 1) is { } t ? TextOf(t) : null;
                        if (target == "REJECT") verdict = Verdict.Drop;
                        else if (target == "NFQUEUE") verdict = Verdict.Other;
                        break;
                    }
                    case "queue":
                    case "fwd":
                    case "synproxy":
                        verdict = Verdict.Other;
                        break;
                    case "dup":
                    case "notrack":
                        break;
                    default:
                        // A set lookup, a range, a limit, a port, a mark, fib...: whether the rule applies is not known, and
                        // what it loaded into a register neither.
                        unknown = true;
                        Array.Clear(known);
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

        /// <summary>Writes a value into a register, all of it known (or marks its bytes unknown when the value is null).</summary>
        private static void Store(byte[] registers, byte[] known, int at, byte[]? value, int length)
        {
            if (at < 0) return;
            int n = Math.Min(value?.Length ?? length, registers.Length - at);
            for (int i = 0; i < n; i++)
            {
                registers[at + i] = value == null ? (byte)0 : value[i];
                known[at + i] = value == null ? (byte)0 : (byte)0xff;
            }
        }


        /// <summary>For messages: an outcome as a word.</summary>
        public static string Describe(NftChainVerdict verdict) => verdict.Outcome switch
        {
            NftChainOutcome.Accepted => "accepts",
            NftChainOutcome.Dropped => "drops",
            _ => "may drop",
        } + $" it ({verdict.By})";
    }
}
