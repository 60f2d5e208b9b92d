using System;
using System.Collections.Generic;
using System.Linq;

namespace NetnsNat
{
    /// <summary>The forwarding sysctl of one address family in the current network namespace.</summary>
    /// <param name="AddressFamily">IPv4 or IPv6.</param>
    /// <param name="Key">The sysctl name, net.ipv4.ip_forward or net.ipv6.conf.all.forwarding.</param>
    /// <param name="Enabled">Whether forwarding is on after the call.</param>
    /// <param name="Changed">True when this call wrote the sysctl.</param>
    public sealed record IpForwardingState(string AddressFamily, string Key, bool Enabled, bool Changed)
    {
        public override string ToString() => $"{Key} = {(Enabled ? 1 : 0)}{(Changed ? " (changed)" : string.Empty)}";
    }

    /// <summary>An uplink's IPv6 accept_ra, which IPv6 forwarding makes matter: with 1, the kernel ignores router advertisements once forwarding is on.</summary>
    /// <param name="Interface">The uplink.</param>
    /// <param name="Value">accept_ra after the call: 2 accepts router advertisements with forwarding on.</param>
    /// <param name="PreviousValue">accept_ra before the call.</param>
    /// <param name="Changed">True when this call wrote it.</param>
    public sealed record AcceptRaState(string Interface, int Value, int PreviousValue, bool Changed)
    {
        public override string ToString() => $"{Linux.Sysctl.InterfaceKey("ipv6", Interface, "accept_ra")} = {Value}{(Changed ? $" (was {PreviousValue})" : string.Empty)}";
    }

    /// <summary>One address of a bridge (IPv4, or IPv6 global or unique-local) and the subnet it is on.</summary>
    /// <param name="Bridge">The bridge.</param>
    /// <param name="Address">The bridge's own address: the gateway of the namespaces on the bridge.</param>
    /// <param name="PrefixLength">The prefix length of the address.</param>
    /// <param name="Subnet">The network in CIDR form, host bits cleared (10.1.2.3/16 is on 10.1.0.0/16).</param>
    /// <param name="IsUp">Whether the bridge is up.</param>
    public sealed record BridgeSubnet(string Bridge, string Address, int PrefixLength, string Subnet, bool IsUp)
    {
        /// <summary>IPv4 or IPv6.</summary>
        public string AddressFamily => Address.IndexOf(':') >= 0 ? "IPv6" : "IPv4";

        public override string ToString() => Subnet;
    }

    /// <summary>A MASQUERADE rule of nat POSTROUTING and the FORWARD rules NetnsNat keeps beside it.</summary>
    /// <param name="Subnet">The source network that is masqueraded.</param>
    /// <param name="Outbound">The uplink the traffic leaves by.</param>
    /// <param name="Bridge">The bridge the FORWARD rules are for, or null when the rule has none.</param>
    /// <param name="Backend">nf_tables or legacy: which iptables backend holds the rules.</param>
    /// <param name="Rules">The rules in iptables-save form.</param>
    /// <param name="ChangedRules">How many rules the call added (Add-) or deleted (Remove-); 0 for Get-NatMasquerade.</param>
    /// <param name="Removable">False for a rule Remove-NatMasquerade does not take (a negated uplink such as Docker's "! -o docker0", or other matches and options): Note says how to remove it.</param>
    /// <param name="Note">Why the rule is not NetnsNat's shape and how to remove it; null for a plain rule.</param>
    public sealed record NatMasqueradeRule(string Subnet, string Outbound, string? Bridge, string Backend, IReadOnlyList<string> Rules, int ChangedRules, bool Removable = true, string? Note = null)
    {
        /// <summary>IPv4 (iptables) or IPv6 (ip6tables).</summary>
        public string AddressFamily => Subnet.IndexOf(':') >= 0 ? "IPv6" : "IPv4";

        public override string ToString() => $"{Subnet} -> {Outbound}";
    }

    /// <summary>The default route of one address family in a network namespace.</summary>
    /// <param name="Namespace">The namespace.</param>
    /// <param name="Gateway">The gateway after the call, or null when there is no default route.</param>
    /// <param name="Device">The interface the route leaves by.</param>
    /// <param name="PreviousGateway">The gateway of the default route before the call, or null when there was none.</param>
    /// <param name="Changed">True when this call changed the route.</param>
    /// <param name="AddressFamily">IPv4 or IPv6: which default route.</param>
    public sealed record NamespaceRoute(string Namespace, string? Gateway, string? Device, string? PreviousGateway, bool Changed, string AddressFamily = "IPv4")
    {
        public override string ToString() =>
            (Gateway == null ? "no default route" : $"default via {Gateway}{(Device == null ? string.Empty : " dev " + Device)}")
            + (Changed ? $" (was {(PreviousGateway == null ? "none" : "via " + PreviousGateway)})" : string.Empty);
    }

    /// <summary>What Enable-NamespaceNat or Disable-NamespaceNat did for one address family of a namespace.</summary>
    /// <param name="AddressFamily">IPv4 or IPv6.</param>
    /// <param name="Subnet">The bridge subnet of the family.</param>
    /// <param name="Outbound">The uplink of the family.</param>
    /// <param name="Gateway">The namespace's default gateway of the family (the bridge's address); null after Disable.</param>
    /// <param name="ForwardingState">The family's forwarding sysctl after the call.</param>
    /// <param name="Rule">The family's rules added or removed.</param>
    /// <param name="Route">The namespace's default route of the family.</param>
    public sealed record NamespaceNatFamily(string AddressFamily, string Subnet, string Outbound, string? Gateway, IpForwardingState ForwardingState, NatMasqueradeRule Rule, NamespaceRoute? Route)
    {
        public override string ToString() => $"{AddressFamily} {Subnet} via {Outbound}";
    }

