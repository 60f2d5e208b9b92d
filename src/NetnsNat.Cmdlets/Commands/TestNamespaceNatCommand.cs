using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Backends;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Diagnoses a namespace's NAT setup without changing anything: one result per check (the lesson's common errors
    /// and more), each with the fix.
    /// </summary>
    [Cmdlet(VerbsDiagnostic.Test, "NamespaceNat")]
    [OutputType(typeof(NatCheckResult))]
    [OutputType(typeof(bool))]
    public sealed class TestNamespaceNatCommand : NetnsCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [AllowEmptyString]
        [AllowNull]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        /// <summary>A namespace by the file that holds it: /run/docker/netns/ID, /proc/PID/ns/net.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? NamespacePath { get; set; }

        /// <summary>The bridge; by default the host bridge whose subnet holds the namespace's address.</summary>
        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        /// <summary>The uplink; by default the interface of the host's default route of each family.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        /// <summary>IPv4, IPv6 or Both: which families to check; by default each family the namespace has an address of.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6", "Both")]
        public string? AddressFamily { get; set; }

        /// <summary>An address to probe from inside the namespace (ICMP, or TCP with -Port); IPv4 or IPv6.</summary>
        [Parameter]
        public string? Target { get; set; }

        /// <summary>With -Target: probe this TCP port instead of pinging.</summary>
        [Parameter]
        [ValidateRange(1, 65535)]
        public int Port { get; set; }

        /// <summary>Return $true when no check failed, $false otherwise, instead of the results.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        /// <summary>Iptables or Nftables: where to look for the namespace's NAT. By default the backend NetnsNat enabled it with (iptables when it did not).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [NatBackendTransformation]
        public NatBackendKind Backend { get; set; }

        private readonly List<NatCheckResult> _results = new List<NatCheckResult>();

        /// <summary>With -Quiet: whether every namespace of the call had checks and none failed or could not run.</summary>
        private bool _healthy = true;
        private int _namespaces;

        protected override void Begin()
        {
            RequireNetAdmin();
            // iptables-save is needed where the namespace's NAT is in iptables (checked per namespace): not on a host that has
            // only the nftables backend.
            RequireTools("ip");
        }

        protected override void ProcessRecord()
        {
            _results.Clear();
            _namespaces++;
            _healthy &= Check();
        }

        /// <summary>One namespace: its checks, emitted (or, with -Quiet, kept); true when it is healthy.</summary>
        private bool Check()
        {
            var ns = NamespaceRefs(new[] { Namespace }, new[] { NamespacePath }).FirstOrDefault();
            if (ns == null) return false;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return false;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return false;
            System.Net.IPAddress? target = null;
            if (Target != null)
            {
                var why = Cidr.TryParseAddress(Target, out var parsed) ? (AddressFamilyProfile.Of(parsed) == AddressFamilyProfile.IPv6 ? Cidr.WhyNotGateway6(parsed) : null) : "it is not an IP address";
                if (why != null)
                {
                    WriteError(new ErrorRecord(new ArgumentException($"-Target '{Target}' is not an address outside to probe: {why}. Give an IPv4 or IPv6 address beyond the uplink, such as 192.0.2.10 or 2001:db8::10.", "Target"), "InvalidTarget", ErrorCategory.InvalidArgument, Target));
                    return false;
                }
                target = parsed;
                var targetFamily = AddressFamilyProfile.Of(parsed);
                if (AddressFamilyProfile.Select(AddressFamily) is { } chosen && !chosen.Contains(targetFamily))
                {
                    WriteError(new ErrorRecord(new ArgumentException($"-Target '{Target}' is an {targetFamily.Name} address, and -AddressFamily {AddressFamily} checks no {targetFamily.Name}: give a target of {AddressFamily}, or -AddressFamily {targetFamily.Name} or Both.", "Target"),
                        "TargetFamilyNotChecked", ErrorCategory.InvalidArgument, Target));
                    return false;
                }
            }
            Guard(ns.Display, () =>
            {
                bool shared = true;
                // The state store, read once for the families' choice and every family's StaleRules check (which reads
                // it itself when -AddressFamily made the choice).
                var store = ns.Exists && AddressFamily == null ? StateStore.Read(this) : null;
                foreach (var family in FamiliesOf(ns, target, store))
                {
                    // The namespace's NAT is where -Backend says, or where NetnsNat enabled it (the state store).
                    var kind = Backend;
                    var bound = (store ?? StateStore.Read(this)).Bindings.FirstOrDefault(b => b.NamespacePath == ns.Path && b.Family == family.Name && (Bridge == null || b.Bridge == Bridge));
                    if (kind == NatBackendKind.Auto) kind = bound != null ? BackendFactory.FromStoreName(bound.Backend) : BackendFactory.Resolve(NatBackendKind.Auto);
                    bool installed = ProcessRunner.Which(family.IptablesSave) != null;
                    if (kind == NatBackendKind.Iptables && !installed) throw new ToolNotFoundException(family.IptablesSave, ProcessRunner.PackageOf(family.IptablesSave));
                    var iptables = new IptablesBackend(Runner, family, ((ICommandHost)this).Debug);
                    var diagnostics = new NatDiagnostics(this, iptables, result =>
                    {
                        _results.Add(result);
                        if (!Quiet) WriteObject(result);
                    }, kind == NatBackendKind.Nftables ? (NftablesBackend)BackendFor(family, NatBackendKind.Nftables) : null, installed);
                    // -Target is probed, and routed to, in the run of its own family.
                    var mine = target != null && AddressFamilyProfile.Of(target) == family ? target : null;
                    diagnostics.Run(new DiagnosisRequest(ns, Bridge, Outbound, mine, mine == null ? 0 : Port, shared, store, bound?.Subnet, bound?.Outbound));
                    shared = false;
                }
            });
            var failed = _results.Count(r => r.Severity >= NatCheckStatus.Fail);
            var warned = _results.Count(r => r.Severity == NatCheckStatus.Warn);
            if (!Quiet && _results.Count > 0)
            {
                // A summary for a person at a terminal; with output redirected (a script's pwsh -c ... > file) it stays
                // in the information stream, where -InformationAction Continue shows it.
                var summary = $"Test-NamespaceNat {ns}: {_results.Count - failed - warned} passed, {warned} warnings, {failed} failed";
                bool toHost = !Console.IsOutputRedirected && Host.Name == "ConsoleHost";
                WriteInformation(new HostInformationMessage { Message = summary }, toHost ? new[] { "PSHOST" } : new[] { "Summary" });
            }
            return _results.Count > 0 && failed == 0;
        }

        /// <summary>
        /// The families to check: -AddressFamily; else those NetnsNat enabled for the namespace (a namespace enabled for
        /// IPv4 alone is not failed for the IPv6 address it also has); else each family the namespace has an address of
        /// (link-local ones do not count); and -Target's. IPv4 when that leaves none (its checks then say what is missing).
        /// </summary>
        private IReadOnlyList<AddressFamilyProfile> FamiliesOf(NamespaceRef ns, System.Net.IPAddress? target, StoreContent? store)
        {
            if (AddressFamilyProfile.Select(AddressFamily) is { } chosen) return chosen;
            if (!ns.Exists || store == null) return new[] { AddressFamilyProfile.IPv4 };
            var targetFamily = target == null ? null : AddressFamilyProfile.Of(target);
            var bound = NamespaceNatService.BoundFamilies(store, ns, Bridge);
            if (bound.Count > 0)
            {
                return InterfaceService.AllFamilies.Where(f => bound.Contains(f) || f == targetFamily).ToArray();
            }
            var routes = new RouteService(this);
            var had = InterfaceService.AllFamilies.Where(f => f == targetFamily || routes.Addresses(ns, f).Count > 0).ToArray();
            return had.Length > 0 ? had : new[] { AddressFamilyProfile.IPv4 };
        }

        /// <summary>-Quiet answers once for the whole call: $true only when every namespace passed.</summary>
        protected override void EndProcessing()
        {
            if (Quiet) WriteObject(_healthy && _namespaces > 0);
        }
    }
}
