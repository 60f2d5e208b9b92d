using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NetnsNat.Linux;

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
        /// <summary>An outside address used only to evaluate the FORWARD chain when -Target is not given (no packet is sent).</summary>
        private const string OutsideExample = "192.0.2.1";

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
        private string? _bridge;
        private string? _uplink;

        protected override void BeginProcessing()
        {
            RequireNetAdmin();
            RequireTools("ip", "iptables-save");
        }

        protected override void ProcessRecord()
        {
            _results.Clear();
            if (!CheckNamespaceName(Namespace)) return;
            if (Bridge != null && !CheckInterfaceName(Bridge, "Bridge")) return;
            if (Outbound != null && !CheckInterfaceName(Outbound, "Outbound")) return;
            uint target = 0;
            if (Target != null && !Ipv4Cidr.TryParseAddress(Target, out target))
            {
                WriteError(new ErrorRecord(new ArgumentException($"-Target '{Target}' is not an IPv4 address.", "Target"), "InvalidTarget", ErrorCategory.InvalidArgument, Target));
                return;
            }
            Guard(Namespace, () => RunChecks(target));
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

        private void Emit(string check, NatCheckStatus status, string detail, string? fix = null)
        {
            var result = new NatCheckResult(Namespace, _bridge, _uplink, check, status, detail, status == NatCheckStatus.Pass ? null : fix);
            _results.Add(result);
            if (!Quiet) WriteObject(result);
        }

        private void RunChecks(uint target)
        {
            var ns = Namespace;
            _bridge = Bridge;
            _uplink = Outbound ?? IpRoute2.DefaultRouteInterface();
            if (!IpRoute2.NamespaceExists(ns))
            {
                Emit("NamespaceExists", NatCheckStatus.Fail, $"There is no network namespace '{ns}' (ip netns list).", $"ip netns add {ns}");
                return;
            }
            var inside = Ip.NamespaceLinks(ns, Token);
            var host = Ip.Links(Token);
            var candidates = inside.Where(l => l.Name != "lo").SelectMany(l => l.Ipv4).ToArray();
            _bridge ??= host.FirstOrDefault(l => l.IsBridge && l.Ipv4.Any(b => candidates.Any(a => b.Network.Contains(a.Address))))?.Name;
            Emit("NamespaceExists", NatCheckStatus.Pass, $"/run/netns/{ns} exists.");

            var lo = inside.FirstOrDefault(l => l.Name == "lo");
            if (lo == null || !lo.IsUp) Emit("LoopbackUp", NatCheckStatus.Fail, "lo is down in the namespace: local services and some resolvers fail.", $"ip -n {ns} link set lo up");
            else Emit("LoopbackUp", NatCheckStatus.Pass, "lo is up.");

            // The bridge: given, or the host bridge whose subnet holds one of the namespace's addresses.
            var nsAddresses = inside.Where(l => l.Name != "lo").SelectMany(l => l.Ipv4.Select(a => (Link: l, Address: a))).ToArray();
            var bridgeLink = Bridge != null
                ? host.FirstOrDefault(l => l.Name == Bridge)
                : host.FirstOrDefault(l => l.IsBridge && l.Ipv4.Any(b => nsAddresses.Any(a => b.Network.Contains(a.Address.Address))));
            BridgeSubnet? subnet = null;
            if (bridgeLink == null)
            {
                Emit("Bridge", NatCheckStatus.Fail,
                    Bridge != null ? $"There is no interface '{Bridge}' on the host." : "No host bridge has a subnet that holds an address of the namespace.",
                    $"ip link add {Bridge ?? "br0"} type bridge; ip addr add 10.0.0.1/24 dev {Bridge ?? "br0"}; ip link set {Bridge ?? "br0"} up");
            }
            else if (!bridgeLink.IsBridge || bridgeLink.Ipv4.Count == 0 || !bridgeLink.IsUp)
            {
                var (detail, fix) = !bridgeLink.IsBridge ? ($"'{bridgeLink.Name}' is a {bridgeLink.Kind ?? "plain"} interface, not a bridge.", "ip link show type bridge")
                    : bridgeLink.Ipv4.Count == 0 ? ($"The bridge '{bridgeLink.Name}' has no IPv4 address.", $"ip addr add 10.0.0.1/24 dev {bridgeLink.Name}")
                    : ($"The bridge '{bridgeLink.Name}' is down.", $"ip link set {bridgeLink.Name} up");
                Emit("Bridge", NatCheckStatus.Fail, detail, fix);
                if (bridgeLink.IsBridge && bridgeLink.Ipv4.Count > 0) subnet = ToSubnet(bridgeLink);
            }
            else
            {
                subnet = ToSubnet(bridgeLink);
                Emit("Bridge", NatCheckStatus.Pass, $"{subnet.Bridge} is an up bridge with {subnet.Address}/{subnet.PrefixLength} ({subnet.Subnet}).");
            }
            var bridgeName = bridgeLink?.Name ?? Bridge ?? "br0";

            // The namespace's own address in the bridge subnet, on an up interface.
            Ipv4Cidr? network = subnet != null && Ipv4Cidr.TryParse(subnet.Subnet, out var n, out _) ? n : (Ipv4Cidr?)null;
            var onBridge = network == null ? nsAddresses.FirstOrDefault() : nsAddresses.FirstOrDefault(a => network.Value.Contains(a.Address.Address));
            if (onBridge.Link == null)
            {
                Emit("NamespaceAddress", NatCheckStatus.Fail, $"The namespace has no IPv4 address{(subnet != null ? " in " + subnet.Subnet : string.Empty)}.",
                    $"ip -n {ns} addr add ADDRESS/{subnet?.PrefixLength ?? 24} dev IFACE; ip -n {ns} link set IFACE up");
            }
            else if (!onBridge.Link.IsUp)
            {
                Emit("NamespaceAddress", NatCheckStatus.Fail, $"{onBridge.Link.Name} ({onBridge.Address}) is down in the namespace.", $"ip -n {ns} link set {onBridge.Link.Name} up");
            }
            else
            {
                Emit("NamespaceAddress", NatCheckStatus.Pass, $"{onBridge.Link.Name} is up with {onBridge.Address}.");
            }

            // Default route via the bridge address (the lesson's "Network is unreachable").
            var route = Ip.NamespaceDefaultRoute(ns, Token);
            var gateway = subnet?.Address ?? "BRIDGE-ADDRESS";
            if (route?.Gateway == null)
            {
                Emit("DefaultRoute", NatCheckStatus.Fail, "The namespace has no default route: outside addresses are 'Network is unreachable'.", $"Set-NamespaceDefaultRoute -Namespace {ns} -Gateway {gateway}");
            }
            else if (subnet != null && route.Gateway != subnet.Address)
            {
                Emit("DefaultRoute", NatCheckStatus.Fail, $"The default route goes via {route.Gateway}, not via the bridge address {subnet.Address}.", $"Set-NamespaceDefaultRoute -Namespace {ns} -Gateway {gateway}");
            }
            else
            {
                Emit("DefaultRoute", NatCheckStatus.Pass, $"default via {route.Gateway} dev {route.Device}.");
            }

            // Forwarding in the host kernel.
            if (Sysctl.ReadFlag(Sysctl.ForwardingPath("IPv4"))) Emit("IpForwarding", NatCheckStatus.Pass, "net.ipv4.ip_forward = 1.");
            else Emit("IpForwarding", NatCheckStatus.Fail, "net.ipv4.ip_forward = 0: the host drops the namespace's packets.", "Enable-IpForwarding");

            // MASQUERADE and the uplink.
            var snapshot = Iptables.Save(Token);
            var defaultUplink = IpRoute2.DefaultRouteInterface();
            var uplink = Outbound ?? defaultUplink;
            var masquerades = subnet == null ? Array.Empty<IptablesRule>()
                : snapshot.Chain("nat", "POSTROUTING").Where(r => NatRules.IsMasquerade(r) && !r.HasOtherMatches && r.Source == subnet.Subnet).ToArray();
            var addFix = subnet == null ? "Add-NatMasquerade -Subnet SUBNET -Outbound UPLINK" : $"Get-BridgeSubnet {subnet.Bridge} | Add-NatMasquerade -Outbound {uplink ?? "UPLINK"}";
            var matching = masquerades.Where(r => uplink == null || r.OutInterface == uplink).ToArray();
            if (masquerades.Length == 0)
            {
                Emit("Masquerade", NatCheckStatus.Fail, subnet == null ? "No bridge subnet to look for." : $"No MASQUERADE rule for {subnet.Subnet} in nat POSTROUTING.", addFix);
            }
            else
            {
                Emit("Masquerade", NatCheckStatus.Pass, string.Join("; ", masquerades.Select(r => r.ToString())));
            }
            if (uplink == null)
            {
                Emit("Uplink", NatCheckStatus.Warn, "The host has no IPv4 default route, so the uplink cannot be checked.", "ip route add default via ROUTER dev IFACE, or pass -Outbound");
            }
            else if (Outbound == null && masquerades.Length > 0 && matching.Length == 0)
            {
                Emit("Uplink", NatCheckStatus.Fail,
                    $"The MASQUERADE rule is for {string.Join(", ", masquerades.Select(r => r.OutInterface))}, but the host's default route leaves by {uplink}: the lesson's 'wrong outbound interface'.",
                    $"{addFix}; Remove-NatMasquerade -Subnet {subnet?.Subnet} -Outbound {masquerades[0].OutInterface}");
            }
            else if (Outbound != null && defaultUplink != null && Outbound != defaultUplink)
            {
                Emit("Uplink", NatCheckStatus.Warn, $"-Outbound {Outbound} is not the interface of the host's default route ({defaultUplink}).", $"Check 'ip route show default'; the usual uplink is {defaultUplink}.");
            }
            else if (host.All(l => l.Name != uplink))
            {
                Emit("Uplink", NatCheckStatus.Fail, $"There is no interface '{uplink}' on the host.", "ip route show default");
            }
            else
            {
                Emit("Uplink", NatCheckStatus.Pass, $"Traffic leaves by {uplink}, the interface of the host's default route.");
            }

            // FORWARD: out (NEW) and back (ESTABLISHED).
            if (subnet != null && uplink != null && onBridge.Link != null)
            {
                var outside = target != 0 ? target : ParseAddress(OutsideExample);
                var nsAddress = onBridge.Address.Address;
                var outbound = ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(bridgeName, uplink, nsAddress, outside, "NEW"));
                var reply = ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(uplink, bridgeName, outside, nsAddress, "ESTABLISHED"));
                var fix = $"Get-BridgeSubnet {bridgeName} | Add-NatMasquerade -Outbound {uplink}";
                if (!outbound.Accepted || !reply.Accepted)
                {
                    var blocked = !outbound.Accepted ? $"new traffic out is blocked by '{outbound.By}'" : $"replies back in are blocked by '{reply.By}'";
                    Emit("Forward", NatCheckStatus.Fail, $"FORWARD: {blocked}.", fix);
                }
                else if (outbound.Uncertain.Count + reply.Uncertain.Count > 0)
                {
                    Emit("Forward", NatCheckStatus.Warn, $"FORWARD accepts the traffic, but these rules may block some of it: {string.Join("; ", outbound.Uncertain.Concat(reply.Uncertain).Distinct())}.", "iptables -L FORWARD -v -n --line-numbers");
                }
                else
                {
                    Emit("Forward", NatCheckStatus.Pass, $"FORWARD accepts new traffic out ({outbound.By}) and replies back in ({reply.By}).");
                }
            }
            else
            {
                Emit("Forward", NatCheckStatus.Fail, "FORWARD cannot be checked without the bridge, the uplink and the namespace's address (see the checks above).", "Fix the checks above, then run Test-NamespaceNat again");
            }

            // Duplicates.
            var dupes = snapshot.Rules.Where(r => (r.Chain == "FORWARD" || r.Chain == "POSTROUTING") && subnet != null && (r.Source == subnet.Subnet || r.Destination == subnet.Subnet))
                .GroupBy(r => r.ToString()).Where(g => g.Count() > 1).ToArray();
            if (dupes.Length > 0)
            {
                Emit("DuplicateRules", NatCheckStatus.Warn, $"{dupes.Length} rule(s) stand more than once: {string.Join("; ", dupes.Select(g => $"{g.Key} (x{g.Count()})"))}.",
                    subnet != null ? $"Remove-NatMasquerade -Subnet {subnet.Subnet} -Outbound {masquerades.FirstOrDefault()?.OutInterface ?? uplink}; then add them once again" : null);
            }
            else
            {
                Emit("DuplicateRules", NatCheckStatus.Pass, "No rule for the subnet stands twice.");
            }

            // The other backend.
            var mix = subnet == null ? null : Steps.OtherBackendRules(this, snapshot, subnet.Subnet);
            if (mix != null) Emit("BackendMix", NatCheckStatus.Warn, mix.Value.Message, mix.Value.Fix);
            else Emit("BackendMix", NatCheckStatus.Pass, $"All rules for the subnet are in the {Steps.Backend(snapshot)} backend.");

            // The resolver the namespace sees.
            var resolvConf = Resolver.EffectiveResolvConf(ns);
            var servers = Resolver.NameserversOf(resolvConf);
            var dnsFix = $"Enable-NamespaceNat -Namespace {ns} -Bridge {bridgeName} -Dns NAMESERVER";
            if (servers.Count == 0) Emit("Resolver", NatCheckStatus.Fail, $"{resolvConf} names no nameserver: name lookups in the namespace fail.", dnsFix);
            else if (servers.All(Resolver.IsLoopback)) Emit("Resolver", NatCheckStatus.Fail, $"{resolvConf} names only loopback resolvers ({string.Join(", ", servers)}), which the namespace cannot reach (its loopback is its own).", dnsFix);
            else Emit("Resolver", NatCheckStatus.Pass, $"{resolvConf}: {string.Join(", ", servers.Where(s => !Resolver.IsLoopback(s)))}.");

            // A real probe from inside.
            if (Target != null) Probe(ns);
        }

        private void Probe(string ns)
        {
            var args = Port > 0
                ? new[] { "netns", "exec", ns, "timeout", "3", "bash", "-c", $"exec 3<>/dev/tcp/{Target}/{Port}" }
                : new[] { "netns", "exec", ns, "ping", "-c", "1", "-W", "2", Target! };
            var what = Port > 0 ? $"TCP {Target}:{Port}" : $"ping {Target}";
            var result = Runner.Run("ip", args, Token, timeout: TimeSpan.FromSeconds(10));
            if (result.Succeeded) Emit("Probe", NatCheckStatus.Pass, $"{what} from inside the namespace: reached.");
            else Emit("Probe", NatCheckStatus.Fail, $"{what} from inside the namespace: {result.Diagnostic}.", "Fix the failed checks above; if all pass, the problem is beyond this host (the uplink's network, or the target)");
        }

        private static BridgeSubnet ToSubnet(LinkInfo link)
        {
            var a = link.Ipv4[0];
            return new BridgeSubnet(link.Name, a.AddressText, a.PrefixLength, a.Network.ToString(), link.IsUp);
        }

        private static uint ParseAddress(string text) => Ipv4Cidr.TryParseAddress(text, out var a) ? a : 0;
    }
}
