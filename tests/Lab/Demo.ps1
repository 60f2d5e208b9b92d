<#
.SYNOPSIS
    The lesson's flow with NetnsNat, in the lab (run by ./build.ps1 Demo inside a network namespace of its own).
#>
param([Parameter(Mandatory)][string] $ModulePath)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module $ModulePath -Force
Import-Module (Join-Path $PSScriptRoot 'NetnsNatLab.psm1') -Force

function Show-Step([string] $text) { Write-Host "`n=== $text" -ForegroundColor Cyan }
function Show-Command([string] $file, [string[]] $arguments) {
    Write-Host "`$ $file $($arguments -join ' ')" -ForegroundColor DarkGray
    $r = Invoke-LabCommand $file -ArgumentList $arguments -AllowFailure
    $text = ($r.Output + $r.Error).TrimEnd()
    if ($text) { Write-Host $text }
}

$failed = $false
try {
    Show-Step 'The lab, dual stack: host with bridge br0 (10.0.0.1/24, fd00:0:0:1::1/64) and uplink eth0 (198.51.100.1/24, 2001:db8:1::1/64), client namespace testnet (10.0.0.2/24, fd00:0:0:1::2/64), "internet" namespace with a server on 203.0.113.10:8080 and [2001:db8:ff::10]:8080'
    $lab = New-NetnsNatLab -DualStack
    Show-Command ip @('-br', 'addr')

    Show-Step 'Before: the client cannot reach the server'
    Show-Command ip @('netns', 'exec', 'testnet', 'ping', '-c', '1', '-W', '1', $lab.ServerAddress)
    $before = Test-LabConnection -Namespace testnet
    Write-Host "TCP to $($lab.ServerAddress):$($lab.ServerPort) from testnet: $(if ($before) { "connected, server saw $before" } else { 'no connection' })"
    if ($before) { throw 'The client reached the server before NAT was set up: the lab is wrong.' }
    $before6 = Test-LabConnection -Namespace testnet -Address $lab.ServerAddress6 -TimeoutSeconds 1
    Write-Host "TCP to [$($lab.ServerAddress6)]:$($lab.ServerPort) from testnet: $(if ($before6) { "connected, server saw $before6" } else { 'no connection' })"
    if ($before6) { throw 'The client reached the IPv6 server before NAT was set up: the lab is wrong.' }

    Show-Step 'Test-NamespaceNat testnet (before): what is missing, and the fix for each'
    Test-NamespaceNat testnet -Outbound eth0 | Where-Object Status -NE 'Pass' | Format-Table Check, Status, Fix -Wrap | Out-String -Width 120 | Write-Host

    Start-LabDns | Out-Null
    Show-Step 'Enable-NamespaceNat -Namespace testnet -Bridge br0 -Outbound eth0 -Dns 203.0.113.53 -Verbose'
    $result = Enable-NamespaceNat -Namespace testnet -Bridge br0 -Outbound eth0 -Dns 203.0.113.53 -Verbose
    $result | Format-Table | Out-String | Write-Host
    Write-Host 'Each family of the dual-stack bridge, with its forwarding sysctl, rules and route:'
    $result.Families | Format-Table AddressFamily, Subnet, Gateway, ForwardingState, Route | Out-String -Width 120 | Write-Host
    $result.Rules | Format-Table | Out-String | Write-Host
    $result.Rules.Rules | ForEach-Object { Write-Host "  $_" }
    if ($result.AcceptRa) { Write-Host "The uplink keeps its router advertisements with IPv6 forwarding on: $($result.AcceptRa)" }

    Show-Step 'After: the client reaches the server, which sees the uplink address (the NAT at work)'
    Show-Command ip @('netns', 'exec', 'testnet', 'ping', '-c', '3', '-i', '0.2', '-W', '1', $lab.ServerAddress)
    $after = Test-LabConnection -Namespace testnet
    Write-Host "TCP to $($lab.ServerAddress):$($lab.ServerPort) from testnet: $(if ($after) { "connected, server saw source $after" } else { 'no connection' })"
    if ($after -ne $lab.UplinkAddress) { throw "Expected the server to see $($lab.UplinkAddress), saw '$after'" }
    $after6 = Test-LabConnection -Namespace testnet -Address $lab.ServerAddress6
    Write-Host "TCP to [$($lab.ServerAddress6)]:$($lab.ServerPort) from testnet: $(if ($after6) { "connected, server saw source $after6" } else { 'no connection' })"
    if ($after6 -ne $lab.UplinkAddress6) { throw "Expected the IPv6 server to see $($lab.UplinkAddress6), saw '$after6'" }

    $name = Resolve-LabName -Namespace testnet -Name server.lab.test
    Write-Host "DNS from testnet (lab resolver 203.0.113.53, through the NAT): server.lab.test -> $name"
    if ($name -ne $lab.ServerAddress) { throw "Expected server.lab.test to resolve to $($lab.ServerAddress), got '$name'" }

    Show-Step 'Test-NamespaceNat testnet -Target 203.0.113.10 (after; each family the namespace has, IPv6 checks marked v6)'
    Test-NamespaceNat testnet -Target $lab.ServerAddress | Format-Table Check, Status, Detail | Out-String -Width 120 | Write-Host
    if (-not (Test-NamespaceNat testnet -Target $lab.ServerAddress -Quiet)) { throw 'Test-NamespaceNat found a problem after Enable-NamespaceNat' }

    Show-Step "The lesson's verification commands"
    Show-Command cat @('/proc/sys/net/ipv4/ip_forward')
    Show-Command iptables @('-t', 'nat', '-L', 'POSTROUTING', '-v', '-n')
    Show-Command iptables @('-L', 'FORWARD', '-v', '-n')
    Show-Command ip @('netns', 'exec', 'testnet', 'ip', 'route')
    Show-Step 'The same for IPv6'
    Show-Command cat @('/proc/sys/net/ipv6/conf/all/forwarding')
    Show-Command ip6tables @('-t', 'nat', '-L', 'POSTROUTING', '-v', '-n')
    Show-Command ip6tables @('-L', 'FORWARD', '-v', '-n')
    Show-Command ip @('netns', 'exec', 'testnet', 'ip', '-6', 'route', 'show', 'default')

    Show-Step 'The same flow step by step, as a pipeline (a second run changes nothing)'
    Write-Host 'Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0' -ForegroundColor DarkGray
    Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Format-Table | Out-String | Write-Host
    Write-Host 'Get-BridgeSubnet br0 | Set-NamespaceDefaultRoute -Namespace testnet' -ForegroundColor DarkGray
    Get-BridgeSubnet br0 | Set-NamespaceDefaultRoute -Namespace testnet | Format-Table | Out-String | Write-Host
    Write-Host 'Get-NatMasquerade' -ForegroundColor DarkGray
    Get-NatMasquerade | Format-Table | Out-String | Write-Host

    Show-Step 'Publish a port: Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 (a web server in testnet)'
    $web = Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 80
    $web6 = Start-LabListener -Namespace testnet -Address fd00:0:0:1::2 -Port 80
    Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Format-Table | Out-String | Write-Host
    $seen = Test-LabConnection -Namespace $lab.Internet -Address $lab.UplinkAddress -Port 8080
    $seen6 = Test-LabConnection -Namespace $lab.Internet -Address $lab.UplinkAddress6 -Port 8080
    Write-Host "TCP from the internet to $($lab.UplinkAddress):8080 and [$($lab.UplinkAddress6)]:8080: the web server in testnet sees the client as $seen and $seen6 (no SNAT)"
    if ($seen -ne '198.51.100.254' -or $seen6 -ne '2001:db8:1::fe') { throw 'The published port did not reach testnet with the client''s own address' }
    $closed = Test-LabConnection -Namespace $lab.Internet -Address $lab.UplinkAddress -Port 8081 -TimeoutSeconds 1
    Write-Host "An unpublished port (8081): $(if ($closed) { "open ($closed)" } else { 'closed, as it should be' })"
    if ($closed) { throw 'An unpublished port is open' }
    Show-Command iptables @('-t', 'nat', '-S', 'PREROUTING')
    Stop-LabListener $web
    Stop-LabListener $web6

    Show-Step 'Disable-NamespaceNat -Namespace testnet -Bridge br0 -Verbose'
    Disable-NamespaceNat -Namespace testnet -Bridge br0 -Verbose
    Show-Command iptables-save @()
    Show-Command ip6tables-save @()
    Show-Command ip @('netns', 'exec', 'testnet', 'ip', 'route')
    $gone = Test-LabConnection -Namespace testnet -TimeoutSeconds 1
    $gone6 = Test-LabConnection -Namespace testnet -Address $lab.ServerAddress6 -TimeoutSeconds 1
    Write-Host "TCP from testnet after Disable-NamespaceNat: IPv4 $(if ($gone) { "connected ($gone)" } else { 'no connection, as before' }); IPv6 $(if ($gone6) { "connected ($gone6)" } else { 'no connection, as before' })"
    if ($gone -or $gone6) { throw 'The client still reaches the server after Disable-NamespaceNat' }

    Show-Step 'The same NAT in a table of its own: Enable-NamespaceNat -Namespace testnet -Bridge br0 -Outbound eth0 -Backend Nftables'
    $r = Enable-NamespaceNat -Namespace testnet -Bridge br0 -Outbound eth0 -Backend Nftables
    foreach ($f in $r.Families) { Write-Host "$($f.AddressFamily) $($f.Subnet) via $($f.Outbound): backend $($f.Rule.Backend), $($f.Rule.ChangedRules) element(s) added: $($f.Rule.Rules -join '; ')" }
    Show-Command nft @('list', 'table', 'inet', 'netnsnat')
    $seen = Test-LabConnection -Namespace testnet
    $seen6 = Test-LabConnection -Namespace testnet -Address $lab.ServerAddress6
    Write-Host "TCP from testnet with the nftables backend: IPv4 the server saw $seen; IPv6 the server saw $seen6 (iptables-save holds nothing of NetnsNat's)"
    if ($seen -ne $lab.UplinkAddress -or $seen6 -ne $lab.UplinkAddress6) { throw 'The client did not get out through the nftables backend' }

    Show-Step 'Publish the port there too: Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 (elements of the table''s map)'
    $web = Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 80
    Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Format-Table | Out-String | Write-Host
    Show-Command nft @('list', 'map', 'inet', 'netnsnat', 'dnat4')
    $seen = Test-LabConnection -Namespace $lab.Internet -Address $lab.UplinkAddress -Port 8080
    Write-Host "TCP from the internet to $($lab.UplinkAddress):8080 through the nftables backend: the web server in testnet sees the client as $seen (no SNAT)"
    if ($seen -ne '198.51.100.254') { throw 'The published port did not reach testnet through the nftables backend' }
    Stop-LabListener $web
    Disable-NamespaceNat -Namespace testnet -Bridge br0
    $left = (Invoke-LabCommand nft -ArgumentList @('list', 'tables')).Output
    Write-Host "After Disable-NamespaceNat, nft list tables: $(if ($left -match 'netnsnat') { $left } else { 'no inet netnsnat (deleted with its last elements)' })"
    if ($left -match 'netnsnat') { throw 'The table inet netnsnat was left after the last Disable' }
    Write-Host "`nDemo finished: NAT enabled for IPv4 and IPv6, verified with real traffic, a port published, and undone (iptables, then nftables)." -ForegroundColor Green
}
catch {
    $failed = $true
    Write-Host "DEMO FAILED: $_" -ForegroundColor Red
    Write-Host $_.ScriptStackTrace
}
finally {
    Remove-NetnsNatLab
}
if ($failed) { exit 1 }
