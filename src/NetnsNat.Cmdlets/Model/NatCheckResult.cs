namespace NetnsNat
{
    /// <summary>The verdict of one Test-NamespaceNat check, in order of severity.</summary>
    public enum NatCheckStatus
    {
        /// <summary>The check passed.</summary>
        Pass,

        /// <summary>Works, but something may bite (the detail says what).</summary>
        Warn,

        /// <summary>The check failed: the fix says what repairs it.</summary>
        Fail,

        /// <summary>The check could not run (a tool failed or timed out): not a pass.</summary>
        Error,
    }

    /// <summary>One check of Test-NamespaceNat: what was checked, the verdict, what was seen, and how to fix it.</summary>
    /// <param name="Namespace">The namespace checked.</param>
    /// <param name="Bridge">The bridge the checks were made against (given, or found from the namespace's address).</param>
    /// <param name="Outbound">The uplink the checks were made against (given, or the host's default-route interface).</param>
    /// <param name="Check">The check's stable name, such as DefaultRoute or Masquerade.</param>
    /// <param name="Severity">Pass, Warn, Fail or Error, as the enum (sortable; Status has its name).</param>
    /// <param name="Detail">What the check saw.</param>
    /// <param name="Fix">The exact command or cmdlet that repairs it; null when the check passed.</param>
    /// <param name="AddressFamily">The family checked (IPv4 or IPv6): a dual-stack namespace gets each family's checks.</param>
    public sealed record NatCheckResult(string Namespace, string? Bridge, string? Outbound, string Check, NatCheckStatus Severity, string Detail, string? Fix, string AddressFamily = "IPv4")
    {
        /// <summary>"Pass", "Warn", "Fail" or "Error": the verdict as its name, so ConvertTo-Json and CSV show words.</summary>
        public string Status => Severity.ToString();

        public override string ToString() => $"{Check}: {Status}";
    }
}
