using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using NetnsNat.Backends;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>One mapping asked of Add-NatPortMapping: by namespace or by internal address, with what the user gave.</summary>
    internal sealed record MappingRequest(NamespaceRef? Namespace, IPAddress? InternalAddress, string Protocol, int ExternalPort, int InternalPort,
        IPAddress? ExternalAddress, IPNetwork? Remote, IReadOnlyList<AddressFamilyProfile>? Families = null, NatBackendKind Backend = NatBackendKind.Auto);

    /// <summary>
    /// Publishes namespaces' ports (DNAT) and takes them away: the requests resolved against the state store (which
    /// namespace, bridge, subnet and uplink), checked against the mappings that stand (a port another mapping takes is
    /// an error that changes nothing), written per family in one write under the ruleset lock, recorded in the store,
    /// and the connections the change concerns dropped from conntrack.
    /// </summary>
    internal sealed class PortMappingService
    {
        /// <summary>What mappings that may overlap share: family, protocol and external port.</summary>
        private static (string Family, string Protocol, int Port) KeyOf(PortMapping m) => (m.Family.Name, m.Protocol, m.ExternalPort);

        /// <summary>
        /// The store's mappings found by their external side: grouped by family, protocol and port without parsing them,
        /// and a group parsed when it is first asked for (a call that adds one mapping to a thousand parses a few).
        /// </summary>
        private sealed class StoreIndex
        {
            private readonly Dictionary<(string Family, string Protocol, int Port), List<StoredMapping>> _raw = new Dictionary<(string, string, int), List<StoredMapping>>();
            private readonly Dictionary<(string Family, string Protocol, int Port), List<(StoredMapping Stored, PortMapping Mapping)>> _parsed = new Dictionary<(string, string, int), List<(StoredMapping, PortMapping)>>();

            private static (string, string, int) RawKeyOf(StoredMapping s) => (s.Family, s.Protocol, s.ExternalPort);


            public StoreIndex(StoreContent store)
            {
                foreach (var s in store.Mappings)
                {
                    if (!_raw.TryGetValue(RawKeyOf(s), out var list)) _raw[RawKeyOf(s)] = list = new List<StoredMapping>();
                    list.Add(s);
                }
            }

            private List<(StoredMapping Stored, PortMapping Mapping)> At((string, string, int) key)
            {
                if (_parsed.TryGetValue(key, out var list)) return list;
                list = new List<(StoredMapping, PortMapping)>();
                if (_raw.TryGetValue(key, out var raw))
                {
                    foreach (var s in raw)
                    {
                        if (s.ToMapping() is { } m) list.Add((s, m));
                    }
                }
                return _parsed[key] = list;
            }

            public void Add(StoredMapping stored, PortMapping mapping) => At(PortMappingService.KeyOf(mapping)).Add((stored, mapping));

            public (StoredMapping Stored, PortMapping Mapping)? Find(PortMapping mapping) =>
                At(PortMappingService.KeyOf(mapping)) is var list && list.FindIndex(x => x.Mapping.SameAs(mapping)) is int i && i >= 0 ? list[i] : null;

            /// <summary>A mapping read from the rules, with the bridge, subnet and uplink the store recorded for it; null when the store does not know it.</summary>
            public PortMapping? Complete(PortMapping bare) => Find(bare)?.Mapping;

            /// <summary>The mappings the store records on the same family, protocol and port as this one.</summary>
            public IEnumerable<PortMapping> OnPortOf(PortMapping m) => At(PortMappingService.KeyOf(m)).Select(x => x.Mapping);
        }

        /// <summary>
        /// Mappings by family, protocol and port: the ones a new mapping may overlap. Those of the rules given, those added
        /// to it, and (with an index) those the store records, even when their rules are gone (Restore lays them again).
        /// </summary>
        private sealed class PortTable
        {
            private readonly Dictionary<(string, string, int), List<PortMapping>> _byPort = new Dictionary<(string, string, int), List<PortMapping>>();
            private readonly StoreIndex? _recorded;

            public PortTable(IEnumerable<PortMapping> mappings, StoreIndex? recorded = null)
            {
                _recorded = recorded;
                foreach (var m in mappings) Add(m);
            }

            public void Add(PortMapping m)
            {
                if (!_byPort.TryGetValue(KeyOf(m), out var list)) _byPort[KeyOf(m)] = list = new List<PortMapping>();
                list.Add(m);
            }

            public PortMapping? InTheWay(PortMapping m)
            {
                var near = _byPort.TryGetValue(KeyOf(m), out var list) ? list : Enumerable.Empty<PortMapping>();
                if (_recorded != null) near = near.Concat(_recorded.OnPortOf(m));
                return near.FirstOrDefault(x => x.Overlaps(m) && !x.SameAs(m));
            }
        }

        private readonly Dictionary<string, IReadOnlySet<IPAddress>> _namespaceAddresses = new Dictionary<string, IReadOnlySet<IPAddress>>(StringComparer.Ordinal);

        private readonly ICommandHost _host;
        private readonly Func<AddressFamilyProfile, NatBackendKind, INatBackend> _backendOf;
        private readonly RuleServices _rules;
        private IReadOnlySet<IPAddress>? _hostAddresses;
        private IReadOnlyList<(string Name, IPAddress Address)>? _hostInterfaceAddresses;

        /// <summary>A mapping is in the backend of its namespace's NAT: backendOf gives it for a family and kind.</summary>
        public PortMappingService(ICommandHost host, Func<AddressFamilyProfile, NatBackendKind, INatBackend> backendOf)
        {
            _host = host;
            _backendOf = backendOf;
            _rules = new RuleServices(host, backendOf);
        }

        private RuleService Rules(AddressFamilyProfile family, NatBackendKind kind) => _rules.Of(family, kind);

        /// <summary>A plan's commands as one -WhatIf/-Confirm action: a mapping is asked about once, with all of them.</summary>
        private static string Commands(NatPlan plan) => string.Join("; ", plan.Changes.Select(c => c.CommandLine));

        /// <summary>The mappings of one family and backend that -WhatIf/-Confirm let through, to be written in one write.</summary>
        private sealed record Approved(RuleService Rules, INatBackend Backend, PortMapping[] Mappings);

        private INatBackend Backend(AddressFamilyProfile family, NatBackendKind kind) => Rules(family, kind).Backend;

        /// <summary>The backend a stored mapping's rules are in.</summary>
        private static NatBackendKind KindOf(StoredMapping stored) => BackendFactory.FromStoreName(stored.Backend);

        /// <summary>The host's addresses, by interface (read once per call).</summary>
        private IReadOnlyList<(string Name, IPAddress Address)> HostInterfaceAddresses()
        {
            if (_hostInterfaceAddresses != null) return _hostInterfaceAddresses;
            using var routes = NamespaceRoutes.OpenCurrent();
            var names = routes.AllLinks().ToDictionary(l => l.Index, l => l.Name);
            _hostInterfaceAddresses = routes.AllAddresses().Select(a => (names.TryGetValue(a.Index, out var n) ? n : string.Empty, a.Address.Address)).ToArray();
            _hostAddresses = _hostInterfaceAddresses.Select(a => a.Address).ToHashSet();
            return _hostInterfaceAddresses;
        }

        private IReadOnlySet<IPAddress> HostAddresses()
        {
            HostInterfaceAddresses();
            return _hostAddresses!;
        }

        /// <summary>
        /// Adds the mappings of the requests: each request resolved and checked on its own (its errors reported, the
        /// others go on), then all of a family's in one write. Emits each mapping (or nothing under -WhatIf) once the
        /// transaction has ended and its lock is released, so that a command the output is piped into can take it.
        /// </summary>
        public void Add(IReadOnlyList<MappingRequest> requests, Action<NatPortMapping> emit)
        {
            foreach (var r in AddInTransaction(requests)) emit(r);
        }

        private IReadOnlyList<NatPortMapping> AddInTransaction(IReadOnlyList<MappingRequest> requests)
        {
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var index = new StoreIndex(store);
            var resolved = new List<(PortMapping Mapping, NamespaceRef Namespace, NatBackendKind Kind)>();
            foreach (var request in requests)
            {
                _host.Try(request.Namespace?.Display ?? request.InternalAddress?.ToString(), () =>
                {
                    foreach (var m in Resolve(request, store))
                    {
                        // The same mapping twice in one call is one mapping; another target on the same port is the conflict below.
                        if (!resolved.Any(r => r.Mapping.ExternalPort == m.Mapping.ExternalPort && r.Mapping.SameAs(m.Mapping))) resolved.Add(m);
                    }
                });
            }
            if (resolved.Count == 0) return Array.Empty<NatPortMapping>();
            var results = new List<NatPortMapping>();
            var now = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            bool record = false;
            foreach (var (family, kind) in resolved.Select(r => (r.Mapping.Family, r.Kind)).Distinct().OrderBy(g => g.Family.Name, StringComparer.Ordinal).ToArray())
            {
                var mine = resolved.Where(r => r.Mapping.Family == family && r.Kind == kind).Select(r => (r.Mapping, r.Namespace)).ToList();
                var backend = Backend(family, kind);
                // A mapping goes through its namespace's NAT: when that NAT's rules are gone (a flushed ruleset), they are laid
                // again first, as Restore-NamespaceNat would, so that no port is published without the inbound drop beside it.
                var subnets = mine.Select(r => new SubnetNat(r.Mapping.Subnet, r.Mapping.Outbound, r.Mapping.Bridge)).Distinct().ToArray();
                foreach (var outcome in Rules(family, kind).Add(subnets, tx, _ => null) ?? Array.Empty<RuleService.Outcome>())
                {
                    if (outcome.Plan.IsEmpty) continue;
                    _host.Warning($"The rules of {outcome.Target}, which its namespaces' NAT and port mappings need, were gone: laid again ({outcome.Plan.Additions} added). Restore-NamespaceNat lays every binding's again.");
                    foreach (var table in outcome.CreatedTables)
                    {
                        record |= store.CreatedTables.Add(table);
                    }
                }
                var state = backend.Read(_host.Token);
                // Mappings that stand (and those the store records whose rules are gone, which Restore lays again) take their ports.
                // A backend whose write refuses a port that is taken (nftables' map) needs no listing of its mappings: the
                // store's records find NetnsNat's, and the write refuses one written by hand.
                var taken = new PortTable(backend.RefusesTakenPorts ? Array.Empty<PortMapping>() : backend.Mappings(state, index.Complete), index);
                // One question per mapping, with all of its commands: a mapping is added whole or not at all.
                var approved = new List<(PortMapping Mapping, NamespaceRef Namespace)>();
                foreach (var item in mine)
                {
                    var other = taken.InTheWay(item.Mapping);
                    if (other != null)
                    {
                        var owner = index.Find(other)?.Stored.Namespace;
                        _host.Try(item.Namespace.Display, () => throw new NetnsNatException(
                            $"{item.Mapping.ExternalEndpoint} is taken: {other.ExternalEndpoint} goes to {other.TargetText}{(owner == null ? string.Empty : $" ('{owner}')")}. Nothing was changed for {item.Mapping}. " +
                            $"Remove that mapping first ({RemoveCommand(other)}), or publish on another -ExternalPort or -ExternalAddress.", "PortMappingConflict", ErrorCategory.ResourceExists));
                        continue;
                    }
                    taken.Add(item.Mapping);
                    var own = backend.PlanAddMappings(state, new[] { item.Mapping });
                    if (own.IsEmpty && index.Find(item.Mapping) != null)
                    {
                        _host.Verbose($"{item.Mapping} stands as it should: nothing to change.");
                        approved.Add(item);
                        continue;
                    }
                    var action = own.IsEmpty ? $"Record the mapping, whose rules stand, in {StateStore.CurrentPath}" : Commands(own);
                    if (_host.ShouldProcess(item.Mapping.ToString(), action))
                    {
                        approved.Add(item);
                        record = true;
                    }
                }
                if (approved.Count == 0) continue;
                var applied = Rules(family, kind).ApplyApproved(s => backend.PlanAddMappings(s, approved.Select(x => x.Mapping).ToArray()), $"{approved.Count} port mapping(s)", tx, null);
                // Each rule (or element) added counts once, for the first mapping that needs it: mappings to one namespace port share some.
                var added = new HashSet<string>(applied.Changes.Where(c => c.IsAddition).Select(c => c.RuleText), StringComparer.Ordinal);
                foreach (var (mapping, ns) in approved)
                {
                    if (index.Find(mapping) == null)
                    {
                        var stored = StoredMapping.Of(mapping, ns, now, BackendFactory.StoreName(kind));
                        store.Mappings.Add(stored);
                        index.Add(stored, mapping);
                    }
                    var rules = backend.MappingRules(mapping);
                    results.Add(ToObject(mapping, ns.Display, state.BackendName, rules, rules.Count(added.Remove)));
                }
                var after = backend.Read(_host.Token);
                foreach (var (mapping, _) in approved)
                {
                    if (backend.MappingShadowedBy(after, mapping) is { } shadow)
                    {
                        _host.Warning($"{mapping} may do nothing while '{shadow.Rule}' stands in nat PREROUTING: that DNAT takes the same connections, and a connection goes where the first DNAT it meets sends it. Delete it ({shadow.DeleteCommand}), or publish on another port.");
                    }
                    if (backend.MappingBlockedBy(after, mapping) is { } blocked)
                    {
                        _host.Warning($"{mapping} {(blocked.Certain ? "does nothing" : "may do nothing")}: {blocked.Why}. Let its connections through ({blocked.Fix}).");
                    }
                }
                // Connections made before the mapping (a UDP flow to the port, answered by the host or dropped) would keep
                // their old way: conntrack never looks at a new rule for them.
                DropConnections(approved.Select(x => x.Mapping).ToArray());
            }
            if (record) StateStore.Save(store, tx.Lock);
            tx.Complete();
            return results;
        }

        /// <summary>What a request asks for: one mapping per family (and per address of the uplink) it resolves to.</summary>
        private IEnumerable<(PortMapping Mapping, NamespaceRef Namespace, NatBackendKind Kind)> Resolve(MappingRequest request, StoreContent store)
        {
            var families = request.Families != null && request.InternalAddress == null && request.ExternalAddress == null && request.Remote == null ? request.Families.ToArray()
                : request.InternalAddress != null ? new[] { AddressFamilyProfile.Of(request.InternalAddress) }
                : request.ExternalAddress != null ? new[] { AddressFamilyProfile.Of(request.ExternalAddress) }
                : request.Remote is IPNetwork r ? new[] { AddressFamilyProfile.Of(r) }
                : null;
            // Every address given, and -AddressFamily, must name one family: a mapping is of one family.
            var given = new List<(string Parameter, string Value, AddressFamilyProfile Family)>();
            if (request.InternalAddress != null) given.Add(("-InternalAddress", request.InternalAddress.ToString(), AddressFamilyProfile.Of(request.InternalAddress)));
            if (request.ExternalAddress != null) given.Add(("-ExternalAddress", request.ExternalAddress.ToString(), AddressFamilyProfile.Of(request.ExternalAddress)));
            if (request.Remote is IPNetwork remote) given.Add(("-RemoteAddressPrefix", Cidr.Format(remote), AddressFamilyProfile.Of(remote)));
            var split = given.FirstOrDefault(g => g.Family != given[0].Family);
            if (split.Parameter != null)
            {
                throw new NetnsNatException($"{given[0].Parameter} {given[0].Value} is {given[0].Family.Name} and {split.Parameter} {split.Value} is {split.Family.Name}: a mapping is of one address family. Give addresses of one family (two calls for two families).",
                    "AddressFamilyMismatch", ErrorCategory.InvalidArgument);
            }
            if (request.Families != null && given.Count > 0 && !request.Families.Contains(given[0].Family))
            {
                throw new NetnsNatException($"-AddressFamily {string.Join(" and ", request.Families.Select(f => f.Name))} leaves out {given[0].Family.Name}, and {given[0].Parameter} {given[0].Value} is {given[0].Family.Name}. Leave -AddressFamily out, or give an address of its family.",
                    "AddressFamilyMismatch", ErrorCategory.InvalidArgument);
            }
            if (request.ExternalAddress != null) CheckExternalAddress(request.ExternalAddress);

            List<(StoredBinding Binding, IPAddress Address, NamespaceRef Namespace)> targets;
            if (request.Namespace is NamespaceRef ns)
            {
                ns.RequireExists();
                var bindings = store.Bindings.Where(b => b.NamespacePath == ns.Path && (families == null || families.Any(f => f.Name == b.Family))).ToArray();
                if (bindings.Length == 0)
                {
                    var any = store.Bindings.Any(b => b.NamespacePath == ns.Path);
                    throw new NetnsNatException(
                        any ? $"NetnsNat has not enabled {families![0].Name} NAT for '{ns}', and a port mapping goes through it. Run Enable-NamespaceNat -Namespace {ns} -Bridge BRIDGE -AddressFamily {families[0].Name} first, or give an address of the family NetnsNat enabled."
                            : $"NetnsNat has not enabled NAT for '{ns}', and a port mapping goes through it (its route back, its bridge's rules). Run Enable-NamespaceNat -Namespace {ns} -Bridge BRIDGE first; nothing was changed.",
                        "NamespaceNotEnabled", ErrorCategory.ObjectNotFound, null);
                }
                var addresses = NamespaceAddresses(ns);
                targets = new List<(StoredBinding, IPAddress, NamespaceRef)>();
                foreach (var b in bindings)
                {
                    Cidr.TryParseNetwork(b.Subnet, out var subnet);
                    var address = addresses.FirstOrDefault(a => a.AddressFamily == subnet.BaseAddress.AddressFamily && subnet.Contains(a) && !a.IsIPv6LinkLocal);
                    if (address == null)
                    {
                        throw new NetnsNatException(
                            $"'{ns}' has no address on {b.Subnet}, the subnet of {b.Bridge} its {b.Family} NAT is for, so there is nothing to send the mapping's connections to. " +
                            $"Give it one (ip -n {ns.Name ?? "NAME"} addr add ADDRESS/PREFIX dev IFACE), or map another namespace.",
                            "NamespaceHasNoAddress", ErrorCategory.InvalidOperation);
                    }
                    // The namespace as NetnsNat enabled it (by name, or by path): a mapping added by path is the same namespace's.
                    targets.Add((b, address, NamespaceRef.Of(b.Namespace, b.NamespacePath)));
                }
            }
            else
            {
                var inside = request.InternalAddress!;
                var bindings = store.Bindings.Where(b => Cidr.TryParseNetwork(b.Subnet, out var s) && s.BaseAddress.AddressFamily == inside.AddressFamily && s.Contains(inside)).ToArray();
                if (bindings.Length == 0)
                {
                    throw new NetnsNatException(
                        $"-InternalAddress {inside} is on no bridge subnet NetnsNat has enabled NAT for. Enable-NamespaceNat the namespace that has it first, or give the address of a namespace NetnsNat enabled (Get-NamespaceNat lists them).",
                        "AddressNotOnNatBridge", ErrorCategory.ObjectNotFound);
                }
                // Which namespace has the address: the store says who is on the subnet, each namespace's addresses say who is this.
                var owner = bindings.FirstOrDefault(b => NamespaceRef.Of(b.Namespace, b.NamespacePath).Exists && NamespaceAddresses(NamespaceRef.Of(b.Namespace, b.NamespacePath)).Contains(inside));
                if (owner == null)
                {
                    throw new NetnsNatException(
                        $"None of the namespaces NetnsNat enabled on {bindings[0].Subnet} ({string.Join(", ", bindings.Select(b => b.Namespace).Distinct())}) has the address {inside}. " +
                        "Give the address a namespace has (ip -n NAME addr), or -Namespace NAME.",
                        "AddressNotInNamespace", ErrorCategory.ObjectNotFound);
                }
                targets = new List<(StoredBinding, IPAddress, NamespaceRef)> { (owner, inside, NamespaceRef.Of(owner.Namespace, owner.NamespacePath)) };
            }

            foreach (var (binding, address, owner) in targets)
            {
                // A mapping goes through its namespace's NAT: into the same backend.
                var kind = BackendFactory.FromStoreName(binding.Backend);
                if (request.Backend != NatBackendKind.Auto && BackendFactory.Resolve(request.Backend) != kind)
                {
                    throw new NetnsNatException(
                        $"-Backend {request.Backend} does not match the backend of the {binding.Family} NAT of '{owner}' on {binding.Bridge} ({binding.Backend}): a mapping goes into the backend of its namespace's NAT. " +
                        $"Leave -Backend out (or give -Backend {(kind == NatBackendKind.Nftables ? "Nftables" : "Iptables")}). Objects piped in bind it by their Backend property: to publish saved mappings on a namespace that moved, pipe them through Select-Object Namespace, Protocol, ExternalPort, InternalPort, ExternalAddress, RemoteAddressPrefix. Nothing was changed.",
                        "BackendMismatch", ErrorCategory.InvalidArgument);
                }
                var family = AddressFamilyProfile.Parse(binding.Family);
                Cidr.TryParseNetwork(binding.Subnet, out var subnet);
                var allowed = request.Remote is IPNetwork rp && AddressFamilyProfile.Of(rp) == family ? rp : (IPNetwork?)null;
                if (request.Remote != null && allowed == null) continue;
                IReadOnlyList<IPAddress?> externals;
                if (request.ExternalAddress == null)
                {
                    // By default the addresses of the uplink the bridge's NAT goes out by: what the outside reaches.
                    var uplink = HostInterfaceAddresses().Where(a => a.Name == binding.Outbound && a.Address.AddressFamily == family.Family && !a.Address.IsIPv6LinkLocal)
                        .Select(a => (IPAddress?)a.Address).ToArray();
                    if (uplink.Length == 0)
                    {
                        throw new NetnsNatException(
                            $"The uplink {binding.Outbound} of '{owner}' has no {family.Name} address to publish on. Give -ExternalAddress (an address of this host), or {(family == AddressFamilyProfile.IPv6 ? "::" : "0.0.0.0")} for every address of the host.",
                            "NoExternalAddress", ErrorCategory.InvalidOperation);
                    }
                    externals = uplink;
                }
                else
                {
                    externals = new[] { request.ExternalAddress.Equals(family.Any) ? null : request.ExternalAddress };
                }
                foreach (var external in externals)
                {
                    yield return (new PortMapping(request.Protocol, external, request.ExternalPort, address, request.InternalPort, allowed, binding.Bridge, subnet, binding.Outbound), owner, kind);
                }
            }
        }

        /// <summary>An -ExternalAddress must be one of this host's (or every address), and never loopback.</summary>
        private void CheckExternalAddress(IPAddress address)
        {
            if (IPAddress.IsLoopback(address))
            {
                throw new NetnsNatException(
                    $"-ExternalAddress {address} is loopback. NetnsNat does not publish on loopback: a namespace is reached from 127.0.0.1 only with route_localnet, which also lets other machines reach it (moby#45610). " +
                    "Leave -ExternalAddress out (the uplink's address; the host reaches the mapping there too), or give another address of this host.",
                    "LoopbackExternalAddress", ErrorCategory.InvalidArgument);
            }
            if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)) return;
            if (address.IsIPv6LinkLocal || address.IsIPv6Multicast || (address.AddressFamily == AddressFamily.InterNetwork && (address.GetAddressBytes()[0] >= 224 || address.Equals(IPAddress.Broadcast))))
            {
                throw new NetnsNatException($"-ExternalAddress {address} is not an address a mapping can listen on (link-local, multicast or broadcast). Give a unicast address of this host, or leave -ExternalAddress out.",
                    "InvalidExternalAddress", ErrorCategory.InvalidArgument);
            }
            if (!HostAddresses().Contains(address))
            {
                var own = HostInterfaceAddresses().Where(a => a.Address.AddressFamily == address.AddressFamily && !IPAddress.IsLoopback(a.Address) && !a.Address.IsIPv6LinkLocal)
                    .Select(a => $"{a.Address} ({a.Name})").Take(6).ToArray();
                throw new NetnsNatException(
                    $"-ExternalAddress {address} is not an address of this host, so no connection to it would arrive here. " +
                    $"Give one of the host's addresses{(own.Length == 0 ? string.Empty : " (" + string.Join(", ", own) + ")")}, or {(address.AddressFamily == AddressFamily.InterNetworkV6 ? "::" : "0.0.0.0")} for every address.",
                    "ExternalAddressNotLocal", ErrorCategory.InvalidArgument);
            }
        }

        /// <summary>A namespace's addresses, read once per call (a pipeline of a thousand mappings of one namespace reads them once).</summary>
        private IReadOnlySet<IPAddress> NamespaceAddresses(NamespaceRef ns)
        {
            _host.Token.ThrowIfCancellationRequested();
            if (_namespaceAddresses.TryGetValue(ns.Path, out var known)) return known;
            return _namespaceAddresses[ns.Path] = new ConntrackService(_host).NamespaceAddresses(ns);
        }

        /// <summary>The command that removes exactly this mapping.</summary>
        public static string RemoveCommand(PortMapping m) => $"Remove-NatPortMapping -Protocol {m.ProtocolName} -ExternalPort {m.ExternalPort} -ExternalAddress {m.ExternalText}";

        /// <summary>The command that adds this very mapping (again): every parameter that makes it what it is.</summary>
        public static string AddCommand(PortMapping m, NamespaceRef ns) =>
            $"Add-NatPortMapping {ns.Parameter} -Protocol {m.ProtocolName} -ExternalPort {m.ExternalPort} -InternalPort {m.InternalPort} -ExternalAddress {m.ExternalText}"
            + (m.Remote is IPNetwork r ? " -RemoteAddressPrefix " + Cidr.Format(r) : string.Empty);

        /// <summary>A mapping as Get-NamespaceNat names it: "Tcp 198.51.100.1:8080 -> 10.0.0.2:80" (the NatPortMapping's text).</summary>
        public static string Describe(PortMapping m) => new NatPortMapping(null, m.ProtocolName, m.ExternalText, m.ExternalPort, m.InternalAddress.ToString(), m.InternalPort,
            null, m.Bridge, m.Outbound, string.Empty, Array.Empty<string>(), 0).ToString();

        private NatPortMapping ToObject(PortMapping m, string? ns, string backend, IReadOnlyList<string> rules, int changed, string status = "InForce", string? detail = null) =>
            new NatPortMapping(ns, m.ProtocolName, m.ExternalText, m.ExternalPort, m.InternalAddress.ToString(), m.InternalPort,
                m.Remote is IPNetwork r ? Cidr.Format(r) : null, m.Bridge, m.Outbound, backend, rules, changed, status, detail);

        /// <summary>
        /// Drops the conntrack entries of connections to the mappings' external sides (for a mapping on every address, to
        /// any of the host's addresses at its port), in one read of the table, without a question of its own (the
        /// mapping's question covered it): after a change, no connection keeps the way it had.
        /// </summary>
        private void DropConnections(IReadOnlyList<PortMapping> mappings)
        {
            if (mappings.Count == 0) return;
            var endpoints = mappings.Select(m => (m.Protocol == "udp" ? ProtocolType.Udp : ProtocolType.Tcp, m.ExternalAddress, m.ExternalPort)).ToArray();
            new ConntrackService(_host).DeleteConnectionsTo(endpoints, mappings.Any(m => m.ExternalAddress == null) ? HostAddresses() : null);
        }

        /// <summary>A mapping to list or remove, with the namespace the store knows it for.</summary>
        internal sealed record Listed(PortMapping Mapping, string? Namespace, string? NamespacePath, string Backend, IReadOnlyList<string> Missing, NatBackendKind Kind);

        /// <summary>
        /// The mappings of NetnsNat's that the rules hold, and those the store records whose rules are gone (RulesMissing),
        /// of the families given.
        /// </summary>
        public IReadOnlyList<Listed> List(IEnumerable<AddressFamilyProfile> families, StoreContent store, NatBackendKind only = NatBackendKind.Auto)
        {
            var listed = new List<Listed>();
            foreach (var family in families)
            {
                // The backends installed (or with a table), and those the store records a mapping in.
                var kinds = BackendFactory.Listed(only, family).Union(store.Mappings.Where(s => s.Family == family.Name).Select(KindOf)).Where(k => only == NatBackendKind.Auto || k == only).Distinct().ToArray();
                foreach (var kind in kinds) ListOf(family, kind, store, listed);
            }
            return listed;
        }

        private void ListOf(AddressFamilyProfile family, NatBackendKind kind, StoreContent store, List<Listed> listed)
        {
            var backend = Backend(family, kind);
            bool haveTools = backend.ReadTools.All(t => ProcessRunner.Which(t) != null);
            var storedOfFamily = store.Mappings.Where(s => s.Family == family.Name && KindOf(s) == kind).ToArray();
            if (!haveTools && storedOfFamily.Length == 0) return;
            var state = backend.Read(_host.Token);
            var index = new StoreIndex(store);
            var standing = backend.Mappings(state, index.Complete);
            var inRules = new StoreIndex(new StoreContent());
            foreach (var m in standing)
            {
                var stored = index.Find(m)?.Stored;
                if (stored != null) inRules.Add(stored, m);
                listed.Add(new Listed(m, stored?.Namespace, stored?.NamespacePath, state.BackendName, backend.MissingMappingRules(state, m), kind));
            }
            foreach (var s in storedOfFamily)
            {
                if (s.ToMapping() is not { } m || inRules.Find(m) != null) continue;
                listed.Add(new Listed(m, s.Namespace, s.NamespacePath, state.BackendName, backend.MissingMappingRules(state, m), kind));
            }
        }

        /// <summary>A listed mapping as Get-NatPortMapping emits it.</summary>
        public NatPortMapping ToObject(Listed l)
        {
            var backend = Backend(l.Mapping.Family, l.Kind);
            var status = l.Missing.Count == 0 ? "InForce" : "RulesMissing";
            var detail = l.Missing.Count == 0 ? null : $"{l.Missing.Count} of its rules do not stand: {string.Join("; ", l.Missing)}. Add-NatPortMapping (or Restore-NamespaceNat) lays them again.";
            return ToObject(l.Mapping, l.Namespace, l.Backend, backend.MappingRules(l.Mapping), 0, status, detail);
        }

        /// <summary>
        /// Removes mappings (the rules they do not share with mappings that stay, their store records, their connections),
        /// each family's in one write, inside the caller's transaction. Returns what was removed, or null under -WhatIf.
        /// </summary>
        public IReadOnlyList<NatPortMapping>? Remove(IReadOnlyList<(PortMapping Mapping, NatBackendKind Kind)> mappings, StoreContent store, NatTransaction tx, object? group)
        {
            var results = new List<NatPortMapping>();
            bool any = false;
            var known = new StoreIndex(store);
            foreach (var (family, kind) in mappings.Select(m => (m.Mapping.Family, m.Kind)).Distinct().OrderBy(g => g.Family.Name, StringComparer.Ordinal).ToArray())
            {
                var mine = mappings.Where(m => m.Mapping.Family == family && m.Kind == kind).Select(m => m.Mapping).ToArray();
                var backend = Backend(family, kind);
                var state = backend.Read(_host.Token);
                var standing = backend.Mappings(state, known.Complete);
                // One question per mapping, with all of its commands: a mapping is removed whole (rules, record, connections) or not at all.
                var approved = new List<PortMapping>();
                foreach (var m in mine)
                {
                    var own = backend.PlanRemoveMapping(state, m, standing.Where(s => !(s.ExternalPort == m.ExternalPort && s.SameAs(m))).ToArray());
                    var action = string.Join("; ", own.Changes.Select(c => c.CommandLine).Append($"forget the mapping in {StateStore.CurrentPath} and drop its connections from conntrack"));
                    if (_host.ShouldProcess(m.ToString(), action)) approved.Add(m);
                }
                if (approved.Count == 0) continue;
                any = true;
                var applied = Rules(family, kind).ApplyApproved(s =>
                {
                    var staying = backend.Mappings(s, known.Complete).Where(x => !approved.Any(m => m.ExternalPort == x.ExternalPort && m.SameAs(x))).ToArray();
                    return backend.Merge(approved.Select(m => backend.PlanRemoveMapping(s, m, staying)).ToArray());
                }, $"{approved.Count} port mapping(s)", tx, group);
                var removed = applied.Changes.Select(c => c.RuleText).ToHashSet(StringComparer.Ordinal);
                foreach (var m in approved)
                {
                    var stored = known.Find(m)?.Stored;
                    if (stored != null) store.Mappings.Remove(stored);
                    var rules = backend.MappingRules(m);
                    results.Add(ToObject(m, stored?.Namespace, state.BackendName, rules, rules.Count(removed.Contains), "Removed"));
                }
                DropConnections(approved);
            }
            return any ? results : null;
        }

        /// <summary>
        /// Remove-NatPortMapping: the mappings of NetnsNat's that the items select (a pipeline's, all of them), removed
        /// in one transaction; an item that selects none is its error (what names it), and the others go on. Returns
        /// the removed mappings, or null under -WhatIf.
        /// </summary>
        public IReadOnlyList<NatPortMapping>? RemoveWhere(IReadOnlyList<(Func<Listed, bool> Select, string What, object Target)> items)
        {
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var listed = List(AddressFamilyProfile.All, store);
            var selected = new List<Listed>();
            foreach (var (select, what, target) in items)
            {
                var mine = listed.Where(select).ToArray();
                if (mine.Length == 0)
                {
                    _host.Try(target, () => throw new NetnsNatException($"NetnsNat has no port mapping {what}; nothing was changed for it. Get-NatPortMapping lists the mappings it has.",
                        "PortMappingNotFound", ErrorCategory.ObjectNotFound));
                    continue;
                }
                selected.AddRange(mine.Where(m => !selected.Contains(m)));
            }
            if (selected.Count == 0) return null;
            var removed = Remove(selected.Select(l => (l.Mapping, l.Kind)).ToArray(), store, tx, null);
            if (removed != null) StateStore.Save(store, tx.Lock);
            tx.Complete();
            return removed;
        }

        /// <summary>
        /// Disable-NamespaceNat's part: the mappings the store records for a namespace on a bridge (of the families
        /// given), removed inside its transaction. Returns the records of those removed (each approved whole: rules,
        /// record and connections), which the store must forget even when the rest of the Disable is declined.
        /// </summary>
        public IReadOnlyList<StoredMapping> RemoveForNamespace(NamespaceRef ns, string bridge, IReadOnlyCollection<string> families, StoreContent store, NatTransaction tx)
        {
            // Loops rather than LINQ over tuples: fewer generic instantiations over value types, which no ReadyToRun
            // image holds, on Disable-NamespaceNat's path (the list itself is one; see NlAttribute).
            var mappings = new List<(PortMapping, NatBackendKind)>();
            foreach (var s in store.Mappings)
            {
                if (s.NamespacePath == ns.Path && s.Bridge == bridge && families.Contains(s.Family) && s.ToMapping() is { } m) mappings.Add((m, KindOf(s)));
            }
            if (mappings.Count == 0) return Array.Empty<StoredMapping>();
            _host.Verbose($"Removing the {mappings.Count} port mapping(s) of '{ns}': {string.Join(", ", mappings.Select(m => m.Item1.ToString()))}.");
            var before = store.Mappings.ToArray();
            Remove(mappings, store, tx, null);
            return before.Where(m => !store.Mappings.Contains(m)).ToArray();
        }

        /// <summary>
        /// Restore-NamespaceNat's part: lays the rules of the mappings the store records for the namespaces restored
        /// again, each family in one write, inside the caller's transaction.
        /// </summary>
        public void Reapply(Func<StoredMapping, bool> match)
        {
            using var tx = NatTransaction.Begin(_host, Settings.LockTimeout);
            var store = StateStore.Load(tx.Lock);
            var mappings = store.Mappings.Where(match).Where(s => NamespaceRef.Of(s.Namespace, s.NamespacePath).Exists)
                .Select(s => (Mapping: s.ToMapping(), Kind: KindOf(s))).Where(m => m.Mapping != null).Select(m => (Mapping: m.Mapping!, m.Kind)).ToArray();
            var index = new StoreIndex(store);
            // Every question first, one per mapping with all of its commands (as Add-NatPortMapping asks: a mapping is laid
            // again whole or not at all); then one write per family and backend.
            var writes = new List<Approved>();
            foreach (var (family, kind) in mappings.Select(m => (m.Mapping.Family, m.Kind)).Distinct().OrderBy(g => g.Family.Name, StringComparer.Ordinal).ToArray())
            {
                var mine = mappings.Where(m => m.Mapping.Family == family && m.Kind == kind).Select(m => m.Mapping).ToArray();
                var backend = Backend(family, kind);
                var state = backend.Read(_host.Token);
                // A mapping of another's that took the port while this one's rules were gone stays; this one is skipped, with a warning.
                var taken = new PortTable(backend.Mappings(state, index.Complete));
                var approved = new List<PortMapping>();
                foreach (var m in mine)
                {
                    if (taken.InTheWay(m) is { } other)
                    {
                        _host.Warning($"Not restoring {m}: {other.ExternalEndpoint} now goes to {other.TargetText}. Remove that mapping ({RemoveCommand(other)}) and run Restore-NamespaceNat again, or {RemoveCommand(m)}.");
                        continue;
                    }
                    var own = backend.PlanAddMappings(state, new[] { m });
                    if (own.IsEmpty) _host.Verbose($"{m} stands as it should: nothing to change.");
                    else if (_host.ShouldProcess(m.ToString(), Commands(own))) approved.Add(m);
                }
                if (approved.Count > 0) writes.Add(new Approved(Rules(family, kind), backend, approved.ToArray()));
            }
            foreach (var write in writes)
            {
                write.Rules.ApplyApproved(s => write.Backend.PlanAddMappings(s, write.Mappings), $"{write.Mappings.Length} port mapping(s)", tx, null);
            }
            tx.Complete();
        }
    }
}
