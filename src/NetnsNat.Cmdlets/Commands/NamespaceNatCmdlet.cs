using System;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// What Enable-NamespaceNat and Disable-NamespaceNat share: the namespaces (by name, or by path for namespaces
    /// that are not under /run/netns), the bridge, the uplink, the checks.
    /// </summary>
    public abstract class NamespaceNatCmdlet : NetnsCmdlet
    {
        // One parameter set: a namespace by name or by path. Get-NamespaceNat objects bind both by property name (a
        // namespace given by path has a null Namespace), and a path given alone binds -NamespacePath.
        [AllowEmptyString]
        [AllowNull]
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string[]? Namespace { get; set; }

        /// <summary>Namespaces by the file that holds them: /run/docker/netns/ID, /proc/PID/ns/net.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? NamespacePath { get; set; }

        [AllowEmptyString]
        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string Bridge { get; set; } = string.Empty;

        /// <summary>The uplink; by default the interface of the host's default route of each family.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        /// <summary>IPv4, IPv6 or Both; by default the families the bridge and the namespace have (Disable: every family NetnsNat enabled).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6", "Both")]
        public string? AddressFamily { get; set; }

        /// <summary>The families -AddressFamily names; null when it was not given.</summary>
        internal System.Collections.Generic.IReadOnlyList<AddressFamilyProfile>? Families => AddressFamilyProfile.Select(AddressFamily);

        /// <summary>The service of the composite flow, with a backend per family.</summary>
        internal Core.NamespaceNatService Service() => new Core.NamespaceNatService(this, BackendFor, BackendChoice);

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(BackendFor(AddressFamilyProfile.IPv4).RequiredTools.ToArray());
        }

        /// <summary>Whether this pipeline item names its namespaces by path.</summary>
        protected bool ByPath => (Namespace == null || Namespace.All(n => n == null)) && NamespacePath != null;

        /// <summary>The namespaces of this pipeline item: by name, or by path (given, or when an object had no name).</summary>
        internal System.Collections.Generic.IEnumerable<Core.NamespaceRef> Namespaces() => NamespaceRefs(Namespace, NamespacePath);
    }
}
