#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds, tests and demonstrates NetnsNat.
.DESCRIPTION
    Tasks:
      Bootstrap  installs what is missing: system packages (iproute2, iptables, ...) with apt-get when root, and the
                 NuGet packages (Pester among them) with dotnet restore.
      Build      writes the module folder out/NetnsNat/<version>/ (Import-Module ./out/NetnsNat).
      Package    Build, then out/packages/NetnsNat.<version>.nupkg (Publish-PSResource to a local folder repository),
                 which Install-PSResource installs from that folder.
      Test       Bootstrap, Build, Package, then the xunit tests and the Pester tests (inside a network namespace of their
                 own); ends with "N passed, N failed" and exits non-zero when a test fails.
      Demo       Bootstrap, Build, then the lesson's flow in the lab (inside a network namespace of its own).
      Bench      Bootstrap, Build, then bench/Invoke-Benchmark.ps1 in the sandbox: NetnsNat against the lesson's
                 commands (bench/lesson.sh), side by side; the table goes to out/bench.md. With -Baseline REF, also
                 this build against REF built in a worktree (bench/Compare-Baseline.ps1), calls alternating.
      Clean      removes out/ and the bin/obj folders.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Bootstrap', 'Build', 'Package', 'Test', 'Demo', 'Bench', 'Clean')]
    [string[]] $Task = @('Build'),

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # Pester tests to run (paths or names under tests/Pester); all by default.
    [string[]] $TestPath = @(),

    # Bench: also compare this build with a baseline build of this git revision (a commit, tag or branch).
    [string] $Baseline
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$PesterVersion = '6.2.0'
# The pwsh that runs this script, for child processes (under `dotnet pwsh` the process itself is dotnet).
$Pwsh = Join-Path $PSHOME 'pwsh'
if (-not (Test-Path $Pwsh)) { $Pwsh = [Environment]::ProcessPath }

function Get-ModuleVersion {
    ([xml](Get-Content (Join-Path $Root 'Directory.Build.props') -Raw)).Project.PropertyGroup.Version | Where-Object { $_ } | Select-Object -First 1
}

function Invoke-Checked {
    param([string] $FilePath, [string[]] $ArgumentList)
    & $FilePath @ArgumentList
    if ($LASTEXITCODE -ne 0) { throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE" }
}

function Invoke-Bootstrap {
    # command => Debian package, for every program the tests, the demo and the benchmark run (build/tools.psd1)
    $needed = (Import-PowerShellDataFile (Join-Path $Root 'build/tools.psd1')).Tools
    $missing = @($needed.GetEnumerator() | Where-Object { -not (Get-Command $_.Key -CommandType Application -ErrorAction Ignore) } | ForEach-Object Value | Sort-Object -Unique)
    if ($missing) {
        $isRoot = (& id -u) -eq '0'
        if ($isRoot -and (Get-Command apt-get -ErrorAction Ignore)) {
            Write-Host "Installing system packages: $($missing -join ' ')"
            $env:DEBIAN_FRONTEND = 'noninteractive'
            Invoke-Checked apt-get @('update', '-qq')
            # Install without starting services (openssh-server would start an sshd on the machine): a policy-rc.d that
            # says no, for the time of the install only, as Debian's container images have it.
            $policy = '/usr/sbin/policy-rc.d'
            $ownPolicy = -not (Test-Path $policy)
            if ($ownPolicy) { Set-Content $policy "#!/bin/sh`nexit 101`n" -NoNewline; & chmod 755 $policy }
            try { Invoke-Checked apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $missing) }
            finally { if ($ownPolicy) { Remove-Item $policy -Force -ErrorAction Ignore } }
        }
        else {
            throw "Missing system packages: $($missing -join ' '). Install them (as root: apt-get install $($missing -join ' ')) and run again."
        }
    }
    Invoke-Checked dotnet @('restore', (Join-Path $Root 'NetnsNat.sln'), '--verbosity', 'quiet')
}

