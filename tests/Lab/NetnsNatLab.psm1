# The lab: the lesson's world, built inside the sandbox's network namespace (tests/Lab/sandbox.sh), never the machine's.
#
#   "host"      the sandbox's own namespace: bridge br0 10.0.0.1/24, uplink eth0 198.51.100.1/24, default route
#               via the "internet". NetnsNat's cmdlets act here.
#   testnet     a client namespace on br0: 10.0.0.2/24 (more clients and bridges with Add-LabClient/Add-LabBridge)
#   nnl-inet    the "internet": 198.51.100.254/24 on wan0 facing eth0, and the server 203.0.113.10 (TEST-NET-3,
#               an address that exists only here) on lo, where socat answers each TCP connection on port 8080
#               with the source address it sees. It has no route to 10.0.0.0/24: only NAT gets replies back.
#   -DualStack  adds IPv6 to all of it: eth0 2001:db8:1::1/64 facing wan0 2001:db8:1::fe/64, the server also on
#               2001:db8:ff::10 (documentation addresses, which exist only here), br0 fd00:0:0:1::1/64 and the client
#               fd00:0:0:1::2/64 (unique-local: the "internet" has no route to it). Addresses are added with nodad,
#               so nothing waits for duplicate address detection. -IPv6Only leaves out IPv4 on the bridge and client.
#
# Every packet the lab sends goes to an address of these namespaces.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$script:Internet = 'nnl-inet'
$script:ServerAddress = '203.0.113.10'
$script:ServerPort = 8080
$script:UplinkAddress = '198.51.100.1'
$script:ServerAddress6 = '2001:db8:ff::10'
$script:UplinkAddress6 = '2001:db8:1::1'
# Tools are found on the PATH the lab was loaded with, so tests that put wrappers in front of NetnsNat's tools
# (a failing iptables, a slow one) never change what the lab itself runs or measures.
$script:LabPath = $env:PATH
$script:ToolPaths = @{}
$script:Listeners = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()

function Assert-LabSandbox {
    <# Refuses to run anywhere but inside tests/Lab/sandbox.sh: the lab deletes interfaces and flushes rules. #>
    $outer = $env:NETNSNAT_OUTER_NETNS
    $here = (Get-Item /proc/self/ns/net).LinkTarget
    $inode = if ($here -match '\[(\d+)\]') { $Matches[1] } else { '' }
    if (-not $outer -or -not $inode -or $inode -eq $outer) {
        throw "The NetnsNat lab only runs inside its own network namespace (tests/Lab/sandbox.sh, as ./build.ps1 Test and Demo do). Refusing to touch this one."
    }
}

function Resolve-LabTool([string] $Name) {
    if ($Name.Contains('/')) { return $Name }
    if (-not $script:ToolPaths.ContainsKey($Name)) {
        $found = foreach ($dir in $script:LabPath -split ':') { if ($dir -and (Test-Path -PathType Leaf (Join-Path $dir $Name))) { Join-Path $dir $Name; break } }
        if (-not $found) { throw "The lab needs '$Name'; run ./build.ps1 Bootstrap" }
        $script:ToolPaths[$Name] = $found
    }
    $script:ToolPaths[$Name]
}

function Invoke-LabCommand {
    <# Runs a program with an argument array, stdin given (or closed) and a timeout; throws with its stderr when it fails. #>
    param(
        [Parameter(Mandatory)][string] $FilePath,
        [string[]] $ArgumentList = @(),
        [int] $TimeoutSeconds = 20,
        [switch] $AllowFailure,
        [string] $InputObject
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Resolve-LabTool $FilePath))
    foreach ($a in $ArgumentList) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $out = $p.StandardOutput.ReadToEndAsync()
    $err = $p.StandardError.ReadToEndAsync()
    if ($InputObject) { $p.StandardInput.Write($InputObject) }
    $p.StandardInput.Close()
    if (-not $p.WaitForExit($TimeoutSeconds * 1000)) {
        $p.Kill($true)
        throw "$FilePath $($ArgumentList -join ' ') did not finish within $TimeoutSeconds s"
    }
    $p.WaitForExit()
    $result = [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result; Error = $err.Result }
    if ($p.ExitCode -ne 0 -and -not $AllowFailure) {
        throw "$FilePath $($ArgumentList -join ' ') failed ($($p.ExitCode)): $($err.Result.Trim())"
    }
    $result
}

