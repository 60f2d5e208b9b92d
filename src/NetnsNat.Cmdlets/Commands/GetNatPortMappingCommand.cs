using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Lists NetnsNat's port mappings: those its rules hold, and those its state store records whose rules are gone.</summary>
    [Cmdlet(VerbsCommon.Get, "NatPortMapping")]
    [OutputType(typeof(NatPortMapping))]
    public sealed class GetNatPortMappingCommand : PortMappingCmdlet
    {
        /// <summary>Only the mappings of this namespace.</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(NamespaceNameCompleter))]
        public string? Namespace { get; set; }

        /// <summary>Only Tcp or only Udp mappings.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(PortMappingProtocolCompleter))]
        public string? Protocol { get; set; }

        /// <summary>Only the mappings of this port on the host.</summary>
        [Parameter]
        public string? ExternalPort { get; set; }

        /// <summary>IPv4, IPv6 or Both (the default).</summary>
        [Parameter]
        [ValidateSet("IPv4", "IPv6", "Both")]
        public string? AddressFamily { get; set; }

        protected override void Begin() => RequireNetAdmin();

        protected override void ProcessRecord()
        {
            string? protocol = null;
            int port = 0;
            if (Protocol != null && !TryParseProtocol(Protocol, out protocol)) return;
            if (ExternalPort != null && !TryParsePort(ExternalPort, "ExternalPort", out port)) return;
            if (Namespace != null && !CheckNamespaceName(Namespace)) return;
            Guard(Namespace, () =>
            {
                var service = Service();
                var store = StateStore.Read(this);
                var families = AddressFamilyProfile.Select(AddressFamily) ?? AddressFamilyProfile.All;
                foreach (var listed in service.List(families, store))
                {
                    var m = listed.Mapping;
                    if (protocol != null && m.Protocol != protocol) continue;
                    if (ExternalPort != null && m.ExternalPort != port) continue;
                    if (Namespace != null && listed.Namespace != Namespace) continue;
                    WriteObject(service.ToObject(listed));
                }
            });
        }
    }
}
