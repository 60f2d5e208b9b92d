using System;
using System.Collections.Generic;
using System.Linq;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Backends
{
    /// <summary>
    /// The rules that give one subnet NAT out of one uplink, in iptables shape:
    /// nat POSTROUTING "-s SUBNET -o OUTBOUND -j MASQUERADE" (exactly the lesson's rule, so the lesson's own
    /// "iptables -t nat -D POSTROUTING ..." removes it), and, with a bridge, three FORWARD rules at the top of the
    /// chain, marked with the comment "netnsnat": new traffic from the subnet out of the uplink; replies back in;
    /// and everything else from the uplink to the subnet dropped, so nobody outside can open a connection in.
    /// </summary>
    internal static class MasqueradeRules
    {
        public const string Comment = "netnsnat";
        public const string ReplyStates = "RELATED,ESTABLISHED";
        private static readonly string NormalizedReplyStates = IptablesRule.NormalizeStates(ReplyStates);

        public static IptablesRule Masquerade(string subnet, string outbound) =>
            IptablesRule.Create("nat", "POSTROUTING", new[] { "-s", subnet, "-o", outbound, "-j", "MASQUERADE" });

        public static IptablesRule ForwardOut(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-s", subnet, "-i", bridge, "-o", outbound, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IptablesRule ForwardReply(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-d", subnet, "-i", outbound, "-o", bridge, "-m", "conntrack", "--ctstate", ReplyStates, "-m", "comment", "--comment", Comment, "-j", "ACCEPT" });

        public static IptablesRule ForwardDrop(string subnet, string bridge, string outbound) =>
            IptablesRule.Create("filter", "FORWARD", new[] { "-d", subnet, "-i", outbound, "-o", bridge, "-m", "comment", "--comment", Comment, "-j", "DROP" });

        /// <summary>The FORWARD rules for a bridge, in the order they must stand.</summary>
        public static IReadOnlyList<IptablesRule> Forward(string subnet, string bridge, string outbound) =>
            new[] { ForwardOut(subnet, bridge, outbound), ForwardReply(subnet, bridge, outbound), ForwardDrop(subnet, bridge, outbound) };

        /// <summary>Every rule the target needs, MASQUERADE first.</summary>
        public static IReadOnlyList<IptablesRule> For(SubnetNat target)
        {
            var masquerade = Masquerade(target.SubnetText, target.Outbound);
            return target.Bridge == null ? new[] { masquerade } : new[] { masquerade }.Concat(Forward(target.SubnetText, target.Bridge, target.Outbound)).ToArray();
        }

        /// <summary>
        /// The rules to add for the target: the MASQUERADE rule anywhere in POSTROUTING, and, with a bridge, the three
        /// FORWARD rules at the top of FORWARD. The FORWARD rules of NetnsNat's port mappings to the subnet stand above
        /// them (they let in what the inbound drop would stop): when the group is laid again, they are laid with it, first.
        /// </summary>
        public static RuleDescription Describe(SubnetNat target, IptablesSnapshot snapshot)
        {
            var subnet = target.SubnetText;
            var masquerade = Masquerade(subnet, target.Outbound);
            var groups = new List<RuleGroup> { MasqueradeGroup(masquerade, subnet) };
            if (target.Bridge != null)
            {
                var bridge = target.Bridge;
                var mappings = PortMappingRules.ForwardOnBridge(snapshot, bridge, target.Subnet);
                IReadOnlyList<IptablesRule> Existing(IptablesSnapshot s)
                {
                    var own = OwnForwardRules(s, subnet, target.Outbound, bridge).ToArray();
                    if (mappings.Count == 0) return own;
                    var chain = s.Chain("filter", "FORWARD");
                    var index = new Dictionary<IptablesRule, int>(ReferenceEqualityComparer.Instance);
                    for (int i = 0; i < chain.Count; i++) index[chain[i]] = i;
                    return PortMappingRules.ForwardOnBridge(s, bridge, target.Subnet).Concat(own).OrderBy(r => index[r]).ToArray();
                }
                groups.Add(new RuleGroup("filter", "FORWARD", mappings.Concat(Forward(subnet, bridge, target.Outbound)).ToArray(), AtTop: true,
                    Existing, (s, found) => BlockedAbove(s, found, target)));
            }
            return new RuleDescription(target.ToString(), groups);
        }

        /// <summary>
        /// The rules to remove for the target: every copy of the MASQUERADE rule, and NetnsNat's FORWARD rules for the
        /// subnet and uplink (only the bridge's when one is given).
        /// </summary>
        public static RuleDescription DescribeRemoval(SubnetNat target)
        {
            var subnet = target.SubnetText;
            var masquerade = Masquerade(subnet, target.Outbound);
            return new RuleDescription(target.ToString(), new[]
            {
                MasqueradeGroup(masquerade, subnet),
                new RuleGroup("filter", "FORWARD", Array.Empty<IptablesRule>(), AtTop: true, s => OwnForwardRules(s, subnet, target.Outbound, target.Bridge).ToArray()),
            });
        }

        /// <summary>
        /// Whether a rule above NetnsNat's FORWARD rules decides against the namespace's new traffic out, or its
        /// replies back in (a DROP or REJECT, directly or in a chain it jumps to). Only the rules above are walked.
        /// </summary>
        private static bool BlockedAbove(IptablesSnapshot snapshot, IReadOnlyList<IptablesRule> found, SubnetNat target)
        {
            var chain = snapshot.Chain("filter", "FORWARD");
            int first = 0;
            while (first < chain.Count && !ReferenceEquals(chain[first], found[0])) first++;
            if (first == 0 || first >= chain.Count) return false;
            var above = chain.Take(first).ToArray();
            var host = target.SampleHost;
            var outside = target.Family.OutsideExample;
            var outgoing = ForwardEvaluator.Decides(snapshot, above, new ForwardPacket(target.Bridge!, target.Outbound, host, outside, "NEW"));
            var reply = ForwardEvaluator.Decides(snapshot, above, new ForwardPacket(target.Outbound, target.Bridge!, outside, host, "ESTABLISHED"));
            return outgoing is { Accepted: false } || reply is { Accepted: false };
        }

        private static RuleGroup MasqueradeGroup(IptablesRule masquerade, string subnet) =>
            new RuleGroup("nat", "POSTROUTING", new[] { masquerade }, AtTop: false,
                s => s.WithAddress("nat", "POSTROUTING", subnet).Where(r => r.SameAs(masquerade)).ToArray());

        public static bool IsMasquerade(IptablesRule rule) => rule.Table == "nat" && rule.Chain == "POSTROUTING" && rule.Target == "MASQUERADE";

        /// <summary>A FORWARD rule this module wrote, whatever its subnet and interfaces.</summary>
        public static bool IsOwnForward(IptablesRule rule) =>
            rule.Table == "filter" && rule.Chain == "FORWARD" && rule.Comment == Comment && (rule.Target == "ACCEPT" || rule.Target == "DROP") && !rule.HasOtherMatches && !rule.HasNegation && !rule.HasTargetOptions;

        /// <summary>The bridge a rule of ours is for: the in-interface of the outgoing rule, the out-interface of the others.</summary>
        public static string? BridgeOf(IptablesRule rule) => rule.Source != null ? rule.InInterface : rule.OutInterface;

        /// <summary>The uplink a rule of ours is for: the out-interface of the outgoing rule, the in-interface of the others.</summary>
        public static string? OutboundOf(IptablesRule rule) => rule.Source != null ? rule.OutInterface : rule.InInterface;

        /// <summary>The subnet a rule of ours is for.</summary>
        public static string? SubnetOf(IptablesRule rule) => rule.Source ?? rule.Destination;

        /// <summary>The FORWARD rules this module wrote for a subnet and uplink (any bridge, or just the one given), in chain order.</summary>
        public static IEnumerable<IptablesRule> OwnForwardRules(IptablesSnapshot snapshot, string subnet, string outbound, string? bridge) =>
            snapshot.WithAddress("filter", "FORWARD", subnet).Where(r => IsOwnForward(r) && (
                (r.Source == subnet && r.OutInterface == outbound && r.Destination == null && r.ConnectionStates == null && r.Target == "ACCEPT") ||
                (r.Destination == subnet && r.InInterface == outbound && r.Source == null && r.Target == "ACCEPT" && r.ConnectionStates == NormalizedReplyStates) ||
                (r.Destination == subnet && r.InInterface == outbound && r.Source == null && r.Target == "DROP" && r.ConnectionStates == null))
                && (bridge == null || BridgeOf(r) == bridge));
    }
}