function ipc { Invoke-LabCommand -FilePath ip -ArgumentList $args | Out-Null }

function Add-LabBridge {
    <# A bridge in the lab's host namespace, with an address, up. #>
    param([string] $Name = 'br0', [string] $Address = '10.0.0.1/24', [string] $Address6, [switch] $Down)
    Assert-LabSandbox
    # A fixed MAC: a bridge that takes its ports' lowest MAC changes it whenever a port comes or goes, and a client's
    # ARP entry for the gateway then points at a MAC nobody answers for until it expires (seconds of lost packets).
    $hash = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Name))
    $mac = '02:' + (($hash[0..4] | ForEach-Object { $_.ToString('x2') }) -join ':')
    ipc link add $Name address $mac type bridge
    if ($Address) { ipc addr add $Address dev $Name }
    if ($Address6) { ipc -6 addr add $Address6 dev $Name nodad }
    if (-not $Down) { ipc link set $Name up }
}

function Add-LabClient {
    <# A named namespace attached to a bridge by a veth pair, with an address, lo and the veth up, no default route. #>
    param([string] $Name = 'testnet', [string] $Bridge = 'br0', [string] $Address = '10.0.0.2/24', [string] $Address6, [string] $HostEnd)
    Assert-LabSandbox
    if (-not $HostEnd) { $HostEnd = ('v' + $Name) ; if ($HostEnd.Length -gt 15) { $HostEnd = $HostEnd.Substring(0, 15) } }
    ipc netns add $Name
    ipc link add $HostEnd type veth peer name veth1 netns $Name
    ipc link set $HostEnd master $Bridge
    ipc link set $HostEnd up
    if ($Address) { ipc -n $Name addr add $Address dev veth1 }
    if ($Address6) { ipc -n $Name -6 addr add $Address6 dev veth1 nodad }
    ipc -n $Name link set veth1 up
    ipc -n $Name link set lo up
}

function Start-LabListener {
    <#
      A TCP listener in a namespace that answers each connection with the source address it sees (socat). Stopped by
      Remove-NetnsNatLab or Stop-LabListener; the sandbox's PID namespace kills it in any case when the run ends.
    #>
    param([Parameter(Mandatory)][string] $Namespace, [Parameter(Mandatory)][string] $Address, [Parameter(Mandatory)][int] $Port)
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Resolve-LabTool ip))
    $listen = if ($Address.Contains(':')) { "TCP6-LISTEN:$Port,bind=[$Address],fork,reuseaddr" } else { "TCP-LISTEN:$Port,bind=$Address,fork,reuseaddr" }
    foreach ($a in @('netns', 'exec', $Namespace, 'socat', $listen, 'SYSTEM:echo $SOCAT_PEERADDR')) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $process = [System.Diagnostics.Process]::Start($psi)
    $script:Listeners.Add($process)
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    while ([DateTime]::UtcNow -lt $deadline) {
        $probe = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Namespace, 'socat', '-T', '1', '-', "$(Get-SocatAddress $Address $Port),connect-timeout=1") -AllowFailure
        if ($probe.ExitCode -eq 0 -and $probe.Output.Trim()) { return $process }
        if ($process.HasExited) { throw "socat in $Namespace exited: $($process.StandardError.ReadToEnd())" }
        Start-Sleep -Milliseconds 50
    }
    throw "The listener on ${Address}:$Port in $Namespace did not start within 10 s"
}

function Get-SocatAddress([string] $Address, [int] $Port) {
    if ($Address.Contains(':')) { "TCP6:[${Address}]:${Port}" } else { "TCP:${Address}:${Port}" }
}

function Stop-LabListener {
    param([Parameter(Mandatory)][System.Diagnostics.Process] $Process)
    if (-not $Process.HasExited) { $Process.Kill($true); $Process.WaitForExit(5000) | Out-Null }
    $script:Listeners.Remove($Process) | Out-Null
}

