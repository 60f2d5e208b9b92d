@{
    RootModule        = 'ColdFloor.dll'
    ModuleVersion     = '1.0.0'
    GUID              = '6b1f2a4e-0c55-4d5e-8d7a-2f4c9b1e7a31'
    PowerShellVersion = '7.4'
    CmdletsToExport   = @('Enable-ColdFloor')
    FunctionsToExport = @()
    VariablesToExport = @()
    AliasesToExport   = @()
}
