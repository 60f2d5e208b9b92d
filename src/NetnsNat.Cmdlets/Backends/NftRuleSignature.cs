using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;
using NetnsNat.Linux;
using static NetnsNat.Linux.NetlinkAttributes;

namespace NetnsNat.Backends
{
    /// <summary>
    /// What a rule's nf_tables expressions mean, as one comparable string: each expression's name and the values that
    /// decide what it matches or does (a meta key, a payload's offset and length, a cmp's operator and data, a bitwise
    /// mask, a verdict, a lookup's set by name, an xt extension's name, revision and info), leaving out registers, a
    /// batch's set ids, counter values and attributes a kernel adds on its own. The comment is kept apart from where it is stored (rule user data, or an
    /// xt "comment" match), so a rule reads the same whether NetnsNat, iptables-nft-restore or the kernel's dump wrote
    /// these bytes. Two signatures are equal exactly when the rules are the same rule.
    /// </summary>
    internal static class NftRuleSignature
    {
        private const ushort NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2, NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2;

        public static string Of(NftRuleEncoding encoding) => Of(encoding.Expressions, encoding.UserData);

        public static string Of(byte[] expressions, byte[] userData)
        {
            var text = new StringBuilder(128);
            string? comment = NetnsNat.Linux.Nfnl.CommentOf(userData);
            foreach (var (type, element) in Attributes(expressions, 0))
            {
                if (type != NFTA_LIST_ELEM) continue;
                string name = string.Empty;
                byte[] data = Array.Empty<byte>();
                foreach (var (attr, value) in Attributes(element, 0))
                {
                    if (attr == NFTA_EXPR_NAME) name = Encoding.ASCII.GetString(value).TrimEnd('\0');
                    else if (attr == NFTA_EXPR_DATA) data = value;
                }
                var fields = Attributes(data, 0);
                switch (name)
                {
                    case "counter":
                        text.Append("counter;");
                        break;
                    case "meta":
                        text.Append("meta:").Append(Hex(Find(fields, 2))).Append(';');
                        break;
                    case "payload":
                        text.Append("payload:").Append(Hex(Find(fields, 2))).Append(',').Append(Hex(Find(fields, 3))).Append(',').Append(Hex(Find(fields, 4))).Append(';');
                        break;
                    case "cmp":
                        text.Append("cmp:").Append(Hex(Find(fields, 2))).Append(',').Append(Hex(Value(Find(fields, 3)))).Append(';');
                        break;
                    case "bitwise":
                        text.Append("bitwise:").Append(Hex(Find(fields, 3))).Append(',').Append(Hex(Value(Find(fields, 4)))).Append(',').Append(Hex(Value(Find(fields, 5)))).Append(';');
                        break;
                    case "lookup":
                        // The set by name (not its id in a batch), whether it is a map's (a destination register), and the
                        // flags (inverted or not; the kernel lists 0, a batch may leave them out); not the registers themselves.
                        var flags = Find(fields, 5);
                        text.Append("lookup:").Append(Encoding.ASCII.GetString(Find(fields, 1)).TrimEnd('\0')).Append(',').Append(Find(fields, 3).Length > 0 ? "map," : "set,")
                            .Append(Hex(flags.Length == 0 ? new byte[4] : flags)).Append(';');
                        break;
                    case "immediate":
                        text.Append("immediate:").Append(Hex(Verdict(Find(fields, 2)))).Append(';');
                        break;
                    case "match":
                    case "target":
                        var extension = Encoding.ASCII.GetString(Find(fields, 1)).TrimEnd('\0');
                        var info = Find(fields, 3);
                        if (name == "match" && extension == "comment")
                        {
                            // struct xt_comment_info: the text, NUL-padded to 256 bytes.
                            int end = Array.IndexOf(info, (byte)0);
                            comment = Encoding.UTF8.GetString(info, 0, end < 0 ? info.Length : end);
                            break;
                        }
                        text.Append(name).Append(':').Append(extension).Append(',').Append(Hex(Find(fields, 2))).Append(',').Append(Hex(info)).Append(';');
                        break;
                    default:
                        // An expression this module does not write: the raw bytes, so it only ever equals itself.
                        text.Append(name).Append(':').Append(Hex(data)).Append(';');
                        break;
                }
            }
            if (comment != null) text.Append("comment:").Append(comment);
            return text.ToString();
        }

        private static byte[] Find(List<NlAttribute> fields, ushort type)
        {
            foreach (var (t, d) in fields)
            {
                if (t == type) return d;
            }
            return Array.Empty<byte>();
        }

        private static byte[] Value(byte[] nested) => Find(Attributes(nested, 0), NFTA_DATA_VALUE);

        /// <summary>The verdict code inside NFTA_IMMEDIATE_DATA (nested NFTA_DATA_VERDICT, then NFTA_VERDICT_CODE).</summary>
        private static byte[] Verdict(byte[] nested)
        {
            var verdict = Find(Attributes(nested, 0), NFTA_DATA_VERDICT);
            return verdict.Length == 0 ? Value(nested) : Find(Attributes(verdict, 0), 1);
        }

        private static string Hex(byte[] bytes) => bytes.Length == 0 ? "-" : Convert.ToHexString(bytes);

        /// <summary>The nfgenmsg res_id of a dump message: the low 16 bits of the ruleset generation it was made at.</summary>
        public static ushort DumpGeneration(byte[] payload) => payload.Length >= 4 ? BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(2)) : (ushort)0;
    }
}