function Invoke-Build {
    $version = Get-ModuleVersion
    Invoke-Checked dotnet @('build', (Join-Path $Root 'NetnsNat.sln'), '-c', $Configuration, '--nologo', '--verbosity', 'quiet', '-p:ContinuousIntegrationBuild=true')
    # The module's assemblies precompiled (ReadyToRun) for the pwsh that runs this script: a fresh pwsh then JIT-compiles
    # a few hundred methods for its first call instead of over a thousand (the csproj says how; docs/performance.md).
    $bin = Join-Path $Root "src/NetnsNat.Cmdlets/bin/$Configuration/publish"
    if (Test-Path $bin) { Remove-Item $bin -Recurse -Force }
    Invoke-Checked dotnet @('publish', (Join-Path $Root 'src/NetnsNat.Cmdlets/NetnsNat.Cmdlets.csproj'), '-c', $Configuration, '-r', 'linux-x64', '--self-contained', 'false',
        '-p:PublishReadyToRun=true', "-p:PowerShellHome=$PSHOME", '-o', $bin, '--nologo', '--verbosity', 'quiet', '-p:ContinuousIntegrationBuild=true')
    $moduleRoot = Join-Path $Out 'NetnsNat'
    $dest = Join-Path $moduleRoot $version
    if (Test-Path $moduleRoot) { Remove-Item $moduleRoot -Recurse -Force }
    New-Item -ItemType Directory -Path (Join-Path $dest 'en-US') -Force | Out-Null
    # An explicit list: never the System.Management.Automation.dll of the reference package.
    foreach ($file in 'NetnsNat.Cmdlets.dll', 'CliWrap.dll', 'NetnsNat.Format.ps1xml', 'NetnsNat.Types.ps1xml') {
        Copy-Item (Join-Path $bin $file) $dest
    }
    Copy-Item (Join-Path $Root 'src/NetnsNat.Verify.Tests.ps1') $dest
    Copy-Item (Join-Path $Root 'LICENSE') $dest
    $manifest = (Get-Content (Join-Path $Root 'NetnsNat.psd1') -Raw) -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion        = '$version'"
    Set-Content -Path (Join-Path $dest 'NetnsNat.psd1') -Value $manifest -Encoding utf8NoBOM
    # Help: docs/*.md compiled into MAML and about_ text by a fresh pwsh (it loads the module to read parameter metadata).
    $helpScript = Join-Path $Root 'build/Convert-MarkdownHelp.ps1'
    Invoke-Checked $Pwsh @('-NoProfile', '-NonInteractive', '-File', $helpScript, '-ModulePath', (Join-Path $dest 'NetnsNat.psd1'), '-DocsPath', (Join-Path $Root 'docs'), '-OutputPath', (Join-Path $dest 'en-US'))
    Write-Host "Built $dest"
}

function Get-PesterPath {
    $nugetRoot = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $path = Join-Path $nugetRoot "pester/$PesterVersion/tools/Pester.psd1"
    if (-not (Test-Path $path)) { throw "Pester $PesterVersion was not restored to $path; run ./build.ps1 Bootstrap" }
    $path
}

function Invoke-Test {
    New-Item -ItemType Directory -Path $Out -Force | Out-Null
    # 1. xunit: pure logic, no root.
    $trx = Join-Path $Out 'xunit.trx'
    if (Test-Path $trx) { Remove-Item $trx }
    & dotnet test (Join-Path $Root 'tests/NetnsNat.Cmdlets.Tests') -c $Configuration --no-build --nologo --verbosity quiet --logger "trx;LogFileName=$trx"
    $xunitExit = $LASTEXITCODE
    $xunitPassed = 0; $xunitFailed = 0
    if (Test-Path $trx) {
        $counters = ([xml](Get-Content $trx -Raw)).TestRun.ResultSummary.Counters
        $xunitPassed = [int]$counters.passed
        $xunitFailed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout
    }
    elseif ($xunitExit -ne 0) { $xunitFailed = 1 }

    # 2. Pester: in a fresh pwsh inside a network namespace of the run's own.
    $summary = Join-Path $Out 'pester-summary.json'
    if (Test-Path $summary) { Remove-Item $summary }
    $runner = Join-Path $Root 'tests/Pester/Invoke-PesterSuite.ps1'
    $pesterArgs = @('-NoProfile', '-NonInteractive', '-File', $runner, '-PesterPath', (Get-PesterPath), '-ModulePath', (Join-Path $Out 'NetnsNat'), '-ResultPath', $Out)
    if ($TestPath) { $pesterArgs += @('-TestPath', ($TestPath -join ',')) }
    & (Join-Path $Root 'tests/Lab/sandbox.sh') $Pwsh @pesterArgs
    $pesterExit = $LASTEXITCODE
    $pesterPassed = 0; $pesterFailed = 0
    if (Test-Path $summary) {
        $s = Get-Content $summary -Raw | ConvertFrom-Json
        $pesterPassed = [int]$s.Passed; $pesterFailed = [int]$s.Failed
    }
    else { $pesterFailed = 1; Write-Host 'The Pester run ended without a summary (it crashed).' }
    # A run that failed must never count as green, whatever the summary says.
    if ($pesterExit -ne 0 -and $pesterFailed -eq 0) { $pesterFailed = 1; Write-Host "The Pester run exited with $pesterExit." }

    $figures = Join-Path $Out 'figures.txt'
    if (Test-Path $figures) { Write-Host "Figures (also in $figures):"; Get-Content $figures | ForEach-Object { Write-Host "  $_" } }
    $passed = $xunitPassed + $pesterPassed
    $failed = $xunitFailed + $pesterFailed
    Write-Host "xunit: $xunitPassed passed, $xunitFailed failed; Pester: $pesterPassed passed, $pesterFailed failed"
    Write-Host "$passed passed, $failed failed"
    if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
}

function Invoke-Demo {
    $demo = Join-Path $Root 'tests/Lab/Demo.ps1'
    & (Join-Path $Root 'tests/Lab/sandbox.sh') $Pwsh -NoProfile -NonInteractive -File $demo -ModulePath (Join-Path $Out 'NetnsNat')
    if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit code $LASTEXITCODE)" }
}

