using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Emits the subnets of bridges (IPv4, and IPv6 global and unique-local), computed from their addresses and prefix lengths.</summary>
    [Cmdlet(VerbsCommon.Get, "BridgeSubnet")]
    [OutputType(typeof(BridgeSubnet))]
    public sealed class GetBridgeSubnetCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Bridge")]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        [SupportsWildcards]
        public string[]? Name { get; set; }

        /// <summary>Only the subnets of this family; both by default.</summary>
        [Parameter]
        [ValidateSet("IPv4", "IPv6")]
        public string? AddressFamily { get; set; }

        private System.Collections.Generic.IReadOnlyList<AddressFamilyProfile> Wanted =>
            AddressFamilyProfile.Select(AddressFamily) ?? AddressFamilyProfile.All;

        protected override void ProcessRecord() => Guard(Name, () =>
        {
            var interfaces = new InterfaceService(this);
            if (Name == null || Name.Length == 0)
            {
                foreach (var link in interfaces.Ip.Links(Token).Where(l => l.IsBridge && Wanted.Any(f => l.Of(f).Count > 0)))
                {
                    WriteObject(InterfaceService.BridgeSubnets(link, requireUp: false, Wanted), enumerateCollection: true);
                }
                return;
            }
            foreach (var name in Name)
            {
                if (name != null && name.IndexOfAny(new[] { '*', '?' }) >= 0 && Names.IsValidInterface(name.Replace('*', 'x').Replace('?', 'x'), out _))
                {
                    // 'br*': every bridge whose name matches, each with its subnets; none matching is no error, as Get-ChildItem does.
                    var pattern = new WildcardPattern(name, WildcardOptions.None);
                    foreach (var link in interfaces.Ip.Links(Token).Where(l => l.IsBridge && pattern.IsMatch(l.Name) && Wanted.Any(f => l.Of(f).Count > 0)))
                    {
                        WriteObject(InterfaceService.BridgeSubnets(link, requireUp: false, Wanted), enumerateCollection: true);
                    }
                    continue;
                }
                if (!CheckInterfaceName(name, "Name")) continue;
                Guard(name, () => WriteObject(interfaces.BridgeSubnets(name!, requireUp: false, "Name", Wanted), enumerateCollection: true));
            }
        });
    }
}
