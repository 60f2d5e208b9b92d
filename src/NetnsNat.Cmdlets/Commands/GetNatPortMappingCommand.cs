using System;
using System.Collections.Generic;
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

        /// <summary>Only the mappings of this namespace, by the file that holds it (Get-NamespaceNat's objects bind it).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? NamespacePath { get; set; }

        /// <summary>Only Tcp or only Udp mappings.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(PortMappingProtocolCompleter))]
        public string? Protocol { get; set; }

        /// <summary>Only the mappings of this port on the host.</summary>
        [Parameter]
        public string? ExternalPort { get; set; }

        /// <summary>IPv4, IPv6 or Both (the default).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateSet("IPv4", "IPv6", "Both")]
        public string? AddressFamily { get; set; }

        protected override void Begin() => RequireNetAdmin();

        /// <summary>Mappings already written: a pipeline of Get-NamespaceNat's bindings (one per family) lists each once.</summary>
        private readonly HashSet<string> _emitted = new HashSet<string>(StringComparer.Ordinal);

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
                bool found = false;
                foreach (var listed in service.List(families, store, Backend))
                {
                    var m = listed.Mapping;
                    if (protocol != null && m.Protocol != protocol) continue;
                    if (ExternalPort != null && m.ExternalPort != port) continue;
                    // A namespace named and given by path (Get-NamespaceNat's objects): the path decides.
                    if (NamespacePath != null ? listed.NamespacePath != NamespacePath : Namespace != null && listed.Namespace != Namespace) continue;
                    var output = service.ToObject(listed);
                    if (_emitted.Add(output.AddressFamily + " " + output + " " + output.RemoteAddressPrefix)) WriteObject(output);
                    found = true;
                }
                // A name that is no namespace at all (a typo) is an error, not an empty list.
                if (!found && Namespace != null && NamespacePath == null) NamespaceRef.Named(Namespace).RequireExists();
            });
        }
    }
}
