using System;
using System.Threading;
using NetnsNat.Linux;

namespace NetnsNat.Core
{
    /// <summary>
    /// What a service needs of the cmdlet that runs it: cancellation, the process runner, the streams, and the
    /// -WhatIf/-Confirm question. Services call these on the pipeline thread only.
    /// </summary>
    internal interface ICommandHost
    {
        /// <summary>Cancelled by Ctrl+C (StopProcessing).</summary>
        CancellationToken Token { get; }

        ProcessRunner Runner { get; }

        void Verbose(string message);

        void Warning(string message);

        void Debug(string message);

        void Progress(System.Management.Automation.ProgressRecord record);

        /// <summary>True under -WhatIf (or $WhatIfPreference): every ShouldProcess says no, and nothing changes.</summary>
        bool WhatIf { get; }

        /// <summary>-WhatIf/-Confirm: true when the change may be made.</summary>
        bool ShouldProcess(string target, string action);

        /// <summary>Runs one item's work; what goes wrong becomes that item's error record. True when it succeeded.</summary>
        bool Try(object? target, Action action);
    }
}