function Invoke-Package {
    $version = Get-ModuleVersion
    $packages = Join-Path $Out 'packages'
    if (Test-Path $packages) { Remove-Item $packages -Recurse -Force }
    New-Item -ItemType Directory $packages | Out-Null
    # PSResourceGet keeps its repository list under HOME: give the child a HOME of its own, so nothing is registered
    # for the user running the build.
    $home_ = Join-Path $Out 'package-home'
    if (Test-Path $home_) { Remove-Item $home_ -Recurse -Force }
    New-Item -ItemType Directory $home_ | Out-Null
    $script = "`$ErrorActionPreference = 'Stop'; Register-PSResourceRepository -Name NetnsNatBuild -Uri '$packages' -Trusted; " +
        "Publish-PSResource -Path '$(Join-Path $Out "NetnsNat/$version")' -Repository NetnsNatBuild"
    $psi = [System.Diagnostics.ProcessStartInfo]::new($Pwsh)
    foreach ($a in @('-NoProfile', '-NonInteractive', '-Command', $script)) { $psi.ArgumentList.Add($a) }
    $psi.Environment['HOME'] = $home_
    $psi.WorkingDirectory = $home_
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.WaitForExit()
    Remove-Item $home_ -Recurse -Force
    if ($p.ExitCode -ne 0) { throw "Publish-PSResource failed (exit code $($p.ExitCode))" }
    Write-Host "Packed $(Join-Path $packages "NetnsNat.$version.nupkg")"
}

function Publish-ColdFloor {
    # Without it the bench says the floor was not measured, and goes on.
    $floor = Join-Path $Out 'ColdFloor'
    if (Test-Path $floor) { Remove-Item $floor -Recurse -Force }
    try {
        Invoke-Checked dotnet @('publish', (Join-Path $Root 'bench/ColdFloor/ColdFloor.csproj'), '-c', $Configuration, '-r', 'linux-x64', '--self-contained', 'false',
            '-p:PublishReadyToRun=true', "-p:PowerShellHome=$PSHOME", '-o', $floor, '--nologo', '--verbosity', 'quiet')
        Copy-Item (Join-Path $Root 'bench/ColdFloor/ColdFloor.psd1') $floor
    }
    catch {
        Write-Warning "The cold start's floor module was not built, so the bench leaves it out: $_"
        if (Test-Path $floor) { Remove-Item $floor -Recurse -Force }
    }
}

function Invoke-Bench {
    $bench = Join-Path $Root 'bench/Invoke-Benchmark.ps1'
    # The cold start's floor (bench/ColdFloor, a module of one empty cmdlet), published here: the sandbox has no network.
    Publish-ColdFloor
    & (Join-Path $Root 'tests/Lab/sandbox.sh') $Pwsh -NoProfile -NonInteractive -File $bench -ModulePath (Join-Path $Out 'NetnsNat') -OutputPath $Out
    if ($LASTEXITCODE -ne 0) { throw "The benchmark failed (exit code $LASTEXITCODE)" }
    if (-not $Baseline) { return }
    # The baseline: the same repository at another revision, built in a worktree of its own under out/.
    $tree = Join-Path $Out 'baseline'
    if (Test-Path $tree) { Invoke-Checked git @('-C', $Root, 'worktree', 'remove', '--force', $tree) }
    Invoke-Checked git @('-C', $Root, 'worktree', 'add', '--detach', $tree, $Baseline)
    try {
        Invoke-Checked $Pwsh @('-NoProfile', '-NonInteractive', '-File', (Join-Path $tree 'build.ps1'), 'Build')
        $compare = Join-Path $Root 'bench/Compare-Baseline.ps1'
        & (Join-Path $Root 'tests/Lab/sandbox.sh') $Pwsh -NoProfile -NonInteractive -File $compare -ModulePath (Join-Path $Out 'NetnsNat') -BaselineModulePath (Join-Path $tree 'out/NetnsNat') -OutputPath $Out
        if ($LASTEXITCODE -ne 0) { throw "The comparison with $Baseline failed (exit code $LASTEXITCODE)" }
    }
    finally { Invoke-Checked git @('-C', $Root, 'worktree', 'remove', '--force', $tree) }
}

function Invoke-Clean {
    foreach ($p in @($Out) + @(Get-ChildItem $Root -Recurse -Directory -Include bin, obj | ForEach-Object FullName)) {
        if (Test-Path $p) { Remove-Item $p -Recurse -Force }
    }
}

$steps = [System.Collections.Generic.List[string]]::new()
foreach ($t in $Task) {
    $deps = switch ($t) { 'Test' { 'Bootstrap', 'Build', 'Package' } { $_ -in 'Demo', 'Bench' } { 'Bootstrap', 'Build' } 'Package' { 'Build' } default { @() } }
    foreach ($dep in $deps) { if (-not $steps.Contains($dep)) { $steps.Add($dep) } }
    if (-not $steps.Contains($t)) { $steps.Add($t) }
}
foreach ($step in $steps) {
    Write-Host "== $step" -ForegroundColor Cyan
    & "Invoke-$step"
}
