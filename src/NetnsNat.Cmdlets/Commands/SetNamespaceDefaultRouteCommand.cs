using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Sets (replaces) the IPv4 default route inside a named network namespace.</summary>
    [Cmdlet(VerbsCommon.Set, "NamespaceDefaultRoute", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceRoute))]
    public sealed class SetNamespaceDefaultRouteCommand : NetnsCmdlet
    {
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string Namespace { get; set; } = string.Empty;

        /// <summary>The next hop; bound from the Address of a Get-BridgeSubnet object.</summary>
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [Alias("Address")]
        public string Gateway { get; set; } = string.Empty;

        protected override void Begin() => RequireNetAdmin();

        protected override void ProcessRecord()
        {
            if (!CheckNamespaceName(Namespace) || !TryParseGateway(Gateway, out var gateway)) return;
            Guard(Namespace, () =>
            {
                var route = new RouteService(this).SetDefault(Namespace, gateway);
                if (route != null) WriteObject(route);
            });
        }
    }
}
