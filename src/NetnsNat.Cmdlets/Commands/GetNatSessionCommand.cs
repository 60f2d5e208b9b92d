using System.Management.Automation;
using NetnsNat.Core;

namespace NetnsNat.Commands
{
    /// <summary>
    /// Lists the NAT's connections from the kernel's conntrack table of this network namespace (over ctnetlink, no
    /// conntrack process): client, destination, the translated address and port, state, timeout and counters.
    /// </summary>
    [Cmdlet(VerbsCommon.Get, "NatSession")]
    [OutputType(typeof(NatSession))]
    public sealed class GetNatSessionCommand : NatSessionCmdlet
    {
        /// <summary>Only connections of this named namespace's addresses.</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        /// <summary>Only connections from or to this network.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string? Subnet { get; set; }

        /// <summary>Tcp, Udp, Icmp or IPv6-ICMP.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(SessionProtocolCompleter))]
        public string? Protocol { get; set; }

        /// <summary>Only connections to this port (as asked for, or as reached after a port mapping).</summary>
        [Parameter]
        public string? Port { get; set; }

        /// <summary>Also connections the NAT did not translate.</summary>
        [Parameter]
        public SwitchParameter IncludeUntranslated { get; set; }

        protected override void ProcessRecord()
        {
            if (!TryParseFilter(Namespace, Subnet, Protocol, Port, IncludeUntranslated, out var filter)) return;
            Guard(Namespace ?? Subnet, () =>
            {
                var service = new ConntrackService(this);
                foreach (var entry in service.Read(WithNamespace(service, filter, Namespace))) WriteObject(NatSession.From(entry));
            });
        }
    }
}
