using System.Management.Automation;
using NetnsNat.Linux;

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

        protected override void BeginProcessing() => RequireNetAdmin();

        protected override void ProcessRecord()
        {
            if (!CheckNamespaceName(Namespace) || !TryParseGateway(Gateway, out var gateway)) return;
            var gatewayText = Ipv4Cidr.FormatAddress(gateway);
            Guard(Namespace, () =>
            {
                var route = Apply(this, Namespace, gatewayText);
                if (route != null) WriteObject(route);
            });
        }

        /// <summary>Replaces the default route when it differs, over one rtnetlink socket in the namespace; null under -WhatIf.</summary>
        internal static NamespaceRoute? Apply(NetnsCmdlet cmdlet, string ns, string gateway)
        {
            if (!IpRoute2.NamespaceExists(ns)) throw new NamespaceNotFoundException(ns);
            cmdlet.Token.ThrowIfCancellationRequested();
            using var routes = NamespaceRoutes.Open(ns);
            var before = routes.GetDefault();
            if (before?.Gateway == gateway)
            {
                cmdlet.WriteVerbose($"The default route of '{ns}' already goes via {gateway}.");
                return new NamespaceRoute(ns, gateway, before.Device, before.Gateway, false);
            }
            if (!cmdlet.ShouldRun($"namespace {ns}", "ip", IpRoute2.ReplaceDefaultRouteArguments(ns, gateway))) return null;
            cmdlet.WriteVerbose($"Setting the default route of '{ns}' via {gateway}.");
            IpRoute2.ReplaceDefaultRoute(routes, ns, gateway);
            var after = routes.GetDefault();
            return new NamespaceRoute(ns, gateway, after?.Device, before?.Gateway, true);
        }
    }
}
