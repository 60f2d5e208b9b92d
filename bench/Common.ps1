<#
.SYNOPSIS
    What the benchmark scripts share: bridges with a client namespace each, waiting for a quiet machine, the cold start
    of a fresh pwsh, and counting the processes a command starts. Dot-sourced; the caller imports the lab module and
    sets $pwsh (the pwsh to start) and $script:nextNet (the next bridge number).
#>

function Stats([double[]] $ms) {
    $s = $ms | Sort-Object
    [pscustomobject]@{ Median = $s[[int][Math]::Floor(($s.Count - 1) / 2)]; P10 = $s[[int][Math]::Floor(($s.Count - 1) * 0.1)]; P90 = $s[[int][Math]::Ceiling(($s.Count - 1) * 0.9)] }
}
function Fmt($st) { '{0:0.0} ms ({1:0.0}-{2:0.0})' -f $st.Median, $st.P10, $st.P90 }
function Row([string] $what, [string] $ours, [string] $theirs, [string] $ratio) { [pscustomobject]@{ Measurement = $what; NetnsNat = $ours; Lesson = $theirs; Ratio = $ratio } }
function Time([scriptblock] $block) { $sw = [Diagnostics.Stopwatch]::StartNew(); & $block | Out-Null; $sw.Stop(); $sw.Elapsed.TotalMilliseconds }

function New-Bridges([int] $count) {
    # Bridges with one client namespace each: one "ip -batch" for the host side, one "ip -n NS -batch" per namespace.
    $batch = [System.Text.StringBuilder]::new()
    $made = foreach ($i in 1..$count) {
        $n = $script:nextNet++
        $b = "bb$n"; $ns = "bn$n"; $net = "10.$(100 + [Math]::Floor($n / 250)).$($n % 250)"
        [void]$batch.AppendLine("link add $b type bridge").AppendLine("addr add $net.1/24 dev $b").AppendLine("link set $b up")
        [void]$batch.AppendLine("netns add $ns").AppendLine("link add h$n type veth peer name veth1 netns $ns").AppendLine("link set h$n master $b").AppendLine("link set h$n up")
        [pscustomobject]@{ Bridge = $b; Namespace = $ns; Net = $net }
    }
    $file = "/run/bench-batch-$PID"
    [IO.File]::WriteAllText($file, $batch.ToString())
    Invoke-LabCommand ip -ArgumentList @('-batch', $file) -TimeoutSeconds 600 | Out-Null
    foreach ($m in $made) {
        [IO.File]::WriteAllText($file, "link set veth1 addrgenmode none`naddr add $($m.Net).2/24 dev veth1`nlink set veth1 up`nlink set lo up`n")
        Invoke-LabCommand ip -ArgumentList @('-n', $m.Namespace, '-batch', $file) | Out-Null
    }
    $made
}

function Wait-Quiet([double] $busyBelow = 0.15, [int] $maxSeconds = 30) {
    # Creating hundreds of links and namespaces leaves the kernel busy for seconds afterwards (workers cleaning up,
    # address configuration): wait until two 250 ms windows in a row show the machine's CPUs mostly idle (/proc/stat).
    function Sample { $f = ((Get-Content /proc/stat -TotalCount 1) -split '\s+')[1..8] | ForEach-Object { [double]$_ }; @{ Busy = $f[0] + $f[1] + $f[2] + $f[5] + $f[6] + $f[7]; All = ($f | Measure-Object -Sum).Sum } }
    $deadline = [DateTime]::UtcNow.AddSeconds($maxSeconds)
    $quiet = 0
    $last = Sample
    while ($quiet -lt 2 -and [DateTime]::UtcNow -lt $deadline) {
        Start-Sleep -Milliseconds 250
        $now = Sample
        $share = ($now.Busy - $last.Busy) / [Math]::Max(1, $now.All - $last.All)
        $quiet = if ($share -lt $busyBelow) { $quiet + 1 } else { 0 }
        $last = $now
    }
}

function Measure-ColdStart([string] $Module, [int] $Count = 7, [string] $Backend = 'Auto') {
    # Import-Module and the first Enable-NamespaceNat of a fresh pwsh, each timed from inside it (Stopwatch), with the
    # methods .NET JIT-compiled meanwhile; the Enable is undone after, so each sample starts from the same ruleset.
    $b = (New-Bridges 1)[0]
    $enable = "Enable-NamespaceNat -Namespace $($b.Namespace) -Bridge $($b.Bridge) -Outbound eth0$(if ($Backend -ne 'Auto') { " -Backend $Backend" })"
    $disable = "Disable-NamespaceNat -Namespace $($b.Namespace) -Bridge $($b.Bridge)"
    Get-ColdSummary @(foreach ($i in 1..$Count) { Get-ColdSample $Module $pwsh $enable $disable })
}

