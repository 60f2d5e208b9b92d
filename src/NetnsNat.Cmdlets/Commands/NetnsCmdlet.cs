using System;
using System.IO;
using System.Management.Automation;
using System.Threading;
using NetnsNat.Backends;
using NetnsNat.Core;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Commands
{
    /// <summary>
    /// What every NetnsNat cmdlet shares: cancellation, the process runner, the privilege and tool checks, input
    /// checks, and the mapping of failures to error records. It is the host the services run against.
    /// </summary>
    public abstract class NetnsCmdlet : PSCmdlet, IDisposable, ICommandHost
    {
        private readonly CancellationTokenSource _stop = new CancellationTokenSource();
        private ProcessRunner? _runner;

        /// <summary>Cancelled by Ctrl+C (StopProcessing); every external command is killed with it.</summary>
        internal CancellationToken Token => _stop.Token;

        internal ProcessRunner Runner => _runner ??= new ProcessRunner();

        CancellationToken ICommandHost.Token => Token;

        ProcessRunner ICommandHost.Runner => Runner;

        // After Ctrl+C the pipeline refuses every write; a rollback that narrates must still run to its end.
        void ICommandHost.Verbose(string message)
        {
            if (!Stopping) WriteVerbose(message);
        }

        void ICommandHost.Warning(string message)
        {
            if (!Stopping) WriteWarning(message);
        }

        void ICommandHost.Debug(string message)
        {
            if (!Stopping) WriteDebug(message);
        }

        void ICommandHost.Progress(ProgressRecord record)
        {
            if (!Stopping) WriteProgress(record);
        }

        bool ICommandHost.ShouldProcess(string target, string action) => ShouldProcess(target, action);

        bool ICommandHost.Try(object? target, Action action) => Guard(target, action);

        /// <summary>The backend for a family (the iptables backend for now).</summary>
        internal INatBackend Backend(AddressFamilyProfile family) => BackendFactory.Create(Runner, family);

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

        /// <summary>Parses a subnet and returns it normalized to its network address ("10.0.0.1/24" gives 10.0.0.0/24).</summary>
        internal bool TryNormalizeSubnet(string? text, string parameter, out System.Net.IPNetwork network)
        {
            network = default;
            string reason;
            if (Cidr.TryParsePrefix(text, out var prefix, out reason))
            {
                if (!prefix.IsIPv4)
                {
                    reason = "it is an IPv6 network; NAT here is for IPv4 networks such as 10.0.0.0/24";
                }
                else
                {
                    network = prefix.Network;
                    return true;
                }
            }
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{text}' is not an IPv4 network: {reason}.", parameter),
                "InvalidSubnet", ErrorCategory.InvalidArgument, text));
            return false;
        }

        internal bool TryParseGateway(string? text, out System.Net.IPAddress address)
        {
            if (Cidr.TryParseAddress(text, out address) && AddressFamilyProfile.Of(address) == AddressFamilyProfile.IPv4) return true;
            WriteError(new ErrorRecord(
                new ArgumentException($"-Gateway '{text}' is not an IPv4 address. Give the bridge address, for example 10.0.0.1.", "Gateway"),
                "InvalidGateway", ErrorCategory.InvalidArgument, text));
            return false;
        }

        /// <summary>Runs one item's work and turns what went wrong into the right error record; true when it succeeded.</summary>
        internal bool Guard(object? target, Action action)
        {
            try
            {
                action();
                return true;
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
            catch (RulesetMovedException ex)
            {
                WriteError(new ErrorRecord(ex, "RulesetChanged", ErrorCategory.ResourceBusy, target));
            }
            catch (NetlinkException ex)
            {
                WriteError(new ErrorRecord(ex, ex.ErrorId, ErrorCategory.InvalidOperation, target));
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
            return false;
        }
    }
}
