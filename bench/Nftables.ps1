<#
.SYNOPSIS
    The two backends side by side (issue 14), in one run, in the sandbox: one Enable and one Disable at 10, 100 and 1000
    configured bridges (and the nf_tables batch inside each), 1000 bridges piped into one call, processes per call, the
    cold start beside its floor (a module of one empty cmdlet) in this pwsh and in a ReadyToRun copy of it, and nft -f.
.DESCRIPTION
    Section 9 of ./build.ps1 Bench; alone:
        tests/Lab/sandbox.sh dotnet pwsh -NoProfile -File bench/Nftables.ps1 -ModulePath out/NetnsNat -Print
    Emits one row object per measurement (Measurement, NetnsNat, Lesson, Ratio); with -Print, prints them as a table.
    The same bridges serve both backends in turn: every bridge is disabled before the other backend's pass.
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [int[]] $Levels = @(10, 100, 1000),
    # Calls timed per level and backend (./build.ps1 Bench's -Samples does not reach this section: the 1.2x target
    # needs more samples than the other sections take).
    [int] $Samples = 41,
    [int] $Bulk = 1000,
    [switch] $Print
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
if (-not (Get-Module NetnsNat)) { Import-Module $ModulePath }
Import-Module (Join-Path $PSScriptRoot '../tests/Lab/NetnsNatLab.psm1')
Assert-LabSandbox
$pwsh = Join-Path $PSHOME 'pwsh'
$script:nextNet = 0
. (Join-Path $PSScriptRoot 'Common.ps1')


