namespace NetnsNat
{
    /// <summary>The verdict of one Test-NamespaceNat check.</summary>
    public enum NatCheckStatus
    {
        Pass,
        Warn,
        Fail,
    }

    /// <summary>One check of Test-NamespaceNat: what was checked, the verdict, what was seen, and how to fix it.</summary>
    /// <param name="Namespace">The namespace checked.</param>
    /// <param name="Bridge">The bridge the checks were made against (given, or found from the namespace's address).</param>
    /// <param name="Outbound">The uplink the checks were made against (given, or the host's default-route interface).</param>
    /// <param name="Check">The check's stable name, such as DefaultRoute or Masquerade.</param>
    /// <param name="Status">Pass, Warn or Fail.</param>
    /// <param name="Detail">What the check saw.</param>
    /// <param name="Fix">The exact command or cmdlet that repairs it; null when the check passed.</param>
    public sealed record NatCheckResult(string Namespace, string? Bridge, string? Outbound, string Check, NatCheckStatus Status, string Detail, string? Fix)
    {
        public override string ToString() => $"{Check}: {Status}";
    }
}
