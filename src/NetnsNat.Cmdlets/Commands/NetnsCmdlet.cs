using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Linux;

namespace NetnsNat.Commands
{
    /// <summary>What every NetnsNat cmdlet shares: cancellation, the tools, the privilege check, input checks, errors.</summary>
    public abstract class NetnsCmdlet : PSCmdlet, IDisposable
    {
        private readonly CancellationTokenSource _stop = new CancellationTokenSource();
        private ProcessRunner? _runner;

        /// <summary>Cancelled by Ctrl+C (StopProcessing); every external command is killed with it.</summary>
        protected internal CancellationToken Token => _stop.Token;

        protected internal ProcessRunner Runner => _runner ??= new ProcessRunner();

        protected internal IpRoute2 Ip => new IpRoute2(Runner);

        protected internal Iptables Iptables => new Iptables(Runner);

        protected override void StopProcessing() => _stop.Cancel();

        public void Dispose()
        {
            _stop.Dispose();
            GC.SuppressFinalize(this);
        }

        /// <summary>Ends the command unless the process holds CAP_NET_ADMIN (root, or sudo).</summary>
        protected void RequireNetAdmin()
        {
            if (Privileges.HasNetAdmin()) return;
            ThrowTerminatingError(new ErrorRecord(
                new UnauthorizedAccessException($"{MyInvocation.MyCommand.Name} changes or reads the kernel's network configuration and needs root. Run PowerShell as root: sudo pwsh."),
                "RootRequired", ErrorCategory.PermissionDenied, null));
        }

        /// <summary>Ends the command when a tool is missing, naming the package that has it.</summary>
        protected void RequireTools(params string[] tools)
        {
            foreach (var tool in tools)
            {
                if (ProcessRunner.Which(tool) != null) continue;
                var ex = new ToolNotFoundException(tool, ProcessRunner.PackageOf(tool));
                ThrowTerminatingError(new ErrorRecord(ex, "ToolNotFound", ErrorCategory.NotInstalled, tool));
            }
        }

        protected bool CheckInterfaceName(string? name, string parameter)
        {
            if (Names.IsValidInterface(name, out var reason)) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{name}' is not a valid interface name: {reason}. Use 1 to {Names.MaxInterfaceName} characters from letters, digits, '.', '_' and '-', as in br0 or eth0.", parameter),
                "InvalidInterfaceName", ErrorCategory.InvalidArgument, name));
            return false;
        }

        protected bool CheckNamespaceName(string? name, string parameter = "Namespace")
        {
            if (Names.IsValidNamespace(name, out var reason)) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{name}' is not a valid namespace name: {reason}. Use a plain name of letters, digits, '.', '_' and '-', as 'ip netns list' shows them.", parameter),
                "InvalidNamespaceName", ErrorCategory.InvalidArgument, name));
            return false;
        }

        /// <summary>Parses a subnet and returns it normalized to its network address ("10.0.0.1/24" gives "10.0.0.0/24").</summary>
        protected bool TryNormalizeSubnet(string? text, string parameter, out Ipv4Cidr network)
        {
            if (Ipv4Cidr.TryParse(text, out var cidr, out var reason))
            {
                network = cidr.Network;
                return true;
            }
            network = default;
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{text}' is not an IPv4 network: {reason}.", parameter),
                "InvalidSubnet", ErrorCategory.InvalidArgument, text));
            return false;
        }

        protected bool TryParseGateway(string? text, out uint address)
        {
            if (Ipv4Cidr.TryParseAddress(text, out address)) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-Gateway '{text}' is not an IPv4 address. Give the bridge address, for example 10.0.0.1.", "Gateway"),
                "InvalidGateway", ErrorCategory.InvalidArgument, text));
            return false;
        }

        /// <summary>Asks -WhatIf/-Confirm about one change, showing the command that does it.</summary>
        protected internal bool ShouldRun(string target, string tool, IEnumerable<string> arguments) =>
            ShouldProcess(target, ProcessRunner.FormatCommandLine(tool, arguments));

        /// <summary>Runs one item's work and turns what went wrong into the right error record.</summary>
        protected void Guard(object? target, Action action)
        {
            try
            {
                action();
            }
            catch (PipelineStoppedException)
            {
                throw;
            }
            catch (OperationCanceledException) when (Token.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
            catch (ToolNotFoundException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "ToolNotFound", ErrorCategory.NotInstalled, ex.Tool));
            }
            catch (NetnsNatException ex)
            {
                WriteError(new ErrorRecord(ex, ex.ErrorId, ex.Category, target));
            }
            catch (NamespaceNotFoundException ex)
            {
                WriteError(new ErrorRecord(ex, "NamespaceNotFound", ErrorCategory.ObjectNotFound, ex.Namespace));
            }
            catch (TimeoutException ex)
            {
                WriteError(new ErrorRecord(ex, "CommandTimedOut", ErrorCategory.OperationTimeout, target));
            }
            catch (IptablesException ex)
            {
                WriteError(new ErrorRecord(ex, "IptablesFailed", ErrorCategory.InvalidOperation, target));
            }
            catch (NftablesException ex)
            {
                WriteError(new ErrorRecord(ex, "NftablesRefused", ex.Errno == 1 ? ErrorCategory.PermissionDenied : ErrorCategory.InvalidOperation, target));
            }
            catch (NetlinkException ex)
            {
                WriteError(new ErrorRecord(ex, "RouteFailed", ErrorCategory.InvalidOperation, target));
            }
            catch (IpCommandException ex)
            {
                WriteError(new ErrorRecord(ex, "IpCommandFailed", ErrorCategory.InvalidOperation, target));
            }
            catch (UnauthorizedAccessException ex)
            {
                WriteError(new ErrorRecord(new UnauthorizedAccessException($"{ex.Message} Run PowerShell as root (sudo pwsh) and make sure /proc/sys is writable.", ex),
                    "AccessDenied", ErrorCategory.PermissionDenied, target));
            }
            catch (IOException ex)
            {
                WriteError(new ErrorRecord(ex, "SystemIOFailed", ErrorCategory.WriteError, target));
            }
        }
    }
}
