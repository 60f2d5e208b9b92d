using System.Management.Automation;

namespace ColdFloor
{
    /// <summary>One cmdlet with two parameters and -WhatIf that emits one object: what any binary module's first call costs.</summary>
    [Cmdlet(VerbsLifecycle.Enable, "ColdFloor", SupportsShouldProcess = true)]
    public sealed class EnableColdFloorCommand : PSCmdlet
    {
        [Parameter(Position = 0)]
        public string? Namespace { get; set; }

        [Parameter(Position = 1)]
        public string? Bridge { get; set; }

        protected override void ProcessRecord()
        {
            if (ShouldProcess(Namespace ?? string.Empty, "Enable")) WriteObject(new Result(Namespace, Bridge));
        }
    }

    public sealed record Result(string? Namespace, string? Bridge);
}
