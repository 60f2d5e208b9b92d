<#
.SYNOPSIS
    NetnsNat against the lesson's commands, measured side by side in one run (./build.ps1 Bench, inside the sandbox).
.DESCRIPTION
    Prints one table and writes it to out/bench.md. Times are wall-clock on a shared machine: compare the ratios.
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [Parameter(Mandatory)][string] $OutputPath,
    [int] $Samples = 20,
    [int[]] $Levels = @(10, 100, 1000),
    [int[]] $BulkSizes = @(100, 1000)
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module $ModulePath
Import-Module (Join-Path $PSScriptRoot '../tests/Lab/NetnsNatLab.psm1')
$lesson = Join-Path $PSScriptRoot 'lesson.sh'
$pwsh = Join-Path $PSHOME 'pwsh'
$rows = [System.Collections.Generic.List[object]]::new()
$script:nextNet = 0
. (Join-Path $PSScriptRoot 'Common.ps1')

function Add-Row([string] $what, [string] $ours, [string] $theirs, [string] $ratio) {
    $rows.Add([pscustomobject]@{ Measurement = $what; NetnsNat = $ours; Lesson = $theirs; Ratio = $ratio })
    Write-Host ("  {0,-62} {1,-26} {2,-26} {3}" -f $what, $ours, $theirs, $ratio)
}

function New-Clients([string] $bridge, [string] $prefix, [int] $count, [string] $net16) {
    $batch = [System.Text.StringBuilder]::new()
    $names = foreach ($i in 1..$count) {
        $ns = "$prefix$i"
        [void]$batch.AppendLine("netns add $ns").AppendLine("link add $ns type veth peer name veth1 netns $ns").AppendLine("link set $ns master $bridge").AppendLine("link set $ns up")
        $ns
    }
    $file = "/run/bench-batch-$PID"
    [IO.File]::WriteAllText($file, $batch.ToString())
    Invoke-LabCommand ip -ArgumentList @('-batch', $file) -TimeoutSeconds 600 | Out-Null
    $i = 0
    foreach ($ns in $names) {
        $i++
        [IO.File]::WriteAllText($file, "link set veth1 addrgenmode none`naddr add $net16.$([Math]::Floor($i / 250) + 1).$($i % 250 + 1)/16 dev veth1`nlink set veth1 up`n")
        Invoke-LabCommand ip -ArgumentList @('-n', $ns, '-batch', $file) | Out-Null
    }
    $names
}

function Measure-KernelWrite([int] $count = 20) {
    # The kernel's part alone: one bridge's four rules as one netlink batch (no cmdlet), $count times; then all taken out.
    # Through the module's test hook (NetnsNat.InternalHooks): the same encoder and batch the cmdlets use.
    $times = foreach ($i in 1..$count) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        if (-not [NetnsNat.InternalHooks]::WriteMasqueradeRules(@("10.250.$i.0/24"), @('eth0'), @("kx$i"))) { throw 'the chains should exist by now' }
        $sw.Elapsed.TotalMilliseconds
    }
    Invoke-LabCommand iptables-restore -ArgumentList @('--noflush') -InputObject ((1..$count | ForEach-Object { [NetnsNat.InternalHooks]::MasqueradeUndoScript("10.250.$_.0/24", 'eth0', "kx$_") }) -join '') | Out-Null
    Stats $times
}

function Invoke-Lesson($b) { Invoke-LabCommand bash -ArgumentList @($lesson, $b.Namespace, $b.Bridge, 'eth0') | Out-Null }

