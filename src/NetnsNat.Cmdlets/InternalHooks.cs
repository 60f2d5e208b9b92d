using System;
using System.Collections.Generic;
using System.Linq;
using NetnsNat.Backends;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat
{
    /// <summary>
    /// Entry points into the module's internals for its own tests and benchmark (as PSResourceGet's InternalHooks):
    /// not part of the supported API, and free to change with any release. Everything else outside the cmdlets, the
    /// objects they emit, their exceptions and completers is internal.
    /// </summary>
    public static class InternalHooks
    {
        /// <summary>Runs between the read of the ruleset and the write of a plan made from it (a test's stand-in for another program writing then).</summary>
        public static Action? BeforeRuleWrite { get; set; }

        /// <summary>The size under which the state store's journal is never folded into its file (64 KiB when null): a test's way to fold it soon.</summary>
        public static long? StoreJournalFloor { get; set; }

        /// <summary>The rules NetnsNat writes for a subnet out of an uplink (and a bridge's FORWARD rules), in iptables-save form.</summary>
        public static string[] MasqueradeRules(string subnet, string outbound, string? bridge) =>
            Backends.MasqueradeRules.For(Target(subnet, outbound, bridge)).Select(r => r.ToString()).ToArray();

        /// <summary>Each of those rules as iptables arguments for an action (-C, -D).</summary>
        public static string[][] MasqueradeRuleArguments(string subnet, string outbound, string? bridge, string action) =>
            Backends.MasqueradeRules.For(Target(subnet, outbound, bridge)).Select(r => r.CommandArguments(action).ToArray()).ToArray();

        /// <summary>The iptables-restore input that adds the rules to an empty ruleset, as NetnsNat plans it.</summary>
        public static string MasqueradeScript(string subnet, string outbound, string? bridge) => Plan(subnet, outbound, bridge).Script();

        /// <summary>The iptables-restore input that undoes MasqueradeScript.</summary>
        public static string MasqueradeUndoScript(string subnet, string outbound, string? bridge)
        {
            IptablesSnapshot.Parse(string.Empty).Apply(Plan(subnet, outbound, bridge), out var executed);
            return RulePlan.Undo(executed).Script();
        }

        /// <summary>
        /// Writes the rules of several subnets (subnets[i] out of outbounds[i], FORWARD rules for bridges[i]) straight
        /// to nf_tables as one netlink batch; false, with nothing written, when the netlink path does not take them.
        /// </summary>
        public static bool WriteMasqueradeRules(string[] subnets, string[] outbounds, string[] bridges)
        {
            var plan = RulePlan.Merge(subnets.Select((s, i) => Plan(s, outbounds[i], bridges[i])).ToArray());
            var family = subnets.Length > 0 && subnets[0].Contains(':') ? AddressFamilyProfile.IPv6 : AddressFamilyProfile.IPv4;
            return NftRuleWriter.TryWrite(plan, family) == NftWriteResult.Written;
        }

        /// <summary>The definition of NetnsNat's nftables table (inet netnsnat) as the nft commands that make it, one per line: an nft -f file.</summary>
        public static string NftablesDefinition() => string.Join("\n", NftablesTable.Definition()) + "\n";

        /// <summary>The rules of a chain as the kernel lists them: (handle, expressions, user data), byte for byte.</summary>
        public static Tuple<ulong, byte[], byte[]>[] DumpRules(string family, string table, string chain) =>
            NftRuleWriter.Dump(AddressFamilyProfile.Parse(family), table, chain).Select(r => Tuple.Create(r.Handle, r.Expressions, r.UserData)).ToArray();

        /// <summary>
        /// The ruleset of a family as the nf_tables netlink reader lists it (":table/CHAIN POLICY" lines, then each rule in
        /// iptables-save form), or null when the reader leaves the read to iptables-save.
        /// </summary>
        public static string[]? ReadRulesetOverNetlink(string family)
        {
            var profile = AddressFamilyProfile.Parse(family);
            if (NftGeneration.Read() is not uint generation) return null;
            var snapshot = NftRulesetReader.TryRead(profile, generation);
            return snapshot == null ? null : Listing(snapshot);
        }

        /// <summary>The same listing of iptables-save output.</summary>
        public static string[] ParseRuleset(string save) => Listing(IptablesSnapshot.Parse(save));

        private static string[] Listing(IptablesSnapshot snapshot) =>
            snapshot.Policies.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $":{p.Key} {p.Value}").Concat(snapshot.Rules.Select(r => r.ToString())).ToArray();

        private static SubnetNat Target(string subnet, string outbound, string? bridge)
        {
            if (!Cidr.TryParsePrefix(subnet, out var prefix, out var error)) throw new ArgumentException($"'{subnet}': {error}", nameof(subnet));
            return new SubnetNat(prefix.Network, outbound, string.IsNullOrEmpty(bridge) ? null : bridge);
        }

        private static RulePlan Plan(string subnet, string outbound, string? bridge) =>
            RulePlanner.PlanAdd(IptablesSnapshot.Parse(string.Empty), Backends.MasqueradeRules.Describe(Target(subnet, outbound, bridge), IptablesSnapshot.Parse(string.Empty)));
    }
}
