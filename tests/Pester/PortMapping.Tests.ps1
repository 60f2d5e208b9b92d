# Issue 15: published ports (Add-, Get-, Remove-NatPortMapping). Every behaviour is proven with real connections in the
# lab: from the "internet" namespace to the host's uplink address, from the host itself, and from a second namespace on
# the same bridge (hairpin); each listener answers with the source address it saw.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    function Get-NatRules { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -match 'DNAT' }) }
}

Describe 'Port mappings: Add-, Get-, Remove-NatPortMapping' {
    BeforeAll { $lab = New-PortMappingLab }
    AfterAll { Remove-PortMappingLab $lab }
    BeforeEach { Reset-PortMappingLab }

    Context 'what a mapping opens' {
        It 'a connection from outside reaches the namespace with its real source address, for IPv4 and IPv6' {
            $m = Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80
            $m | Should -HaveCount 2
            $m[0] | Should -BeOfType NetnsNat.NatPortMapping
            ($m | ForEach-Object { "$_" }) | Should -Be @('Tcp 198.51.100.1:8080 -> 10.0.0.2:80', 'Tcp [2001:db8:1::1]:8080 -> [fd00:0:0:1::2]:80')
            $m.ChangedRules | Should -Be @(5, 5)
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 5 | Should -Be '198.51.100.254' -Because 'no SNAT: the namespace sees the client'
            # The first IPv6 packets of a run wait for neighbour discovery on both links: a longer time-out than 2 s.
            Get-PeerSeen $lab.Internet 2001:db8:1::1 8080 -TimeoutSeconds 5 | Should -Be '2001:db8:1::fe'
        }

        It 'the host reaches the mapping at its own address (nat OUTPUT)' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Get-PeerSeen '' 198.51.100.1 8080 | Should -Be '198.51.100.1'
        }

        It 'another namespace on the bridge reaches it through the host''s address (hairpin, masqueraded to the bridge address)' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Get-PeerSeen other 198.51.100.1 8080 | Should -Be '10.0.0.1'
            Get-PeerSeen other 2001:db8:1::1 8080 | Should -Be 'fd00:0:0:1::1'
        }

        It 'nothing else opens: an unmapped port, and the namespace''s own address, stay closed to the outside' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 81 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'replace', '10.0.0.0/24', 'via', '198.51.100.1') | Out-Null
            try {
                Get-PeerSeen $lab.Internet 10.0.0.2 81 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the inbound drop stays in force'
                Get-PeerSeen $lab.Internet 10.0.0.2 80 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the mapped port is reached by the host''s address only'
            }
            finally { Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'del', '10.0.0.0/24') -AllowFailure | Out-Null }
        }

        It '-RemoteAddressPrefix lets in only the sources it names' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -RemoteAddressPrefix 198.51.100.253/32 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -Bind 198.51.100.253 | Should -Be '198.51.100.253'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because '198.51.100.254 is not in the prefix'
            (Get-NatPortMapping).RemoteAddressPrefix | Should -Be @('198.51.100.253/32')
        }

        It 'a UDP mapping answers, and its removal drops the flow''s conntrack entry' {
            Add-NatPortMapping testnet -Protocol Udp -ExternalPort 5353 -InternalPort 53 | Out-Null
            Send-Udp $lab.Internet 198.51.100.1 5353 | Should -Be '198.51.100.254'
            @(Get-NatSession -Protocol Udp -Port 5353).Count | Should -BeGreaterOrEqual 1
            Remove-NatPortMapping -Protocol Udp -ExternalPort 5353
            @(Get-NatSession -Protocol Udp -Port 5353 -IncludeUntranslated) | Should -BeNullOrEmpty -Because 'a stale UDP entry would keep the old way (moby#8795)'
            Send-Udp $lab.Internet 198.51.100.1 5353 | Should -BeNullOrEmpty
        }

        It 'on every address of the host (0.0.0.0), the host''s other addresses reach it too' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -ExternalAddress 0.0.0.0 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
            Get-PeerSeen other 10.0.0.1 8080 | Should -Be '10.0.0.1' -Because 'the bridge address is one of the host''s'
        }

        It 'works behind Docker''s FORWARD policy DROP, and after a DROP was put above NetnsNat''s rules and Enable laid them again' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
            Get-PeerSeen other 198.51.100.1 8080 | Should -Be '10.0.0.1'
            Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-o', 'br0', '-j', 'DROP') | Out-Null
            Enable-NamespaceNat testnet br0 eth0 -AddressFamily IPv4 | Out-Null
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254' -Because 'the mapping''s FORWARD rules were laid again with the bridge''s, above its inbound drop'
            (Get-ForwardRules)[0] | Should -Match 'DNAT'
        }
    }

    Context 'idempotence, conflicts and bad input' {
        It 'the same mapping again changes nothing' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            $before = Get-LabState
            (Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80).ChangedRules | Should -Be @(0, 0)
            Get-LabState | Should -Be $before
        }

        It 'a port another mapping takes is PortMappingConflict, naming it, and nothing changes' {
            Add-NatPortMapping -InternalAddress 10.0.0.2 -Protocol Tcp -ExternalPort 9090 -InternalPort 80 | Out-Null
            $e = Assert-FailsWithoutChange { Add-NatPortMapping -InternalAddress 10.0.0.3 -Protocol Tcp -ExternalPort 9090 } -ErrorId PortMappingConflict -Category ResourceExists
            $e.Exception.Message | Should -Match '10\.0\.0\.2:80 \(''testnet''\)'
            $e.Exception.Message | Should -Match 'Remove-NatPortMapping -Protocol Tcp -ExternalPort 9090'
        }

        It 'two external ports to one namespace port share rules; removing one leaves the other working' {
            Add-NatPortMapping -InternalAddress 10.0.0.2 -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Add-NatPortMapping -InternalAddress 10.0.0.2 -Protocol Tcp -ExternalPort 8088 -InternalPort 80 | Out-Null
            Remove-NatPortMapping -Protocol Tcp -ExternalPort 8080
            Get-PeerSeen $lab.Internet 198.51.100.1 8088 | Should -Be '198.51.100.254'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
        }

        It 'bad input is a clear error with nothing changed: <Case>' -ForEach @(
            @{ Case = 'port 0'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 0 }; Id = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'port 65536'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 65536 }; Id = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'http'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort http }; Id = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'a negative port'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort -1 }; Id = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'icmp'; Call = { Add-NatPortMapping testnet -Protocol Icmp -ExternalPort 8080 }; Id = 'InvalidProtocol'; Category = 'InvalidArgument' }
            @{ Case = 'an external address not on this host'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -ExternalAddress 192.0.2.99 }; Id = 'ExternalAddressNotLocal'; Category = 'InvalidArgument' }
            @{ Case = 'loopback'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -ExternalAddress 127.0.0.1 }; Id = 'LoopbackExternalAddress'; Category = 'InvalidArgument' }
            @{ Case = 'a malformed prefix'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -RemoteAddressPrefix 10.0.0.0/33 }; Id = 'InvalidPrefix'; Category = 'InvalidArgument' }
            @{ Case = 'an address no namespace has'; Call = { Add-NatPortMapping -InternalAddress 10.0.0.99 -Protocol Tcp -ExternalPort 8080 }; Id = 'AddressNotInNamespace'; Category = 'ObjectNotFound' }
            @{ Case = 'a prefix and an external address of two families'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -RemoteAddressPrefix 2001:db8:1::/64 -ExternalAddress 198.51.100.1 }; Id = 'AddressFamilyMismatch'; Category = 'InvalidArgument' }
            @{ Case = '-AddressFamily that leaves out the address''s family'; Call = { Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -AddressFamily IPv6 -ExternalAddress 198.51.100.1 }; Id = 'AddressFamilyMismatch'; Category = 'InvalidArgument' }
            @{ Case = '-AddressFamily and -InternalAddress of two families'; Call = { Add-NatPortMapping -InternalAddress 10.0.0.2 -Protocol Tcp -ExternalPort 8080 -AddressFamily IPv6 }; Id = 'AddressFamilyMismatch'; Category = 'InvalidArgument' }
            @{ Case = 'an address on no NAT''d bridge'; Call = { Add-NatPortMapping -InternalAddress 172.16.0.2 -Protocol Tcp -ExternalPort 8080 }; Id = 'AddressNotOnNatBridge'; Category = 'ObjectNotFound' }
            @{ Case = 'a mapping NetnsNat does not have'; Call = { Remove-NatPortMapping -Protocol Tcp -ExternalPort 7777 }; Id = 'PortMappingNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'Get-NatPortMapping of a namespace that does not exist'; Call = { Get-NatPortMapping -Namespace nosuchns }; Id = 'NamespaceNotFound'; Category = 'ObjectNotFound' }
        ) {
            Assert-FailsWithoutChange $Call -ErrorId $Id -Category $Category | Out-Null
        }

        It 'a namespace NetnsNat did not enable is NamespaceNotEnabled; one with no address on its NAT''d bridge is NamespaceHasNoAddress' {
            Disable-NamespaceNat other br0 | Out-Null
            Assert-FailsWithoutChange { Add-NatPortMapping other -Protocol Tcp -ExternalPort 8080 } -ErrorId NamespaceNotEnabled -Category ObjectNotFound | Out-Null
            Enable-NamespaceNat other br0 eth0 -AddressFamily IPv4 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'other', 'addr', 'del', '10.0.0.3/24', 'dev', 'veth1') | Out-Null
            try {
                Assert-FailsWithoutChange { Add-NatPortMapping other -Protocol Tcp -ExternalPort 8080 } -ErrorId NamespaceHasNoAddress -Category InvalidOperation | Out-Null
            }
            finally {
                Invoke-LabCommand ip -ArgumentList @('-n', 'other', 'addr', 'add', '10.0.0.3/24', 'dev', 'veth1') | Out-Null
            }
        }

        It '-WhatIf shows the iptables commands and changes nothing' {
            $before = Get-LabState
            $out = (Invoke-ChildPwsh -Script 'Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -WhatIf').Output
            $out | Should -Match 'iptables -t nat -A PREROUTING -d 198\.51\.100\.1/32 -p tcp -m tcp --dport 8080 -m comment --comment netnsnat -j DNAT --to-destination 10\.0\.0\.2:80'
            Get-LabState | Should -Be $before
            Get-NatPortMapping | Should -BeNullOrEmpty
        }
    }

    Context 'the mapping''s life with its namespace' {
        It 'Get-NatPortMapping lists it from the rules with its namespace; after a flush it is RulesMissing, and Restore-NamespaceNat lays it again' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            $g = Get-NatPortMapping -Namespace testnet -AddressFamily IPv4
            "$g" | Should -Be 'Tcp 198.51.100.1:8080 -> 10.0.0.2:80'
            $g.Status | Should -Be 'InForce'
            $g.Rules | Should -HaveCount 5
            foreach ($table in 'nat', 'filter') { Invoke-LabCommand iptables -ArgumentList @('-t', $table, '-F') | Out-Null }
            $g = Get-NatPortMapping -AddressFamily IPv4
            $g.Status | Should -Be 'RulesMissing'
            $g.Detail | Should -Match 'PREROUTING'
            Restore-NamespaceNat | Out-Null
            (Get-NatPortMapping -AddressFamily IPv4).Status | Should -Be 'InForce'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'Get-NamespaceNat names the mappings; Test-NamespaceNat checks them (rules gone, a DROP above them)' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            (Get-NamespaceNat testnet).PortMappings | Should -Be @('Tcp 198.51.100.1:8080 -> 10.0.0.2:80', 'Tcp [2001:db8:1::1]:8080 -> [fd00:0:0:1::2]:80')
            @(Test-NamespaceNat testnet | Where-Object Check -EQ PortMappings).Status | Should -Be @('Pass', 'Pass')
            Test-NamespaceNat testnet -Quiet | Should -BeTrue
            Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-D', 'OUTPUT', '-d', '198.51.100.1/32', '-p', 'tcp', '-m', 'tcp', '--dport', '8080', '-m', 'comment', '--comment', 'netnsnat', '-j', 'DNAT', '--to-destination', '10.0.0.2:80') | Out-Null
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match 'OUTPUT'
            $check.Fix | Should -Be 'Restore-NamespaceNat -Namespace testnet'
            Restore-NamespaceNat | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-i', 'eth0', '-o', 'br0', '-j', 'DROP') | Out-Null
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Fix | Should -Match '^Add-NatPortMapping -Namespace testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80'
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings).Status | Should -Be 'Pass'
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 | Should -Be '198.51.100.254'
        }

        It 'Disable-NamespaceNat removes the namespace''s mappings and leaves a neighbour''s' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Add-NatPortMapping other -Protocol Tcp -ExternalPort 9090 -InternalPort 80 | Out-Null
            Disable-NamespaceNat testnet br0 | Out-Null
            (Get-NatPortMapping).Namespace | Sort-Object -Unique | Should -Be @('other')
            Get-PeerSeen $lab.Internet 198.51.100.1 8080 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Disable-NamespaceNat other br0 | Out-Null
            Get-LabRuleset | Should -BeNullOrEmpty
        }

        It 'Remove-NatPortMapping takes Get-NatPortMapping''s objects and -PassThru emits them' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            $removed = Get-NatPortMapping -AddressFamily IPv6 | Remove-NatPortMapping -PassThru
            "$removed" | Should -Be 'Tcp [2001:db8:1::1]:8080 -> [fd00:0:0:1::2]:80'
            $removed.ChangedRules | Should -Be 5
            $removed.Status | Should -Be 'Removed'
            $removed.InForce | Should -BeFalse
            (Get-NatPortMapping).AddressFamily | Should -Be @('IPv4')
            Get-NatRules | Should -HaveCount 5
            (Invoke-LabCommand ip6tables-save).Output | Should -Not -Match 'DNAT'
        }

        It 'Get-NamespaceNat''s bindings pipe into Get-NatPortMapping, each mapping once; Remove takes -Namespace and -ExternalAddress' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 | Out-Null
            Add-NatPortMapping other -Protocol Tcp -ExternalPort 9090 -InternalPort 80 | Out-Null
            $listed = Get-NamespaceNat testnet | Get-NatPortMapping
            ($listed | ForEach-Object { "$_" }) | Should -Be @('Tcp 198.51.100.1:8080 -> 10.0.0.2:80', 'Tcp [2001:db8:1::1]:8080 -> [fd00:0:0:1::2]:80')
            Assert-FailsWithoutChange { Remove-NatPortMapping other -Protocol Tcp -ExternalPort 8080 } -ErrorId PortMappingNotFound -Category ObjectNotFound | Out-Null
            Remove-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -ExternalAddress 2001:db8:1::1
            (Get-NatPortMapping -Namespace testnet | ForEach-Object { "$_" }) | Should -Be @('Tcp 198.51.100.1:8080 -> 10.0.0.2:80')
        }

        It 'a pipeline into Remove-NatPortMapping is one write per family; -WhatIf on Disable-NamespaceNat shows the mappings'' rules and changes nothing' {
            8081..8085 | ForEach-Object { [pscustomobject]@{ Namespace = 'testnet'; Protocol = 'Tcp'; ExternalPort = $_; InternalPort = 80 } } | Add-NatPortMapping | Out-Null
            $r = Invoke-ChildPwsh -Script 'Disable-NamespaceNat testnet br0 -WhatIf'
            $r.Output | Should -Match 'What if: Performing the operation "iptables -t nat -D PREROUTING -d 198\.51\.100\.1/32 -p tcp -m tcp --dport 8083 '
            (Get-NatPortMapping).Count | Should -Be 10
            $out = Get-NatPortMapping | Remove-NatPortMapping -Verbose 4>&1
            @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and "$_" -match '^Wrote \d+ rule changes' }) | Should -HaveCount 2
            Get-NatPortMapping | Should -BeNullOrEmpty
        }

        It 'Restore-NamespaceNat -WhatIf shows the mappings'' rules; the port of a mapping whose rules are gone stays taken' {
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            foreach ($table in 'nat', 'filter') { Invoke-LabCommand iptables -ArgumentList @('-t', $table, '-F') | Out-Null }
            $r = Invoke-ChildPwsh -Script 'Restore-NamespaceNat -WhatIf'
            $r.Output | Should -Match 'iptables -t nat -A PREROUTING -d 198\.51\.100\.1/32 -p tcp -m tcp --dport 8080 '
            # One question for the mapping, with all of its commands, as Add-NatPortMapping asks (not one per rule).
            @([regex]::Matches($r.Output, 'What if: Performing the operation "[^"]*--dport 8080')) | Should -HaveCount 1
            Assert-FailsWithoutChange { Add-NatPortMapping other -Protocol Tcp -ExternalPort 8080 -AddressFamily IPv4 } -ErrorId PortMappingConflict -Category ResourceExists | Out-Null
            Remove-NatPortMapping -Protocol Tcp -ExternalPort 8080
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 | Out-Null
            (Get-NatPortMapping -AddressFamily IPv4).Status | Should -Be 'InForce'
        }

        It 'a DNAT rule of another''s above the mapping''s is a warning on Add and a failure of Test-NamespaceNat; so is an external address the host lost' {
            Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'PREROUTING', '-d', '198.51.100.1/32', '-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '10.0.0.3:80') | Out-Null
            Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4 -WarningVariable w -WarningAction SilentlyContinue | Out-Null
            "$w" | Should -Match 'takes the same connections'
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Fix | Should -Match '^iptables -t nat -D PREROUTING -d 198\.51\.100\.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10\.0\.0\.3:80$'
            Invoke-LabCommand iptables -ArgumentList ($check.Fix -split ' ' | Select-Object -Skip 1) | Out-Null
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings).Status | Should -Be 'Pass'
            Invoke-LabCommand ip -ArgumentList @('addr', 'add', '198.51.100.2/24', 'dev', 'eth0') | Out-Null
            try {
                Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8082 -InternalPort 80 -ExternalAddress 198.51.100.2 | Out-Null
            }
            finally { Invoke-LabCommand ip -ArgumentList @('addr', 'del', '198.51.100.2/24', 'dev', 'eth0') | Out-Null }
            $check = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -EQ PortMappings
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match 'no longer has the address 198\.51\.100\.2'
            $check.Fix | Should -Match '^Remove-NatPortMapping -Protocol Tcp -ExternalPort 8082 -ExternalAddress 198\.51\.100\.2'
        }

        It 'a pipeline of mappings is one write per family' {
            $out = 8081..8090 | ForEach-Object { [pscustomobject]@{ Namespace = 'testnet'; Protocol = 'Tcp'; ExternalPort = $_; InternalPort = 80 } } |
                Add-NatPortMapping -Verbose 4>&1
            @($out | Where-Object { $_ -is [NetnsNat.NatPortMapping] }) | Should -HaveCount 20
            @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and "$_" -match '^Wrote \d+ rule changes' }) | Should -HaveCount 2
            Get-PeerSeen $lab.Internet 198.51.100.1 8090 | Should -Be '198.51.100.254'
        }
    }
}
