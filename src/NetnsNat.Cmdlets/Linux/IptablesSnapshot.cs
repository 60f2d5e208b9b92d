using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;

namespace NetnsNat.Linux
{
    /// <summary>
    /// The rules of the current network namespace, read once with iptables-save. Kept per chain, with two indexes
    /// (how many copies of a rule stand, and which rules of a chain name an address), so that the questions one call
    /// asks and the snapshot after its own write (<see cref="With"/>) cost the same with 4000 rules as with 40: the
    /// chains and indexes are immutable and shared between a snapshot and the next, and only what a plan touches is
    /// copied.
    /// </summary>
    public sealed class IptablesSnapshot
    {
        private static readonly ImmutableArray<IptablesRule> None = ImmutableArray<IptablesRule>.Empty;

        /// <summary>"table/CHAIN" in the order iptables-save listed them (chains a plan created last).</summary>
        private readonly ImmutableList<string> _order;

        private readonly ImmutableDictionary<string, ImmutableArray<IptablesRule>> _chains;

        /// <summary>Rule key (<see cref="IptablesRule.Key"/>) to how many rules in the snapshot have it.</summary>
        private readonly ImmutableDictionary<string, int> _counts;

        /// <summary>"table/CHAIN|ADDRESS" to the rules of that chain whose -s or -d is ADDRESS, in chain order.</summary>
        private readonly ImmutableDictionary<string, ImmutableArray<IptablesRule>> _byAddress;

        private IReadOnlyList<IptablesRule>? _rules;

        public IptablesSnapshot(IReadOnlyList<IptablesRule> rules, IReadOnlyDictionary<string, string> policies, string? backend)
        {
            var order = new List<string>();
            var chains = new Dictionary<string, ImmutableArray<IptablesRule>.Builder>(StringComparer.Ordinal);
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            var byAddress = new Dictionary<string, ImmutableArray<IptablesRule>.Builder>(StringComparer.Ordinal);
            foreach (var rule in rules)
            {
                var chain = ChainKey(rule.Table, rule.Chain);
                if (!chains.TryGetValue(chain, out var list))
                {
                    chains[chain] = list = ImmutableArray.CreateBuilder<IptablesRule>();
                    order.Add(chain);
                }
                list.Add(rule);
                if (rule.Key is { } key) counts[key] = counts.TryGetValue(key, out var n) ? n + 1 : 1;
                foreach (var address in AddressKeys(rule))
                {
                    if (!byAddress.TryGetValue(address, out var same)) byAddress[address] = same = ImmutableArray.CreateBuilder<IptablesRule>();
                    same.Add(rule);
                }
            }
            _order = order.ToImmutableList();
            _chains = chains.ToImmutableDictionary(p => p.Key, p => p.Value.ToImmutable(), StringComparer.Ordinal);
            _counts = counts.ToImmutableDictionary(StringComparer.Ordinal);
            _byAddress = byAddress.ToImmutableDictionary(p => p.Key, p => p.Value.ToImmutable(), StringComparer.Ordinal);
            _rules = rules;
            Policies = policies;
            Backend = backend;
        }

        private IptablesSnapshot(ImmutableList<string> order, ImmutableDictionary<string, ImmutableArray<IptablesRule>> chains, ImmutableDictionary<string, int> counts,
            ImmutableDictionary<string, ImmutableArray<IptablesRule>> byAddress, IReadOnlyDictionary<string, string> policies, string? backend)
        {
            _order = order;
            _chains = chains;
            _counts = counts;
            _byAddress = byAddress;
            Policies = policies;
            Backend = backend;
        }

        /// <summary>Every rule, chain by chain in iptables-save's order (built on first use).</summary>
        public IReadOnlyList<IptablesRule> Rules => _rules ??= _order.SelectMany(c => _chains[c]).ToArray();

        /// <summary>"table/CHAIN" to the policy of a built-in chain ("ACCEPT", "DROP").</summary>
        public IReadOnlyDictionary<string, string> Policies { get; }

        /// <summary>"nf_tables" or "legacy", as iptables-save says in its header, when it said.</summary>
        public string? Backend { get; }

        /// <summary>The rules of one chain, top to bottom.</summary>
        public IEnumerable<IptablesRule> Chain(string table, string chain) =>
            _chains.TryGetValue(ChainKey(table, chain), out var rules) ? rules : None;

