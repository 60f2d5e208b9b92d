# Issue 15, the nftables half: port mappings of namespaces on the nftables backend are elements of NetnsNat's table (the
# DNAT in the map dnat4/dnat6, the accept in published4/6, the hairpin's masquerade in hairpin4/6). Every behaviour is
# proven with real connections in the lab: from the "internet" namespace to the host's uplink address, from the host
# itself, and from a second namespace on the same bridge (hairpin); each listener answers with the source it saw.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    function nftc { (Invoke-LabCommand -FilePath nft -ArgumentList $args).Output }
    function Get-MapElements([string] $Name = 'dnat4') {
        # The elements of one of the table's sets or maps, as nft lists them (one line each).
        $r = Invoke-LabCommand nft -ArgumentList @('list', $(if ($Name -like 'dnat*') { 'map' } else { 'set' }), 'inet', 'netnsnat', $Name) -AllowFailure
        if ($r.ExitCode -ne 0) { return @() }
        $text = ($r.Output -replace "`n", ' ') -replace '\s+', ' '
        if ($text -notmatch 'elements = \{ (.*?) \}') { return @() }
        @($Matches[1] -split ', ' | ForEach-Object { $_.Trim() })
    }
}

Describe 'Port mappings with the nftables backend' {
    BeforeAll { $lab = New-PortMappingLab }
    AfterAll { Remove-PortMappingLab $lab }
    BeforeEach { Reset-PortMappingLab -Backend Nftables }

    Context 'what a mapping opens' {
        It 'a connection from outside reaches the namespace with its real source address, for IPv4 and IPv6, through elements of the table' {
            $m = Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80
            ($m | ForEach-Object { "$_" }) | Should -Be @('Tcp 198.51.100.1:8080 -> 10.0.0.2:80', 'Tcp [2001:db8:1::1]:8080 -> [fd00:0:0:1::2]:80')
            $m.Backend | Should -Be @('nftables', 'nftables')
            $m.ChangedRules | Should -Be @(3, 3)
            $m[0].Rules | Should -Be @(
                'element inet netnsnat dnat4 { 198.51.100.1 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.2 . 80 }',
                'element inet netnsnat hairpin4 { 10.0.0.0/24 . 10.0.0.2 . tcp . 80 }',
                'element inet netnsnat published4 { 10.0.0.2 . tcp . 80 . "br0" }')
            # The user's verification command: the mapping is an element of the map.
            Get-MapElements dnat4 | Should -Be @('198.51.100.1 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.2 . 80')
            Get-MapElements dnat6 | Should -Be @('2001:db8:1::1 . tcp . 8080 . ::/0 : fd00:0:0:1::2 . 80')
            # Nothing of it in iptables.
            (Get-LabRuleset) | Should -Not -Match 'DNAT'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 5 | Should -Be '198.51.100.254' -Because 'no SNAT: the namespace sees the client'
            Get-PeerSeen $lab.Internet 2001:db8:1::1 8080 -TimeoutSeconds 5 | Should -Be '2001:db8:1::fe'
        }

        It 'the host reaches the mapping at its own address (the output chain), and never by loopback' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -ExternalAddress 0.0.0.0 | Out-Null
            Get-PeerSeen '' 198.51.100.1 8080 | Should -Be '198.51.100.1'
            # A mapping on every address is not one on 127.0.0.1: reaching a namespace from loopback needs route_localnet (moby#45610).
            Get-PeerSeen '' 127.0.0.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8081 -ExternalAddress 127.0.0.1 -ErrorAction Stop } | Should -Throw -ErrorId 'LoopbackExternalAddress*'
            # IPv6: the host at its uplink address, never by ::1.
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8082 -InternalPort 80 -AddressFamily IPv6 | Out-Null
            Get-PeerSeen '' 2001:db8:1::1 8082 | Should -Be '2001:db8:1::1'
            Get-PeerSeen '' ::1 8082 -TimeoutSeconds 1 | Should -BeNullOrEmpty
        }

        It 'another namespace on the bridge reaches it through the host''s address (hairpin, masqueraded to the bridge address)' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Get-PeerSeen other 198.51.100.1 8080 | Should -Be '10.0.0.1'
            Get-PeerSeen other 2001:db8:1::1 8080 | Should -Be 'fd00:0:0:1::1'
        }

        It 'nothing else opens: an unmapped port, and the namespace''s own address, stay closed to the outside' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 81 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Add-InboundRoutes
            try {
                Get-PeerSeen $lab.Internet 10.0.0.2 81 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the inbound drop stays in force'
                Get-PeerSeen $lab.Internet 10.0.0.2 80 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the mapped port is reached by the host''s address only'
                Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
            }
            finally { Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'del', '10.0.0.0/24') -AllowFailure | Out-Null }
        }

        It '-RemoteAddressPrefix lets in only the sources it names' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -RemoteAddressPrefix 198.51.100.253/32 | Out-Null
            Get-MapElements dnat4 | Should -Be @('198.51.100.1 . tcp . 8080 . 198.51.100.253 : 10.0.0.2 . 80')
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -Bind 198.51.100.253 | Should -Be '198.51.100.253'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because '198.51.100.254 is not in the prefix'
            (Get-NatPortMapping).RemoteAddressPrefix | Should -Be @('198.51.100.253/32')
            # IPv6: the sources field of dnat6.
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv6 -RemoteAddressPrefix 2001:db8:1::fd/128 | Out-Null
            Get-MapElements dnat6 | Should -Be @('2001:db8:1::1 . tcp . 8080 . 2001:db8:1::fd : fd00:0:0:1::2 . 80')
            Get-PeerSeen $lab.Internet 2001:db8:1::1 8080 -Bind '[2001:db8:1::fd]' | Should -Be '2001:db8:1::fd'
            Get-PeerSeen $lab.Internet 2001:db8:1::1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because '2001:db8:1::fe is not in the prefix'
        }

        It 'a UDP mapping answers, in both families, and its removal drops the flow''s conntrack entry' {
            Add-NatPortMapping testnet -Protocol Udp -ExternalPort 5353 -InternalPort 53 | Out-Null
            Send-Udp $lab.Internet 198.51.100.1 5353 | Should -Be '198.51.100.254'
            Send-Udp $lab.Internet 2001:db8:1::1 5353 | Should -Be '2001:db8:1::fe'
            @(Get-NatSession -Protocol Udp -Port 5353).Count | Should -BeGreaterOrEqual 1
            Remove-NatPortMapping -Protocol Udp -ExternalPort 5353
            @(Get-NatSession -Protocol Udp -Port 5353 -IncludeUntranslated) | Should -BeNullOrEmpty -Because 'a stale UDP entry would keep the old way (moby#8795)'
            Send-Udp $lab.Internet 198.51.100.1 5353 | Should -BeNullOrEmpty
            Send-Udp $lab.Internet 2001:db8:1::1 5353 | Should -BeNullOrEmpty
            Get-MapElements dnat4 | Should -BeNullOrEmpty
            Get-MapElements dnat6 | Should -BeNullOrEmpty
        }

        It 'on every address of the host (0.0.0.0), the host''s other addresses reach it too' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -ExternalAddress 0.0.0.0 | Out-Null
            Get-MapElements dnat4 | Should -Be @('0.0.0.0/0 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.2 . 80')
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
            Get-PeerSeen other 10.0.0.1 8080 | Should -Be '10.0.0.1' -Because 'the bridge address is one of the host''s'
        }
    }

    Context 'sharing, conflicts, the namespace''s life' {
        It 'the same mapping again changes nothing; the port for another target is an error naming the mapping in the way' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            $before = Get-LabState
            (Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4).ChangedRules | Should -Be 0
            Get-LabState | Should -Be $before
            $e = Add-NatPortMapping other -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 -ErrorAction SilentlyContinue -ErrorVariable err
            $e | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -BeLike 'PortMappingConflict*'
            $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $err[0].Exception.Message | Should -Match "10\.0\.0\.2:80 \('testnet'\)"
            Get-LabState | Should -Be $before
        }

        It 'a port that an element written by hand into the map takes is PortMappingConflict naming it, nothing changed; deleted as the error says, the port is published' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8081 -InternalPort 81 -AddressFamily IPv4 | Out-Null
            nftc add element inet netnsnat dnat4 '{ 198.51.100.1 . tcp . 8080 . 0.0.0.0/0 : 10.0.0.3 . 80 }' | Out-Null
            $e = Assert-FailsWithoutChange { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 } -ErrorId PortMappingConflict -Category ResourceExists
            $e.Exception.Message | Should -Match '10\.0\.0\.3 \. 80'
            $delete = [regex]::Match($e.Exception.Message, "nft delete element [^)]*").Value
            Invoke-LabCommand sh -ArgumentList @('-c', $delete) | Out-Null
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'a mapping added by path is the namespace NetnsNat enabled by name: listed, and removed, by that name' {
            $m = Add-NatPortMapping -NamespacePath /run/netns/other -Protocol Udp -ExternalPort 9204 -AddressFamily IPv4
            $m.Namespace | Should -Be 'other'
            (Get-NatPortMapping -Namespace other).ExternalPort | Should -Be 9204
            Remove-NatPortMapping other -Protocol Udp -ExternalPort 9204
            Get-NatPortMapping | Should -BeNullOrEmpty
        }

        It 'after nft flush ruleset, Add-NatPortMapping lays the namespace''s NAT again first (a warning says so): the inbound drop stands beside the mapping' {
            nftc flush ruleset | Out-Null
            $m = Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 -WarningVariable warn -WarningAction SilentlyContinue
            "$warn" | Should -Match 'were gone: laid again'
            (Get-NamespaceNat testnet | Where-Object AddressFamily -eq IPv4).Status | Should -Be 'InForce'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
            Add-InboundRoutes
            try { Get-PeerSeen $lab.Internet 10.0.0.2 80 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the inbound drop was laid again with the mapping' }
            finally { Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'del', '10.0.0.0/24') -AllowFailure | Out-Null }
        }

        It 'two external ports to one namespace port share its accept and hairpin elements: removing one keeps the other working' {
            # In one pipeline the shared elements count once: 3 for the first mapping, 1 for the second.
            $m = 8090, 8091 | ForEach-Object { [pscustomobject]@{ Namespace = 'testnet'; Protocol = 'Tcp'; ExternalPort = $_; InternalPort = 80; AddressFamily = 'IPv4' } } | Add-NatPortMapping
            $m.ChangedRules | Should -Be @(3, 1)
            Get-NatPortMapping | Remove-NatPortMapping
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            (Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8081 -InternalPort 80 -AddressFamily IPv4).ChangedRules | Should -Be 1
            Get-MapElements published4 | Should -HaveCount 1
            (Remove-NatPortMapping -Protocol Tcp -ExternalPort 8080 -PassThru).ChangedRules | Should -Be 1
            Get-PeerSeen $lab.Internet 198.51.100.1 8081 | Should -Be '198.51.100.254'
            Get-PeerSeen other 198.51.100.1 8081 | Should -Be '10.0.0.1'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
        }

        It 'Disable-NamespaceNat -Confirm, yes to the mapping and no to the rest: the mapping goes whole (elements and record), the namespace stays enabled' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            $pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }
            # Answers on stdin, as a person at the prompt gives them: the mapping's question comes first.
            $r = Invoke-LabCommand $pwsh -ArgumentList @('-NoProfile', '-Command', "`$PSStyle.OutputRendering = 'PlainText'; Import-Module '$modulePath'; Disable-NamespaceNat testnet br0 -Confirm") -InputObject ("Y`n" + ("N`n" * 12)) -AllowFailure -TimeoutSeconds 60
            ($r.Output -replace '\s+', ' ') | Should -Match 'forget the mapping in' -Because 'the first question is the mapping''s (the host wraps the prompt)'
            Get-MapElements dnat4 | Should -BeNullOrEmpty
            Get-NatPortMapping | Should -BeNullOrEmpty -Because 'its removal was approved whole: rules, record and connections (before, its record stayed, RulesMissing)'
            @(Get-NamespaceNat testnet).Status | Sort-Object -Unique | Should -Be 'InForce' -Because 'the rest was declined'
            @(Get-NamespaceNat testnet).PortMappings | Should -BeNullOrEmpty
        }

        It 'Disable-NamespaceNat removes the namespace''s mappings; the last Disable takes the table, and the ruleset is what it was' {
            Disable-NamespaceNat other br0 | Out-Null
            Disable-NamespaceNat testnet br0 | Out-Null
            $ruleset = nftc list ruleset
            'testnet', 'other' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -Backend Nftables | Out-Null
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            (Get-NamespaceNat testnet).PortMappings | Should -Contain 'Tcp 198.51.100.1:8080 -> 10.0.0.2:80'
            Disable-NamespaceNat testnet br0 | Out-Null
            Get-NatPortMapping | Should -BeNullOrEmpty
            Get-MapElements dnat4 | Should -BeNullOrEmpty
            Disable-NamespaceNat other br0 | Out-Null
            nftc list ruleset | Should -Be $ruleset
        }

        It 'Restore-NamespaceNat lays a mapping again after the table was deleted, and Get-NatPortMapping shows what is missing until then' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            nftc delete table inet netnsnat | Out-Null
            $listed = Get-NatPortMapping
            $listed.Status | Should -Be 'RulesMissing'
            $listed.Backend | Should -Be 'nftables'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Restore-NamespaceNat | Out-Null
            (Get-NatPortMapping).Status | Should -Be 'InForce'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It '-WhatIf shows the nft commands and changes nothing; the commands run as printed publish the port' {
            $before = Get-LabState
            $r = Invoke-ChildPwsh -Script 'Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 -WhatIf'
            $r.ExitCode | Should -Be 0 -Because $r.Error
            Get-LabState | Should -Be $before
            # One question per mapping, with its three commands.
            $commands = @(Get-WhatIfCommand $r.Output)
            $commands | Should -HaveCount 1
            ([regex]::Matches($commands[0], 'nft add element inet netnsnat (dnat4|published4|hairpin4) ')).Count | Should -Be 3
            Invoke-LabCommand sh -ArgumentList @('-c', $commands[0]) | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'a mapping goes into its namespace''s backend: -Backend of the other is an error that changes nothing, and listings filter by it' {
            $before = Get-LabState
            { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -Backend Iptables -ErrorAction Stop } | Should -Throw -ErrorId 'BackendMismatch*'
            Get-LabState | Should -Be $before
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -Backend Nftables -AddressFamily IPv4 | Out-Null
            Get-NatPortMapping -Backend Iptables | Should -BeNullOrEmpty
            (Get-NatPortMapping -Backend Nftables).ExternalPort | Should -Be 8080
            Get-NatPortMapping -Backend Iptables | Remove-NatPortMapping
            Remove-NatPortMapping -Protocol Tcp -ExternalPort 8080 -Backend Iptables -ErrorAction SilentlyContinue -ErrorVariable err
            $err[0].FullyQualifiedErrorId | Should -BeLike 'PortMappingNotFound*'
            Get-NatPortMapping | Remove-NatPortMapping
            Get-MapElements dnat4 | Should -BeNullOrEmpty
        }

        It 'a pipeline of 300 mappings is one write: all in the map, each port reaching the namespace' {
            $items = 20001..20300 | ForEach-Object { [pscustomobject]@{ Namespace = 'testnet'; Protocol = 'Tcp'; ExternalPort = $_; InternalPort = 80; AddressFamily = 'IPv4' } }
            $out = $items | Add-NatPortMapping -Verbose 4>&1
            @($out | Where-Object { $_ -is [NetnsNat.NatPortMapping] }).Count | Should -Be 300
            @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and "$_" -match 'one nf_tables netlink batch' }).Count | Should -Be 1
            Get-MapElements dnat4 | Should -HaveCount 300
            Get-PeerSeen $lab.Internet 198.51.100.1 20300 | Should -Be '198.51.100.254'
            Get-NatPortMapping | Remove-NatPortMapping
            Get-MapElements dnat4 | Should -BeNullOrEmpty
        }
    }

    Context 'beside iptables, and Test-NamespaceNat' {
        It 'Test-NamespaceNat passes a mapping in force, and fails one whose element was deleted by hand, with a fix that works' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings).Status | Should -Be 'Pass'
            nftc delete element inet netnsnat published4 '{ 10.0.0.2 . tcp . 80 . "br0" }' | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the inbound drop takes the connection the accept no longer lets through'
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match 'published4'
            Invoke-Expression $check.Fix | Out-Null
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings).Status | Should -Be 'Pass'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'Test-NamespaceNat fails a mapping that iptables'' FORWARD drops (Docker started after it), and its fix lets the connections through' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT') | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match 'the FORWARD chain of iptables \(iptables-nft\) drops its connections'
            $check.Fix | Should -Match '^iptables -I FORWARD'
            Invoke-LabCommand bash -ArgumentList @('-c', $check.Fix) | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'another table''s forward chain with policy drop: Add warns, Test-NamespaceNat fails (no rules) or warns (rules it does not evaluate), and the fix lets the connections through' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            nftc add table inet myfw | Out-Null
            nftc add chain inet myfw forwardchain '{ type filter hook forward priority 10; policy drop; }' | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match "inet myfw forwardchain' on the forward hook drops everything"
            # With rules NetnsNat does not evaluate (what a host firewall has): a warning, on Add too.
            nftc add rule inet myfw forwardchain ct state 'established,related' accept | Out-Null
            nftc add rule inet myfw forwardchain iifname br0 accept | Out-Null
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8082 -InternalPort 80 -AddressFamily IPv4 -WarningVariable warn -WarningAction SilentlyContinue | Out-Null
            "$warn" | Should -Match 'may do nothing: the nftables chain .inet myfw forwardchain.'
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings
            $check.Status | Should -Be 'Warn'
            foreach ($fix in $check.Fix -split '; ') { Invoke-LabCommand sh -ArgumentList @('-c', $fix) | Out-Null }
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'warns when a DNAT of iptables'' nat PREROUTING takes the same port (the user''s own rule), and Test-NamespaceNat names it' {
            Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '10.0.0.2:81') | Out-Null
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 -WarningVariable warn -WarningAction SilentlyContinue | Out-Null
            "$warn" | Should -Match '--to-destination 10\.0\.0\.2:81'
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Fix | Should -Match '^iptables -t nat -D PREROUTING'
            Invoke-LabCommand bash -ArgumentList @('-c', $check.Fix) | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }
    }
}
