<#
.SYNOPSIS
    Runs the Pester suite; build.ps1 Test starts it in a fresh pwsh inside tests/Lab/sandbox.sh.
.DESCRIPTION
    Writes out/pester.xml (JUnit) and out/pester-summary.json (Passed, Failed) for build.ps1 to count.
#>
param(
    [Parameter(Mandatory)][string] $PesterPath,
    [Parameter(Mandatory)][string] $ModulePath,
    [Parameter(Mandatory)][string] $ResultPath,
    [string] $TestPath
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -Force
$env:NETNSNAT_MODULE = $ModulePath
$env:NETNSNAT_PWSH = Join-Path $PSHOME 'pwsh'
$env:NETNSNAT_RESULTS = $ResultPath
$env:NETNSNAT_PESTER = $PesterPath
Remove-Item (Join-Path $ResultPath "figures.txt") -ErrorAction Ignore

$config = New-PesterConfiguration
$config.Run.Path = if ($TestPath) { $TestPath -split ',' | ForEach-Object { if (Test-Path $_) { $_ } else { Join-Path $PSScriptRoot $_ } } } else { $PSScriptRoot }
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
$config.Output.RenderMode = 'Plaintext'
# The JUnit report is written after the run (Export-JUnitReport), not by Invoke-Pester: a report that cannot be
# written (a control character in a failure message, a full disk) must never lose the counts of the run.
$config.TestResult.Enabled = $false
# Anything a test file leaks to the output stream comes out beside the run object: keep only the run.
$result = Invoke-Pester -Configuration $config | Where-Object { $_.PSObject.TypeNames -contains 'Pester.Run' } | Select-Object -Last 1
if (-not $result) {
    @{ Passed = 0; Failed = 1; Skipped = 0; Duration = 0 } | ConvertTo-Json | Set-Content (Join-Path $ResultPath 'pester-summary.json')
    Write-Host 'Invoke-Pester returned no run object.'
    exit 1
}
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
try { $result | Export-JUnitReport -Path (Join-Path $ResultPath 'pester.xml') }
catch { Write-Host "The JUnit report could not be written ($($_.Exception.Message)); the counts below stand." }
@{ Passed = $result.PassedCount; Failed = $failed; Skipped = $result.SkippedCount; Duration = $result.Duration.TotalSeconds } |
    ConvertTo-Json | Set-Content (Join-Path $ResultPath 'pester-summary.json')
if ($failed -gt 0) { exit 1 }