function Measure-Single([object[]] $bridges) {
    $ours = foreach ($b in $bridges) { Time { Enable-NamespaceNat -Namespace $b.Namespace -Bridge $b.Bridge -Outbound eth0 } }
    # Undo what NetnsNat did, then the lesson's commands on the same bridges.
    $bridges | ForEach-Object { Disable-NamespaceNat -Namespace $_.Namespace -Bridge $_.Bridge }
    $theirs = foreach ($b in $bridges) { Time { Invoke-Lesson $b } }
    foreach ($b in $bridges) {
        Invoke-LabCommand ip -ArgumentList @('-n', $b.Namespace, 'route', 'del', 'default') | Out-Null
        foreach ($rule in @(@('-t', 'nat', '-D', 'POSTROUTING', '-s', "$($b.Net).0/24", '-o', 'eth0', '-j', 'MASQUERADE'), @('-D', 'FORWARD', '-o', $b.Bridge, '-j', 'ACCEPT'), @('-D', 'FORWARD', '-i', $b.Bridge, '-j', 'ACCEPT'))) {
            Invoke-LabCommand iptables -ArgumentList $rule | Out-Null
        }
    }
    # Once more with -Verbose, which says how long the rule write took inside the call: the call split into the
    # kernel's part and NetnsNat's own (the bridges stay configured).
    $write = [System.Collections.Generic.List[double]]::new(); $own = [System.Collections.Generic.List[double]]::new()
    foreach ($b in $bridges) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $out = Enable-NamespaceNat -Namespace $b.Namespace -Bridge $b.Bridge -Outbound eth0 -Verbose 4>&1
        $total = $sw.Elapsed.TotalMilliseconds
        $ms = foreach ($r in $out) { if ($r -is [System.Management.Automation.VerboseRecord] -and $r.Message -match '^Wrote \d+ rule changes in one .* \((\d+\.\d+) ms\)\.$') { [double]$Matches[1] } }
        $write.Add($ms); $own.Add($total - $ms)
    }
    # And once with the rules already in place and only the route missing: the whole call but the kernel's rule commit.
    foreach ($b in $bridges) { Invoke-LabCommand ip -ArgumentList @('-n', $b.Namespace, 'route', 'del', 'default') | Out-Null }
    $routeOnly = foreach ($b in $bridges) { Time { Enable-NamespaceNat -Namespace $b.Namespace -Bridge $b.Bridge -Outbound eth0 } }
    [pscustomobject]@{ Ours = Stats $ours; Theirs = Stats $theirs; Write = Stats $write; Own = Stats $own; RouteOnly = Stats $routeOnly }
}

