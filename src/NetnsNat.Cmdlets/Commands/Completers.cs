using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>Shared shape of the completers: filter names by the word typed so far.</summary>
    public abstract class NameCompleter : IArgumentCompleter
    {
        protected abstract IEnumerable<string> Candidates();

        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
            IEnumerable<string> names;
            try
            {
                names = Candidates().ToArray();
            }
            catch (IOException)
            {
                yield break;
            }
            catch (UnauthorizedAccessException)
            {
                yield break;
            }
            foreach (var name in names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
            {
                yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, name);
            }
        }

        protected static IEnumerable<string> SysClassNet(Func<string, bool> filter) =>
            Directory.Exists("/sys/class/net")
                ? Directory.GetFileSystemEntries("/sys/class/net").Where(filter).Select(Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal)
                : Enumerable.Empty<string>();
    }

    /// <summary>Completes bridge names (interfaces with /sys/class/net/NAME/bridge) that the cmdlets take.</summary>
    public sealed class BridgeNameCompleter : NameCompleter
    {
        protected override IEnumerable<string> Candidates() => SysClassNet(p => Directory.Exists(Path.Combine(p, "bridge"))).Where(n => Names.IsValidInterface(n, out _));
    }

    /// <summary>Completes interface names, those of the default routes (IPv4's, then IPv6's) first.</summary>
    public sealed class InterfaceNameCompleter : NameCompleter
    {
        protected override IEnumerable<string> Candidates()
        {
            var all = SysClassNet(p => Path.GetFileName(p) != "lo").Where(n => Names.IsValidInterface(n, out _)).ToList();
            var first = new[] { IpRoute2.DefaultRouteInterface(AddressFamilyProfile.IPv4), IpRoute2.DefaultRouteInterface(AddressFamilyProfile.IPv6) }
                .Where(n => n != null && all.Contains(n)).Select(n => n!).Distinct().ToArray();
            return first.Concat(all.Except(first));
        }
    }

    /// <summary>Completes named network namespaces (/run/netns), only names the cmdlets take ("ns:1" is left out).</summary>
    public sealed class NamespaceNameCompleter : NameCompleter
    {
        protected override IEnumerable<string> Candidates() => IpRoute2.Namespaces().Where(n => Names.IsValidNamespace(n, out _));
    }

    /// <summary>Completes a fixed list of names, whatever the case typed.</summary>
    public abstract class ListCompleter : IArgumentCompleter
    {
        protected abstract IEnumerable<string> Names { get; }

        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
            foreach (var name in Names.Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)))
            {
                yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, name);
            }
        }
    }

    /// <summary>Completes the protocols Get-NatSession and Remove-NatSession filter on.</summary>
    public sealed class SessionProtocolCompleter : ListCompleter
    {
        protected override IEnumerable<string> Names => Core.SessionFilter.ProtocolNames;
    }

    /// <summary>Completes -Protocol of the port mapping cmdlets: Tcp, Udp.</summary>
    public sealed class PortMappingProtocolCompleter : ListCompleter
    {
        protected override IEnumerable<string> Names => PortMappingCmdlet.ProtocolNames;
    }

    /// <summary>Completes the subnets of the bridges (needs ip; no process is started for the other completers).</summary>
    public sealed class SubnetCompleter : NameCompleter
    {
        protected override IEnumerable<string> Candidates()
        {
            if (ProcessRunner.Which("ip") == null) return Enumerable.Empty<string>();
            var links = new IpRoute2(new ProcessRunner()).Links(default);
            return links.Where(l => l.IsBridge)
                .SelectMany(l => l.Of(AddressFamilyProfile.IPv4).Concat(l.Of(AddressFamilyProfile.IPv6).Where(a => !a.Address.IsIPv6LinkLocal)))
                .Select(a => Cidr.Format(a.Network)).Distinct();
        }
    }
}

namespace NetnsNat.Commands
{
    /// <summary>
    /// -Backend from what the result objects say in their Backend property ("iptables-nft", "iptables-legacy",
    /// "nftables"), as well as the names Auto, Iptables and Nftables: Get-NamespaceNat output piped into
    /// Enable-NamespaceNat keeps each namespace in its backend.
    /// </summary>
    internal sealed class NatBackendTransformationAttribute : System.Management.Automation.ArgumentTransformationAttribute
    {
        public override object Transform(System.Management.Automation.EngineIntrinsics engineIntrinsics, object inputData)
        {
            var value = inputData is System.Management.Automation.PSObject ps ? ps.BaseObject : inputData;
            return value is string text && Backends.BackendFactory.FromResultName(text) is { } kind ? kind : inputData;
        }
    }
}
