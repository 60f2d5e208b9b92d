using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace NetnsNat.Linux
{
    /// <summary>One rule as iptables-save prints it, with the matches this module reads pulled out.</summary>
    public sealed class IptablesRule
    {
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

        public string? Source { get; private set; }
        public string? Destination { get; private set; }
        public string? InInterface { get; private set; }
        public string? OutInterface { get; private set; }
        public string? Target { get; private set; }
        public string? Comment { get; private set; }
        public string? ConnectionStates { get; private set; }

        /// <summary>True when the rule has a match this module does not model (negation, protocol, ports, marks, ...).</summary>
        public bool HasOtherMatches { get; private set; }

        /// <summary>True when the target has options (--reject-with, --to-ports, ...).</summary>
        public bool HasTargetOptions { get; private set; }

        /// <summary>The rule in iptables-save form, "-A CHAIN ...".</summary>
        public string SaveLine => "-A " + Chain + " " + string.Join(" ", Specification.Select(QuoteToken));

        /// <summary>The iptables-restore line that deletes exactly this rule.</summary>
        public string DeleteLine => "-D " + Chain + " " + string.Join(" ", Specification.Select(QuoteToken));

        /// <summary>The same rule as arguments of the iptables command, for messages.</summary>
        public IReadOnlyList<string> CommandArguments(string action) =>
            (Table == "filter" ? new[] { action, Chain } : new[] { "-t", Table, action, Chain }).Concat(Specification).ToArray();

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
            for (int i = 0; i < spec.Count; i++)
            {
                string token = spec[i];
                string? next = i + 1 < spec.Count ? spec[i + 1] : null;
                switch (token)
                {
                    case "-s" when next != null: Source = next; i++; break;
                    case "-d" when next != null: Destination = next; i++; break;
                    case "-i" when next != null: InInterface = next; i++; break;
                    case "-o" when next != null: OutInterface = next; i++; break;
                    case "-j" when next != null && Target == null:
                        Target = next;
                        HasTargetOptions = i + 2 < spec.Count;
                        i = spec.Count;
                        break;
                    case "-m" when next == "comment" || next == "conntrack": i++; break;
                    case "--comment" when next != null: Comment = next; i++; break;
                    case "--ctstate" when next != null: ConnectionStates = NormalizeStates(next); i++; break;
                    default: HasOtherMatches = true; break;
                }
            }
        }

        public static string NormalizeStates(string states) =>
            string.Join(",", states.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim().ToUpperInvariant()).OrderBy(s => s, StringComparer.Ordinal));

        /// <summary>Same chain and the same modelled matches, with nothing else on either side.</summary>
        public bool SameAs(IptablesRule other) =>
            Table == other.Table && Chain == other.Chain && !HasOtherMatches && !other.HasOtherMatches && !HasTargetOptions && !other.HasTargetOptions
            && Source == other.Source && Destination == other.Destination
            && InInterface == other.InInterface && OutInterface == other.OutInterface
            && Target == other.Target && Comment == other.Comment && ConnectionStates == other.ConnectionStates;

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
