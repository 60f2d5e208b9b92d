@{
    RootModule           = 'NetnsNat.Cmdlets.dll'
    ModuleVersion        = '0.0.0'
    GUID                 = '3f0c6a7e-5b1d-4d8e-9a62-7c1e2b9f4d10'
    Author               = 'NetnsNat developers'
    CompanyName          = 'NetnsNat'
    Copyright            = '(c) NetnsNat developers. MIT licence.'
    Description          = 'Gives Linux network namespaces on a bridge outside connectivity through NAT: IP forwarding, iptables MASQUERADE and FORWARD rules, and the default route, as pipeable cmdlets with -WhatIf, typed output and clean undo.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    RequiredAssemblies   = @('CliWrap.dll')
    FormatsToProcess     = @('NetnsNat.Format.ps1xml')
    TypesToProcess       = @('NetnsNat.Types.ps1xml')
    CmdletsToExport      = @(
        'Enable-IpForwarding'
        'Disable-IpForwarding'
        'Get-BridgeSubnet'
        'Add-NatMasquerade'
        'Get-NatMasquerade'
        'Remove-NatMasquerade'
        'Set-NamespaceDefaultRoute'
        'Enable-NamespaceNat'
        'Disable-NamespaceNat'
        'Test-NamespaceNat'
        'Get-NamespaceNat'
        'Restore-NamespaceNat'
        'Get-NatSession'
        'Remove-NatSession'
        'Add-NatPortMapping'
        'Get-NatPortMapping'
        'Remove-NatPortMapping'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('Linux', 'netns', 'namespace', 'NAT', 'iptables', 'masquerade', 'networking')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ProjectUri   = 'https://github.com/NetnsNat/NetnsNat'
            ReleaseNotes = '0.1.0: the NAT flow of the network namespace lesson as cmdlets (Enable-NamespaceNat and its steps, Disable-NamespaceNat, Test-NamespaceNat), one write per call (an nf_tables netlink batch or one iptables-restore), rtnetlink for routes, DNS for namespaces, help and views.'
        }
    }
}
