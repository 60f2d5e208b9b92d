# Dot-sourced by every *.Tests.ps1 in its BeforeAll: the built module, the lab, and small helpers.
$modulePath = if ($env:NETNSNAT_MODULE) { $env:NETNSNAT_MODULE } else { Join-Path $PSScriptRoot '../../out/NetnsNat' }
Import-Module $modulePath -Force
Import-Module (Join-Path $PSScriptRoot '../Lab/NetnsNatLab.psm1') -Force
Assert-LabSandbox

function Invoke-ChildPwsh {
    <# Runs a script block's text in a fresh pwsh (with the module imported), optionally under setpriv or another PATH. #>
    param([Parameter(Mandatory)][string] $Script, [string[]] $Prefix = @(), [hashtable] $Environment = @{}, [int] $TimeoutSeconds = 60)
    $pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }
    $full = "`$ErrorActionPreference = 'Stop'; Import-Module '$modulePath'; $Script"
    $argv = [System.Collections.Generic.List[string]]::new()
    foreach ($a in $Prefix) { $argv.Add($a) }
    foreach ($a in @($pwsh, '-NoProfile', '-NonInteractive', '-Command', $full)) { $argv.Add($a) }
    $psi = [System.Diagnostics.ProcessStartInfo]::new($argv[0])
    foreach ($a in ($argv | Select-Object -Skip 1)) { $psi.ArgumentList.Add($a) }
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    $out = $p.StandardOutput.ReadToEndAsync(); $err = $p.StandardError.ReadToEndAsync()
    if (-not $p.WaitForExit($TimeoutSeconds * 1000)) { $p.Kill($true); throw "child pwsh timed out: $Script" }
    $p.WaitForExit()
    [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result; Error = $err.Result }
}

function Get-ForwardRules { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -like '-A FORWARD *' }) }
function Get-PostroutingRules { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -like '-t nat -A POSTROUTING *' } | ForEach-Object { $_.Substring(7) }) }