function Get-ColdSample([string] $Module, [string] $Pwsh, [string] $FirstCall, [string] $Undo) {
    # One fresh pwsh: Import-Module, then the first call, each timed from inside it, with the methods JIT-compiled meanwhile.
    $probe = "`$j0 = [System.Runtime.JitInfo]::GetCompiledMethodCount(); `$sw = [Diagnostics.Stopwatch]::StartNew(); Import-Module '$Module'; `$import = `$sw.Elapsed.TotalMilliseconds; " +
        "`$j1 = [System.Runtime.JitInfo]::GetCompiledMethodCount(); `$sw.Restart(); $FirstCall | Out-Null; `$first = `$sw.Elapsed.TotalMilliseconds; " +
        "`$j2 = [System.Runtime.JitInfo]::GetCompiledMethodCount(); '{0} {1} {2} {3}' -f `$import, `$first, (`$j1 - `$j0), (`$j2 - `$j1); $Undo"
    $f = ("$(& $Pwsh -NoProfile -NonInteractive -Command $probe)".Trim() -split ' ')
    if ($f.Count -ne 4) { throw "The cold-start probe failed: $f" }
    [pscustomobject]@{ Import = [double]$f[0]; First = [double]$f[1]; JitImport = [int]$f[2]; JitFirst = [int]$f[3] }
}

function Get-ColdSummary($samples) {
    [pscustomobject]@{
        Import = (Stats $samples.Import).Median; First = (Stats $samples.First).Median
        Sum = (Stats ($samples | ForEach-Object { $_.Import + $_.First })).Median
        JitImport = (Stats $samples.JitImport).Median; JitFirst = (Stats $samples.JitFirst).Median
    }
}

function Get-ColdFloor {
    # The floor of the cold start: bench/ColdFloor, a binary module of one cmdlet that does nothing, published
    # ReadyToRun for this pwsh as ./build.ps1 publishes NetnsNat (./build.ps1 Bench publishes it to out/ColdFloor before
    # entering the sandbox, which has no network for a restore). Returns its manifest, or a string saying why there is none.
    $manifest = Join-Path $PSScriptRoot '../out/ColdFloor/ColdFloor.psd1'
    if (Test-Path $manifest) { return (Resolve-Path $manifest).Path }
    "no out/ColdFloor (./build.ps1 Bench publishes it)"
}

function New-ReadyToRunPwsh([string] $folder) {
    # A copy of this pwsh with PowerShell's own assemblies precompiled (crossgen2, ReadyToRun), as the distribution
    # packages of PowerShell ship them; the dotnet tool package ships them as IL only, so a fresh pwsh of it JIT-compiles
    # PowerShell itself. Returns the copy's pwsh, or a string saying why there is none.
    $runtime = [System.Runtime.InteropServices.RuntimeEnvironment]::GetRuntimeDirectory().TrimEnd('/')
    $version = [version](Split-Path $runtime -Leaf)
    # Any crossgen2 of the runtime's major version makes code it runs (./build.ps1 Build restores the SDK's own).
    $crossgen = Get-ChildItem (Join-Path $HOME '.nuget/packages/microsoft.netcore.app.crossgen2.linux-x64') -Directory -ErrorAction Ignore |
        Where-Object { ($_.Name -as [version]) -and ([version]$_.Name).Major -eq $version.Major } | Sort-Object { [version]$_.Name } -Descending |
        ForEach-Object { Join-Path $_.FullName 'tools/crossgen2' } | Where-Object { Test-Path $_ } | Select-Object -First 1
    if (-not $crossgen) { return "no crossgen2 $($version.Major).x in the NuGet cache (./build.ps1 Build restores one)" }
    try {
        Copy-Item $PSHOME $folder -Recurse
        $il = Join-Path $folder 'il'
        New-Item -ItemType Directory $il | Out-Null
        foreach ($name in 'System.Management.Automation', 'Microsoft.PowerShell.ConsoleHost', 'Microsoft.PowerShell.Commands.Utility', 'Microsoft.PowerShell.Commands.Management', 'Microsoft.PowerShell.Security', 'pwsh', 'Newtonsoft.Json') {
            $target = Join-Path $folder "$name.dll"
            if (-not (Test-Path $target)) { continue }
            Move-Item $target $il
            Invoke-LabCommand $crossgen -ArgumentList @('-r', "$runtime/*.dll", '-r', "$PSHOME/*.dll", '--targetos', 'linux', '--targetarch', 'x64', '-O', (Join-Path $il "$name.dll"), '-o', $target) -TimeoutSeconds 300 | Out-Null
        }
        Join-Path $folder 'pwsh'
    }
    catch { "crossgen2 failed: $_" }
}

function Count-Execs([string[]] $command) {
    $trace = "/run/bench-strace-$PID"
    Invoke-LabCommand strace -ArgumentList (@('-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', $trace, '--') + $command) -TimeoutSeconds 120 | Out-Null
    $lines = @(Get-Content $trace | Where-Object { $_ -match 'execve\(' -and $_ -notmatch '= -1 ' })
    Remove-Item $trace
    $lines.Count
}

