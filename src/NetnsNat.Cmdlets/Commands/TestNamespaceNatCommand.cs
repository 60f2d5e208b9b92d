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
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [AllowEmptyString]
        [Alias("Name")]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string Namespace { get; set; } = string.Empty;

        /// <summary>The bridge; by default the host bridge whose subnet holds the namespace's address.</summary>
        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(BridgeNameCompleter))]
        public string? Bridge { get; set; }

        /// <summary>The uplink; by default the interface of the host's IPv4 default route.</summary>
        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(InterfaceNameCompleter))]
        public string? Outbound { get; set; }

        /// <summary>An address to probe from inside the namespace (ICMP, or TCP with -Port).</summary>
        [Parameter]
        public string? Target { get; set; }

        /// <summary>With -Target: probe this TCP port instead of pinging.</summary>
        [Parameter]
        [ValidateRange(1, 65535)]
        public int Port { get; set; }

        /// <summary>Return $true when no check failed, $false otherwise, instead of the results.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        private readonly List<NatCheckResult> _results = new List<NatCheckResult>();

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("ip", AddressFamilyProfile.IPv4.IptablesSave);
        }

        protected override void ProcessRecord()
        {
            _results.Clear();
            if (!CheckNamespaceName(Namespace)) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            System.Net.IPAddress? target = null;
            if (Target != null)
            {
                if (!Cidr.TryParseAddress(Target, out var parsed) || AddressFamilyProfile.Of(parsed) != AddressFamilyProfile.IPv4)
                {
                    WriteError(new ErrorRecord(new ArgumentException($"-Target '{Target}' is not an IPv4 address.", "Target"), "InvalidTarget", ErrorCategory.InvalidArgument, Target));
                    return;
                }
                target = parsed;
            }
            var diagnostics = new NatDiagnostics(this, new IptablesBackend(Runner, AddressFamilyProfile.IPv4), result =>
            {
                _results.Add(result);
                if (!Quiet) WriteObject(result);
            });
            Guard(Namespace, () => diagnostics.Run(new DiagnosisRequest(Namespace, Bridge, Outbound, target, Port)));
            var failed = _results.Count(r => r.Status == NatCheckStatus.Fail);
            var warned = _results.Count(r => r.Status == NatCheckStatus.Warn);
            if (Quiet)
            {
                WriteObject(_results.Count > 0 && failed == 0);
                return;
            }
            if (_results.Count > 0)
            {
                WriteInformation(new HostInformationMessage
                {
                    Message = $"Test-NamespaceNat {Namespace}: {_results.Count - failed - warned} passed, {warned} warnings, {failed} failed",
                },
                new[] { "PSHOST" });
            }
        }
    }
}