function Start-LabDns {
    <#
      dnsmasq in the "internet" namespace on 203.0.113.53, answering only names that exist in the lab:
      server.lab.test is the lab server. It forwards nothing anywhere (no upstream, no /etc/hosts).
    #>
    param([string] $Address = '203.0.113.53')
    Invoke-LabCommand ip -ArgumentList @('-n', $script:Internet, 'addr', 'replace', "$Address/32", 'dev', 'lo') | Out-Null
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Resolve-LabTool ip))
    foreach ($a in @('netns', 'exec', $script:Internet, (Resolve-LabTool dnsmasq), '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
            '--bind-interfaces', "--listen-address=$Address", '--user=root', '--group=root', '--pid-file=/run/netnsnat-lab-dnsmasq.pid',
            "--address=/server.lab.test/$($script:ServerAddress)", '--log-facility=-')) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
    $process = [System.Diagnostics.Process]::Start($psi)
    $script:Listeners.Add($process)
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($process.HasExited) { throw "dnsmasq exited: $($process.StandardError.ReadToEnd())" }
        $ss = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $script:Internet, 'ss', '-lun') -AllowFailure
        if ($ss.Output -match [regex]::Escape("${Address}:53")) { return $process }
        Start-Sleep -Milliseconds 50
    }
    throw 'dnsmasq did not start listening within 10 s'
}

function Resolve-LabName {
    <# Resolves a name from inside a namespace (through the resolv.conf "ip netns exec" shows it); the address or $null. #>
    param([string] $Namespace = 'testnet', [string] $Name = 'server.lab.test')
    $r = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Namespace, 'getent', 'ahostsv4', $Name) -AllowFailure -TimeoutSeconds 15
    if ($r.ExitCode -eq 0) { ($r.Output -split '\s+')[0] } else { $null }
}

function New-NetnsNatLab {
    <# Builds the lesson's world (see the top of this file) after clearing what an earlier run left. #>
    param([string] $Bridge = 'br0', [string] $BridgeAddress = '10.0.0.1/24', [string] $Client = 'testnet', [string] $ClientAddress = '10.0.0.2/24', [string] $Uplink = 'eth0',
        [switch] $DualStack, [switch] $IPv6Only)
    Assert-LabSandbox
    Remove-NetnsNatLab
    $six = $DualStack -or $IPv6Only
    if ($IPv6Only) { $BridgeAddress = ''; $ClientAddress = '' }
    ipc netns add $script:Internet
    ipc link add $Uplink type veth peer name wan0 netns $script:Internet
    ipc addr add "$($script:UplinkAddress)/24" dev $Uplink
    ipc link set $Uplink up
    ipc -n $script:Internet addr add 198.51.100.254/24 dev wan0
    ipc -n $script:Internet link set wan0 up
    ipc -n $script:Internet link set lo up
    ipc -n $script:Internet addr add "$($script:ServerAddress)/32" dev lo
    ipc route add default via 198.51.100.254 dev $Uplink
    if ($six) {
        ipc -6 addr add "$($script:UplinkAddress6)/64" dev $Uplink nodad
        ipc -n $script:Internet -6 addr add 2001:db8:1::fe/64 dev wan0 nodad
        ipc -n $script:Internet -6 addr add "$($script:ServerAddress6)/128" dev lo nodad
        ipc -6 route add default via 2001:db8:1::fe dev $Uplink
    }
    Add-LabBridge -Name $Bridge -Address $BridgeAddress -Address6 $(if ($six) { 'fd00:0:0:1::1/64' })
    if ($Client) { Add-LabClient -Name $Client -Bridge $Bridge -Address $ClientAddress -Address6 $(if ($six) { 'fd00:0:0:1::2/64' }) }
    Start-LabListener -Namespace $script:Internet -Address $script:ServerAddress -Port $script:ServerPort | Out-Null
    if ($six) { Start-LabListener -Namespace $script:Internet -Address $script:ServerAddress6 -Port $script:ServerPort | Out-Null }
    [pscustomobject]@{
        Bridge = $Bridge; BridgeAddress = $BridgeAddress; Client = $Client; ClientAddress = $ClientAddress
        Uplink = $Uplink; UplinkAddress = $script:UplinkAddress; Internet = $script:Internet
        ServerAddress = $script:ServerAddress; ServerPort = $script:ServerPort
        BridgeAddress6 = $(if ($six) { 'fd00:0:0:1::1/64' }); ClientAddress6 = $(if ($six) { 'fd00:0:0:1::2/64' })
        UplinkAddress6 = $(if ($six) { $script:UplinkAddress6 }); ServerAddress6 = $(if ($six) { $script:ServerAddress6 })
    }
}

