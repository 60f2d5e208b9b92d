using System;

namespace NetnsNat.Linux
{
    /// <summary>
    /// What the module accepts as an interface or namespace name. The kernel itself allows almost any byte in an
    /// interface name; the module accepts the portable subset (letters, digits, '.', '_', '-') so that a name can
    /// never be read as shell syntax, an option, or a path, whoever later pastes it into a command line.
    /// </summary>
    internal static class Names
    {
        public const int MaxInterfaceName = 15;
        public const int MaxNamespaceName = 255;

        public static bool IsValidInterface(string? name, out string reason) => Check(name, MaxInterfaceName, out reason);

        public static bool IsValidNamespace(string? name, out string reason) => Check(name, MaxNamespaceName, out reason);

        private static bool Check(string? name, int max, out string reason)
        {
            if (string.IsNullOrEmpty(name))
            {
                reason = "it is empty";
                return false;
            }
            if (name.Length > max)
            {
                reason = $"it is {name.Length} characters long; the limit is {max}";
                return false;
            }
            if (name == "." || name == "..")
            {
                reason = "'.' and '..' are not names";
                return false;
            }
            if (name[0] == '-')
            {
                reason = "it starts with '-', which commands would read as an option";
                return false;
            }
            foreach (var c in name)
            {
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                if (!ok)
                {
                    reason = char.IsWhiteSpace(c) ? "it contains white space"
                        : c > 127 ? $"it contains the non-ASCII character U+{(int)c:X4}"
                        : $"it contains '{c}'";
                    return false;
                }
            }
            reason = string.Empty;
            return true;
        }
    }
}
