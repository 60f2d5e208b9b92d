using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NetnsNat.Linux;

namespace NetnsNat.Backends
{
    /// <summary>
    /// One rule as iptables-save prints it ("-A CHAIN" and the tokens after it). Its identity is the whole rule: two
    /// rules are the same when every token is (addresses compared as networks, conntrack states in any order), so a
    /// rule with matches this module does not model (a DNAT rule, a port match) is still recognised when it stands
    /// twice. The matches NetnsNat reads (addresses, interfaces with their negation, the comment, conntrack states,
    /// the target) are pulled out as fields.
    /// </summary>
    internal sealed class IptablesRule
    {
        private string? _key;

        private IptablesRule(string table, string chain, IReadOnlyList<string> specification)
        {
            Table = table;
            Chain = chain;
            Specification = specification;
        }

        public string Table { get; }
        public string Chain { get; }

        /// <summary>The tokens after "-A CHAIN", unquoted.</summary>
        public IReadOnlyList<string> Specification { get; }

        /// <summary>-s and -d, as iptables prints them (a network in CIDR form); null when the rule has none.</summary>
        public string? Source { get; private set; }
        public string? Destination { get; private set; }
        public bool SourceNegated { get; private set; }
        public bool DestinationNegated { get; private set; }

        public string? InInterface { get; private set; }
        public string? OutInterface { get; private set; }
        public bool InNegated { get; private set; }
        public bool OutNegated { get; private set; }

        /// <summary>-p, when the rule names a protocol.</summary>
        public string? Protocol { get; private set; }

        public string? Target { get; private set; }

        /// <summary>The tokens after the target's name (--to-destination ..., --reject-with ...).</summary>
        public IReadOnlyList<string> TargetOptions { get; private set; } = Array.Empty<string>();

        public string? Comment { get; private set; }
        public string? ConnectionStates { get; private set; }

        /// <summary>True when the rule has a match this module does not model (protocol, ports, marks, ...).</summary>
        public bool HasOtherMatches { get; private set; }

        public bool HasTargetOptions => TargetOptions.Count > 0;

        /// <summary>True when an address or interface match is negated ("! -o docker0").</summary>
        public bool HasNegation => SourceNegated || DestinationNegated || InNegated || OutNegated;

        /// <summary>The identity of the rule: table, chain and every token, normalized.</summary>
        public string Key => _key ??= BuildKey();

        /// <summary>The rule in iptables-save form, "-A CHAIN ...".</summary>
        public string SaveLine => "-A " + Chain + " " + string.Join(" ", Specification.Select(QuoteToken));

        /// <summary>The same rule as arguments of the iptables command: -A/-D/-C with the rule, or -I with a position.</summary>
        public IReadOnlyList<string> CommandArguments(string action, int position = 0)
        {
            var head = new List<string>();
            if (Table != "filter") head.AddRange(new[] { "-t", Table });
            head.Add(action);
            head.Add(Chain);
            if (position > 0) head.Add(position.ToString(System.Globalization.CultureInfo.InvariantCulture));
            head.AddRange(Specification);
            return head;
        }

        /// <summary>The iptables-restore line for an action on this rule ("-A CHAIN ...", "-D CHAIN ...", "-I CHAIN 2 ...").</summary>
        public string RestoreLine(string action, int position = 0) =>
            action + " " + Chain + (position > 0 ? " " + position.ToString(System.Globalization.CultureInfo.InvariantCulture) : string.Empty)
            + " " + string.Join(" ", Specification.Select(QuoteToken));

        public static IptablesRule Create(string table, string chain, IReadOnlyList<string> specification)
        {
            var rule = new IptablesRule(table, chain, specification);
            rule.Interpret();
            return rule;
        }

        /// <summary>Parses a "-A CHAIN ..." line of iptables-save output.</summary>
        public static IptablesRule? ParseSaveLine(string table, string line)
        {
            var tokens = Tokenize(line);
            if (tokens.Count < 2 || tokens[0] != "-A") return null;
            return Create(table, tokens[1], tokens.Skip(2).ToArray());
        }

