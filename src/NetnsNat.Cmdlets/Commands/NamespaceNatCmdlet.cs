using System;
using System.Management.Automation;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>What Enable-NamespaceNat and Disable-NamespaceNat share: the namespaces, the bridge, the uplink, the checks.</summary>
    public abstract class NamespaceNatCmdlet : NetnsCmdlet
    {
        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string[] Namespace { get; set; } = Array.Empty<string>();

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string Bridge { get; set; } = string.Empty;

        /// <summary>The uplink; by default the interface of this namespace's IPv4 default route.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(System.Linq.Enumerable.ToArray(Backend(AddressFamilyProfile.IPv4).RequiredTools));
        }
    }
}
