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
    public sealed class NatCheckResult
    {
        public NatCheckResult(string @namespace, string? bridge, string? outbound, string check, NatCheckStatus status, string detail, string? fix)
        {
            Namespace = @namespace;
            Bridge = bridge;
            Outbound = outbound;
            Check = check;
            Status = status;
            Detail = detail;
            Fix = fix;
        }

        public string Namespace { get; }

        /// <summary>The bridge the checks were made against (given, or found from the namespace's address).</summary>
        public string? Bridge { get; }

        /// <summary>The uplink the checks were made against (given, or the host's default-route interface).</summary>
        public string? Outbound { get; }

        /// <summary>The check's stable name, such as DefaultRoute or Masquerade.</summary>
        public string Check { get; }
        public NatCheckStatus Status { get; }
        public string Detail { get; }

        /// <summary>The exact command or cmdlet that repairs it; null when the check passed.</summary>
        public string? Fix { get; }

        public override string ToString() => $"{Check}: {Status}";
    }
}