# nft -f adding one bridge's two elements to the table (and a second nft -f taking them out): what a script would run.
function Measure-NftFile([int] $count) {
    $file = "/run/bench-nft-$PID"
    $times = foreach ($i in 1..$count) {
        [IO.File]::WriteAllText($file, "add element inet netnsnat masquerade4 { 10.251.$i.0/24 . `"eth0`" }`nadd element inet netnsnat inbound4 { 10.251.$i.0/24 . `"eth0`" . `"nx$i`" }`n")
        Time { Invoke-LabCommand nft -ArgumentList @('-f', $file) }
        [IO.File]::WriteAllText($file, "delete element inet netnsnat masquerade4 { 10.251.$i.0/24 . `"eth0`" }`ndelete element inet netnsnat inbound4 { 10.251.$i.0/24 . `"eth0`" . `"nx$i`" }`n")
        Invoke-LabCommand nft -ArgumentList @('-f', $file) | Out-Null
    }
    Remove-Item $file
    Stats $times
}

# The nf_tables batch inside one Enable and one Disable (what -Verbose reports): the kernel's part of the call.
function Measure-NftBatch($probes) {
    $times = foreach ($p in $probes) {
        $e = Enable-NamespaceNat -Namespace $p.Namespace -Bridge $p.Bridge -Outbound eth0 -Backend Nftables -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'netlink batch.*\(([\d.]+) ms\)' } | ForEach-Object { [double]$Matches[1] }
        $d = Disable-NamespaceNat -Namespace $p.Namespace -Bridge $p.Bridge -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'netlink batch.*\(([\d.]+) ms\)' } | ForEach-Object { [double]$Matches[1] }
        if ($null -eq $e -or $null -eq $d) { throw 'Enable or Disable -Verbose no longer says how long its nf_tables batch took ("... netlink batch ... (N ms)"): update Measure-NftBatch' }
        [pscustomobject]@{ Enable = $e; Disable = $d }
    }
    [pscustomobject]@{ Enable = Stats $times.Enable; Disable = Stats $times.Disable }
}

$rows = [System.Collections.Generic.List[object]]::new()
try {
    New-NetnsNatLab -Client '' | Out-Null
    foreach ($conf in 'all', 'default') { Set-Content -Path "/proc/sys/net/ipv6/conf/$conf/disable_ipv6" -Value 1 }
    $max = ($Levels | Measure-Object -Maximum).Maximum
    $pool = @(New-Bridges ([Math]::Max($max, $Bulk)))
    $probes = @(New-Bridges $Samples)
    $warm = (New-Bridges 1)[0]
    foreach ($kind in 'Iptables', 'Nftables') {
        foreach ($i in 1..40) {
            Enable-NamespaceNat -Namespace $warm.Namespace -Bridge $warm.Bridge -Outbound eth0 -Backend $kind | Out-Null
            Disable-NamespaceNat -Namespace $warm.Namespace -Bridge $warm.Bridge
        }
    }
    Wait-Quiet

    $result = @{}
    foreach ($kind in 'Iptables', 'Nftables') {
        $configured = 0
        foreach ($level in $Levels) {
            $pool[$configured..($level - 1)] | Select-Object Namespace, Bridge | Enable-NamespaceNat -Outbound eth0 -Backend $kind | Out-Null
            $configured = $level
            Wait-Quiet
            $enable = [System.Collections.Generic.List[double]]::new(); $disable = [System.Collections.Generic.List[double]]::new()
            foreach ($p in $probes) {
                $enable.Add((Time { Enable-NamespaceNat -Namespace $p.Namespace -Bridge $p.Bridge -Outbound eth0 -Backend $kind }))
                $disable.Add((Time { Disable-NamespaceNat -Namespace $p.Namespace -Bridge $p.Bridge }))
            }
            $nftFile = if ($kind -eq 'Nftables') { Measure-NftFile 15 } else { $null }
            $batch = if ($kind -eq 'Nftables') { Measure-NftBatch $probes } else { $null }
            $result["$kind/$level"] = [pscustomobject]@{ Enable = Stats $enable; Disable = Stats $disable; NftFile = $nftFile; Batch = $batch }
        }
        Get-NamespaceNat | Disable-NamespaceNat
        if (@(Get-NamespaceNat).Count -ne 0) { throw "The $kind pass left bindings" }
        Wait-Quiet
        $bulkTime = Time { $pool[0..($Bulk - 1)] | Select-Object Namespace, Bridge | Enable-NamespaceNat -Outbound eth0 -Backend $kind }
        $result["$kind/bulk"] = $bulkTime
        Get-NamespaceNat | Disable-NamespaceNat
    }

    $first = $Levels[0]; $last = $Levels[-1]
    # Per call (Enable, then Disable): its time at each level in both backends, and its cost at the last level / the first.
    foreach ($call in 'Enable', 'Disable') {
        foreach ($level in $Levels) {
            $i = $result["Iptables/$level"].$call; $n = $result["Nftables/$level"].$call
            $rows.Add((Row "$call one namespace at $level bridges: nftables / iptables backend" ('{0} / {1}' -f (Fmt $n), (Fmt $i)) '' ('{0:0.00}x nft / ipt' -f ($n.Median / $i.Median))))
        }
        $ni = $result["Iptables/$last"].$call.Median / $result["Iptables/$first"].$call.Median
        $nn = $result["Nftables/$last"].$call.Median / $result["Nftables/$first"].$call.Median
        $rows.Add((Row "cost of one $call at $last bridges / at $first (target for nftables: within 1.2x)" ('nftables {0:0.00}x / iptables {1:0.00}x' -f $nn, $ni) '' ''))
    }
    foreach ($level in $Levels) {
        $bt = $result["Nftables/$level"].Batch
        $rows.Add((Row "the nf_tables batch inside one Enable / one Disable at $level bridges, nftables backend (the kernel's part)" ('{0} / {1}' -f (Fmt $bt.Enable), (Fmt $bt.Disable)) '' ''))
    }
    foreach ($kind in 'Nftables', 'Iptables') {
        $r = $result["$kind/$first"]
        $rows.Add((Row "Disable / Enable of the same namespace, $($kind.ToLowerInvariant()) backend, at $first bridges (target: 1.5x at most)" ('{0} / {1}' -f (Fmt $r.Disable), (Fmt $r.Enable)) '' ('{0:0.00}x' -f ($r.Disable.Median / $r.Enable.Median))))
    }
    $rows.Add((Row "$Bulk bridges piped into one Enable-NamespaceNat (target for nftables: under 0.5 s)" ('nftables {0:0} ms / iptables {1:0} ms' -f $result['Nftables/bulk'], $result['Iptables/bulk']) '' ('{0:0.0}x' -f ($result['Iptables/bulk'] / $result['Nftables/bulk']))))
    $f1 = $result["Nftables/$first"].NftFile; $fN = $result["Nftables/$last"].NftFile
    $rows.Add((Row "nft -f adding one bridge's 2 elements to the table, at $first / at $last bridges (a process each)" ('{0} / {1}' -f (Fmt $f1), (Fmt $fN)) '' ('{0:0.00}x' -f ($fN.Median / $f1.Median))))

    # Processes one Enable starts, and the cold start, with the nftables backend.
    $b = (New-Bridges 1)[0]
    $base = Count-Execs @($pwsh, '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$ModulePath'; Get-BridgeSubnet $($b.Bridge) | Out-Null")
    $full = Count-Execs @($pwsh, '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$ModulePath'; Get-BridgeSubnet $($b.Bridge) | Out-Null; Enable-NamespaceNat $($b.Namespace) $($b.Bridge) eth0 -Backend Nftables | Out-Null; Disable-NamespaceNat $($b.Namespace) $($b.Bridge)")
    $rows.Add((Row 'processes started by one Enable and its Disable, nftables backend (strace execve; target 0)' ($full - $base) '' ''))
    # The cold start beside its floor: the same measurement of a module of one empty cmdlet, in this pwsh and in a copy
    # of it whose PowerShell assemblies are precompiled (as the distribution packages ship them).
    $scratch = "/run/bench-cold-$PID"
    New-Item -ItemType Directory $scratch | Out-Null
    try {
        $floor = Get-ColdFloor
        $r2r = New-ReadyToRunPwsh "$scratch/pwsh"
        $shells = @([pscustomobject]@{ Name = "this pwsh ($($PSVersionTable.PSVersion), the dotnet tool's: PowerShell's own assemblies not precompiled)"; Path = $pwsh })
        if (Test-Path $r2r) { $shells += [pscustomobject]@{ Name = 'a copy of it with PowerShell''s assemblies precompiled (crossgen2, as distribution packages ship pwsh)'; Path = $r2r } }
        else { $rows.Add((Row 'Cold start in a ReadyToRun pwsh' "not measured: $r2r" '' '')) }
        $b = (New-Bridges 1)[0]
        $enable = "Enable-NamespaceNat -Namespace $($b.Namespace) -Bridge $($b.Bridge) -Outbound eth0 -Backend Nftables"
        $disable = "Disable-NamespaceNat -Namespace $($b.Namespace) -Bridge $($b.Bridge)"
        Wait-Quiet
        foreach ($shell in $shells) {
            # NetnsNat and the floor alternate, fresh process by fresh process, so both see the same machine.
            $ours = [System.Collections.Generic.List[object]]::new(); $theirs = [System.Collections.Generic.List[object]]::new()
            $floorFailed = $null
            foreach ($i in 1..7) {
                $ours.Add((Get-ColdSample $ModulePath $shell.Path $enable $disable))
                if (-not (Test-Path $floor) -or $floorFailed) { continue }
                try { $theirs.Add((Get-ColdSample $floor $shell.Path 'Enable-ColdFloor bn0 bb0' '')) }
                catch { $floorFailed = "$_" }
            }
            if ($floorFailed) { $theirs.Clear(); $floor = $floorFailed }
            $cold = Get-ColdSummary $ours
            $rows.Add((Row "Cold start in $($shell.Name): Import-Module / first Enable-NamespaceNat (nftables) / sum (median of 7; target under 80 ms)" ('{0:0.0} ms / {1:0.0} ms / {2:0.0} ms ({3} + {4} methods JIT-compiled)' -f $cold.Import, $cold.First, $cold.Sum, $cold.JitImport, $cold.JitFirst) '' ''))
            if ($theirs.Count -eq 0) { $rows.Add((Row '  its floor' "not measured: $floor" '' '')); continue }
            $base = Get-ColdSummary $theirs
            $rows.Add((Row "  its floor, a module of one empty cmdlet: Import-Module / first call / sum" ('{0:0.0} ms / {1:0.0} ms / {2:0.0} ms ({3} + {4} methods JIT-compiled)' -f $base.Import, $base.First, $base.Sum, $base.JitImport, $base.JitFirst) '' ('NetnsNat {0:0.0} ms above it' -f ($cold.Sum - $base.Sum))))
        }
    }
    finally { Remove-Item $scratch -Recurse -Force -ErrorAction Ignore }
}
finally {
    Remove-NetnsNatLab
}
if ($Print) {
    foreach ($r in $rows) { Write-Host ("  {0,-110} {1,-60} {2}" -f $r.Measurement, $r.NetnsNat, $r.Ratio) }
}
else {
    $rows
}
