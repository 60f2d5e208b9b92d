using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Re-applies the NAT of every namespace NetnsNat enabled (or of those named), as its state store records it:
    /// after a firewall reload, a flushed ruleset or a lost route. What Disable-NamespaceNat removed stays removed.
    /// </summary>
    [Cmdlet(VerbsData.Restore, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class RestoreNamespaceNatCommand : NetnsCmdlet
    {
        /// <summary>Only these namespaces (names or paths, as Get-NamespaceNat shows them); wildcards allowed.</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [AllowNull]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        [SupportsWildcards]
        public string[]? Namespace { get; set; }

        /// <summary>Only the namespaces at these paths (Get-NamespaceNat objects bind it by property name).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? NamespacePath { get; set; }

        /// <summary>Only the bindings on these bridges; wildcards allowed.</summary>
        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        [SupportsWildcards]
        public string[]? Bridge { get; set; }

        private readonly System.Collections.Generic.List<(WildcardPattern[]? Names, string[]? Paths, WildcardPattern[]? Bridges)> _filters =
            new System.Collections.Generic.List<(WildcardPattern[]?, string[]?, WildcardPattern[]?)>();

        protected override void Begin()
        {
            RequireNetAdmin();
            RequireTools(BackendFor(AddressFamilyProfile.IPv4).RequiredTools.ToArray());
        }

        /// <summary>Collects what to restore; the work is one transaction in EndProcessing.</summary>
        protected override void ProcessRecord() =>
            _filters.Add((Namespace?.Where(n => n != null).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray() is { Length: > 0 } names ? names : null,
                NamespacePath, Bridge?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray()));

        protected override void EndProcessing() => Guard(null, () =>
        {
            var service = new NamespaceNatService(this, BackendFor, BackendChoice);
            service.Restore(b => _filters.Any(f =>
                (f.Names == null || f.Names.Any(p => p.IsMatch(b.Namespace) || p.IsMatch(b.NamespacePath))) &&
                (f.Paths == null || f.Paths.Contains(b.NamespacePath)) &&
                (f.Bridges == null || f.Bridges.Any(p => p.IsMatch(b.Bridge)))), WriteObject);
        });
    }
}
