using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Runtime.InteropServices;
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
        private readonly ManualResetEventSlim _finished = new ManualResetEventSlim(false);
        private PosixSignalRegistration? _sigterm, _sighup;
        private int _signalExitCode;
        private ProcessRunner? _runner;

        /// <summary>Cancelled by Ctrl+C (StopProcessing); every external command is killed with it.</summary>
        internal CancellationToken Token => _stop.Token;

        internal ProcessRunner Runner => _runner ??= new ProcessRunner();

        CancellationToken ICommandHost.Token => Token;

        ProcessRunner ICommandHost.Runner => Runner;

        // After Ctrl+C the pipeline refuses every write; a rollback that narrates must still run to its end.
        void ICommandHost.Verbose(string message)
        {
            if (!Stopping && !_quietVerbose) WriteVerbose(message);
        }

        void ICommandHost.Warning(string message)
        {
            if (!Stopping) WriteWarning(message);
        }

        void ICommandHost.Debug(string message)
        {
            if (!Stopping) WriteDebug(message);
        }

        /// <summary>True when -Debug would turn every verbose message into a prompt that could not be answered.</summary>
        private bool _quietVerbose;

        /// <summary>
        /// -Debug on a compiled cmdlet makes every verbose message a prompt (VerbosePreference Inquire, unless -Verbose
        /// is given too), which fails where nobody can answer (pwsh -c, a service). -Debug here means: narrate, verbose
        /// and debug both, without stopping; -Verbose:$false still silences the verbose part.
        /// </summary>
        private void DebugWithoutPrompts()
        {
            if (!MyInvocation.BoundParameters.TryGetValue("Debug", out var value) || value is not SwitchParameter { IsPresent: true }) return;
            try
            {
                var runtime = CommandRuntime;
                var flags = System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public;
                var verboseSet = runtime.GetType().GetProperty("IsVerboseFlagSet", flags)!;
                if (!(bool)verboseSet.GetValue(runtime)!) runtime.GetType().GetProperty("Verbose", flags)!.SetValue(runtime, true);
            }
            catch (Exception ex) when (ex is System.Reflection.TargetInvocationException || ex is NullReferenceException || ex is ArgumentException || ex is MethodAccessException || ex is InvalidCastException)
            {
                _quietVerbose = true;
            }
        }

        void ICommandHost.Progress(ProgressRecord record)
        {
            if (!Stopping) WriteProgress(record);
        }

        bool ICommandHost.ShouldProcess(string target, string action) => ShouldProcess(target, action);

        bool ICommandHost.WhatIf =>
            MyInvocation.BoundParameters.TryGetValue("WhatIf", out var given) ? given is SwitchParameter { IsPresent: true }
            : SessionState.PSVariable.GetValue("WhatIfPreference") is { } preference && LanguagePrimitives.IsTrue(preference);

        bool ICommandHost.Try(object? target, Action action) => Guard(target, action);

        /// <summary>The backend a cmdlet's -Backend chose (Auto when it has none, or it was not given).</summary>
        internal virtual NatBackendKind BackendChoice => NatBackendKind.Auto;

        /// <summary>The backend for a family, of the kind -Backend chose.</summary>
        internal INatBackend BackendFor(AddressFamilyProfile family) => BackendFor(family, BackendChoice);

        /// <summary>The backend for a family, of a given kind.</summary>
        internal INatBackend BackendFor(AddressFamilyProfile family, NatBackendKind kind) => BackendFactory.Create(Runner, family, kind, ((ICommandHost)this).Debug, _nftables ??= new NftablesSession());

        private NftablesSession? _nftables;

        protected override void StopProcessing() => _stop.Cancel();

        /// <summary>
        /// Sets up what every call shares (SIGTERM and SIGHUP handled like Ctrl+C; a warning for an invalid
        /// NETNSNAT_TIMEOUT_SECONDS), then the cmdlet's own Begin.
        /// </summary>
        protected sealed override void BeginProcessing()
        {
            _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
            DebugWithoutPrompts();
            if (Settings.Warning is { } warning) WriteWarning(warning);
            Begin();
        }

        /// <summary>The cmdlet's own BeginProcessing: privilege and tool checks.</summary>
        protected virtual void Begin()
        {
        }

        /// <summary>
        /// SIGTERM (systemd stopping a unit, timeout(1)) or SIGHUP: cancel as Ctrl+C does (the running command is
        /// killed, the call rolls back what it applied), and exit with 128 + the signal once the cmdlet has finished.
        /// </summary>
        private void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            int code = context.Signal == PosixSignal.SIGHUP ? 129 : 143;
            _signalExitCode = code;
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
            // Dispose exits once the cmdlet has rolled back; this thread only when it never gets there.
            var exit = new Thread(() =>
            {
                if (!_finished.Wait(TimeSpan.FromSeconds(60))) Environment.Exit(code);
            }) { IsBackground = true, Name = "NetnsNat signal exit" };
            exit.Start();
        }

        public void Dispose()
        {
            _sigterm?.Dispose();
            _sighup?.Dispose();
            _finished.Set();
            _stop.Dispose();
            GC.SuppressFinalize(this);
            // After a SIGTERM or SIGHUP, exit as the signal asked, now that the call has rolled back.
            if (_signalExitCode != 0) Environment.Exit(_signalExitCode);
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

        /// <summary>
        /// A namespace name as a user gave it, or as 'ip netns list' prints it ("ns1 (id: 4)", so that
        /// "ip netns list | Enable-NamespaceNat" works): the plain name, or null after an error.
        /// </summary>
        protected string? NamespaceName(string? given, string parameter = "Namespace")
        {
            var name = given;
            if (name != null)
            {
                var id = name.IndexOf(" (id: ", StringComparison.Ordinal);
                if (id > 0 && name.EndsWith(')') && int.TryParse(name.AsSpan(id + 6, name.Length - id - 7), out _)) name = name.Substring(0, id);
            }
            return CheckNamespaceName(name, parameter) ? name : null;
        }

        protected bool CheckNamespaceName(string? name, string parameter = "Namespace")
        {
            if (Names.IsValidNamespace(name, out var reason)) return true;
            if (name != null && name.StartsWith('/'))
            {
                WriteError(new ErrorRecord(
                    new ArgumentException($"-{parameter} '{name}' is a path, not the name of a namespace. Give a path with -NamespacePath {name}; -{parameter} takes names as 'ip netns list' shows them.", parameter),
                    "InvalidNamespaceName", ErrorCategory.InvalidArgument, name));
                return false;
            }
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{name}' is not a valid namespace name: {reason}. Use a plain name of letters, digits, '.', '_' and '-', as 'ip netns list' shows them.", parameter),
                "InvalidNamespaceName", ErrorCategory.InvalidArgument, name));
            return false;
        }

        /// <summary>
        /// The namespaces a call names: by name (-Namespace, checked as names) or by path (-NamespacePath: an absolute
        /// path to a file that holds a network namespace). Bad ones are reported and left out.
        /// </summary>
        internal IEnumerable<NamespaceRef> NamespaceRefs(IEnumerable<string?>? names, IEnumerable<string?>? paths)
        {
            var named = (names ?? Array.Empty<string>()).Where(n => n != null).ToArray();
            var pathed = (paths ?? Array.Empty<string>()).Where(p => p != null).ToArray();
            if (named.Length == 0 && pathed.Length == 0)
            {
                WriteError(new ErrorRecord(new ArgumentException("Name the namespace: -Namespace NAME (as 'ip netns list' shows it) or -NamespacePath PATH (/proc/PID/ns/net, /run/docker/netns/ID).", "Namespace"),
                    "NamespaceRequired", ErrorCategory.InvalidArgument, null));
                yield break;
            }
            // An object with both (a Get-NamespaceNat binding of a named namespace) is named; its path is where the name leads.
            if (named.Length > 0) pathed = Array.Empty<string>();
            foreach (var given in named)
            {
                if (NamespaceName(given) is { } name) yield return NamespaceRef.Named(name);
            }
            foreach (var path in pathed)
            {
                if (string.IsNullOrWhiteSpace(path) || !path!.StartsWith('/') || path.Contains('\0') || path.Split('/').Contains(".."))
                {
                    WriteError(new ErrorRecord(
                        new ArgumentException($"-NamespacePath '{path}' is not an absolute path. Give the file that holds the namespace, such as /proc/PID/ns/net or /run/docker/netns/ID.", "NamespacePath"),
                        "InvalidNamespacePath", ErrorCategory.InvalidArgument, path));
                    continue;
                }
                yield return NamespaceRef.AtPath(path);
            }
        }

        /// <summary>
        /// Parses a subnet and returns it normalized to its network address ("10.0.0.1/24" gives 10.0.0.0/24; IPv6
        /// too, except networks NetnsNat never NATs: ::/0, link-local, multicast, IPv4-mapped).
        /// </summary>
        /// <remarks>
        /// With forNat false (Get- and Remove-NatMasquerade, which list and take away rules that may be anyone's), an
        /// IPv4 0.0.0.0/0 is taken: the lesson's readers often have "-o eth0 -j MASQUERADE" to list and remove.
        /// </remarks>
        internal bool TryNormalizeSubnet(string? text, string parameter, out System.Net.IPNetwork network, bool forNat = true)
        {
            network = default;
            string? reason;
            bool v6 = text != null && text.IndexOf(':') >= 0;
            if (Cidr.TryParsePrefix(text, out var prefix, out var error))
            {
                reason = prefix.IsIPv4 ? (forNat ? Cidr.WhyNotNatNetwork4(prefix.Network) : null) : Cidr.WhyNotNatNetwork6(prefix.Network);
                if (reason == null)
                {
                    network = prefix.Network;
                    return true;
                }
            }
            else
            {
                reason = error;
            }
            var example = v6 ? "fd00:0:0:1::/64" : "10.0.0.0/24";
            WriteError(new ErrorRecord(
                new ArgumentException($"-{parameter} '{text}' is not {(v6 ? "an IPv6" : "an IPv4")} network NetnsNat can NAT: {reason}{(reason != null && reason.Contains("for example", StringComparison.Ordinal) ? "." : $". Give it as ADDRESS/PREFIX, for example {example}.")}", parameter),
                "InvalidSubnet", ErrorCategory.InvalidArgument, text));
            return false;
        }

        internal bool TryParseGateway(string? text, out System.Net.IPAddress address)
        {
            string? reason = null;
            if (Cidr.TryParseAddress(text, out address))
            {
                reason = AddressFamilyProfile.Of(address) == AddressFamilyProfile.IPv6 ? Cidr.WhyNotGateway6(address) : null;
                if (reason == null) return true;
            }
            WriteError(new ErrorRecord(
                new ArgumentException($"-Gateway '{text}' is not an address a default route can go via{(reason == null ? string.Empty : ": " + reason)}. Give the bridge's address, for example 10.0.0.1 or fd00:0:0:1::1.", "Gateway"),
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
                WriteError(new ErrorRecord(ex, "NftablesRefused", ex.Errno switch { 1 => ErrorCategory.PermissionDenied, 17 or 39 => ErrorCategory.ResourceExists, _ => ErrorCategory.InvalidOperation }, target));
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
