using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Lists the namespaces NetnsNat enabled, from its state store, each with whether it is in force now. The objects
    /// pipe into Enable-, Disable- and Restore-NamespaceNat by property name.
    /// </summary>
    [Cmdlet(VerbsCommon.Get, "NamespaceNat", DefaultParameterSetName = "ByName")]
    [OutputType(typeof(NamespaceNatBinding))]
    public sealed class GetNamespaceNatCommand : NetnsCmdlet
    {
        /// <summary>Namespace names; wildcards allowed.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "ByName")]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        [SupportsWildcards]
        public string[]? Namespace { get; set; }

        /// <summary>Namespaces given by path.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "ByPath")]
        public string[]? NamespacePath { get; set; }

        /// <summary>Only the bindings on these bridges; wildcards allowed.</summary>
        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        [SupportsWildcards]
        public string[]? Bridge { get; set; }

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(BackendFor(AddressFamilyProfile.IPv4).ReadTools.ToArray());
        }

        protected override void ProcessRecord() => Guard(null, () =>
        {
            var names = Namespace?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
            var bridges = Bridge?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
            var service = new NamespaceNatService(this, BackendFor, BackendChoice);
            var found = service.List(b =>
                (names == null || names.Any(p => p.IsMatch(b.Namespace))) &&
                (NamespacePath == null || NamespacePath.Contains(b.NamespacePath)) &&
                (bridges == null || bridges.Any(p => p.IsMatch(b.Bridge))));
            WriteObject(found, enumerateCollection: true);
        });
    }
}