function Remove-NetnsNatLab {
    <# Tears the lab down: server, namespaces, interfaces, rules, routes, forwarding. Safe to call twice. #>
    Assert-LabSandbox
    foreach ($listener in @($script:Listeners)) { Stop-LabListener $listener }
    foreach ($ns in @(Get-ChildItem /run/netns -ErrorAction SilentlyContinue)) {
        Invoke-LabCommand ip -ArgumentList @('netns', 'pids', $ns.Name) -AllowFailure | ForEach-Object {
            foreach ($p in ($_.Output -split '\s+' | Where-Object { $_ })) { Invoke-LabCommand kill -ArgumentList @('-9', $p) -AllowFailure | Out-Null }
        }
        Invoke-LabCommand ip -ArgumentList @('netns', 'del', $ns.Name) -AllowFailure | Out-Null
    }
    foreach ($link in (Get-ChildItem /sys/class/net | Where-Object Name -ne 'lo')) {
        Invoke-LabCommand ip -ArgumentList @('link', 'del', $link.Name) -AllowFailure | Out-Null
    }
    Reset-LabFirewall
    [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
    [System.IO.File]::WriteAllText('/proc/sys/net/ipv6/conf/all/forwarding', "0`n")
}

function Reset-LabFirewall {
    <#
      Empties every table of both iptables backends in the sandbox namespace, policies back to ACCEPT, and forgets
      NetnsNat's state store with them (its bindings would name rules that are gone). A test of Restore-NamespaceNat
      flushes the rules by hand instead.
    #>
    Assert-LabSandbox
    Remove-Item /var/lib/netnsnat -Recurse -Force -ErrorAction Ignore
    foreach ($tool in 'iptables', 'iptables-legacy', 'ip6tables', 'ip6tables-legacy') {
        if (-not (Get-Command $tool -CommandType Application -ErrorAction Ignore)) { continue }
        # Touch a backend only when it has tables: flushing creates them, and iptables then warns about the mix.
        if (-not ((Invoke-LabCommand "$tool-save" -AllowFailure).Output -match '(?m)^\*')) { continue }
        foreach ($table in 'filter', 'nat') {
            Invoke-LabCommand $tool -ArgumentList @('-w', '-t', $table, '-F') -AllowFailure | Out-Null
            Invoke-LabCommand $tool -ArgumentList @('-w', '-t', $table, '-X') -AllowFailure | Out-Null
        }
        foreach ($chain in 'INPUT', 'FORWARD', 'OUTPUT') { Invoke-LabCommand $tool -ArgumentList @('-w', '-P', $chain, 'ACCEPT') -AllowFailure | Out-Null }
    }
    # nftables tables that are not iptables-nft's: NetnsNat's inet netnsnat, and those a test made as another program's.
    foreach ($table in @(Get-LabNftTables)) { Invoke-LabCommand nft -ArgumentList @('delete', 'table', $table.Split(' ')) -AllowFailure | Out-Null }
}

function Get-LabNftTables {
    <# The nftables tables of the sandbox that iptables-nft did not make ("inet netnsnat", "inet docker-bridges"), as "FAMILY NAME". #>
    $r = Invoke-LabCommand nft -ArgumentList @('list', 'tables') -AllowFailure
    @($r.Output -split "`n" | Where-Object { $_ -match '^table (\S+) (\S+)$' } | ForEach-Object { "$($Matches[1]) $($Matches[2])" } |
        Where-Object { $_ -notmatch '^(ip|ip6) (filter|nat|mangle|raw|security)$' })
}

function Test-LabConnection {
    <#
      Opens a TCP connection from a namespace to the lab server; returns the source address the server saw, or
      $null when no connection was made (the lesson's "Network is unreachable" or a time-out).
    #>
    param([string] $Namespace = 'testnet', [string] $Address = $script:ServerAddress, [int] $Port = $script:ServerPort, [int] $TimeoutSeconds = 2)
    $r = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Namespace, 'socat', '-T', "$TimeoutSeconds", '-', "$(Get-SocatAddress $Address $Port),connect-timeout=$TimeoutSeconds") -AllowFailure -TimeoutSeconds ($TimeoutSeconds + 5)
    # socat prints an IPv6 peer in brackets and in full ([2001:0db8:0001:...]): give it as ip prints it (2001:db8:1::1).
    if ($r.ExitCode -eq 0 -and $r.Output.Trim()) { $seen = $r.Output.Trim().Trim('[', ']'); $ip = $null; if ([System.Net.IPAddress]::TryParse($seen, [ref] $ip)) { $ip.ToString() } else { $seen } } else { $null }
}

function ConvertTo-LabRuleset {
    <#
      iptables-save output as what it means, for before/after comparisons: rules with their table, custom chains, and
      policies other than ACCEPT; no counters, comments or table headers. An empty table with ACCEPT policies (which
      iptables-nft creates on first use) reads the same as no table at all.
    #>
    param([string] $Save, [string] $Prefix = '')
    $table = ''
    foreach ($line in $Save -split "`n") {
        if ($line.StartsWith('*')) { $table = $line.Substring(1); continue }
        if (-not $line -or $line.StartsWith('#') -or $line -eq 'COMMIT') { continue }
        if ($line -match '^:(\S+) (\S+)') { if ($Matches[2] -ne 'ACCEPT') { "$Prefix$table :$($Matches[1]) $($Matches[2])" }; continue }
        if ($table -eq 'filter') { "$Prefix$line" } else { "$Prefix-t $table $line" }
    }
}

function Get-LabRuleset {
    <# The iptables (nf_tables) ruleset of the lab host, normalized by ConvertTo-LabRuleset, one string ('' when empty); -IPv6 for ip6tables'. #>
    param([switch] $IPv6)
    @(ConvertTo-LabRuleset (Invoke-LabCommand $(if ($IPv6) { 'ip6tables-save' } else { 'iptables-save' })).Output) -join "`n"
}

function Get-LabStoreView {
    <#
    .SYNOPSIS
        A state store's content as NetnsNat reads it (its file, then the lines of its journal that follow that file), one
        record per line, without the times records were made (a setup made again is the same setup) or how the content
        is split between the file and the journal.
    #>
    param([Parameter(Mandatory)][string] $Path)
    $text = [System.IO.File]::ReadAllText($Path)
    try { $root = $text | ConvertFrom-Json -ErrorAction Stop } catch { return @("unreadable: $text") }
    $lists = @{}
    function Part($object, [string] $name) { if ($object.PSObject.Properties[$name]) { @($object.$name) } else { @() } }
    foreach ($name in 'bindings', 'rules', 'mappings') { $lists[$name] = [System.Collections.Generic.List[string]]::new(); foreach ($r in (Part $root $name)) { $lists[$name].Add(($r | ConvertTo-Json -Compress -Depth 5)) } }
    $host_ = [ordered]@{ forwardingTurnedOn = Part $root 'forwardingTurnedOn'; createdTables = Part $root 'createdTables'; acceptRaChanged = Part $root 'acceptRaChanged' }
    $journal = [System.IO.Path]::ChangeExtension($Path, '.journal')
    if (Test-Path $journal) {
        $content = [System.IO.File]::ReadAllText($journal)
        foreach ($line in @($content -split "`n" | Select-Object -SkipLast 1)) {
            try { $change = $line | ConvertFrom-Json -ErrorAction Stop } catch { return @("unreadable journal line: $line") }
            if (-not $root.PSObject.Properties['generation'] -or $change.generation -ne $root.generation) { continue }
            foreach ($part in 'remove', 'add') {
                if (-not $change.PSObject.Properties[$part]) { continue }
                foreach ($name in 'bindings', 'rules', 'mappings') {
                    if (-not $change.$part.PSObject.Properties[$name]) { continue }
                    foreach ($r in @($change.$part.$name)) {
                        $key = $r | ConvertTo-Json -Compress -Depth 5
                        if ($part -eq 'remove') { [void]$lists[$name].Remove($key) } else { $lists[$name].Add($key) }
                    }
                }
            }
            foreach ($name in 'forwardingTurnedOn', 'createdTables', 'acceptRaChanged') { if ($change.PSObject.Properties[$name]) { $host_[$name] = @($change.$name) } }
        }
    }
    foreach ($name in 'bindings', 'rules', 'mappings') { foreach ($r in $lists[$name]) { "${name}: " + ($r -replace '"(enabledAt|addedAt)":"[^"]*",?', '') } }
    foreach ($name in $host_.Keys) { "${name}: " + (ConvertTo-Json -Compress -Depth 5 -InputObject @($host_[$name])) }
}

function Get-LabState {
    <# Everything a NetnsNat call may change, as text: rules of both backends, routes here and in every namespace, sysctls. #>
    $lines = [System.Collections.Generic.List[string]]::new()
    $lines.AddRange([string[]]@((Get-LabRuleset) -split "`n" | Where-Object { $_ }))
    $lines.AddRange([string[]]@(ConvertTo-LabRuleset (Invoke-LabCommand ip6tables-save).Output -Prefix 'ip6 '))
    if (Get-Command iptables-legacy-save -ErrorAction Ignore) {
        $lines.AddRange([string[]]@(ConvertTo-LabRuleset (Invoke-LabCommand iptables-legacy-save).Output -Prefix 'legacy '))
        $lines.AddRange([string[]]@(ConvertTo-LabRuleset (Invoke-LabCommand ip6tables-legacy-save).Output -Prefix 'legacy ip6 '))
    }
    $lines.AddRange([string[]]@((Invoke-LabCommand ip -ArgumentList @('route')).Output -split "`n" | Where-Object { $_ }))
    $lines.AddRange([string[]]@((Invoke-LabCommand ip -ArgumentList @('-6', 'route')).Output -split "`n" | Where-Object { $_ -and $_ -notmatch '^(fe80|multicast|ff00)' }))
    foreach ($ns in @(Get-ChildItem /run/netns -ErrorAction SilentlyContinue)) {
        $lines.AddRange([string[]]@((Invoke-LabCommand ip -ArgumentList @('-n', $ns.Name, 'route')).Output -split "`n" | Where-Object { $_ } | ForEach-Object { "$($ns.Name): $_" }))
        $lines.AddRange([string[]]@((Invoke-LabCommand ip -ArgumentList @('-n', $ns.Name, '-6', 'route')).Output -split "`n" | Where-Object { $_ -and $_ -notmatch '^(fe80|multicast|ff00)' } | ForEach-Object { "$($ns.Name) ip6: $_" }))
    }
    foreach ($ra in @(Get-ChildItem /proc/sys/net/ipv6/conf -Directory -ErrorAction SilentlyContinue | Where-Object Name -notin 'all', 'default', 'lo')) {
        $lines.Add("accept_ra $($ra.Name)=" + [System.IO.File]::ReadAllText((Join-Path $ra.FullName 'accept_ra')).Trim())
    }
    # NetnsNat's state store: a call that changes nothing records nothing there either (the times a binding or mapping
    # was made are left out: a setup made again is the same setup).
    foreach ($store in @(Get-ChildItem /var/lib/netnsnat -Filter '*.json' -ErrorAction SilentlyContinue)) {
        $lines.AddRange([string[]]@(Get-LabStoreView $store.FullName | ForEach-Object { "store: $_" }))
    }
    # nftables tables other than iptables-nft's, without counters (traffic between two reads would change them).
    foreach ($table in @(Get-LabNftTables)) {
        $lines.AddRange([string[]]@((Invoke-LabCommand nft -ArgumentList (@('-s', 'list', 'table') + $table.Split(' '))).Output -split "`n" | Where-Object { $_.Trim() } | ForEach-Object { "nft: $_" }))
    }
    $lines.Add('ip_forward=' + [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim())
    $lines.Add('ipv6_forwarding=' + [System.IO.File]::ReadAllText('/proc/sys/net/ipv6/conf/all/forwarding').Trim())
    $lines -join "`n"
}

Export-ModuleMember -Function Assert-LabSandbox, ConvertTo-LabRuleset, Invoke-LabCommand, Add-LabBridge, Add-LabClient, Start-LabListener, Stop-LabListener, Start-LabDns, Resolve-LabName, New-NetnsNatLab, Remove-NetnsNatLab, Reset-LabFirewall, Get-LabNftTables, Test-LabConnection, Get-LabRuleset, Get-LabState
