<#
.SYNOPSIS
    This build against a baseline build of NetnsNat, side by side in one run (./build.ps1 Bench -Baseline REF).
.DESCRIPTION
    Runs the same calls with each module, in fresh pwsh processes that alternate (A, B, A, B, ...) so that both see the
    same machine: warm calls (Enable, Disable, Enable with only the route missing, Get-NatMasquerade) after a JIT
    warm-up, and a cold start (Import-Module and the first Enable in a fresh pwsh, each timed from inside it, and their
    sum; fresh processes alternate too). Prints medians and the ratio
    this / baseline, and appends the table to out/bench.md. Runs inside the sandbox (tests/Lab/sandbox.sh).
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [Parameter(Mandatory)][string] $BaselineModulePath,
    [Parameter(Mandatory)][string] $OutputPath,
    [int] $Rounds = 3,
    # Fresh pwsh processes per module for the cold start (Import-Module, first Enable), alternating.
    [int] $ColdSamples = 7
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot '../tests/Lab/NetnsNatLab.psm1')
Assert-LabSandbox
foreach ($conf in 'all', 'default') { Set-Content -Path "/proc/sys/net/ipv6/conf/$conf/disable_ipv6" -Value 1 }
$pwsh = Join-Path $PSHOME 'pwsh'
$probe = "/run/netnsnat-compare-$PID.ps1"
Set-Content $probe @'
param([string] $Module)
Import-Module $Module
$sw = [Diagnostics.Stopwatch]::new()
foreach ($i in 1..40) { Enable-NamespaceNat testnet br0 eth0 | Out-Null; Disable-NamespaceNat testnet br0 }
Start-Sleep -Milliseconds 300
$enable = [System.Collections.Generic.List[double]]::new(); $disable = [System.Collections.Generic.List[double]]::new()
foreach ($i in 1..50) {
    $sw.Restart(); Enable-NamespaceNat testnet br0 eth0 | Out-Null; $enable.Add($sw.Elapsed.TotalMilliseconds)
    $sw.Restart(); Disable-NamespaceNat testnet br0; $disable.Add($sw.Elapsed.TotalMilliseconds)
}
Enable-NamespaceNat testnet br0 eth0 | Out-Null
$route = foreach ($i in 1..50) { & ip -n testnet route del default; $sw.Restart(); Enable-NamespaceNat testnet br0 eth0 | Out-Null; $sw.Elapsed.TotalMilliseconds }
$get = foreach ($i in 1..50) { $sw.Restart(); Get-NatMasquerade | Out-Null; $sw.Elapsed.TotalMilliseconds }
Disable-NamespaceNat testnet br0
[pscustomobject]@{ Enable = $enable; Disable = $disable; RouteOnly = $route; Get = $get } | ConvertTo-Json -Compress
'@
function Median([double[]] $values) { $s = $values | Sort-Object; $s[[int][Math]::Floor(($s.Count - 1) / 2)] }
$samples = @{}
foreach ($m in 'this', 'baseline') { $samples[$m] = @{ Enable = @(); Disable = @(); RouteOnly = @(); Get = @(); ColdImport = @(); ColdFirst = @(); Cold = @() } }
try {
    New-NetnsNatLab | Out-Null
    foreach ($round in 1..$Rounds) {
        foreach ($m in 'this', 'baseline') {
            $path = if ($m -eq 'this') { $ModulePath } else { $BaselineModulePath }
            $r = & $pwsh -NoProfile -NonInteractive -File $probe -Module $path | ConvertFrom-Json
            foreach ($k in 'Enable', 'Disable', 'RouteOnly', 'Get') { $samples[$m][$k] += $r.$k }
        }
    }
    # Cold: a fresh pwsh times its Import-Module and its first Enable from inside (then undoes the Enable).
    foreach ($i in 1..$ColdSamples) {
        foreach ($m in 'this', 'baseline') {
            $path = if ($m -eq 'this') { $ModulePath } else { $BaselineModulePath }
            $f = "$(& $pwsh -NoProfile -NonInteractive -Command "`$sw = [Diagnostics.Stopwatch]::StartNew(); Import-Module '$path'; `$import = `$sw.Elapsed.TotalMilliseconds; `$sw.Restart(); Enable-NamespaceNat testnet br0 eth0 | Out-Null; '{0} {1}' -f `$import, `$sw.Elapsed.TotalMilliseconds; Disable-NamespaceNat testnet br0")".Trim() -split ' '
            if ($f.Count -ne 2) { throw "The cold-start probe of $m failed: $f" }
            $samples[$m].ColdImport += [double]$f[0]; $samples[$m].ColdFirst += [double]$f[1]; $samples[$m].Cold += [double]$f[0] + [double]$f[1]
        }
    }
}
finally { Remove-NetnsNatLab; Remove-Item $probe -ErrorAction Ignore }

$rows = foreach ($k in @(@('Enable', 'Enable-NamespaceNat, warm'), @('Disable', 'Disable-NamespaceNat, warm'), @('RouteOnly', 'Enable with the rules in place (route only)'), @('Get', 'Get-NatMasquerade'),
        @('ColdImport', "Cold: Import-Module in a fresh pwsh (median of $ColdSamples)"), @('ColdFirst', "Cold: its first Enable-NamespaceNat (median of $ColdSamples)"),
        @('Cold', "Cold: Import-Module + first Enable, the sum (median of $ColdSamples)"))) {
    $a = Median $samples['this'][$k[0]]; $b = Median $samples['baseline'][$k[0]]
    [pscustomobject]@{ Measurement = $k[1]; This = '{0:0.00} ms' -f $a; Baseline = '{0:0.00} ms' -f $b; Ratio = '{0:0.00}x' -f ($a / $b) }
}
$rows | Format-Table -AutoSize | Out-String | Write-Host
$md = [System.Text.StringBuilder]::new()
[void]$md.AppendLine().AppendLine("## This build against the baseline ($Rounds alternating rounds, $ColdSamples alternating cold starts; medians)").AppendLine()
[void]$md.AppendLine('| measurement | this build | baseline | this / baseline |').AppendLine('| --- | --- | --- | --- |')
foreach ($r in $rows) { [void]$md.AppendLine("| $($r.Measurement) | $($r.This) | $($r.Baseline) | $($r.Ratio) |") }
Add-Content -Path (Join-Path $OutputPath 'bench.md') -Value $md.ToString()
