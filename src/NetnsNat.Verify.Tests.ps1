<#
.SYNOPSIS
    Verifies a namespace's NAT setup the way the lesson's "Verify" section does, for your own Pester runs.
.DESCRIPTION
    Shipped with the NetnsNat module. Run it against your real setup, as root:

        $verify = Join-Path (Get-Module NetnsNat -ListAvailable)[0].ModuleBase 'NetnsNat.Verify.Tests.ps1'
        Invoke-Pester -Container (New-PesterContainer -Path $verify -Data @{ Namespace = 'testnet'; Bridge = 'br0' }) -Output Detailed

    Every check of Test-NamespaceNat must not fail (a Warn passes, with its detail in the output), and the lesson's
    own verification commands must show what they promise. With -Target an address is probed from inside the
    namespace (ICMP, or TCP with Port).
#>
param(
    [Parameter(Mandatory)][string] $Namespace,
    [string] $Bridge,
    [string] $Outbound,
    [string] $Target,
    [int] $Port
)

BeforeDiscovery {
    $checks = @('NamespaceExists', 'LoopbackUp', 'Bridge', 'NamespaceAddress', 'HostLink', 'DefaultRoute', 'IpForwarding', 'Masquerade', 'Uplink', 'Forward', 'Inbound', 'DuplicateRules', 'StaleRules', 'BackendMix', 'Resolver')
    if ($Target) { $checks += 'Probe' }
}

BeforeAll {
    if (-not (Get-Module NetnsNat)) { Import-Module (Join-Path $PSScriptRoot 'NetnsNat.psd1') }
    $params = @{ Namespace = $Namespace }
    foreach ($name in 'Bridge', 'Outbound', 'Target') { if ((Get-Variable $name -ValueOnly)) { $params[$name] = Get-Variable $name -ValueOnly } }
    if ($Port) { $params.Port = $Port }
    $results = @(Test-NamespaceNat @params 6>$null)
    $bridgeName = $results[0].Bridge
    $subnet = if ($bridgeName) { (Get-BridgeSubnet $bridgeName -ErrorAction SilentlyContinue | Select-Object -First 1).Subnet }
    # Where NetnsNat put the namespace's NAT: iptables (the lesson's commands) or its own nftables table.
    $nftables = @(Get-NamespaceNat | Where-Object { $_.Namespace -eq $Namespace -and $_.Backend -eq 'nftables' }).Count -gt 0
}

Describe "NAT for the namespace $Namespace" {
    Context 'Test-NamespaceNat' {
        # A dual-stack namespace has a result of each check for each address family: none of them may fail.
        It '<_> does not fail' -ForEach $checks {
            $r = @($results | Where-Object Check -EQ $_)
            $r | Should -Not -BeNullOrEmpty -Because "Test-NamespaceNat runs the $_ check"
            $failed = @($r | Where-Object Status -EQ 'Fail')
            $failed | Should -BeNullOrEmpty -Because (($failed | ForEach-Object { "$($_.AddressFamily): $($_.Detail) Fix: $($_.Fix)" }) -join ' ')
        }
    }

    Context "the lesson's verification commands" {
        # Each command's output is made an array (@()) before -match filters it: -match on a single line returns a
        # boolean, and a $false is not "null or empty", so a one-line output could never fail the assertion.
        It 'cat /proc/sys/net/ipv4/ip_forward prints 1' {
            (Get-Content /proc/sys/net/ipv4/ip_forward -Raw).Trim() | Should -Be '1'
        }

        It 'iptables -t nat -L POSTROUTING -v -n shows MASQUERADE for the bridge subnet (nft list table inet netnsnat: its element)' {
            $subnet | Should -Not -BeNullOrEmpty
            if ($nftables) {
                $found = @(@(& nft list set inet netnsnat $(if ($subnet -match ':') { 'masquerade6' } else { 'masquerade4' })) -match [regex]::Escape($subnet))
                $found.Count | Should -BeGreaterThan 0 -Because "the masquerade set of inet netnsnat must hold $subnet"
                return
            }
            $found = @(@(& iptables -t nat -L POSTROUTING -v -n) -match 'MASQUERADE' -match [regex]::Escape($subnet))
            $found.Count | Should -BeGreaterThan 0 -Because "a MASQUERADE rule for $subnet must stand in nat POSTROUTING"
        }

        It 'iptables -L FORWARD -v -n shows ACCEPT rules for the bridge (nft list table inet netnsnat: its element)' {
            $bridgeName | Should -Not -BeNullOrEmpty
            if ($nftables) {
                $found = @(@(& nft list set inet netnsnat $(if ($subnet -match ':') { 'inbound6' } else { 'inbound4' })) -match "`"$([regex]::Escape($bridgeName))`"")
                $found.Count | Should -BeGreaterThan 0 -Because "the inbound set of inet netnsnat must hold the bridge $bridgeName (replies let in, new connections dropped)"
                return
            }
            $found = @(@(& iptables -L FORWARD -v -n) -match "ACCEPT.*\b$([regex]::Escape($bridgeName))\b")
            $found.Count | Should -BeGreaterThan 0 -Because "FORWARD must accept the bridge $bridgeName's traffic"
        }

        It 'ip netns exec NAMESPACE ip route shows a default route via the bridge' {
            $gateway = (Get-BridgeSubnet $bridgeName | Select-Object -First 1).Address
            $gateway | Should -Not -BeNullOrEmpty
            $found = @(@(& ip netns exec $Namespace ip route) -match "^default via $([regex]::Escape($gateway)) ")
            $found.Count | Should -Be 1 -Because "the namespace's routes must hold 'default via $gateway'"
        }
    }
}
