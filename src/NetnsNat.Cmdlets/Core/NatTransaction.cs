using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;

namespace NetnsNat.Core
{
    /// <summary>
    /// One call's changes to the host (rules, sysctls, routes, files), made under the ruleset lock and undone as a
    /// whole, or by group, when the call fails. The lock is taken when the transaction begins and released only in
    /// Dispose, after any rollback has finished: no other NetnsNat process can read or write between a failure and
    /// its undo. Dispose without Complete rolls everything back (Ctrl+C and exceptions included).
    /// </summary>
    internal sealed class NatTransaction : IDisposable
    {
        private readonly ICommandHost _host;
        // A class, not a value tuple: no List code to JIT-compile in a fresh pwsh (see NlAttribute).
        private sealed record Step(object? Group, string What, Action Undo);

        private readonly List<Step> _undo = new List<Step>();
        private bool _completed;

        private NatTransaction(ICommandHost host, RulesetLock held)
        {
            _host = host;
            Lock = held;
        }

        /// <summary>The held ruleset lock: what the write path asks for.</summary>
        public RulesetLock Lock { get; }

        public static NatTransaction Begin(ICommandHost host, TimeSpan lockTimeout)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var held = RulesetLock.Acquire(host.Token, lockTimeout, host.Verbose);
            host.Debug($"Holding the ruleset lock {held.Path} (waited {clock.Elapsed.TotalMilliseconds:0.00} ms).");
            return new NatTransaction(host, held);
        }

        /// <summary>Whether anything was done that a rollback would undo.</summary>
        public bool HasChanges => _undo.Count > 0;

        /// <summary>Records how to undo a change just made; group ties it to an item whose own failure undoes it alone.</summary>
        public void Record(object? group, string what, Action undo) => _undo.Add(new Step(group, what, undo));

        /// <summary>Undoes the changes of one group (or, with null, of every group), newest first, keeping the lock.</summary>
        public void RollBack(object? group)
        {
            for (int i = _undo.Count - 1; i >= 0; i--)
            {
                var (g, what, undo) = _undo[i];
                if (group != null && !Equals(g, group)) continue;
                _undo.RemoveAt(i);
                try
                {
                    _host.Verbose($"Rolling back: {what}.");
                    undo();
                }
                catch (Exception ex) when (ex is not PipelineStoppedException)
                {
                    _host.Warning($"Rolling back a step failed ({what}): {ex.Message}");
                }
            }
        }

        /// <summary>Keeps every change made: nothing is rolled back when the transaction ends.</summary>
        public void Complete() => _completed = true;

        public void Dispose()
        {
            try
            {
                if (!_completed && _undo.Count > 0) RollBack(null);
            }
            finally
            {
                Lock.Dispose();
            }
        }
    }
}
