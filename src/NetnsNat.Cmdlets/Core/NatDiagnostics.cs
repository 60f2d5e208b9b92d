using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using NetnsNat.Backends;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>What Test-NamespaceNat was asked to check.</summary>
    /// <param name="Shared">Whether this run also makes the checks that do not depend on the family (NamespaceExists, LoopbackUp, Resolver): the first family's run does.</param>
    /// <param name="Store">The state store as the caller read it (once for every family's run); read here when null.</param>
    /// <param name="Subnet">The bridge subnet NetnsNat enabled the namespace's NAT for (Enable's -Subnet), when it did: on a bridge with several, the one to check.</param>
    /// <param name="BoundOutbound">The uplink the state store records for the namespace (Enable-NamespaceNat's), if any.</param>
    internal sealed record DiagnosisRequest(NamespaceRef Namespace, string? Bridge, string? Outbound, IPAddress? Target, int Port, bool Shared = true, StoreContent? Store = null, string? Subnet = null, string? BoundOutbound = null);


    /// <summary>A masquerade Test-NamespaceNat found for the subnet: an iptables rule or an element of NetnsNat's nftables table.</summary>
    internal sealed record MasqueradeSeen(string? OutInterface, string Text);

    /// <summary>
    /// The checks of Test-NamespaceNat, one per common error of the lesson and more, each with the fix. Reads only:
    /// changes nothing.
    /// </summary>
    internal sealed class NatDiagnostics
    {
        /// <summary>An outside address used only to evaluate the FORWARD chain when -Target is not given (no packet is sent).</summary>

        private readonly ICommandHost _host;
        private readonly IptablesBackend _backend;
        private readonly NftablesBackend? _nft;
        private readonly bool _iptablesInstalled;
        private readonly InterfaceService _interfaces;
        private readonly RouteService _routes;
        private readonly Action<NatCheckResult> _emit;
        private DiagnosisRequest _request = new DiagnosisRequest(NamespaceRef.Named("-"), null, null, null, 0);
        private string? _bridge;
        private string? _uplink;

        /// <summary>backend: iptables' view (its FORWARD decides in every case); nft: NetnsNat's nftables table, when the namespace's NAT is there.</summary>
        /// <param name="iptablesInstalled">False on a host without iptables (the nftables backend's): iptables' view is then empty.</param>
        public NatDiagnostics(ICommandHost host, IptablesBackend backend, Action<NatCheckResult> emit, NftablesBackend? nft = null, bool iptablesInstalled = true)
        {
            _host = host;
            _backend = backend;
            _nft = nft;
            _iptablesInstalled = iptablesInstalled;
            _interfaces = new InterfaceService(host);
            _routes = new RouteService(host);
            _emit = emit;
        }

        private AddressFamilyProfile Family => _backend.Family;

        /// <summary>Every check, in the order they run (AcceptRa only for IPv6).</summary>
        public static readonly IReadOnlyList<string> Checks = new[]
        {
            "NamespaceExists", "LoopbackUp", "Bridge", "NamespaceAddress", "HostLink", "DefaultRoute", "IpForwarding", "Masquerade", "Uplink", "AcceptRa", "Forward", "Inbound", "PortMappings", "DuplicateRules", "StaleRules", "BackendMix", "Resolver",
        };

        /// <summary>The checks that do not depend on the family: made once per namespace.</summary>
        private static readonly HashSet<string> SharedChecks = new HashSet<string>(StringComparer.Ordinal) { "NamespaceExists", "LoopbackUp", "Resolver" };

        /// <summary>The checks of one run: a family's, with or without the shared ones.</summary>
        public static IEnumerable<string> ChecksOf(AddressFamilyProfile family, bool shared) =>
            Checks.Where(c => (shared || !SharedChecks.Contains(c)) && (c != "AcceptRa" || family == AddressFamilyProfile.IPv6));

        private readonly HashSet<string> _emitted = new HashSet<string>(StringComparer.Ordinal);

        private void Emit(string check, NatCheckStatus status, string detail, string? fix = null)
        {
            _emitted.Add(check);
            if (!_request.Shared && SharedChecks.Contains(check)) return;
            _emit(new NatCheckResult(_request.Namespace.Display, _bridge, _uplink, check, status, detail, status == NatCheckStatus.Pass ? null : fix, Family.Name));
        }

        /// <summary>
        /// Runs the checks. A check that cannot run (a tool fails or times out, the kernel refuses a request) is no
        /// pass: it and every check after it that had not run yet come out as Error, with what went wrong.
        /// </summary>
        public void Run(DiagnosisRequest request)
        {
            _request = request;
            _emitted.Clear();
            try
            {
                RunChecks(request);
            }
            catch (Exception ex) when (ex is not OperationCanceledException && ex is not System.Management.Automation.PipelineStoppedException && ex is not ToolNotFoundException)
            {
                var checks = ChecksOf(Family, request.Shared);
                if (request.Target != null) checks = checks.Append("Probe");
                foreach (var check in checks.Where(c => !_emitted.Contains(c)).ToArray())
                {
                    Emit(check, NatCheckStatus.Error, $"Could not check: {ex.Message}", "Fix what stopped the check (see the detail), then run Test-NamespaceNat again");
                }
            }
        }

        private void RunChecks(DiagnosisRequest request)
        {
            var ns = request.Namespace;
            var inNs = ns.IsNamed ? $"ip -n {ns.Display}" : $"nsenter --net={ns.Path} ip";
            _bridge = request.Bridge;
            _uplink = request.Outbound ?? IpRoute2.DefaultRouteInterface(Family);
            if (!ns.Exists)
            {
                Emit("NamespaceExists", NatCheckStatus.Fail, ns.IsNamed ? $"There is no network namespace '{ns}' (ip netns list)." : $"There is no network namespace at {ns.Path}.",
                    ns.IsNamed ? $"ip netns add {ns}" : "Give the path of a file that holds the namespace (/proc/PID/ns/net of a process in it)");
                return;
            }
            // The namespace's interfaces and addresses over rtnetlink inside it (no process, any namespace file).
            IReadOnlyList<NamespaceRoutes.LinkRecord> insideLinks;
            IReadOnlyList<(int Index, IpPrefix Address)> insideAddresses;
            using (var routes = NamespaceRoutes.Open(ns.Path, ns.Display))
            {
                insideLinks = routes.AllLinks();
                insideAddresses = routes.AllAddresses();
            }
            var ip = _interfaces.Ip;
            var host = ip.Links(_host.Token);
            var nsAddresses = insideLinks.Where(l => l.Name != "lo")
                .SelectMany(l => insideAddresses.Where(a => a.Index == l.Index && AddressFamilyProfile.Of(a.Address.Address) == Family && !a.Address.Address.IsIPv6LinkLocal)
                    .Select(a => (Link: l, Address: a.Address))).ToArray();
            // The bridge: given, or the host bridge whose subnet holds one of the namespace's addresses.
            var bridgeLink = request.Bridge != null
                ? host.FirstOrDefault(l => l.Name == request.Bridge)
                : host.FirstOrDefault(l => l.IsBridge && l.Of(Family).Any(b => nsAddresses.Any(a => b.Network.Contains(a.Address.Address))));
            // A namespace with no address of this family (IPv4 only, on a dual-stack bridge): the bridge its veth's host end
            // is on, so that the checks say what it lacks (an address of the bridge's subnet), not that there is no bridge.
            string? port = null;
            if (bridgeLink == null && request.Bridge == null && nsAddresses.Length == 0)
            {
                using var hostRoutes = NamespaceRoutes.OpenCurrent();
                var hostLinks = hostRoutes.AllLinks();
                foreach (var inside in insideLinks.Where(l => l.Kind == "veth"))
                {
                    var peer = hostLinks.FirstOrDefault(l => l.Index == inside.Peer && l.Peer == inside.Index && l.Kind == "veth");
                    var master = peer == null || peer.Master <= 0 ? null : hostLinks.FirstOrDefault(l => l.Index == peer.Master)?.Name;
                    if (master == null || host.FirstOrDefault(l => l.Name == master && l.IsBridge) is not { } theBridge) continue;
                    bridgeLink = theBridge;
                    port = inside.Name;
                    break;
                }
            }
            _bridge ??= bridgeLink?.Name;
            Emit("NamespaceExists", NatCheckStatus.Pass, ns.IsNamed ? $"/run/netns/{ns} exists." : $"{ns.Path} holds a network namespace.");

            var lo = insideLinks.FirstOrDefault(l => l.Name == "lo");
            if (lo == null || !lo.IsUp) Emit("LoopbackUp", NatCheckStatus.Fail, "lo is down in the namespace: local services and some resolvers fail.", $"{inNs} link set lo up");
            else Emit("LoopbackUp", NatCheckStatus.Pass, "lo is up.");

            BridgeSubnet? subnet = null;
            if (bridgeLink == null)
            {
                Emit("Bridge", NatCheckStatus.Fail,
                    request.Bridge != null ? $"There is no interface '{request.Bridge}' on the host." : "No host bridge has a subnet that holds an address of the namespace.",
                    $"ip link add {request.Bridge ?? "br0"} type bridge; {AddAddress(request.Bridge ?? "br0")}; ip link set {request.Bridge ?? "br0"} up");
            }
            else if (!bridgeLink.IsBridge || bridgeLink.Of(Family).Count == 0 || !bridgeLink.IsUp)
            {
                var (detail, fix) = !bridgeLink.IsBridge ? ($"'{bridgeLink.Name}' is a {bridgeLink.Kind ?? "plain"} interface, not a bridge.", "ip link show type bridge")
                    : bridgeLink.Of(Family).Count == 0 ? ($"The bridge '{bridgeLink.Name}' has no {Family.Name} address{(Family == AddressFamilyProfile.IPv6 ? " but link-local ones" : string.Empty)}.", AddAddress(bridgeLink.Name))
                    : ($"The bridge '{bridgeLink.Name}' is down.", $"ip link set {bridgeLink.Name} up");
                Emit("Bridge", NatCheckStatus.Fail, detail, fix);
                if (bridgeLink.IsBridge && bridgeLink.Of(Family).Count > 0) subnet = SubnetFor(bridgeLink, nsAddresses.Select(a => a.Address));
            }
            else
            {
                subnet = SubnetFor(bridgeLink, nsAddresses.Select(a => a.Address));
                Emit("Bridge", NatCheckStatus.Pass, $"{subnet.Bridge} is an up bridge with {subnet.Address}/{subnet.PrefixLength} ({subnet.Subnet}).");
            }
            var bridgeName = bridgeLink?.Name ?? request.Bridge ?? "br0";

            // The namespace's own address in the bridge subnet, on an up interface.
            IPNetwork? network = subnet != null && Cidr.TryParseNetwork(subnet.Subnet, out var n) ? n : null;
            var onBridge = network == null ? nsAddresses.FirstOrDefault() : nsAddresses.FirstOrDefault(a => network.Value.Contains(a.Address.Address));
            if (onBridge.Link == null)
            {
                var iface = port ?? "IFACE";
                Emit("NamespaceAddress", NatCheckStatus.Fail, $"The namespace has no {Family.Name} address{(subnet != null ? " in " + subnet.Subnet : string.Empty)}{(port != null ? $" (its {port} is on {bridgeLink!.Name})" : string.Empty)}.",
                    $"{inNs}{(Family == AddressFamilyProfile.IPv6 ? " -6" : string.Empty)} addr add ADDRESS/{subnet?.PrefixLength ?? (Family == AddressFamilyProfile.IPv6 ? 64 : 24)} dev {iface}{(Family == AddressFamilyProfile.IPv6 ? " nodad" : string.Empty)}; {inNs} link set {iface} up");
            }
            else if (!onBridge.Link.IsUp)
            {
                Emit("NamespaceAddress", NatCheckStatus.Fail, $"{onBridge.Link.Name} ({onBridge.Address}) is down in the namespace.", $"{inNs} link set {onBridge.Link.Name} up");
            }
            else
            {
                Emit("NamespaceAddress", NatCheckStatus.Pass, $"{onBridge.Link.Name} is up with {onBridge.Address}.");
            }

            // The host end of the namespace's veth: on the bridge, and up.
            HostLink(onBridge.Link, bridgeLink);

            // Default route via the bridge address (the lesson's "Network is unreachable").
            var route = _routes.Read(ns, Family);
            var gateway = subnet?.Address ?? "BRIDGE-ADDRESS";
            var setRoute = ns.IsNamed ? $"Set-NamespaceDefaultRoute -Namespace {ns} -Gateway {gateway}" : $"Set-NamespaceDefaultRoute -NamespacePath {ns.Path} -Gateway {gateway}";
            if (route?.Gateway == null)
            {
                Emit("DefaultRoute", NatCheckStatus.Fail, "The namespace has no default route: outside addresses are 'Network is unreachable'.", setRoute);
            }
            else if (subnet != null && route.Gateway.ToString() != subnet.Address)
            {
                Emit("DefaultRoute", NatCheckStatus.Fail, $"The default route goes via {route.Gateway}, not via the bridge address {subnet.Address}.", setRoute);
            }
            else
            {
                Emit("DefaultRoute", NatCheckStatus.Pass, $"default via {route.Gateway} dev {route.Device}.");
            }

            // Forwarding in the host kernel.
            if (ForwardingService.Read(Family).Enabled) Emit("IpForwarding", NatCheckStatus.Pass, $"{Family.ForwardingKey} = 1.");
            else Emit("IpForwarding", NatCheckStatus.Fail, $"{Family.ForwardingKey} = 0: the host drops the namespace's {Family.Name} packets.", Family == AddressFamilyProfile.IPv4 ? "Enable-IpForwarding" : "Enable-IpForwarding -AddressFamily IPv6");

            // MASQUERADE and the uplink.
            var state = _iptablesInstalled ? _backend.Read(_host.Token) : new IptablesState(IptablesSnapshot.Parse(string.Empty), null, "none");
            var snapshot = state.Snapshot;
            var defaultUplink = IpRoute2.DefaultRouteInterface(Family);
            string? routeUplink = null;
            if (request.Target != null)
            {
                using var hostRoutes = NamespaceRoutes.OpenCurrent();
                routeUplink = hostRoutes.RouteTo(request.Target);
            }
            // With the nftables backend, the masquerade is an element of the table's set (the subnet . the uplink).
            var nftState = _nft?.Read(_host.Token);
            var nftContent = nftState?.Content;
            var backendArgument = _nft != null ? " -Backend Nftables" : string.Empty;
            var masquerades = subnet == null ? Array.Empty<MasqueradeSeen>()
                : nftContent != null ? nftContent.Subnets.Where(e => e.Kind == NftSetKind.Masquerade && Cidr.Format(e.Subnet) == subnet.Subnet).Select(e => new MasqueradeSeen(e.Out, e.Text)).ToArray()
                : snapshot.Chain("nat", "POSTROUTING").Where(r => MasqueradeRules.IsMasquerade(r) && !r.HasOtherMatches && !r.HasNegation && r.Source == subnet.Subnet).Select(r => new MasqueradeSeen(r.OutInterface, r.ToString())).ToArray();
            // The uplink the traffic takes: the one given; else the route to -Target; else the one Enable-NamespaceNat
            // recorded for the namespace; else the one the MASQUERADE rules name (when it is up); else the default route's;
            // else the one the rules name, which is gone or down (a failure to say, not an uplink that cannot be checked).
            var named = masquerades.Select(r => r.OutInterface).FirstOrDefault(o => o != null && host.Any(l => l.Name == o && l.IsUp));
            var uplink = request.Outbound ?? routeUplink ?? request.BoundOutbound ?? named ?? defaultUplink ?? masquerades.Select(r => r.OutInterface).FirstOrDefault(o => o != null);
            // A namespace Enable-NamespaceNat enabled changes uplink by Disable and Enable (its rules are its own: Remove-NatMasquerade refuses them).
            string MoveTo(string to) => $"Disable-NamespaceNat {(ns.IsNamed ? ns.Display : "-NamespacePath " + ns.Path)} {bridgeName}; Enable-NamespaceNat {(ns.IsNamed ? ns.Display : "-NamespacePath " + ns.Path)} {bridgeName} -Outbound {to}{backendArgument}";
            _uplink = uplink;
            var addFix = subnet == null ? $"Add-NatMasquerade -Subnet SUBNET -Outbound UPLINK{backendArgument}" : $"Get-BridgeSubnet {subnet.Bridge} | Add-NatMasquerade -Outbound {uplink ?? "UPLINK"}{backendArgument}";
            var matching = masquerades.Where(r => uplink == null || r.OutInterface == uplink).ToArray();
            if (nftContent is { Exists: true, Owned: false })
            {
                Emit("Masquerade", NatCheckStatus.Fail, $"The table inet {NftablesTable.Name} exists, and NetnsNat did not create it: it never writes to it.",
                    $"nft list table inet {NftablesTable.Name}; delete it if nothing needs it (nft delete table inet {NftablesTable.Name}), or enable the namespace with -Backend Iptables");
            }
            else if (nftContent is { Exists: true, Intact: false } && masquerades.Length > 0)
            {
                Emit("Masquerade", NatCheckStatus.Fail, $"The element stands ({string.Join("; ", masquerades.Select(r => r.Text))}), but inet {NftablesTable.Name} is not as NetnsNat made it: {nftContent.Problem}.",
                    $"{addFix} (it lays the table again, with its elements)");
            }
            else if (masquerades.Length == 0)
            {
                Emit("Masquerade", NatCheckStatus.Fail, subnet == null ? "No bridge subnet to look for."
                    : nftContent != null ? $"No element for {subnet.Subnet} in the set {NftablesTable.SetName(NftSetKind.Masquerade, Family)} of inet {NftablesTable.Name}{(nftContent.Exists ? string.Empty : " (the table does not exist)")}."
                    : $"No MASQUERADE rule for {subnet.Subnet} in nat POSTROUTING.", addFix);
            }
            else
            {
                Emit("Masquerade", NatCheckStatus.Pass, string.Join("; ", masquerades.Select(r => r.Text)));
            }
            var uplinkLink = uplink == null ? null : host.FirstOrDefault(l => l.Name == uplink);
            if (uplink == null)
            {
                Emit("Uplink", NatCheckStatus.Warn, $"The host has no {Family.Name} default route, so the uplink cannot be checked.", $"{(Family == AddressFamilyProfile.IPv6 ? "ip -6 route" : "ip route")} add default via ROUTER dev IFACE, or pass -Outbound");
            }
            else if (uplinkLink == null || !uplinkLink.IsUp)
            {
                var why = uplinkLink == null ? $"There is no interface '{uplink}' on the host" : $"The uplink {uplink} is down";
                Emit("Uplink", NatCheckStatus.Fail,
                    masquerades.Length > 0 && masquerades.All(r => r.OutInterface == uplink) ? $"{why}, and the MASQUERADE rule is for it: the lesson's 'wrong outbound interface'." : $"{why}.",
                    defaultUplink != null && defaultUplink != uplink && subnet != null
                        ? request.BoundOutbound != null ? $"Bring {uplink} back, or {MoveTo(defaultUplink)}" : $"Get-BridgeSubnet {subnet.Bridge} | Add-NatMasquerade -Outbound {defaultUplink}; Remove-NatMasquerade -Subnet {subnet.Subnet} -Outbound {uplink}"
                        : request.BoundOutbound != null ? $"Bring {uplink} back (ip link show), or give the namespace another uplink: {MoveTo("UPLINK")}" : "ip route show default; ip link show");
            }
            else if (masquerades.Length > 0 && matching.Length == 0)
            {
                var ruled = string.Join(", ", masquerades.Select(r => r.OutInterface));
                var via = routeUplink != null ? $"the route to {request.Target} leaves by {uplink}" : request.Outbound != null ? $"-Outbound is {uplink}" : $"the host's default route leaves by {uplink}";
                Emit("Uplink", NatCheckStatus.Fail, $"The MASQUERADE rule is for {ruled}, but {via}: the lesson's 'wrong outbound interface'.",
                    request.BoundOutbound != null && uplink != null ? MoveTo(uplink) : $"{addFix}; Remove-NatMasquerade -Subnet {subnet?.Subnet} -Outbound {masquerades[0].OutInterface}{backendArgument}");
            }
            else if (routeUplink == null && request.Outbound == null && defaultUplink != null && uplink != defaultUplink)
            {
                Emit("Uplink", NatCheckStatus.Warn, $"The MASQUERADE rule is for {uplink}, and the host's default route leaves by {defaultUplink}: only destinations routed by {uplink} are reached.",
                    $"Test-NamespaceNat {(ns.IsNamed ? ns.Display : "-NamespacePath " + ns.Path)} -Target ADDRESS checks the route to a destination");
            }
            else if (request.Outbound != null && defaultUplink != null && request.Outbound != defaultUplink && routeUplink == null)
            {
                Emit("Uplink", NatCheckStatus.Warn, $"-Outbound {request.Outbound} is not the interface of the host's default route ({defaultUplink}).", $"Check 'ip route show default'; the usual uplink is {defaultUplink}.");
            }
            else
            {
                Emit("Uplink", NatCheckStatus.Pass, routeUplink != null ? $"Traffic to {request.Target} leaves by {uplink}, which the MASQUERADE rule names." : $"Traffic leaves by {uplink}, the interface of the host's default route.");
            }

            AcceptRa(uplink);

            // FORWARD: out (NEW) and back (ESTABLISHED), in the backend NetnsNat writes to and in the other one.
            var other = _backend.OtherBackend(state, _host.Token);
            if (subnet != null && uplink != null && onBridge.Link != null)
            {
                var outside = request.Target ?? Family.OutsideExample;
                var nsAddress = onBridge.Address.Address;
                var fix = $"Get-BridgeSubnet {bridgeName} | Add-NatMasquerade -Outbound {uplink}{backendArgument}";
                var verdicts = new List<(string Backend, ForwardVerdict Out, ForwardVerdict Reply, string Lister)>
                {
                    (state.Backend, ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(bridgeName, uplink, nsAddress, outside, "NEW")),
                        ForwardEvaluator.Evaluate(snapshot, new ForwardPacket(uplink, bridgeName, outside, nsAddress, "ESTABLISHED")), Family.Iptables),
                };
                if (other != null)
                {
                    var o = other.Value.Snapshot;
                    verdicts.Add((other.Value.Name, ForwardEvaluator.Evaluate(o, new ForwardPacket(bridgeName, uplink, nsAddress, outside, "NEW")),
                        ForwardEvaluator.Evaluate(o, new ForwardPacket(uplink, bridgeName, outside, nsAddress, "ESTABLISHED")), other.Value.Tool.Replace("-save", string.Empty)));
                }
                // Other tables' base chains on the forward hook, each walked for the two packets: a drop in any of them is
                // final, whatever NetnsNat's rules accept. Rules it does not evaluate leave a chain's verdict open (a warning).
                var open = new List<(string Chain, string Why)>();
                foreach (var chain in NftablesChains.ForwardChains(Family, skipIptables: ProcessRunner.Which(Family.IptablesSave) != null))
                {
                    var outChain = chain.Verdict(Family, new ForwardPacket(bridgeName, uplink, nsAddress, outside, "NEW"), network);
                    var replyChain = chain.Verdict(Family, new ForwardPacket(uplink, bridgeName, outside, nsAddress, "ESTABLISHED"), network);
                    if (outChain.Outcome == NftChainOutcome.Dropped || replyChain.Outcome == NftChainOutcome.Dropped)
                    {
                        ForwardVerdict Of(NftChainVerdict v) => new ForwardVerdict(v.Outcome != NftChainOutcome.Dropped, $"{chain.Name}: {v.By}", Array.Empty<string>());
                        verdicts.Add(($"nftables chain '{chain.Name}'", Of(outChain), Of(replyChain), "nft"));
                        continue;
                    }
                    foreach (var why in new[] { outChain, replyChain }.Where(v => v.Outcome == NftChainOutcome.Unknown).Select(v => v.By).Concat(outChain.Uncertain).Concat(replyChain.Uncertain).Distinct(StringComparer.Ordinal))
                    {
                        open.Add((chain.Name, why));
                    }
                }
                // A new connection from outside to the namespace: the kernel lets it through only when every backend's FORWARD accepts it.
                var inbound = new ForwardPacket(uplink, bridgeName, outside, nsAddress, "NEW");
                var inVerdicts = new List<ForwardVerdict> { ForwardEvaluator.Evaluate(snapshot, inbound) };
                if (other != null) inVerdicts.Add(ForwardEvaluator.Evaluate(other.Value.Snapshot, inbound));
                if (nftContent != null)
                {
                    // NetnsNat's table: new traffic out passes it (no rule for it, policy accept); replies and new connections
                    // in are decided by the bridge's inbound element.
                    var element = new NftElement(NftSetKind.Inbound, network!.Value, uplink, bridgeName);
                    var set = NftablesTable.SetName(NftSetKind.Inbound, Family);
                    var ipWord = Family == AddressFamilyProfile.IPv4 ? "ip" : "ip6";
                    bool listed = nftContent.Owned && nftContent.Has(element);
                    // Whether the drop takes effect is read from the forward chain: the table may have been changed by hand
                    // (a rule deleted, or one added above the drop that accepts).
                    bool drops = listed && NftablesTable.InboundDropStands(nftContent, Family);
                    bool replies = listed && nftContent.Intact;
                    var outVerdict = new ForwardVerdict(true, $"inet {NftablesTable.Name} forward: policy accept", Array.Empty<string>());
                    var replyVerdict = new ForwardVerdict(true, replies ? $"inet {NftablesTable.Name} forward: ct state established,related {ipWord} daddr . iifname . oifname @{set} accept" : $"inet {NftablesTable.Name} forward: policy accept", Array.Empty<string>());
                    verdicts.Insert(0, (NftablesBackend.Name, outVerdict, replyVerdict, "nft"));
                    var changed = nftContent.Intact ? string.Empty : $" (inet {NftablesTable.Name} is not as NetnsNat made it: {nftContent.Problem})";
                    var why = !nftContent.Exists ? $"inet {NftablesTable.Name} does not exist"
                        : !nftContent.Owned ? $"inet {NftablesTable.Name} is not NetnsNat's"
                        : !listed ? (nftContent.Intact ? $"inet {NftablesTable.Name} forward: no element {element.Value} in {set}" : $"inet {NftablesTable.Name} is not as NetnsNat made it: {nftContent.Problem}")
                        : $"inet {NftablesTable.Name} forward: its inbound drop rule of {Family.Name} is gone, or a rule added by hand above it comes first{changed}";
                    inVerdicts.Insert(0, new ForwardVerdict(!drops, drops ? $"inet {NftablesTable.Name} forward: {ipWord} daddr . iifname . oifname @{set} drop" : why, Array.Empty<string>()));
                }
                var blocked = verdicts.FirstOrDefault(v => !v.Out.Accepted || !v.Reply.Accepted);
                var uncertain = verdicts.SelectMany(v => v.Out.Uncertain.Concat(v.Reply.Uncertain)).Distinct().ToArray();
                if (blocked.Backend != null)
                {
                    var what = !blocked.Out.Accepted ? $"new traffic out is blocked by '{blocked.Out.By}'" : $"replies back in are blocked by '{blocked.Reply.By}'";
                    if (blocked.Lister == "nft" && blocked.Backend != NftablesBackend.Name)
                    {
                        // Another nftables table's chain: an accept elsewhere does not override its drop.
                        var chain = blocked.Out.By.Split(':')[0];
                        Emit("Forward", NatCheckStatus.Fail, $"The {blocked.Backend}, on the forward hook beside NetnsNat's rules, drops the namespace's traffic, and an accept elsewhere does not override it: {what}.",
                            $"{NftablesChains.Fix(chain, bridgeName, uplink)} (or set its policy to accept)");
                    }
                    else if (nftContent != null)
                    {
                        // NetnsNat's NAT is in its nftables table: iptables' FORWARD (either backend) is another chain on the hook.
                        Emit("Forward", NatCheckStatus.Fail, $"FORWARD of iptables ({blocked.Backend}), which the kernel applies beside NetnsNat's nftables table: {what}.",
                            $"{blocked.Lister} -I FORWARD -i {bridgeName} -o {uplink} -j ACCEPT; {blocked.Lister} -I FORWARD -i {uplink} -o {bridgeName} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT (or {blocked.Lister} -P FORWARD ACCEPT)");
                    }
                    else
                    {
                        var theirs = blocked.Backend != state.Backend;
                        Emit("Forward", NatCheckStatus.Fail, theirs ? $"FORWARD of the {blocked.Backend} iptables backend, which the kernel applies too: {what}." : $"FORWARD: {what}.",
                            theirs ? $"{blocked.Lister} -P FORWARD ACCEPT, or delete the rule that blocks ({blocked.Lister} -L FORWARD -v -n --line-numbers)" : fix);
                    }
                }
                else if (open.Count > 0)
                {
                    // Another table's chain on the forward hook whose verdict hangs on rules NetnsNat does not evaluate.
                    var chains = open.Select(o => o.Chain).Distinct(StringComparer.Ordinal).ToArray();
                    Emit("Forward", NatCheckStatus.Warn,
                        $"FORWARD accepts the traffic, but on the forward hook {string.Join("; ", open.Select(o => $"'{o.Chain}' has {o.Why}"))}: NetnsNat does not evaluate those rules, and they may drop the namespace's traffic (nft -a list chain shows them by handle).",
                        string.Join("; ", chains.Select(c => NftablesChains.Fix(c, bridgeName, uplink))));
                }
                else if (uncertain.Length > 0)
                {
                    Emit("Forward", NatCheckStatus.Warn, $"FORWARD accepts the traffic, but these rules may block some of it: {string.Join("; ", uncertain)}.", $"{Family.Iptables} -L FORWARD -v -n --line-numbers");
                }
                else
                {
                    Emit("Forward", NatCheckStatus.Pass, $"FORWARD accepts new traffic out ({verdicts[0].Out.By}) and replies back in ({verdicts[0].Reply.By}).");
                }
                var droppedBy = inVerdicts.FirstOrDefault(v => !v.Accepted);
                if (droppedBy == null)
                {
                    Emit("Inbound", NatCheckStatus.Fail,
                        $"FORWARD lets a new connection from outside ({outside} in by {uplink}) through to the namespace's {nsAddress} ({inVerdicts[0].By}): anyone who can route to {subnet.Subnet} reaches it.",
                        $"{fix} (it adds the rule that drops new inbound connections)");
                }
                else
                {
                    Emit("Inbound", NatCheckStatus.Pass, $"New connections from outside to {nsAddress} are dropped ({droppedBy.By}).");
                }
            }
            else
            {
                Emit("Forward", NatCheckStatus.Fail, "FORWARD cannot be checked without the bridge, the uplink and the namespace's address (see the checks above).", "Fix the checks above, then run Test-NamespaceNat again");
                Emit("Inbound", NatCheckStatus.Fail, "Inbound traffic cannot be checked without the bridge, the uplink and the namespace's address (see the checks above).", "Fix the checks above, then run Test-NamespaceNat again");
            }

            PortMappings(state, nftState, ns, nsAddresses.Select(a => a.Address.Address).ToArray(), uplink);

            // Duplicates.
            var dupes = subnet == null ? Array.Empty<IGrouping<string, IptablesRule>>()
                : snapshot.Rules.Where(r => (r.Chain == "FORWARD" || r.Chain == "POSTROUTING") && (r.Source == subnet.Subnet || r.Destination == subnet.Subnet))
                    .GroupBy(r => r.Key).Where(g => g.Count() > 1).ToArray();
            if (dupes.Length > 0)
            {
                Emit("DuplicateRules", NatCheckStatus.Warn, $"{dupes.Length} rule(s) stand more than once: {string.Join("; ", dupes.Select(g => $"{g.First()} (x{g.Count()})"))}.",
                    subnet == null ? null
                    : request.BoundOutbound != null ? $"Remove-NatMasquerade -Subnet {subnet.Subnet} -Outbound {masquerades.FirstOrDefault()?.OutInterface ?? uplink} -Force; Restore-NamespaceNat (it lays them again once)"
                    : $"Remove-NatMasquerade -Subnet {subnet.Subnet} -Outbound {masquerades.FirstOrDefault()?.OutInterface ?? uplink}; then add them once again");
            }
            else
            {
                Emit("DuplicateRules", NatCheckStatus.Pass, "No rule for the subnet stands twice.");
            }

            // Rules of NetnsNat's for the bridge that nothing uses any more: a subnet the bridge no longer has, or an
            // uplink no namespace NetnsNat enabled on the bridge goes out by (left behind by a change made by hand).
            StaleRules(nftState != null && bridgeLink != null
                ? _nft!.OwnTargetsOnBridge(nftState, bridgeLink.Name).Select(t => (t.SubnetText, t.Outbound))
                : snapshot.Chain("filter", "FORWARD").Where(r => MasqueradeRules.IsOwnForward(r) && MasqueradeRules.BridgeOf(r) == bridgeLink?.Name)
                    .Select(r => (MasqueradeRules.SubnetOf(r)!, MasqueradeRules.OutboundOf(r)!)), bridgeLink, backendArgument);

            // The other backend.
            var mix = subnet == null ? null : _backend.OtherBackendRules(state, subnet.Subnet, _host.Token);
            // With the nftables backend, iptables' rules for the subnet are a second NAT (a leftover of the lesson's commands, or
            // of the iptables backend): both act on the traffic.
            var alsoInIptables = nftContent == null || subnet == null ? Array.Empty<string>()
                : snapshot.Rules.Where(r => (r.Chain == "POSTROUTING" && MasqueradeRules.IsMasquerade(r) && r.Source == subnet.Subnet) || (r.Chain == "FORWARD" && MasqueradeRules.IsOwnForward(r) && MasqueradeRules.SubnetOf(r) == subnet.Subnet))
                    .Select(r => r.ToString()).ToArray();
            if (alsoInIptables.Length > 0)
            {
                Emit("BackendMix", NatCheckStatus.Warn, $"The subnet's NAT is in inet {NftablesTable.Name}, and iptables has rules for it too, which act on the same traffic: {string.Join("; ", alsoInIptables)}.",
                    $"Remove-NatMasquerade -Subnet {subnet!.Subnet} -Outbound {uplink ?? "UPLINK"} -Backend Iptables");
            }
            else if (mix != null) Emit("BackendMix", NatCheckStatus.Warn, mix.Value.Message, mix.Value.Fix);
            else if (nftContent != null) Emit("BackendMix", NatCheckStatus.Pass, $"The subnet's NAT is in inet {NftablesTable.Name} alone: iptables has no rule for it.");
            else Emit("BackendMix", NatCheckStatus.Pass, $"All rules for the subnet are in the {state.Backend} backend.");

            // The resolver the namespace sees (a namespace given by path reads its own /etc/resolv.conf: not checked).
            if (!ns.IsNamed)
            {
                Emit("Resolver", NatCheckStatus.Pass, $"{ns.Path} is not a named namespace: /etc/netns does not apply, and its processes read their own /etc/resolv.conf.");
                if (request.Target != null) Probe(ns, request.Target, request.Port);
                return;
            }
            var resolvConf = Resolver.EffectiveResolvConf(ns.Display);
            var servers = Resolver.NameserversOf(resolvConf);
            var dnsFix = $"Enable-NamespaceNat -Namespace {ns} -Bridge {bridgeName} -Dns NAMESERVER";
            var unreadable = Resolver.UnreadableByOthers(resolvConf);
            if (unreadable != null) Emit("Resolver", NatCheckStatus.Fail, $"{unreadable}, so name lookups by the namespace's other users fail (a umask of 077 when it was written?).", $"chmod 0755 {Resolver.NetnsRoot} {System.IO.Path.GetDirectoryName(resolvConf)}; chmod 0644 {resolvConf}");
            else if (servers.Count == 0) Emit("Resolver", NatCheckStatus.Fail, $"{resolvConf} names no nameserver: name lookups in the namespace fail.", dnsFix);
            else if (servers.All(Resolver.IsLoopback)) Emit("Resolver", NatCheckStatus.Fail, $"{resolvConf} names only loopback resolvers ({string.Join(", ", servers)}), which the namespace cannot reach (its loopback is its own).", dnsFix);
            else Emit("Resolver", NatCheckStatus.Pass, $"{resolvConf}: {string.Join(", ", servers.Where(s => !Resolver.IsLoopback(s)))}.");

            // A real probe from inside.
            if (request.Target != null) Probe(ns, request.Target, request.Port);
        }

        /// <summary>The command that gives a bridge an address of the family.</summary>
        private string AddAddress(string bridge) =>
            Family == AddressFamilyProfile.IPv6 ? $"ip -6 addr add fd00:0:0:1::1/64 dev {bridge} nodad" : $"ip addr add 10.0.0.1/24 dev {bridge}";

        /// <summary>
        /// AcceptRa (IPv6): with forwarding on, the kernel ignores router advertisements on an interface whose accept_ra
        /// is 1, so an uplink that learns its IPv6 default route by SLAAC loses it when it expires.
        /// </summary>
        private void AcceptRa(string? uplink)
        {
            if (Family != AddressFamilyProfile.IPv6) return;
            var value = uplink == null ? null : ForwardingService.ReadAcceptRa(uplink);
            var forwarding = ForwardingService.Read(Family).Enabled;
            if (uplink == null || value == null)
            {
                Emit("AcceptRa", NatCheckStatus.Pass, uplink == null ? "No uplink to check." : $"{uplink} has no IPv6 settings.");
            }
            else if (value == 1 && forwarding)
            {
                Emit("AcceptRa", NatCheckStatus.Warn,
                    $"{ForwardingService.AcceptRaKey(uplink)} = 1 with IPv6 forwarding on: the kernel ignores the router advertisements {uplink} gets, so an IPv6 default route learned by SLAAC is lost when it expires.",
                    $"sysctl -w {ForwardingService.AcceptRaKey(uplink)}=2 (Enable-NamespaceNat does this)");
            }
            else
            {
                Emit("AcceptRa", NatCheckStatus.Pass, $"{ForwardingService.AcceptRaKey(uplink)} = {value}{(value == 2 ? ": router advertisements are accepted with forwarding on" : value == 0 ? ": the uplink does not take router advertisements (a static IPv6 configuration)" : ", forwarding is off")}.");
            }
        }

        /// <summary>
        /// PortMappings: each port the state store says NetnsNat published for the namespace (of this family) has its
        /// rules, still goes to an address the namespace has, and nothing above its FORWARD rule drops its connections.
        /// </summary>
        private void PortMappings(IptablesState state, NftablesState? nftState, NamespaceRef ns, IReadOnlyCollection<IPAddress> nsAddresses, string? uplink)
        {
            // With the nftables backend the mapping is elements of NetnsNat's table, and iptables' FORWARD is another table on the hook.
            INatBackend backend = nftState != null ? _nft! : _backend;
            NatState held = nftState ?? (NatState)state;
            var store = _request.Store ?? StateStore.Read(_host);
            var mappings = store.Mappings.Where(m => m.NamespacePath == ns.Path && m.Family == Family.Name).Select(m => m.ToMapping()).Where(m => m != null).Select(m => m!).ToArray();
            if (mappings.Length == 0)
            {
                Emit("PortMappings", NatCheckStatus.Pass, "NetnsNat publishes no port of the namespace.");
                return;
            }
            var snapshot = state.Snapshot;
            HashSet<IPAddress>? hostAddresses = null;
            var problems = new List<string>();
            var doubts = new List<string>();
            var fixes = new List<string>();
            foreach (var m in mappings)
            {
                var missing = backend.MissingMappingRules(held, m);
                if (missing.Count > 0)
                {
                    problems.Add($"{m}: {missing.Count} of its rules do not stand ({string.Join("; ", missing)})");
                    fixes.Add($"Restore-NamespaceNat {ns.Parameter}");
                    continue;
                }
                if (!nsAddresses.Contains(m.InternalAddress))
                {
                    problems.Add($"{m}: the namespace no longer has the address {m.InternalAddress}{(nsAddresses.Count == 0 ? string.Empty : $" (it has {string.Join(", ", nsAddresses)})")}");
                    fixes.Add($"{PortMappingService.RemoveCommand(m)}; {PortMappingService.AddCommand(m, ns)}");
                    continue;
                }
                if (m.ExternalAddress != null)
                {
                    if (hostAddresses == null)
                    {
                        using var host = NamespaceRoutes.OpenCurrent();
                        hostAddresses = host.AllAddresses().Select(a => a.Address.Address).ToHashSet();
                    }
                    if (!hostAddresses.Contains(m.ExternalAddress))
                    {
                        problems.Add($"{m}: the host no longer has the address {m.ExternalAddress}, so no connection to it arrives");
                        fixes.Add($"{PortMappingService.RemoveCommand(m)}, then publish on an address the host has");
                        continue;
                    }
                }
                if (backend.MappingShadowedBy(held, m) is { } shadow)
                {
                    problems.Add(nftState != null ? $"{m}: '{shadow.Rule}' in iptables' nat PREROUTING (on the same hook as inet {NftablesTable.Name}) may take its connections first"
                        : $"{m}: '{shadow.Rule}' stands above its DNAT rule in nat PREROUTING and takes its connections");
                    fixes.Add(shadow.DeleteCommand);
                    continue;
                }
                var chain = snapshot.Chain("filter", "FORWARD");
                if (nftState != null)
                {
                    // An accept in NetnsNat's table does not override a drop elsewhere on the forward hook.
                    if (backend.MappingBlockedBy(held, m) is { } blocked)
                    {
                        (blocked.Certain ? problems : doubts).Add($"{m}: {blocked.Why}");
                        fixes.Add(blocked.Fix);
                    }
                    continue;
                }
                var forwardIn = PortMappingRules.ForwardIn(m);
                int at = 0;
                while (at < chain.Count && !chain[at].SameAs(forwardIn)) at++;
                if (PortMappingRules.DroppedBy(snapshot, chain.Take(at).ToArray(), m, uplink ?? m.Outbound) is { } dropper)
                {
                    problems.Add($"{m}: '{dropper}' stands above its FORWARD rule and drops its connections");
                    fixes.Add($"{PortMappingService.AddCommand(m, ns)} (lays its rules on top again)");
                }
            }
            if (problems.Count == 0 && doubts.Count == 0)
            {
                Emit("PortMappings", NatCheckStatus.Pass, $"{mappings.Length} published port(s) in force: {string.Join(", ", mappings.Select(m => m.ToString()))}.");
                return;
            }
            if (problems.Count == 0)
            {
                Emit("PortMappings", NatCheckStatus.Warn, string.Join("; ", doubts) + ".", string.Join("; ", fixes.Distinct()));
                return;
            }
            Emit("PortMappings", NatCheckStatus.Fail, string.Join("; ", problems) + ".", string.Join("; ", fixes.Distinct()));
        }

        private void StaleRules(IEnumerable<(string Subnet, string Outbound)> own, LinkInfo? bridge, string backendArgument)
        {
            if (bridge == null)
            {
                Emit("StaleRules", NatCheckStatus.Pass, "No bridge to look for rules of.");
                return;
            }
            var store = _request.Store ?? StateStore.Read(_host);
            var subnets = bridge.Of(Family).Select(a => Cidr.Format(a.Network)).ToHashSet(StringComparer.Ordinal);
            var bound = store.Bindings.Where(b => b.Bridge == bridge.Name && b.Family == Family.Name).ToArray();
            var stale = own
                .Distinct()
                .Where(k => !subnets.Contains(k.Subnet) || (bound.Any(b => b.Subnet == k.Subnet) && !bound.Any(b => b.Subnet == k.Subnet && b.Outbound == k.Outbound)))
                .ToArray();
            if (stale.Length == 0)
            {
                Emit("StaleRules", NatCheckStatus.Pass, $"Every rule of NetnsNat's for {bridge.Name} is for a subnet it has and an uplink in use.");
                return;
            }
            Emit("StaleRules", NatCheckStatus.Warn,
                $"Rules of NetnsNat's for {bridge.Name} that nothing uses any more: {string.Join("; ", stale.Select(k => $"{k.Subnet} via {k.Outbound}" + (subnets.Contains(k.Subnet) ? " (no namespace goes out by it)" : " (the bridge no longer has this subnet)")))}. " +
                "Enable-NamespaceNat removes them when it is run again for the namespace.",
                string.Join("; ", stale.Select(k => $"Remove-NatMasquerade -Subnet {k.Subnet} -Outbound {k.Outbound} -Bridge {bridge.Name}{backendArgument}")));
        }

        /// <summary>
        /// HostLink: the host end of the namespace's veth (its peer, by the veth's link index) is on the bridge and up.
        /// A veth left off the bridge (nomaster) or down passes every other check and carries nothing.
        /// </summary>
        private void HostLink(NamespaceRoutes.LinkRecord? inside, LinkInfo? bridge)
        {
            if (inside == null || bridge == null)
            {
                Emit("HostLink", NatCheckStatus.Fail, "The host end of the namespace's interface cannot be checked without the bridge and the namespace's address (see the checks above).", "Fix the checks above, then run Test-NamespaceNat again");
                return;
            }
            if (inside.Kind != "veth")
            {
                Emit("HostLink", NatCheckStatus.Pass, $"{inside.Name} is a {inside.Kind ?? "plain"} interface, not a veth: it has no host end to check.");
                return;
            }
            using var host = NamespaceRoutes.OpenCurrent();
            var links = host.AllLinks();
            var peer = links.FirstOrDefault(l => l.Index == inside.Peer && l.Peer == inside.Index && l.Kind == "veth");
            var bridgeIndex = links.FirstOrDefault(l => l.Name == bridge.Name)?.Index ?? -1;
            if (peer == null)
            {
                Emit("HostLink", NatCheckStatus.Warn, $"The host end of {inside.Name} is not in this network namespace: it cannot be on {bridge.Name}.", $"ip link show type veth; ip link set HOST-END master {bridge.Name} up");
            }
            else if (peer.Master != bridgeIndex)
            {
                var on = links.FirstOrDefault(l => l.Index == peer.Master)?.Name;
                Emit("HostLink", NatCheckStatus.Fail, $"{peer.Name}, the host end of {inside.Name}, is {(on == null ? "on no bridge (nomaster)" : "on " + on)}, not on {bridge.Name}: nothing the namespace sends reaches the bridge.", $"ip link set {peer.Name} master {bridge.Name}");
            }
            else if (!peer.IsUp)
            {
                Emit("HostLink", NatCheckStatus.Fail, $"{peer.Name}, the host end of {inside.Name} on {bridge.Name}, is down.", $"ip link set {peer.Name} up");
            }
            else
            {
                Emit("HostLink", NatCheckStatus.Pass, $"{peer.Name}, the host end of {inside.Name}, is up on {bridge.Name}.");
            }
        }

        private void Probe(NamespaceRef ns, IPAddress target, int port)
        {
            var inside = port > 0
                ? new[] { "timeout", "3", "bash", "-c", $"exec 3<>/dev/tcp/{target}/{port}" }
                : new[] { "ping", "-c", "1", "-i", "0.2", "-w", "3", target.ToString() }; // a packet every 0.2 s until the first reply (a port just added to a bridge loses the first ones)
            var what = port > 0 ? (target.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"TCP [{target}]:{port}" : $"TCP {target}:{port}") : $"ping {target}";
            var result = ns.IsNamed
                ? _host.Runner.Run("ip", new[] { "netns", "exec", ns.Display }.Concat(inside).ToArray(), _host.Token, timeout: TimeSpan.FromSeconds(10))
                : _host.Runner.Run("nsenter", new[] { "--net=" + ns.Path }.Concat(inside).ToArray(), _host.Token, timeout: TimeSpan.FromSeconds(10));
            if (result.Succeeded) Emit("Probe", NatCheckStatus.Pass, $"{what} from inside the namespace: reached.");
            else Emit("Probe", NatCheckStatus.Fail, $"{what} from inside the namespace: {result.Diagnostic}.", "Fix the failed checks above (a Forward warning names rules that may drop the traffic); if all pass, the problem is beyond this host (the uplink's network, or the target)");
        }

        /// <summary>The bridge subnet the namespace's address is on (the first one of the bridge when none is).</summary>
        private BridgeSubnet SubnetFor(LinkInfo bridge, IEnumerable<IpPrefix> namespaceAddresses)
        {
            var all = bridge.Of(Family);
            // The subnet NetnsNat enabled it for, when the bridge still has it; else the one the namespace's address is on.
            var recorded = _request.Subnet == null ? null : all.FirstOrDefault(b => Cidr.Format(b.Network) == _request.Subnet);
            var a = recorded ?? all.FirstOrDefault(b => namespaceAddresses.Any(x => b.Network.Contains(x.Address)));
            return InterfaceService.ToSubnet(bridge.Name, a ?? all[0], bridge.IsUp);
        }
    }
}
