using System;
using System.Management.Automation;

namespace NetnsNat
{
    /// <summary>A failure the module detected itself, with its error id and category.</summary>
    public sealed class NetnsNatException : Exception
    {
        public NetnsNatException(string message, string errorId, ErrorCategory category, Exception? inner = null)
            : base(message, inner)
        {
            ErrorId = errorId;
            Category = category;
        }

        public string ErrorId { get; }
        public ErrorCategory Category { get; }
    }
}
