<#
.SYNOPSIS
    Port mappings (issue 15) measured side by side with the hand-typed iptables commands, in one run, in the sandbox.
.DESCRIPTION
    Section 8 of ./build.ps1 Bench (once per backend); alone:
        tests/Lab/sandbox.sh dotnet pwsh -NoProfile -File bench/PortMappings.ps1 -ModulePath out/NetnsNat [-Backend Nftables] -Print
    Emits one row object per measurement (Measurement, NetnsNat, Lesson, Ratio); with -Print, prints them as a table.
    The baseline is what a script does by hand for one mapping: with iptables, three iptables commands (nat PREROUTING
    DNAT, nat OUTPUT DNAT, a FORWARD accept); with nftables, three nft commands adding the mapping's elements to the
    table (the DNAT, the accept, the hairpin). Each is its own process, its own read and its own commit.
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [int] $Count = 1000,
    [int] $Samples = 15,
    [ValidateSet('Iptables', 'Nftables')][string] $Backend = 'Iptables',
    [switch] $Print
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
if (-not (Get-Module NetnsNat)) { Import-Module $ModulePath }
Import-Module (Join-Path $PSScriptRoot '../tests/Lab/NetnsNatLab.psm1')
Assert-LabSandbox
. (Join-Path $PSScriptRoot 'Common.ps1')

function Mapping([int] $port) { [pscustomobject]@{ Namespace = 'testnet'; Protocol = 'Tcp'; ExternalPort = $port; InternalPort = $port; AddressFamily = 'IPv4' } }

# By hand: the three commands a script types per mapping (what docker-style scripts and blog posts do).
function Add-ByHand([int] $port) {
    if ($Backend -eq 'Nftables') {
        foreach ($element in "dnat4 { 198.51.100.1 . tcp . $port . 0.0.0.0/0 : 10.0.0.3 . 80 }", 'published4 { 10.0.0.3 . tcp . 80 . "br0" }', 'hairpin4 { 10.0.0.0/24 . 10.0.0.3 . tcp . 80 }') {
            Invoke-LabCommand nft -ArgumentList @('add', 'element', 'inet', 'netnsnat', $element) | Out-Null
        }
        return
    }
    $tail = @('-p', 'tcp', '--dport', "$port", '-j', 'DNAT', '--to-destination', '10.0.0.3:80')
    Invoke-LabCommand iptables -ArgumentList (@('-w', '-t', 'nat', '-A', 'PREROUTING', '-d', '198.51.100.1/32') + $tail) | Out-Null
    Invoke-LabCommand iptables -ArgumentList (@('-w', '-t', 'nat', '-A', 'OUTPUT', '-d', '198.51.100.1/32') + $tail) | Out-Null
    Invoke-LabCommand iptables -ArgumentList @('-w', '-I', 'FORWARD', '1', '-d', '10.0.0.3/32', '-o', 'br0', '-p', 'tcp', '--dport', '80', '-j', 'ACCEPT') | Out-Null
}

$rows = [System.Collections.Generic.List[object]]::new()
try {
    New-NetnsNatLab | Out-Null
    Enable-NamespaceNat testnet br0 eth0 -Backend $Backend | Out-Null
    # Warm-up: the mapping paths compile on their first calls, and again (optimized) after 30 (.NET's tiered compilation):
    # both sizes are measured with the same code.
    foreach ($i in 1..40) {
        Mapping (60000 + $i) | Add-NatPortMapping | Out-Null
        Remove-NatPortMapping -Protocol Tcp -ExternalPort (60000 + $i)
    }

    # 1. Adding one mapping with 10 mappings in place, then with $Count in place; removing one at $Count.
    1..10 | ForEach-Object { Mapping (20000 + $_) } | Add-NatPortMapping | Out-Null
    Wait-Quiet
    $at10 = Stats @(foreach ($i in 1..$Samples) { Time { Mapping (30000 + $i) | Add-NatPortMapping } })
    1..$Samples | ForEach-Object { Remove-NatPortMapping -Protocol Tcp -ExternalPort (30000 + $_) }
    Get-NatPortMapping | Remove-NatPortMapping

    # 2. $Count mappings piped into one call.
    $objects = 1..$Count | ForEach-Object { Mapping (10000 + $_) }
    $bulk = Time { $objects | Add-NatPortMapping }
    $made = @(Get-NatPortMapping).Count
    if ($made -ne $Count) { throw "Add-NatPortMapping made $made of the $Count mappings" }
    Wait-Quiet
    $atN = Stats @(foreach ($i in 1..$Samples) { Time { Mapping (30000 + $i) | Add-NatPortMapping } })
    $removeN = Stats @(foreach ($i in 1..$Samples) { Time { Remove-NatPortMapping -Protocol Tcp -ExternalPort (30000 + $i) } })
    $rules = if ($Backend -eq 'Nftables') { "{0} elements" -f ((Invoke-LabCommand nft -ArgumentList @('list', 'table', 'inet', 'netnsnat')).Output -split "`n" | Where-Object { $_ -match ' \. (tcp|"eth0")' }).Count }
             else { "{0} rules" -f ((Invoke-LabCommand iptables-save).Output -split "`n" | Where-Object { $_ -like '-A *' }).Count }

    # The baseline, beside the same $Count mappings: $Samples mappings by hand, the median times $Count.
    $byHand = Stats @(foreach ($i in 1..$Samples) { Time { Add-ByHand (40000 + $i) } })

    $rows.Add((Row "[$Backend] $Count mappings piped into one Add-NatPortMapping (target: under 1 s)" ('{0:0} ms' -f $bulk) ('{0:0} ms (est. {1} x median)' -f ($Count * $byHand.Median), $Count) ('{0:0.0}x' -f ($Count * $byHand.Median / $bulk))))
    $rows.Add((Row "[$Backend] Add one mapping with 10 in place / with $Count in place ($rules)" ('{0} / {1}' -f (Fmt $at10), (Fmt $atN)) (Fmt $byHand) ('{0:0.00}x at {1} / at 10' -f ($atN.Median / $at10.Median), $Count)))
    $rows.Add((Row "[$Backend] Remove one mapping with $Count in place (its rules, its store record, its conntrack entries)" (Fmt $removeN) '' ''))
}
finally {
    Remove-NetnsNatLab
}
if ($Print) {
    Write-Host ("  {0,-80} {1,-40} {2,-30} {3}" -f 'measurement', 'NetnsNat', "by hand (3 $($Backend.ToLowerInvariant()) per mapping)", 'ratio')
    foreach ($r in $rows) { Write-Host ("  {0,-80} {1,-40} {2,-30} {3}" -f $r.Measurement, $r.NetnsNat, $r.Lesson, $r.Ratio) }
}
else {
    $rows
}
