using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>Lists the MASQUERADE rules of nat POSTROUTING with their subnets, uplinks and NetnsNat's FORWARD rules.</summary>
    [Cmdlet(VerbsCommon.Get, "NatMasquerade")]
    [OutputType(typeof(NatMasqueradeRule))]
    public sealed class GetNatMasqueradeCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string? Subnet { get; set; }

        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("iptables-save");
        }

        protected override void ProcessRecord()
        {
            string? subnet = null;
            if (Subnet != null)
            {
                if (!TryNormalizeSubnet(Subnet, "Subnet", out var network)) return;
                subnet = network.ToString();
            }
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            Guard(subnet, () =>
            {
                var snapshot = Iptables.Save(Token);
                var backend = Steps.Backend(snapshot);
                foreach (var rule in snapshot.Chain("nat", "POSTROUTING").Where(NatRules.IsMasquerade))
                {
                    var ruleSubnet = NormalizeRuleSubnet(rule.Source);
                    var outbound = rule.OutInterface ?? string.Empty;
                    if (subnet != null && ruleSubnet != subnet) continue;
                    if (Outbound != null && outbound != Outbound) continue;
                    var forward = rule.Source == null || rule.OutInterface == null
                        ? new IptablesRule[0]
                        : NatRules.OwnForwardRules(snapshot, ruleSubnet, outbound, null).ToArray();
                    var bridge = forward.Select(r => r.Source != null ? r.InInterface : r.OutInterface).FirstOrDefault();
                    if (Bridge != null && bridge != Bridge) continue;
                    var lines = new[] { rule.ToString() }.Concat(forward.Select(r => r.ToString())).ToArray();
                    WriteObject(new NatMasqueradeRule(ruleSubnet, outbound, bridge, backend, lines, 0));
                }
            });
        }

        private static string NormalizeRuleSubnet(string? source)
        {
            if (source == null) return "0.0.0.0/0";
            if (Ipv4Cidr.TryParse(source, out var cidr, out _)) return cidr.Network.ToString();
            return Ipv4Cidr.TryParseAddress(source, out var address) ? new Ipv4Cidr(address, 32).ToString() : source;
        }
    }
}
