using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// The whole lesson in one call: forwarding on, the bridge's subnet, MASQUERADE and FORWARD rules, and the
    /// namespace's default route via the bridge. What a failed call had applied is rolled back.
    /// </summary>
    [Cmdlet(VerbsLifecycle.Enable, "NamespaceNat", SupportsShouldProcess = true)]
    [OutputType(typeof(NamespaceNatResult))]
    public sealed class EnableNamespaceNatCommand : NamespaceNatCmdlet
    {
        /// <summary>Nameservers for the namespace, written to /etc/netns/NAME/resolv.conf.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? Dns { get; set; }

        /// <summary>Which of the bridge's subnets (one per family); by default the one the namespace's address is on.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(SubnetCompleter))]
        public string[]? Subnet { get; set; }

        /// <summary>Iptables, Nftables (NetnsNat's own table, inet netnsnat), or Auto: iptables when an iptables program is installed.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [NatBackendTransformation]
        public NatBackendKind Backend { get; set; }

        internal override NatBackendKind BackendChoice => Backend;

        private readonly List<EnableRequest> _requests = new List<EnableRequest>();

        /// <summary>Checks and collects; the work is done in EndProcessing, so a pipeline of namespaces shares one transaction.</summary>
        protected override void ProcessRecord()
        {
            if (!CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            if (Dns != null && !CheckNameservers(Dns)) return;
            if (Subnet != null && !CheckSubnets(Subnet)) return;
            if (Dns != null && ByPath)
            {
                WriteError(new ErrorRecord(new ArgumentException("-Dns writes /etc/netns/NAME/resolv.conf, which only 'ip netns exec NAME' reads: it works for named namespaces. Set the resolver of a namespace given by path inside it (its own /etc/resolv.conf).", "Dns"),
                    "DnsNeedsName", ErrorCategory.InvalidArgument, NamespacePath));
                return;
            }
            foreach (var ns in Namespaces()) _requests.Add(new EnableRequest(ns, Bridge, Outbound, Dns, Subnet, Families) { Kind = MyInvocation.BoundParameters.ContainsKey(nameof(Backend)) ? Backend : null });
        }

        /// <summary>-Subnet: networks NetnsNat can NAT, one per family at most, of the families -AddressFamily leaves in.</summary>
        private bool CheckSubnets(string[] subnets)
        {
            var families = new Dictionary<AddressFamilyProfile, string>();
            foreach (var text in subnets)
            {
                if (!TryNormalizeSubnet(text, "Subnet", out var network)) return false;
                var family = AddressFamilyProfile.Of(network);
                string? why = null;
                if (families.TryGetValue(family, out var first))
                {
                    why = $"-Subnet names two {family.Name} subnets ({first} and {text}): a namespace has one subnet of each family. Give one {family.Name} subnet (and at most one of the other family).";
                }
                else if (Families != null && !Families.Contains(family))
                {
                    why = $"-Subnet {text} is {family.Name}, and -AddressFamily {AddressFamily} leaves {family.Name} out. Leave that subnet out, or use -AddressFamily {family.Name} or Both.";
                }
                if (why != null)
                {
                    WriteError(new ErrorRecord(new ArgumentException(why, "Subnet"), "SubnetFamilyConflict", ErrorCategory.InvalidArgument, text));
                    return false;
                }
                families[family] = text;
            }
            return true;
        }

        private bool CheckNameservers(string[] servers)
        {
            foreach (var server in servers)
            {
                var parsed = Cidr.TryParseAddress(server, out var address);
                if (parsed && address.IsIPv6LinkLocal)
                {
                    WriteError(new ErrorRecord(new ArgumentException($"-Dns '{server}' is link-local: resolv.conf cannot say which link it is on, so the namespace cannot reach it. Give a global or unique-local address of the nameserver, or an IPv4 one.", "Dns"),
                        "InvalidDns", ErrorCategory.InvalidArgument, server));
                    return false;
                }
                if (parsed) continue;
                WriteError(new ErrorRecord(new ArgumentException($"-Dns '{server}' is not an IP address. Give the nameservers' addresses, for example -Dns 192.0.2.53.", "Dns"),
                    "InvalidDns", ErrorCategory.InvalidArgument, server));
                return false;
            }
            if (servers.Length == 0 || servers.Any(Resolver.IsLoopback))
            {
                WriteError(new ErrorRecord(new ArgumentException("-Dns needs at least one nameserver, and none on the loopback (127.0.0.0/8, ::1): the namespace has a loopback of its own and cannot reach the host's.", "Dns"),
                    "InvalidDns", ErrorCategory.InvalidArgument, servers));
                return false;
            }
            return true;
        }

        protected override void EndProcessing()
        {
            if (_requests.Count == 0) return;
            Guard(null, () => Service().Enable(_requests, WriteObject));
        }
    }
}
