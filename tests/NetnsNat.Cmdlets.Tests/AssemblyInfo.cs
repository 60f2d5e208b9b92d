using System.Runtime.Versioning;

// The module under test runs on Linux only, and so do its tests.
[assembly: SupportedOSPlatform("linux")]
