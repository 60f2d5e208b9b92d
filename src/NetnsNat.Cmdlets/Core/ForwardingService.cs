using System;
using System.IO;
using System.Linq;
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

        /// <summary>
        /// Sets it inside a transaction, which puts the old value back if the call fails; the change is in the family's
        /// group, so a call none of whose work of that family got through can roll it back alone.
        /// </summary>
        public IpForwardingState? Set(AddressFamilyProfile family, bool value, NatTransaction tx)
        {
            var state = Set(family, value);
            if (state?.Changed == true) tx.Record(family, $"{family.ForwardingKey} back to {(value ? 0 : 1)}", () => Write(family, !value));
            return state;
        }

        /// <summary>The accept_ra sysctl of an interface (/proc/sys/net/ipv6/conf/IFACE/accept_ra).</summary>
        public static string AcceptRaPath(string iface) => $"/proc/sys/net/ipv6/conf/{iface}/accept_ra";

        /// <summary>Its name for sysctl(8) (Sysctl.InterfaceKey: a VLAN's dots become slashes).</summary>
        public static string AcceptRaKey(string iface) => Sysctl.InterfaceKey("ipv6", iface, "accept_ra");

        /// <summary>An interface's accept_ra; null when it has none (no IPv6 on it, or no such interface).</summary>
        public static int? ReadAcceptRa(string iface)
        {
            try
            {
                return int.TryParse(File.ReadAllText(AcceptRaPath(iface)).Trim(), out var v) ? v : null;
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>
        /// With IPv6 forwarding on, the kernel ignores router advertisements on an interface whose accept_ra is 1: an
        /// uplink that learns its IPv6 default route by SLAAC loses it when it expires. Raises accept_ra from 1 to 2
        /// on the uplink (2: accept them even when forwarding); recorded in the store, put back when NetnsNat turns
        /// IPv6 forwarding off (the caller records a change in the store once its IPv6 work got through; the transaction
        /// undoes it with IPv6's group). Null under -WhatIf when a write was needed.
        /// </summary>
        public AcceptRaState? KeepRouterAdvertisements(string uplink, NatTransaction tx)
        {
            var value = ReadAcceptRa(uplink);
            if (value == null) return null;
            if (value != 1) return new AcceptRaState(uplink, value.Value, value.Value, false);
            var key = AcceptRaKey(uplink);
            if (!_host.ShouldProcess(key, ProcessRunner.FormatCommandLine("sysctl", new[] { "-w", key + "=2" }))) return null;
            _host.Verbose($"Setting {key} to 2: with IPv6 forwarding on, the kernel would otherwise ignore the router advertisements {uplink} learns its IPv6 default route from.");
            WriteAcceptRa(uplink, 2);
            tx.Record(AddressFamilyProfile.IPv6, $"{key} back to 1", () => WriteAcceptRa(uplink, 1));
            return new AcceptRaState(uplink, 2, 1, true);
        }

        /// <summary>Puts back the accept_ra values NetnsNat raised (when they still read 2), once IPv6 forwarding is off again.</summary>
        public void RestoreAcceptRa(StoreContent store, NatTransaction? tx)
        {
            foreach (var (iface, previous) in store.AcceptRaChanged.ToArray())
            {
                store.AcceptRaChanged.Remove(iface);
                if (ReadAcceptRa(iface) != 2) continue;
                var key = AcceptRaKey(iface);
                if (!_host.ShouldProcess(key, ProcessRunner.FormatCommandLine("sysctl", new[] { "-w", $"{key}={previous}" }))) continue;
                _host.Verbose($"Setting {key} back to {previous}, as it was before NetnsNat turned IPv6 forwarding on.");
                WriteAcceptRa(iface, previous);
                tx?.Record(null, $"{key} back to 2", () => WriteAcceptRa(iface, 2));
            }
        }

        private static void WriteAcceptRa(string iface, int value)
        {
            try
            {
                File.WriteAllText(AcceptRaPath(iface), value.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw new NetnsNatException(
                    $"Could not write {AcceptRaKey(iface)} ({ex.Message}). /proc/sys is read-only here: set it where it can be written, or run with -AddressFamily IPv4.",
                    "SysctlNotWritable", ErrorCategory.PermissionDenied, ex);
            }
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