    /// <summary>What Enable-NamespaceNat or Disable-NamespaceNat did for one namespace, over every address family it did.</summary>
    /// <param name="Namespace">The namespace.</param>
    /// <param name="Bridge">The bridge it is attached to.</param>
    /// <param name="Subnet">The bridge subnet (of the first family: IPv4 on a dual-stack bridge; Families has each).</param>
    /// <param name="Outbound">The uplink.</param>
    /// <param name="Gateway">The namespace's default gateway: the bridge address.</param>
    /// <param name="Enabled">True after Enable-NamespaceNat, false after Disable-NamespaceNat.</param>
    /// <param name="ForwardingState">The forwarding sysctl after the call.</param>
    /// <param name="Rule">The rules added or removed.</param>
    /// <param name="Route">The namespace's default route.</param>
    /// <param name="Dns">The nameservers the namespace resolves with (from the resolv.conf it sees).</param>
    /// <param name="ResolvConf">The resolv.conf the namespace sees: /etc/netns/NAME/resolv.conf when there is one, else the host's.</param>
    /// <param name="Families">Each address family's part (IPv4 first); by default the one the other parameters describe.</param>
    /// <param name="AcceptRa">The IPv6 uplink's accept_ra, when the call set up IPv6.</param>
    public sealed record NamespaceNatResult(string Namespace, string Bridge, string Subnet, string Outbound, string? Gateway, bool Enabled,
        IpForwardingState ForwardingState, NatMasqueradeRule Rule, NamespaceRoute? Route, IReadOnlyList<string>? Dns = null, string? ResolvConf = null,
        IReadOnlyList<NamespaceNatFamily>? Families = null, AcceptRaState? AcceptRa = null)
    {
        /// <summary>Whether forwarding is on after the call (for every family of the call).</summary>
        public bool Forwarding => Families.All(f => f.ForwardingState.Enabled);

        public IReadOnlyList<string> Dns { get; } = Dns ?? Array.Empty<string>();

        public IReadOnlyList<NamespaceNatFamily> Families { get; } = Families ?? new[] { new NamespaceNatFamily(Subnet.IndexOf(':') >= 0 ? "IPv6" : "IPv4", Subnet, Outbound, Gateway, ForwardingState, Rule, Route) };

        /// <summary>IPv4, IPv6 or Both: the families the call did.</summary>
        public string AddressFamily => Families.Count > 1 ? "Both" : Families[0].AddressFamily;

        /// <summary>Every family's bridge subnet.</summary>
        public IReadOnlyList<string> Subnets => Families.Select(f => f.Subnet).ToArray();

        /// <summary>Every family's rules (added by Enable, removed by Disable).</summary>
        public IReadOnlyList<NatMasqueradeRule> Rules => Families.Select(f => f.Rule).ToArray();

        /// <summary>Every family's default route.</summary>
        public IReadOnlyList<NamespaceRoute> Routes => Families.Where(f => f.Route != null).Select(f => f.Route!).ToArray();

        public override string ToString() => $"{Namespace} on {Bridge} ({string.Join(", ", Subnets)}) via {Outbound}: {(Enabled ? "enabled" : "disabled")}";
    }
}

namespace NetnsNat
{
    /// <summary>A namespace NetnsNat enabled, as its state store records it, and whether it is in force now.</summary>
    /// <param name="Namespace">The namespace's name; null for one given by path (see NamespacePath).</param>
    /// <param name="NamespacePath">The file that holds the namespace (/run/netns/NAME for a named one).</param>
    /// <param name="Bridge">The bridge it is on.</param>
    /// <param name="Subnet">The bridge subnet its NAT is for.</param>
    /// <param name="Gateway">Its default gateway: the bridge's address on that subnet.</param>
    /// <param name="Outbound">The uplink.</param>
    /// <param name="AddressFamily">IPv4 or IPv6.</param>
    /// <param name="Backend">The firewall backend that holds its rules.</param>
    /// <param name="Dns">The nameservers -Dns gave, or null.</param>
    /// <param name="InForce">True when its namespace and bridge exist, its rules stand and its route goes via the gateway.</param>
    /// <param name="Status">InForce, NamespaceGone, BridgeGone, RulesMissing or RouteMissing.</param>
    /// <param name="Detail">What is missing, when it is not in force.</param>
    /// <param name="EnabledAt">When Enable-NamespaceNat first enabled it (UTC).</param>
    /// <param name="PortMappings">The ports NetnsNat published for it in this family ("Tcp 198.51.100.1:8080 -> 10.0.0.2:80"); Get-NatPortMapping has them whole.</param>
    public sealed record NamespaceNatBinding(string? Namespace, string NamespacePath, string Bridge, string Subnet, string Gateway, string Outbound,
        string AddressFamily, string Backend, IReadOnlyList<string>? Dns, bool InForce, string Status, string? Detail, DateTime EnabledAt, IReadOnlyList<string>? PortMappings = null)
    {
        public IReadOnlyList<string> PortMappings { get; } = PortMappings ?? Array.Empty<string>();

        public override string ToString() => $"{Namespace ?? NamespacePath} on {Bridge} ({Subnet}) via {Outbound}: {Status}";
    }
}

namespace NetnsNat
{
    /// <summary>Where NetnsNat writes a namespace's NAT (-Backend).</summary>
    public enum NatBackendKind
    {
        /// <summary>iptables when an iptables program is installed, otherwise nftables.</summary>
        Auto,

        /// <summary>Rules in iptables' nat POSTROUTING and filter FORWARD (through nf_tables or legacy), as the lesson writes them.</summary>
        Iptables,

        /// <summary>Elements of the sets of NetnsNat's own nftables table, inet netnsnat.</summary>
        Nftables,
    }
}