        /// <summary>How many rules are the same as this one (<see cref="IptablesRule.SameAs"/>); 0 for a rule with matches this module does not model.</summary>
        public int Count(IptablesRule rule) => rule.Key is { } key && _counts.TryGetValue(key, out var n) ? n : 0;

        /// <summary>The rules of a chain whose source (-s) or destination (-d) is exactly this address, top to bottom.</summary>
        public IReadOnlyList<IptablesRule> WithAddress(string table, string chain, string address) =>
            _byAddress.TryGetValue(AddressKey(ChainKey(table, chain), address), out var rules) ? rules : None;

        /// <summary>The snapshot after a plan: its deletions removed, appends at the end of their chain, inserts at the top.</summary>
        public IptablesSnapshot With(RulePlan plan)
        {
            var order = _order;
            var chains = _chains.ToBuilder();
            var counts = _counts.ToBuilder();
            var byAddress = _byAddress.ToBuilder();
            foreach (var rule in plan.Delete)
            {
                var chain = ChainKey(rule.Table, rule.Chain);
                if (!chains.TryGetValue(chain, out var rules) || rules.IndexOf(rule) < 0) continue;
                chains[chain] = rules.Remove(rule);
                if (rule.Key is { } key) counts[key] = counts[key] - 1;
                foreach (var address in AddressKeys(rule)) byAddress[address] = byAddress[address].Remove(rule);
            }
            foreach (var rule in plan.Append) Add(rule, top: false);
            foreach (var group in plan.Insert.GroupBy(r => ChainKey(r.Table, r.Chain)))
            {
                // Inserted at the top in their final order: the last one goes in first.
                foreach (var rule in group.Reverse()) Add(rule, top: true);
            }
            return new IptablesSnapshot(order, chains.ToImmutable(), counts.ToImmutable(), byAddress.ToImmutable(), Policies, Backend);

            void Add(IptablesRule rule, bool top)
            {
                var chain = ChainKey(rule.Table, rule.Chain);
                if (!chains.TryGetValue(chain, out var rules))
                {
                    rules = None;
                    order = order.Add(chain);
                }
                chains[chain] = top ? rules.Insert(0, rule) : rules.Add(rule);
                if (rule.Key is { } key) counts[key] = counts.TryGetValue(key, out var n) ? n + 1 : 1;
                foreach (var address in AddressKeys(rule))
                {
                    var same = byAddress.TryGetValue(address, out var list) ? list : None;
                    byAddress[address] = top ? same.Insert(0, rule) : same.Add(rule);
                }
            }
        }

        private static string ChainKey(string table, string chain) => table + "/" + chain;

        private static string AddressKey(string chain, string address) => chain + "|" + address;

        private static IEnumerable<string> AddressKeys(IptablesRule rule)
        {
            if (rule.Source == null && rule.Destination == null) yield break;
            var chain = ChainKey(rule.Table, rule.Chain);
            if (rule.Source != null) yield return AddressKey(chain, rule.Source);
            if (rule.Destination != null && rule.Destination != rule.Source) yield return AddressKey(chain, rule.Destination);
        }

        public static IptablesSnapshot Parse(string save)
        {
            var rules = new List<IptablesRule>();
            var policies = new Dictionary<string, string>(StringComparer.Ordinal);
            string? backend = null;
            string table = string.Empty;
            foreach (var raw in save.Split('\n'))
            {
                var line = raw.TrimEnd('\r');
                if (line.Length == 0) continue;
                if (line[0] == '#')
                {
                    if (backend == null && line.StartsWith("# Generated by", StringComparison.Ordinal))
                    {
                        if (line.Contains("(nf_tables)", StringComparison.Ordinal)) backend = "nf_tables";
                        else if (line.Contains("(legacy)", StringComparison.Ordinal)) backend = "legacy";
                    }
                    continue;
                }
                if (line[0] == '*') { table = line.Substring(1).Trim(); continue; }
                if (line[0] == ':')
                {
                    var parts = line.Substring(1).Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2) policies[table + "/" + parts[0]] = parts[1];
                    continue;
                }
                if (line.StartsWith("-A ", StringComparison.Ordinal))
                {
                    var rule = IptablesRule.ParseSaveLine(table, line);
                    if (rule != null) rules.Add(rule);
                }
            }
            return new IptablesSnapshot(rules, policies, backend);
        }
    }
}
