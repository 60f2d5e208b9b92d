using System.Runtime.CompilerServices;
using System.Runtime.Versioning;

// Network namespaces, netlink and nf_tables are Linux's: the module runs nowhere else.
[assembly: SupportedOSPlatform("linux")]
[assembly: InternalsVisibleTo("NetnsNat.Cmdlets.Tests")]

// Every P/Invoke is a source-generated LibraryImport (Linux/Netlink.cs, Core/RulesetLock.cs) that passes only blittable
// values: with the runtime's marshalling off, ReadyToRun code calls them directly, and no stub is JIT-compiled at run time.
[assembly: DisableRuntimeMarshalling]
