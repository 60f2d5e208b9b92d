using System.Runtime.CompilerServices;
using System.Runtime.Versioning;

// Network namespaces, netlink and nf_tables are Linux's: the module runs nowhere else.
[assembly: SupportedOSPlatform("linux")]
[assembly: InternalsVisibleTo("NetnsNat.Cmdlets.Tests")]
