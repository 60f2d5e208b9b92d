using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using CliWrap;

namespace NetnsNat.Linux
{
    /// <summary>What one external command did.</summary>
    internal sealed record ProcessResult(string CommandLine, int ExitCode, string StandardOutput, string StandardError)
    {
        public bool Succeeded => ExitCode == 0;

        /// <summary>The first line of stderr, or the exit code when the tool said nothing.</summary>
        public string Diagnostic =>
            StandardError.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? $"exit code {ExitCode}";
    }

    /// <summary>A tool the module needs is not on PATH.</summary>
    public sealed class ToolNotFoundException : Exception
    {
        internal ToolNotFoundException(string tool, string package)
            : base($"'{tool}' was not found on PATH ({Environment.GetEnvironmentVariable("PATH")}) nor in /usr/local/sbin, /usr/sbin or /sbin. Install the {package} package (Debian/Ubuntu: apt-get install {package}) and try again.")
        {
            Tool = tool;
            Package = package;
        }

        public string Tool { get; }
        public string Package { get; }
    }

    /// <summary>Runs external tools with an argument array (never a shell string), a timeout and a cancellation token.</summary>
    internal sealed class ProcessRunner
    {
        /// <summary>How long one external command may run: 30 s, or NETNSNAT_TIMEOUT_SECONDS.</summary>
        public static TimeSpan DefaultTimeout => Settings.CommandTimeout;

        /// <summary>Where tools are looked for after PATH: a cron or systemd PATH often lacks the sbin folders.</summary>
        private static readonly string[] SbinFolders = { "/usr/local/sbin", "/usr/sbin", "/sbin" };

        /// <summary>The Debian package that has a tool.</summary>
        public static string PackageOf(string tool) => tool switch
        {
            "ip" or "ss" => "iproute2",
            "nft" => "nftables",
            "conntrack" => "conntrack",
            _ when tool.StartsWith("iptables", StringComparison.Ordinal) || tool.StartsWith("ip6tables", StringComparison.Ordinal) => "iptables",
            _ => tool,
        };

        /// <summary>The full path of a tool as PATH finds it, then in the sbin folders; null when neither has it.</summary>
        public static string? Which(string tool)
        {
            var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
            foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(SbinFolders))
            {
                var candidate = Path.Combine(dir, tool);
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }

        public static string Resolve(string tool) => Which(tool) ?? throw new ToolNotFoundException(tool, PackageOf(tool));

        /// <summary>The command as a person would type it, for -WhatIf text and error messages.</summary>
        public static string FormatCommandLine(string tool, IEnumerable<string> arguments) =>
            string.Join(" ", new[] { tool }.Concat(arguments.Select(Quote)));

        private static string Quote(string argument) =>
            argument.Length > 0 && argument.All(c => char.IsLetterOrDigit(c) || "-_./:,=@%+".IndexOf(c) >= 0)
                ? argument
                : "'" + argument.Replace("'", "'\\''") + "'";

        public ProcessResult Run(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken, string? standardInput = null, TimeSpan? timeout = null)
        {
            var path = Resolve(tool);
            var stdout = new StringBuilder();
            var stderr = new StringBuilder();
            var commandLine = FormatCommandLine(tool, arguments);
            var limit = timeout ?? DefaultTimeout;
            using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeoutSource.CancelAfter(limit);

            var command = Cli.Wrap(path)
                .WithArguments(arguments)
                .WithEnvironmentVariables(env => env.Set("LC_ALL", "C"))
                .WithValidation(CommandResultValidation.None)
                .WithStandardOutputPipe(PipeTarget.ToStringBuilder(stdout))
                .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr));
            if (standardInput != null)
            {
                command = command.WithStandardInputPipe(PipeSource.FromString(standardInput));
            }

            try
            {
                var result = command.ExecuteAsync(timeoutSource.Token).GetAwaiter().GetResult();
                return new ProcessResult(commandLine, result.ExitCode, stdout.ToString(), stderr.ToString());
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"'{commandLine}' did not finish within {limit.TotalSeconds:0} seconds and was stopped.");
            }
        }
    }
}