        private void Interpret()
        {
            var spec = Specification;
            bool negate = false;
            for (int i = 0; i < spec.Count; i++)
            {
                string token = spec[i];
                string? next = i + 1 < spec.Count ? spec[i + 1] : null;
                if (token == "!")
                {
                    negate = true;
                    continue;
                }
                switch (token)
                {
                    case "-s" when next != null: Source = Cidr.NormalizeNetwork(next) ?? next; SourceNegated = negate; i++; break;
                    case "-d" when next != null: Destination = Cidr.NormalizeNetwork(next) ?? next; DestinationNegated = negate; i++; break;
                    case "-i" when next != null: InInterface = next; InNegated = negate; i++; break;
                    case "-o" when next != null: OutInterface = next; OutNegated = negate; i++; break;
                    case "-p" when next != null: Protocol = next; HasOtherMatches = true; i++; break;
                    case "-j" when next != null && Target == null:
                        Target = next;
                        TargetOptions = spec.Skip(i + 2).ToArray();
                        i = spec.Count;
                        break;
                    case "-m" when next == "comment" || next == "conntrack": i++; break;
                    case "--comment" when next != null && !negate: Comment = next; i++; break;
                    case "--ctstate" when next != null && !negate: ConnectionStates = NormalizeStates(next); i++; break;
                    default: HasOtherMatches = true; break;
                }
                negate = false;
            }
        }

        private string BuildKey()
        {
            var key = new StringBuilder(Table.Length + Chain.Length + 64);
            key.Append(Table).Append(' ').Append(Chain);
            var spec = Specification;
            for (int i = 0; i < spec.Count; i++)
            {
                var token = spec[i];
                key.Append('\u0001').Append(token);
                if (i + 1 >= spec.Count) continue;
                if (token == "-s" || token == "-d")
                {
                    key.Append('\u0001').Append(Cidr.NormalizeNetwork(spec[i + 1]) ?? spec[i + 1]);
                    i++;
                }
                else if (token == "--ctstate")
                {
                    key.Append('\u0001').Append(NormalizeStates(spec[i + 1]));
                    i++;
                }
            }
            return key.ToString();
        }

        public static string NormalizeStates(string states) =>
            string.Join(",", states.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim().ToUpperInvariant()).OrderBy(s => s, StringComparer.Ordinal));

        /// <summary>The same rule: table, chain and every token (addresses as networks, states in any order).</summary>
        public bool SameAs(IptablesRule other) =>
            ReferenceEquals(this, other)
            || (Specification.Count == other.Specification.Count && Target == other.Target && Source == other.Source && Destination == other.Destination
                && InInterface == other.InInterface && OutInterface == other.OutInterface && Chain == other.Chain && Table == other.Table && Key == other.Key);

        /// <summary>Splits a line into words the way iptables-restore does: white space separates, double quotes group.</summary>
        public static List<string> Tokenize(string line)
        {
            var tokens = new List<string>();
            var current = new StringBuilder();
            bool quoted = false, any = false;
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                if (quoted)
                {
                    if (c == '\\' && i + 1 < line.Length && line[i + 1] == '"') { current.Append('"'); i++; }
                    else if (c == '"') quoted = false;
                    else current.Append(c);
                }
                else if (c == '"') { quoted = true; any = true; }
                else if (char.IsWhiteSpace(c))
                {
                    if (any) { tokens.Add(current.ToString()); current.Clear(); any = false; }
                }
                else { current.Append(c); any = true; }
            }
            if (any) tokens.Add(current.ToString());
            return tokens;
        }

        private static string QuoteToken(string token) =>
            token.Length == 0 || token.Any(c => char.IsWhiteSpace(c) || c == '"') ? "\"" + token.Replace("\"", "\\\"") + "\"" : token;

        public override string ToString() => Table == "filter" ? SaveLine : "-t " + Table + " " + SaveLine;
    }
}
