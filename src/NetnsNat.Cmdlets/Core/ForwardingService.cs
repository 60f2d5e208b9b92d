using System;
using System.IO;
using System.Management.Automation;
using NetnsNat.Linux;
using NetnsNat.Model;

namespace NetnsNat.Core
{
    /// <summary>The forwarding sysctl of each family: read, set when it differs (with -WhatIf), undone by a transaction.</summary>
    internal sealed class ForwardingService
    {
        private readonly ICommandHost _host;

        public ForwardingService(ICommandHost host) => _host = host;

        public static IpForwardingState Read(AddressFamilyProfile family) =>
            new IpForwardingState(family.Name, family.ForwardingKey, Sysctl.ReadFlag(family.ForwardingPath), false);

        /// <summary>Sets the forwarding sysctl; writes only when it differs. Null under -WhatIf when a write was needed.</summary>
        public IpForwardingState? Set(AddressFamilyProfile family, bool value)
        {
            if (Sysctl.ReadFlag(family.ForwardingPath) == value) return new IpForwardingState(family.Name, family.ForwardingKey, value, false);
            var command = ProcessRunner.FormatCommandLine("sysctl", new[] { "-w", $"{family.ForwardingKey}={(value ? 1 : 0)}" });
            if (!_host.ShouldProcess(family.ForwardingKey, command)) return null;
            _host.Verbose($"Setting {family.ForwardingKey} to {(value ? 1 : 0)} ({family.ForwardingPath}).");
            Write(family, value);
            return new IpForwardingState(family.Name, family.ForwardingKey, value, true);
        }

        /// <summary>Sets it inside a transaction, which puts the old value back if the call fails.</summary>
        public IpForwardingState? Set(AddressFamilyProfile family, bool value, NatTransaction tx)
        {
            var state = Set(family, value);
            if (state?.Changed == true) tx.Record(null, $"{family.ForwardingKey} back to {(value ? 0 : 1)}", () => Write(family, !value));
            return state;
        }

        /// <summary>Writes the sysctl, turning a read-only or forbidden /proc/sys into an error that says what to do.</summary>
        public static void Write(AddressFamilyProfile family, bool value)
        {
            try
            {
                Sysctl.WriteFlag(family.ForwardingPath, value);
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw new NetnsNatException(
                    $"Could not write {family.ForwardingKey} ({family.ForwardingPath}): {ex.Message}. /proc/sys is read-only here (a container, or a read-only mount): set {family.ForwardingKey}={(value ? 1 : 0)} " +
                    "where it can be written (on the host, or with 'docker run --sysctl'), then run again.",
                    "SysctlNotWritable", ErrorCategory.PermissionDenied, ex);
            }
        }
    }
}
