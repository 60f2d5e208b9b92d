<#
.SYNOPSIS
    This build against a baseline build of NetnsNat, side by side in one run (./build.ps1 Bench -Baseline REF).
.DESCRIPTION
    Runs the same calls with each module, in fresh pwsh processes that alternate (A, B, A, B, ...) so that both see the
    same machine: warm calls (Enable, Disable, Enable with only the route missing, Get-NatMasquerade) after a JIT
    warm-up, and a cold start (Import-Module plus the first Enable in a fresh pwsh). Prints medians and the ratio
    this / baseline, and appends the table to out/bench.md. Runs inside the sandbox (tests/Lab/sandbox.sh).
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [Parameter(Mandatory)][string] $BaselineModulePath,
    [Parameter(Mandatory)][string] $OutputPath,
    [int] $Rounds = 3
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
foreach ($m in 'this', 'baseline') { $samples[$m] = @{ Enable = @(); Disable = @(); RouteOnly = @(); Get = @(); Cold = @() } }
try {
    New-NetnsNatLab | Out-Null
    foreach ($round in 1..$Rounds) {
        foreach ($m in 'this', 'baseline') {
            $path = if ($m -eq 'this') { $ModulePath } else { $BaselineModulePath }
            $r = & $pwsh -NoProfile -NonInteractive -File $probe -Module $path | ConvertFrom-Json
            foreach ($k in 'Enable', 'Disable', 'RouteOnly', 'Get') { $samples[$m][$k] += $r.$k }
            # Cold: a fresh pwsh, Import-Module and the first Enable, timed from inside.
            $cold = & $pwsh -NoProfile -NonInteractive -Command "`$sw = [Diagnostics.Stopwatch]::StartNew(); Import-Module '$path'; Enable-NamespaceNat testnet br0 eth0 | Out-Null; `$sw.Elapsed.TotalMilliseconds; Disable-NamespaceNat testnet br0"
            $samples[$m].Cold += [double]$cold
        }
    }
}
finally { Remove-NetnsNatLab; Remove-Item $probe -ErrorAction Ignore }

$rows = foreach ($k in @(@('Enable', 'Enable-NamespaceNat, warm'), @('Disable', 'Disable-NamespaceNat, warm'), @('RouteOnly', 'Enable with the rules in place (route only)'), @('Get', 'Get-NatMasquerade'), @('Cold', 'Import-Module + first Enable, fresh pwsh'))) {
    $a = Median $samples['this'][$k[0]]; $b = Median $samples['baseline'][$k[0]]
    [pscustomobject]@{ Measurement = $k[1]; This = '{0:0.00} ms' -f $a; Baseline = '{0:0.00} ms' -f $b; Ratio = '{0:0.00}x' -f ($a / $b) }
}
$rows | Format-Table -AutoSize | Out-String | Write-Host
$md = [System.Text.StringBuilder]::new()
[void]$md.AppendLine().AppendLine("## This build against the baseline ($Rounds alternating rounds; medians)").AppendLine()
[void]$md.AppendLine('| measurement | this build | baseline | this / baseline |').AppendLine('| --- | --- | --- | --- |')
foreach ($r in $rows) { [void]$md.AppendLine("| $($r.Measurement) | $($r.This) | $($r.Baseline) | $($r.Ratio) |") }
Add-Content -Path (Join-Path $OutputPath 'bench.md') -Value $md.ToString()
