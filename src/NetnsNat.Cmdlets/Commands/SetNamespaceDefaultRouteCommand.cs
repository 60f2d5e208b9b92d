using System.Management.Automation;
using NetnsNat.Core;

namespace NetnsNat.Commands
{
    /// <summary>Sets (replaces) the default route of the gateway's family (IPv4 or IPv6) inside a network namespace.</summary>
    [Cmdlet(VerbsCommon.Set, "NamespaceDefaultRoute", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceRoute))]
    public sealed class SetNamespaceDefaultRouteCommand : NetnsCmdlet
    {
        [AllowEmptyString]
        [AllowNull]
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        /// <summary>A namespace by the file that holds it: /run/docker/netns/ID, /proc/PID/ns/net.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? NamespacePath { get; set; }

        /// <summary>The next hop; bound from the Address of a Get-BridgeSubnet object.</summary>
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [Alias("Address")]
        public string Gateway { get; set; } = string.Empty;

        protected override void Begin() => RequireNetAdmin();

        protected override void ProcessRecord()
        {
            foreach (var ns in NamespaceRefs(new[] { Namespace }, new[] { NamespacePath }))
            {
                if (!TryParseGateway(Gateway, out var gateway)) return;
                Guard(ns.Display, () =>
                {
                    var route = new RouteService(this).SetDefault(ns, gateway);
                    if (route != null) WriteObject(route);
                });
            }
        }
    }
}
