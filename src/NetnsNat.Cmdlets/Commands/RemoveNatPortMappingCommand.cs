using System;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Net;
using NetnsNat.Core;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Takes a published port away: its rules (but not those another mapping shares), its record in the state store,
    /// and the connections that went by it.
    /// </summary>
    [Cmdlet(VerbsCommon.Remove, "NatPortMapping", SupportsShouldProcess = true, DefaultParameterSetName = ByFieldsSet)]
    [OutputType(typeof(NatPortMapping))]
    public sealed class RemoveNatPortMappingCommand : PortMappingCmdlet
    {
        private const string ByFieldsSet = "ByFields";
        private const string ByObjectSet = "ByObject";

        /// <summary>Tcp or Udp.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [ArgumentCompleter(typeof(PortMappingProtocolCompleter))]
        public string Protocol { get; set; } = string.Empty;

        /// <summary>The port on the host.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        public string ExternalPort { get; set; } = string.Empty;

        /// <summary>Only the mapping on this address of the host (0.0.0.0 or :: for the one on every address); by default every mapping of the port.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        public string? ExternalAddress { get; set; }

        /// <summary>Only the mappings of this namespace.</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFieldsSet)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        /// <summary>Mappings from Get-NatPortMapping or Add-NatPortMapping.</summary>
        [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByObjectSet)]
        public NatPortMapping[] InputObject { get; set; } = Array.Empty<NatPortMapping>();

        /// <summary>Emit the removed mappings.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        private readonly List<(Func<PortMappingService.Listed, bool> Select, string What, object Target)> _items = new List<(Func<PortMappingService.Listed, bool>, string, object)>();

        /// <summary>Checks and collects; the work is done in EndProcessing, so a pipeline of mappings is one transaction.</summary>
        protected override void ProcessRecord()
        {
            // The backend given (or the one of the object piped in): only its mappings.
            var kind = Backend;
            if (ParameterSetName == ByObjectSet)
            {
                foreach (var item in InputObject)
                {
                    var protocol = item.Protocol.ToLowerInvariant();
                    _items.Add((l => l.Mapping.Protocol == protocol && l.Mapping.ExternalPort == item.ExternalPort && l.Mapping.ExternalText == item.ExternalAddress
                        && l.Mapping.InternalAddress.ToString() == item.InternalAddress && l.Mapping.InternalPort == item.InternalPort
                        && (kind == NatBackendKind.Auto || l.Kind == kind), $"for {item}{(kind == NatBackendKind.Auto ? string.Empty : $" in the {kind} backend")}", item));
                }
                return;
            }
            if (!TryParseProtocol(Protocol, out var p) || !TryParsePort(ExternalPort, "ExternalPort", out var port)) return;
            IPAddress? address = null;
            if (ExternalAddress != null && !TryParseAddress(ExternalAddress, "ExternalAddress", out address)) return;
            // This record's namespace: the selection runs at the end of the pipeline, when the parameter holds the last record's.
            var ns = Namespace;
            if (ns != null && !CheckNamespaceName(ns)) return;
            var what = $"for {Protocol} port {port.ToString(CultureInfo.InvariantCulture)}{(address == null ? string.Empty : " on " + address)}{(ns == null ? string.Empty : $" of '{ns}'")}{(kind == NatBackendKind.Auto ? string.Empty : $" in the {kind} backend")}";
            _items.Add((l => l.Mapping.Protocol == p && l.Mapping.ExternalPort == port && (address == null || l.Mapping.ExternalText == address.ToString())
                && (ns == null || l.Namespace == ns) && (kind == NatBackendKind.Auto || l.Kind == kind), what, ExternalPort));
        }

        protected override void EndProcessing()
        {
            if (_items.Count == 0) return;
            Guard(null, () =>
            {
                var removed = Service().RemoveWhere(_items);
                if (removed != null && PassThru) WriteObject(removed, enumerateCollection: true);
            });
        }
    }
}
