using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>Emits the IPv4 subnets of bridges, computed from their addresses and prefix lengths.</summary>
    [Cmdlet(VerbsCommon.Get, "BridgeSubnet")]
    [OutputType(typeof(BridgeSubnet))]
    public sealed class GetBridgeSubnetCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Bridge")]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string[]? Name { get; set; }

        protected override void ProcessRecord() => Guard(Name, () =>
        {
            if (Name == null || Name.Length == 0)
            {
                foreach (var link in Ip.Links(Token).Where(l => l.IsBridge && l.Ipv4.Count > 0))
                {
                    WriteObject(Steps.BridgeSubnets(link, requireUp: false), enumerateCollection: true);
                }
                return;
            }
            foreach (var name in Name)
            {
                if (!CheckInterfaceName(name, "Name")) continue;
                Guard(name, () => WriteObject(Steps.BridgeSubnets(this, name, requireUp: false), enumerateCollection: true));
            }
        });
    }
}
