using System;
using System.Collections.Generic;

namespace NetnsNat
{
    /// <summary>The forwarding sysctl of one address family in the current network namespace.</summary>
    public sealed class IpForwardingState
    {
        public IpForwardingState(string addressFamily, string key, bool enabled, bool changed)
        {
            AddressFamily = addressFamily;
            Key = key;
            Enabled = enabled;
            Changed = changed;
        }

        /// <summary>IPv4 or IPv6.</summary>
        public string AddressFamily { get; }

        /// <summary>The sysctl name, net.ipv4.ip_forward or net.ipv6.conf.all.forwarding.</summary>
        public string Key { get; }
        public bool Enabled { get; }

        /// <summary>True when this call wrote the sysctl.</summary>
        public bool Changed { get; }
    }

    /// <summary>One IPv4 address of a bridge and the subnet it is on.</summary>
    public sealed class BridgeSubnet
    {
        public BridgeSubnet(string bridge, string address, int prefixLength, string subnet, bool isUp)
        {
            Bridge = bridge;
            Address = address;
            PrefixLength = prefixLength;
            Subnet = subnet;
            IsUp = isUp;
        }

        public string Bridge { get; }

        /// <summary>The bridge's own address: the gateway of the namespaces on the bridge.</summary>
        public string Address { get; }
        public int PrefixLength { get; }

        /// <summary>The network in CIDR form, host bits cleared (10.1.2.3/16 is on 10.1.0.0/16).</summary>
        public string Subnet { get; }
        public bool IsUp { get; }

        public override string ToString() => Subnet;
    }

    /// <summary>A MASQUERADE rule of nat POSTROUTING and the FORWARD rules NetnsNat keeps beside it.</summary>
    public sealed class NatMasqueradeRule
    {
        public NatMasqueradeRule(string subnet, string outbound, string? bridge, string backend, IReadOnlyList<string> rules, int changedRules)
        {
            Subnet = subnet;
            Outbound = outbound;
            Bridge = bridge;
            Backend = backend;
            Rules = rules;
            ChangedRules = changedRules;
        }

        /// <summary>The source network that is masqueraded.</summary>
        public string Subnet { get; }

        /// <summary>The uplink the traffic leaves by.</summary>
        public string Outbound { get; }

        /// <summary>The bridge the FORWARD rules are for, or null when the rule has none.</summary>
        public string? Bridge { get; }

        /// <summary>nf_tables or legacy: which iptables backend holds the rules.</summary>
        public string Backend { get; }

        /// <summary>The rules in iptables-save form.</summary>
        public IReadOnlyList<string> Rules { get; }

        /// <summary>How many rules the call added (Add-) or deleted (Remove-); 0 for Get-NatMasquerade.</summary>
        public int ChangedRules { get; }

        public override string ToString() => $"{Subnet} -> {Outbound}";
    }

    /// <summary>The IPv4 default route of a named network namespace.</summary>
    public sealed class NamespaceRoute
    {
        public NamespaceRoute(string @namespace, string? gateway, string? device, string? previousGateway, bool changed)
        {
            Namespace = @namespace;
            Gateway = gateway;
            Device = device;
            PreviousGateway = previousGateway;
            Changed = changed;
        }

        public string Namespace { get; }
        public string? Gateway { get; }
        public string? Device { get; }

        /// <summary>The gateway of the default route before the call, or null when there was none.</summary>
        public string? PreviousGateway { get; }
        public bool Changed { get; }
    }

    /// <summary>What Enable-NamespaceNat or Disable-NamespaceNat did for one namespace.</summary>
    public sealed class NamespaceNatResult
    {
        public NamespaceNatResult(string @namespace, string bridge, string subnet, string outbound, string? gateway, bool enabled,
            IpForwardingState forwarding, NatMasqueradeRule rule, NamespaceRoute? route, IReadOnlyList<string>? dns = null, string? resolvConf = null)
        {
            Dns = dns ?? Array.Empty<string>();
            ResolvConf = resolvConf;
            Namespace = @namespace;
            Bridge = bridge;
            Subnet = subnet;
            Outbound = outbound;
            Gateway = gateway;
            Enabled = enabled;
            ForwardingState = forwarding;
            Rule = rule;
            Route = route;
        }

        public string Namespace { get; }
        public string Bridge { get; }
        public string Subnet { get; }
        public string Outbound { get; }

        /// <summary>The namespace's default gateway: the bridge address.</summary>
        public string? Gateway { get; }

        /// <summary>True after Enable-NamespaceNat, false after Disable-NamespaceNat.</summary>
        public bool Enabled { get; }

        /// <summary>Whether IPv4 forwarding is on after the call.</summary>
        public bool Forwarding => ForwardingState.Enabled;
        public IpForwardingState ForwardingState { get; }
        public NatMasqueradeRule Rule { get; }
        public NamespaceRoute? Route { get; }

        /// <summary>The nameservers the namespace resolves with (from the resolv.conf it sees).</summary>
        public IReadOnlyList<string> Dns { get; }

        /// <summary>The resolv.conf the namespace sees: /etc/netns/NAME/resolv.conf when there is one, else the host's.</summary>
        public string? ResolvConf { get; }
    }
}