try {
    Write-Host 'Building the lab...'
    # IPv6 address configuration of the lab's thousands of links is kernel work in the background that neither side
    # of the comparison needs (both are IPv4): off in the sandbox's own namespace (and, per link, in the clients').
    Assert-LabSandbox
    foreach ($conf in 'all', 'default') { Set-Content -Path "/proc/sys/net/ipv6/conf/$conf/disable_ipv6" -Value 1 }
    New-NetnsNatLab -Client '' | Out-Null
    Write-Host ("  {0,-62} {1,-26} {2,-26} {3}" -f 'measurement', 'NetnsNat', "lesson's commands", 'lesson / NetnsNat')

    # 0. Import-Module (first, while the machine is quiet): in-process, and pwsh start with the import minus without it.
    $inProcess = foreach ($i in 1..10) { [double](& $pwsh -NoProfile -NonInteractive -Command "`$sw = [Diagnostics.Stopwatch]::StartNew(); Import-Module '$ModulePath'; `$sw.Elapsed.TotalMilliseconds") }
    $with = [System.Collections.Generic.List[double]]::new(); $without = [System.Collections.Generic.List[double]]::new()
    foreach ($i in 1..15) {
        $without.Add((Time { & $pwsh -NoProfile -NonInteractive -Command '$null' }))
        $with.Add((Time { & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'" }))
    }
    Add-Row 'Import-Module NetnsNat: in the session / pwsh start with minus without' ('{0:0} ms / {1:0} ms' -f (Stats $inProcess).Median, ((Stats $with).Median - (Stats $without).Median)) '' ''
    # Cold start (issue 14): a fresh pwsh times its Import-Module and its first Enable-NamespaceNat from inside, then undoes
    # the Enable, so that every sample starts from the same ruleset. Median of 7 each, and of the sums.
    $cold = Measure-ColdStart $ModulePath
    Add-Row 'Cold start, fresh pwsh: Import-Module / first Enable-NamespaceNat / sum (median of 7)' ('{0:0.0} ms / {1:0.0} ms / {2:0.0} ms' -f $cold.Import, $cold.First, $cold.Sum) '' ''
    Add-Row '... methods JIT-compiled in them: Import-Module / first Enable' ('{0} / {1}' -f $cold.JitImport, $cold.JitFirst) '' ''

    # 1. One namespace, warm session, fresh bridges.
    # Warm-up: .NET compiles a method again, optimized, after about 30 calls (tiered JIT), in the background. Run the
    # whole flow 40 times and let that finish, so that every level below measures the same steady-state code.
    $warm = (New-Bridges 1)[0]
    foreach ($i in 1..40) {
        Enable-NamespaceNat -Namespace $warm.Namespace -Bridge $warm.Bridge -Outbound eth0 | Out-Null
        Disable-NamespaceNat -Namespace $warm.Namespace -Bridge $warm.Bridge
    }
    Enable-NamespaceNat -Namespace $warm.Namespace -Bridge $warm.Bridge -Outbound eth0 | Out-Null
    Start-Sleep -Milliseconds 500
    $fresh = New-Bridges $Samples
    Wait-Quiet
    $single = Measure-Single $fresh
    $fresh | ForEach-Object { Disable-NamespaceNat -Namespace $_.Namespace -Bridge $_.Bridge }
    Add-Row "Enable one namespace, $Samples fresh bridges: median (p10-p90)" (Fmt $single.Ours) (Fmt $single.Theirs) ('{0:0.0}x' -f ($single.Theirs.Median / $single.Ours.Median))

    # 2. The same with many bridges already configured.
    $configured = 1
    $perLevel = @{}
    $kernel = @{}
    foreach ($level in $Levels) {
        $add = $level - $configured
        if ($add -gt 0) {
            $more = New-Bridges $add
            $more | Select-Object Namespace, Bridge | Enable-NamespaceNat -Outbound eth0 | Out-Null
            $configured += $add
        }
        $probe = New-Bridges $Samples
        $rules = ((Invoke-LabCommand iptables-save).Output -split "`n" | Where-Object { $_ -like '-A *' }).Count
        Wait-Quiet
        $m = Measure-Single $probe
        $probe | Select-Object Namespace, Bridge | Enable-NamespaceNat -Outbound eth0 | Out-Null
        $configured += $Samples
        $perLevel[$level] = $m
        $kernel[$level] = Measure-KernelWrite
        Add-Row "Enable one namespace with $level bridges configured ($rules rules in place)" (Fmt $m.Ours) (Fmt $m.Theirs) ('{0:0.0}x' -f ($m.Theirs.Median / $m.Ours.Median))
    }
    $first = $Levels[0]; $last = $Levels[-1]
    Add-Row "cost at $last bridges / cost at $first" ('{0:0.00}x' -f ($perLevel[$last].Ours.Median / $perLevel[$first].Ours.Median)) ('{0:0.00}x' -f ($perLevel[$last].Theirs.Median / $perLevel[$first].Theirs.Median)) ''
    Add-Row "the kernel's commit of the 4 rules, one netlink batch with no cmdlet around it: at $first / at $last bridges" ('{0:0.00} ms / {1:0.00} ms' -f $kernel[$first].Median, $kernel[$last].Median) '' ('+{0:0.00} ms' -f ($kernel[$last].Median - $kernel[$first].Median))
    $a = $perLevel[$first]; $z = $perLevel[$last]
    Add-Row "a call with -Verbose, split: the rule write (netlink batch) at $first / at $last bridges" ('{0:0.00} ms / {1:0.00} ms' -f $a.Write.Median, $z.Write.Median) '' ('{0:0.00}x' -f ($z.Write.Median / $a.Write.Median))
    Add-Row "... and the rest of that call, at $first / at $last bridges" ('{0:0.00} ms / {1:0.00} ms' -f $a.Own.Median, $z.Own.Median) '' ('{0:0.00}x' -f ($z.Own.Median / $a.Own.Median))
    Add-Row "Enable with the rules already in place (the route only: no rule commit), at $first / at $last bridges" ('{0:0.00} ms / {1:0.00} ms' -f $a.RouteOnly.Median, $z.RouteOnly.Median) '' ('{0:0.00}x' -f ($z.RouteOnly.Median / $a.RouteOnly.Median))

    # 3. Many namespaces on one bridge, piped into one call.
    Add-LabBridge -Name bbulk -Address 10.210.0.1/16
    $max = ($BulkSizes | Measure-Object -Maximum).Maximum
    $clients = New-Clients -Bridge bbulk -Prefix 'k' -Count $max -Net16 '10.210'
    Wait-Quiet
    foreach ($size in $BulkSizes) {
        $names = $clients | Select-Object -First $size
        $byValue = Time { $names | Enable-NamespaceNat -Bridge bbulk -Outbound eth0 }
        $names | ForEach-Object { Invoke-LabCommand ip -ArgumentList @('-n', $_, 'route', 'del', 'default') | Out-Null }
        Remove-NatMasquerade -Subnet 10.210.0.0/16 -Outbound eth0
        $objects = $names | ForEach-Object { [pscustomobject]@{ Namespace = $_; Bridge = 'bbulk' } }
        $byProperty = Time { $objects | Enable-NamespaceNat -Outbound eth0 }
        $names | ForEach-Object { Invoke-LabCommand ip -ArgumentList @('-n', $_, 'route', 'del', 'default') | Out-Null }
        Remove-NatMasquerade -Subnet 10.210.0.0/16 -Outbound eth0
        Add-Row "$size namespaces on one bridge, one call: names by value / objects by property" ('{0:0} ms / {1:0} ms' -f $byValue, $byProperty) ('{0:0} ms (est. {1} x median)' -f ($size * $single.Theirs.Median), $size) ('{0:0.0}x' -f ($size * $single.Theirs.Median / $byValue))
    }

    # 5. Processes one call starts.
    $b = (New-Bridges 1)[0]
    $base = Count-Execs @($pwsh, '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$ModulePath'; Get-BridgeSubnet $($b.Bridge) | Out-Null")
    $full = Count-Execs @($pwsh, '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$ModulePath'; Get-BridgeSubnet $($b.Bridge) | Out-Null; Enable-NamespaceNat $($b.Namespace) $($b.Bridge) eth0 | Out-Null")
    Disable-NamespaceNat $b.Namespace $b.Bridge
    $c = (New-Bridges 1)[0]
    $lessonExecs = (Count-Execs @('bash', $lesson, $c.Namespace, $c.Bridge, 'eth0')) - 1
    Add-Row 'processes started by one Enable (strace execve)' ($full - $base) $lessonExecs ''

    # ---- 6. Get-NatSession over a large conntrack table (issue 15) --------------------------------------------------
    # 10,000 masqueraded TCP entries made in the sandbox's namespace by one "conntrack -R" (a file of -I lines), then
    # Get-NatSession (every entry read over ctnetlink and emitted as an object) against "conntrack -L" (text).
    function Measure-NatSessions([int] $count = 10000, [int] $samples = 10) {
        $file = "/run/bench-conntrack-$PID"
        $lines = foreach ($i in 0..($count - 1)) {
            "-I -p tcp -s 10.220.$([Math]::Floor($i / 250)).$($i % 250 + 1) -d 203.0.113.10 --sport $(20000 + $i % 40000) --dport 8080 " +
                '--state ESTABLISHED -u SEEN_REPLY,ASSURED -t 900 --src-nat 198.51.100.1'
        }
        [IO.File]::WriteAllLines($file, [string[]]$lines)
        Invoke-LabCommand conntrack -ArgumentList @('-R', $file) -TimeoutSeconds 300 | Out-Null
        Remove-Item $file
        $listed = @(Get-NatSession -Subnet 10.220.0.0/16).Count
        if ($listed -ne $count) { throw "Get-NatSession listed $listed of the $count entries made" }
        foreach ($i in 1..3) { Get-NatSession | Out-Null }
        $ours = Stats @(foreach ($i in 1..$samples) { Time { Get-NatSession } })
        $theirs = Stats @(foreach ($i in 1..$samples) { Time { Invoke-LabCommand conntrack -ArgumentList @('-L') -TimeoutSeconds 120 } })
        Add-Row "Get-NatSession, $count conntrack entries (objects) vs conntrack -L (text)" (Fmt $ours) (Fmt $theirs) ('{0:0.0}x' -f ($theirs.Median / $ours.Median))
        $filtered = Stats @(foreach ($i in 1..$samples) { Time { Get-NatSession -Port 9 } })
        Add-Row "Get-NatSession -Port 9 (no match), $count entries: the read alone" (Fmt $filtered) '' ''
        $removed = Time { Remove-NatSession -Subnet 10.220.0.0/16 }
        Add-Row "Remove-NatSession of $count entries (one dump, deletes 64 to a write)" ('{0:0} ms' -f $removed) '' ''
    }
    Measure-NatSessions

    # ---- 7. Dual stack (issue 13): one Enable on a dual-stack bridge against one on an IPv4-only bridge -------------
    # The same bridges and clients as above, half of them given IPv6 too (unique-local, nodad), measured alternately.
    function Enable-Ipv6([string] $Interface, [string] $Namespace) {
        if ($Namespace) { Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Namespace, 'sh', '-c', "echo 0 > /proc/sys/net/ipv6/conf/$Interface/disable_ipv6") | Out-Null }
        else { [IO.File]::WriteAllText("/proc/sys/net/ipv6/conf/$Interface/disable_ipv6", "0`n") }
    }
    function Measure-DualStack([int] $samples) {
        Enable-Ipv6 eth0
        Invoke-LabCommand ip -ArgumentList @('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'eth0', 'nodad') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('-6', 'route', 'add', 'default', 'via', '2001:db8:1::fe', 'dev', 'eth0') | Out-Null
        $v4 = New-Bridges ($samples + 5)
        $dual = New-Bridges ($samples + 5)
        $k = 0
        foreach ($d in $dual) {
            $k++
            $n = $d.Bridge.Substring(2)
            Enable-Ipv6 $d.Bridge; Enable-Ipv6 "h$n"; Enable-Ipv6 veth1 $d.Namespace
            Invoke-LabCommand ip -ArgumentList @('-6', 'addr', 'add', "fd00:0:$('{0:x}' -f $k)::1/64", 'dev', $d.Bridge, 'nodad') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', $d.Namespace, '-6', 'addr', 'add', "fd00:0:$('{0:x}' -f $k)::2/64", 'dev', 'veth1', 'nodad') | Out-Null
        }
        # Warm-up: the IPv6 paths compile on their first calls.
        foreach ($i in 0..4) {
            Enable-NamespaceNat -Namespace $v4[$i].Namespace -Bridge $v4[$i].Bridge -Outbound eth0 | Out-Null
            Enable-NamespaceNat -Namespace $dual[$i].Namespace -Bridge $dual[$i].Bridge -Outbound eth0 | Out-Null
        }
        Wait-Quiet
        $one = [System.Collections.Generic.List[double]]::new(); $both = [System.Collections.Generic.List[double]]::new()
        foreach ($i in 5..($samples + 4)) {
            $one.Add((Time { Enable-NamespaceNat -Namespace $v4[$i].Namespace -Bridge $v4[$i].Bridge -Outbound eth0 }))
            $both.Add((Time { Enable-NamespaceNat -Namespace $dual[$i].Namespace -Bridge $dual[$i].Bridge -Outbound eth0 }))
        }
        if ((Enable-NamespaceNat -Namespace $dual[5].Namespace -Bridge $dual[5].Bridge -Outbound eth0).AddressFamily -ne 'Both') { throw 'The dual-stack bridges were not enabled for both families' }
        $a = Stats $one; $b = Stats $both
        Add-Row "Enable one namespace: IPv4-only bridge / dual-stack bridge (both families), $samples each" ('{0} / {1}' -f (Fmt $a), (Fmt $b)) '' ('{0:0.00}x dual / IPv4' -f ($b.Median / $a.Median))
    }
    Measure-DualStack $Samples
}
finally {
    Remove-NetnsNatLab
}

# ---- 8. Port mappings (issue 15), in a lab of their own: 1000 piped into one call, one added at 10 and at 1000 ----------
foreach ($backend in 'Iptables', 'Nftables') {
    foreach ($r in & (Join-Path $PSScriptRoot 'PortMappings.ps1') -ModulePath $ModulePath -Samples $Samples -Backend $backend) { Add-Row $r.Measurement $r.NetnsNat $r.Lesson $r.Ratio }
}

# ---- 9. The two backends side by side (issue 14), in a lab of their own -----------------------------------------------
foreach ($r in & (Join-Path $PSScriptRoot 'Nftables.ps1') -ModulePath $ModulePath -Levels $Levels) { Add-Row $r.Measurement $r.NetnsNat $r.Lesson $r.Ratio }

$md = [System.Text.StringBuilder]::new()
[void]$md.AppendLine("# NetnsNat benchmark ($(Get-Date -Format 'yyyy-MM-dd HH:mm'), $([Environment]::ProcessorCount) cores)").AppendLine()
[void]$md.AppendLine("| measurement | NetnsNat | lesson's commands | lesson / NetnsNat |").AppendLine('| --- | --- | --- | --- |')
foreach ($r in $rows) { [void]$md.AppendLine("| $($r.Measurement) | $($r.NetnsNat) | $($r.Lesson) | $($r.Ratio) |") }
Set-Content -Path (Join-Path $OutputPath 'bench.md') -Value $md.ToString()
Write-Host "`nWritten to $(Join-Path $OutputPath 'bench.md')"
