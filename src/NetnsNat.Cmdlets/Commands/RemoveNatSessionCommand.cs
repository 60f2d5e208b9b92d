using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Deletes NAT connections from the kernel's conntrack table (IPCTNL_MSG_CT_DELETE by tuple and id): those the
    /// filters select, or the sessions piped from Get-NatSession. Never the whole table: a call without a filter is an
    /// error that changes nothing.
    /// </summary>
    [Cmdlet(VerbsCommon.Remove, "NatSession", SupportsShouldProcess = true, DefaultParameterSetName = ByFilterSet)]
    [OutputType(typeof(NatSession))]
    public sealed class RemoveNatSessionCommand : NatSessionCmdlet
    {
        private const string ByFilterSet = "ByFilter";
        private const string ByObjectSet = "ByObject";

        private readonly List<NatSession> _piped = new List<NatSession>();

        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByFilterSet)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = ByFilterSet)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string? Subnet { get; set; }

        [Parameter(ParameterSetName = ByFilterSet)]
        [ArgumentCompleter(typeof(SessionProtocolCompleter))]
        public string? Protocol { get; set; }

        [Parameter(ParameterSetName = ByFilterSet)]
        public string? Port { get; set; }

        [Parameter(ParameterSetName = ByFilterSet)]
        public SwitchParameter IncludeUntranslated { get; set; }

        [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByObjectSet)]
        public NatSession[] InputObject { get; set; } = Array.Empty<NatSession>();

        /// <summary>Emit the sessions that were deleted.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            if (ParameterSetName == ByObjectSet)
            {
                // Collected, and deleted after one read of the table in EndProcessing: a pipeline of thousands costs one dump.
                _piped.AddRange(InputObject.Where(s => s != null));
                return;
            }
            if (!TryParseFilter(Namespace, Subnet, Protocol, Port, IncludeUntranslated, out var filter)) return;
            if (filter.IsEmpty && Namespace == null)
            {
                WriteError(new ErrorRecord(
                    new ArgumentException("Remove-NatSession needs a filter: give -Namespace, -Subnet, -Protocol or -Port, or pipe the sessions from Get-NatSession. It never deletes the whole conntrack table (conntrack -F does that)."),
                    "FilterRequired", ErrorCategory.InvalidArgument, null));
                return;
            }
            Guard(Namespace ?? Subnet, () =>
            {
                var service = new ConntrackService(this);
                Emit(service.Remove(service.Read(WithNamespace(service, filter, Namespace))));
            });
        }

        protected override void EndProcessing()
        {
            if (_piped.Count == 0) return;
            Guard(null, () =>
            {
                var service = new ConntrackService(this);
                var byId = new Dictionary<long, List<NatSession>>();
                foreach (var session in _piped)
                {
                    if (!byId.TryGetValue(session.Id, out var list)) byId[session.Id] = list = new List<NatSession>();
                    list.Add(session);
                }
                // The entries as they are now: one that is gone, or whose id now belongs to another tuple, is not deleted.
                var live = service.Read(e => byId.TryGetValue(e.Id, out var sessions) && sessions.Any(s => s.Describes(e)));
                int gone = _piped.Select(s => s.Id).Distinct().Count() - live.Count;
                if (gone > 0) WriteVerbose($"{gone} of the sessions given are no longer in the conntrack table.");
                Emit(service.Remove(live));
            });
        }

        private void Emit(List<ConntrackEntry> removed)
        {
            if (!PassThru) return;
            foreach (var entry in removed) WriteObject(NatSession.From(entry));
        }
    }
}
