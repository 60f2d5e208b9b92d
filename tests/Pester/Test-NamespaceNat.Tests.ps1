BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $allChecks = @('NamespaceExists', 'LoopbackUp', 'Bridge', 'NamespaceAddress', 'HostLink', 'DefaultRoute', 'IpForwarding', 'Masquerade', 'Uplink', 'Forward', 'Inbound', 'PortMappings', 'DuplicateRules', 'StaleRules', 'BackendMix', 'Resolver')
    function Restore-Good {
        Reset-LabFirewall
        Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore
        foreach ($a in @(@('link', 'set', 'br0', 'up'), @('-n', 'testnet', 'link', 'set', 'lo', 'up'), @('-n', 'testnet', 'link', 'set', 'veth1', 'up'))) { Invoke-LabCommand ip -ArgumentList $a | Out-Null }
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
    }
    function Get-NotPassing([object[]] $results) { @($results | Where-Object Status -NE 'Pass' | ForEach-Object { "$($_.Check):$($_.Status)" }) }
}

Describe 'Test-NamespaceNat' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
        Invoke-LabCommand ip -ArgumentList @('link', 'add', 'wan9', 'type', 'veth', 'peer', 'name', 'wan9p') | Out-Null
    }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Restore-Good }

    Context 'after Enable-NamespaceNat' {
        It 'every check passes and each result carries what it checked and no fix' {
            $r = Test-NamespaceNat testnet
            $r[0].PSObject.TypeNames[0] | Should -Be 'NetnsNat.NatCheckResult'
            $r.Check | Should -Be $allChecks
            Get-NotPassing $r | Should -BeNullOrEmpty
            $r.Bridge | Select-Object -Unique | Should -Be 'br0'
            $r.Outbound | Select-Object -Unique | Should -Be 'eth0'
            $r.Fix | Where-Object { $_ } | Should -BeNullOrEmpty
        }

        It 'probes a target from inside the namespace: ICMP, and TCP with -Port' {
            $icmp = Test-NamespaceNat testnet -Target $lab.ServerAddress | Where-Object Check -EQ Probe
            $icmp.Status | Should -Be 'Pass'
            $tcp = Test-NamespaceNat testnet -Target $lab.ServerAddress -Port 8080 | Where-Object Check -EQ Probe
            $tcp.Status | Should -Be 'Pass'
            $tcp.Detail | Should -Match 'TCP 203\.0\.113\.10:8080'
        }

        It '-Quiet returns $true' {
            Test-NamespaceNat testnet -Quiet | Should -BeExactly $true
        }

        It 'prints a summary line on the host' {
            $info = Test-NamespaceNat testnet 6>&1 | Where-Object { $_ -is [System.Management.Automation.InformationRecord] }
            "$info" | Should -Match 'Test-NamespaceNat testnet: 16 passed, 0 warnings, 0 failed'
        }

        It 'changes nothing' {
            $before = Get-LabState
            Test-NamespaceNat testnet -Target $lab.ServerAddress | Out-Null
            Get-LabState | Should -Be $before
        }
    }

    Context 'each common error, broken on purpose, is found by its check (and only by it)' {
        It '<Break> -> <Expected>' -ForEach @(
            @{ Break = 'lo down in the namespace'; Do = { Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'link', 'set', 'lo', 'down') }; Expected = @('LoopbackUp:Fail') }
            @{ Break = 'the namespace interface down (its routes go too)'; Do = { Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'link', 'set', 'veth1', 'down') }; Expected = @('NamespaceAddress:Fail', 'DefaultRoute:Fail') }
            @{ Break = 'the bridge down'; Do = { Invoke-LabCommand ip -ArgumentList @('link', 'set', 'br0', 'down') }; Expected = @('Bridge:Fail') }
            @{ Break = 'no default route (Network is unreachable)'; Do = { Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') }; Expected = @('DefaultRoute:Fail') }
            @{ Break = 'a default route elsewhere'; Do = { Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'replace', 'default', 'via', '10.0.0.254') }; Expected = @('DefaultRoute:Fail') }
            @{ Break = 'forwarding off'; Do = { [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n") }; Expected = @('IpForwarding:Fail') }
            @{ Break = 'no MASQUERADE rule'; Do = { Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-D', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') }; Expected = @('Masquerade:Fail') }
            @{ Break = 'MASQUERADE on the wrong uplink'; Do = {
                    Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-D', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE')
                    Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'wan9', '-j', 'MASQUERADE') }; Expected = @('Uplink:Fail') }
            @{ Break = 'a REJECT before our FORWARD rules'; Do = { Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-i', 'br0', '-j', 'REJECT') }; Expected = @('Forward:Fail') }
            @{ Break = 'FORWARD policy DROP without our rules'; Do = {
                    Invoke-LabCommand iptables -ArgumentList @('-F', 'FORWARD')
                    Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') }; Expected = @('Forward:Fail') }
            @{ Break = 'a DROP that may match (-p tcp)'; Do = { Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-p', 'tcp', '-i', 'br0', '-j', 'DROP') }; Expected = @('Forward:Warn') }
            @{ Break = 'a duplicate MASQUERADE rule'; Do = { Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') }; Expected = @('DuplicateRules:Warn') }
            @{ Break = 'rules for the subnet in iptables-legacy'; Do = { Invoke-LabCommand iptables-legacy -ArgumentList @('-A', 'FORWARD', '-s', '10.0.0.0/24', '-j', 'ACCEPT') }; Expected = @('BackendMix:Warn') }
            @{ Break = 'a loopback resolver (127.0.0.53)'; Do = { Set-Content /etc/netns/testnet/resolv.conf "nameserver 127.0.0.53" }; Expected = @('Resolver:Fail') }
        ) {
            & $Do | Out-Null
            $r = Test-NamespaceNat testnet -Bridge br0 6>$null
            Get-NotPassing $r | Should -Be $Expected
            $bad = $r | Where-Object Status -NE 'Pass'
            $bad | ForEach-Object { $_.Fix | Should -Not -BeNullOrEmpty }
            Test-NamespaceNat testnet -Bridge br0 -Quiet | Should -Be (-not ($Expected -like '*:Fail'))
        }

        It 'a missing namespace: NamespaceExists fails, and nothing else is checked' {
            $r = Test-NamespaceNat nosuchns
            $r | Should -HaveCount 1
            "$($r.Check):$($r.Status)" | Should -Be 'NamespaceExists:Fail'
            $r.Fix | Should -Be 'ip netns add nosuchns'
        }

        It 'the fixes it names repair the setup' {
            Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') | Out-Null
            [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
            $fixes = Test-NamespaceNat testnet | Where-Object Status -EQ 'Fail' | ForEach-Object Fix
            $fixes | Should -Be @('Set-NamespaceDefaultRoute -Namespace testnet -Gateway 10.0.0.1', 'Enable-IpForwarding')
            foreach ($fix in $fixes) { Invoke-Expression $fix | Out-Null }
            Test-NamespaceNat testnet -Target $lab.ServerAddress -Quiet | Should -BeTrue
        }

        It 'a failed probe fails Probe' {
            Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-i', 'br0', '-j', 'DROP') | Out-Null
            (Test-NamespaceNat testnet -Target $lab.ServerAddress | Where-Object Check -EQ Probe).Status | Should -Be 'Fail'
        }
    }
}

Describe 'DNS for the namespace' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
        $hostResolv = Get-Content /etc/resolv.conf -Raw
        function Reset-Dns {
            Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore
            Set-Content /etc/resolv.conf $hostResolv -NoNewline
            Remove-Item /run/systemd/resolve -Recurse -Force -ErrorAction Ignore
        }
    }
    AfterAll { Reset-Dns; Remove-NetnsNatLab }
    BeforeEach { Reset-Dns; Reset-LabFirewall }

    It '-Dns writes /etc/netns/NAME/resolv.conf, never the host''s, and names resolve through the NAT' {
        $r = Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53
        $r.Dns | Should -Be '203.0.113.53'
        $r.ResolvConf | Should -Be '/etc/netns/testnet/resolv.conf'
        Get-Content /etc/netns/testnet/resolv.conf | Should -Contain 'nameserver 203.0.113.53'
        Get-Content /etc/resolv.conf -Raw | Should -Be $hostResolv
        Resolve-LabName -Namespace testnet -Name server.lab.test | Should -Be $lab.ServerAddress
        Disable-NamespaceNat testnet br0
        '/etc/netns/testnet' | Should -Not -Exist
        Get-Content /etc/resolv.conf -Raw | Should -Be $hostResolv
    }

    It 'without -Dns, a loopback host resolver is replaced by the upstream servers of systemd-resolved' {
        Set-Content /etc/resolv.conf "nameserver 127.0.0.53`noptions edns0 trust-ad"
        New-Item -ItemType Directory /run/systemd/resolve -Force | Out-Null
        Set-Content /run/systemd/resolve/resolv.conf "nameserver 203.0.113.53"
        $r = Enable-NamespaceNat testnet br0 eth0
        $r.Dns | Should -Be '203.0.113.53'
        Resolve-LabName -Namespace testnet -Name server.lab.test | Should -Be $lab.ServerAddress
        (Test-NamespaceNat testnet | Where-Object Check -EQ Resolver).Status | Should -Be 'Pass'
        Disable-NamespaceNat testnet br0
        '/etc/netns/testnet/resolv.conf' | Should -Not -Exist
    }

    It 'without -Dns and without an upstream list, it warns and Test-NamespaceNat fails Resolver' {
        Set-Content /etc/resolv.conf 'nameserver 127.0.0.53'
        Enable-NamespaceNat testnet br0 eth0 -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        "$w" | Should -Match 'pass -Dns'
        '/etc/netns/testnet/resolv.conf' | Should -Not -Exist
        (Test-NamespaceNat testnet | Where-Object Check -EQ Resolver).Status | Should -Be 'Fail'
    }

    It 'without -Dns and with a reachable host resolver, it writes nothing' {
        Set-Content /etc/resolv.conf 'nameserver 203.0.113.53'
        (Enable-NamespaceNat testnet br0 eth0).ResolvConf | Should -Be '/etc/resolv.conf'
        '/etc/netns/testnet' | Should -Not -Exist
    }

    It 'leaves a resolv.conf it did not write alone, and Disable-NamespaceNat does not remove it' {
        New-Item -ItemType Directory /etc/netns/testnet -Force | Out-Null
        Set-Content /etc/netns/testnet/resolv.conf 'nameserver 203.0.113.99'
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        "$w" | Should -Match 'was not written by NetnsNat'
        Get-Content /etc/netns/testnet/resolv.conf | Should -Be 'nameserver 203.0.113.99'
        Disable-NamespaceNat testnet br0
        Get-Content /etc/netns/testnet/resolv.conf | Should -Be 'nameserver 203.0.113.99'
    }

    It 'a failed later step removes the resolv.conf it wrote' {
        Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'dnsfail') | Out-Null
        try {
            Assert-FailsWithoutChange { Enable-NamespaceNat dnsfail br0 eth0 -Dns 203.0.113.53 } -ErrorId GatewayUnreachable -Category InvalidArgument | Out-Null
            '/etc/netns/dnsfail' | Should -Not -Exist
        }
        finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'dnsfail') | Out-Null }
    }

    It '-Dns <Dns>: InvalidDns, nothing changed' -ForEach @(@{ Dns = '127.0.0.53' }, @{ Dns = 'dns.example' }, @{ Dns = '10.0.0' }) {
        Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Dns $Dns } -ErrorId InvalidDns -Category InvalidArgument | Out-Null
    }

    It '-WhatIf writes no resolv.conf' {
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 -WhatIf
        '/etc/netns/testnet' | Should -Not -Exist
    }
}

Describe 'NetnsNat.Verify.Tests.ps1, the verification shipped for users' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
        $verify = Join-Path (Get-Module NetnsNat).ModuleBase 'NetnsNat.Verify.Tests.ps1'
        function Invoke-Verify([hashtable] $Data) {
            $pairs = ($Data.GetEnumerator() | ForEach-Object { "$($_.Key) = '$($_.Value)'" }) -join '; '
            $r = Invoke-ChildPwsh -Script "Import-Module '$env:NETNSNAT_PESTER'; `$r = Invoke-Pester -Container (New-PesterContainer -Path '$verify' -Data @{ $pairs }) -PassThru -Output None; `"`$(`$r.PassedCount) `$(`$r.FailedCount)`"" -TimeoutSeconds 120
            $counts = ($r.Output.Trim() -split "`n")[-1] -split ' '
            [pscustomobject]@{ Passed = [int]$counts[0]; Failed = [int]$counts[1]; Error = $r.Error }
        }
    }
    AfterAll { Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore; Remove-NetnsNatLab }

    It 'passes on a setup made by Enable-NamespaceNat, with a probe' {
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
        $r = Invoke-Verify @{ Namespace = 'testnet'; Bridge = 'br0'; Target = $lab.ServerAddress }
        Write-Figure 'NetnsNat.Verify.Tests.ps1 on a good setup' "$($r.Passed) passed, $($r.Failed) failed"
        $r.Failed | Should -Be 0 -Because $r.Error
        $r.Passed | Should -Be 20
    }

    It 'passes on a setup in the nftables backend (the table''s elements instead of iptables'' rules), and fails when they are gone' {
        Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 -Backend Nftables | Out-Null
        try {
            $r = Invoke-Verify @{ Namespace = 'testnet'; Bridge = 'br0'; Target = $lab.ServerAddress }
            $r.Failed | Should -Be 0 -Because $r.Error
            $r.Passed | Should -Be 20
            Invoke-LabCommand nft -ArgumentList @('delete', 'element', 'inet', 'netnsnat', 'masquerade4', '{ 10.0.0.0/24 . "eth0" }') | Out-Null
            $r = Invoke-Verify @{ Namespace = 'testnet' }
            $r.Failed | Should -Be 2 -Because 'the Masquerade check and the set''s listing both fail'
        }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }

    It 'fails without a default route in the namespace (ip route then prints one line)' {
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') | Out-Null
        $r = Invoke-Verify @{ Namespace = 'testnet' }
        $r.Failed | Should -Be 2 -Because 'the DefaultRoute check and the lesson''s ip route command both fail'
    }

    It 'fails where the setup is broken (forwarding off)' {
        Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
        [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
        $r = Invoke-Verify @{ Namespace = 'testnet' }
        $r.Failed | Should -Be 2 -Because 'the IpForwarding check and the lesson''s ip_forward command both fail'
    }

    Context 'on a dual-stack namespace' {
        BeforeAll { Remove-NetnsNatLab; $lab = New-NetnsNatLab -DualStack }
        It 'passes with both families in force, and fails when only the IPv6 default route is gone' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $r = Invoke-Verify @{ Namespace = 'testnet' }
            $r.Failed | Should -Be 0 -Because $r.Error
            Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', '-6', 'route', 'del', 'default') | Out-Null
            $r = Invoke-Verify @{ Namespace = 'testnet' }
            $r.Failed | Should -Be 1 -Because 'the DefaultRoute check fails for IPv6 (the lesson''s ip route command is IPv4''s)'
        }
    }
}

Describe 'On a dual-stack bridge, a namespace with IPv4 only' {
    BeforeAll {
        $lab = New-NetnsNatLab -DualStack
        Add-LabClient -Name v4only -Bridge br0 -Address 10.0.0.5/24
    }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    It '-AddressFamily Both: the IPv6 checks find its bridge and say it lacks an IPv6 address, with a fix that works' {
        Enable-NamespaceNat v4only br0 eth0 | Out-Null
        $six = @(Test-NamespaceNat v4only -AddressFamily Both | Where-Object AddressFamily -EQ IPv6)
        ($six | Where-Object Check -EQ Bridge).Status | Should -Be 'Pass' -Because 'br0 is an up bridge with an IPv6 subnet'
        $address = $six | Where-Object Check -EQ NamespaceAddress
        $address.Status | Should -Be 'Fail'
        $address.Detail | Should -Be 'The namespace has no IPv6 address in fd00:0:0:1::/64 (its veth1 is on br0).'
        $address.Fix | Should -Be 'ip -n v4only -6 addr add ADDRESS/64 dev veth1 nodad; ip -n v4only link set veth1 up'
        $fix = $address.Fix -replace 'ADDRESS', 'fd00:0:0:1::5'
        foreach ($command in $fix -split '; ') { Invoke-LabCommand ip -ArgumentList ($command -split ' ' | Select-Object -Skip 1) | Out-Null }
        Enable-NamespaceNat v4only br0 eth0 | Out-Null
        Test-NamespaceNat v4only -AddressFamily Both -Quiet | Should -BeTrue
        Invoke-LabCommand ip -ArgumentList @('-n', 'v4only', '-6', 'addr', 'del', 'fd00:0:0:1::5/64', 'dev', 'veth1') | Out-Null
    }

    It 'Disable-NamespaceNat -DisableForwarding -WhatIf shows accept_ra going back with IPv6 forwarding, and changes nothing' {
        # The uplink as a host has it before NetnsNat comes: accept_ra 1, IPv6 forwarding off.
        [System.IO.File]::WriteAllText('/proc/sys/net/ipv6/conf/eth0/accept_ra', "1`n")
        [System.IO.File]::WriteAllText('/proc/sys/net/ipv6/conf/all/forwarding', "0`n")
        $before = '1'
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        [System.IO.File]::ReadAllText('/proc/sys/net/ipv6/conf/eth0/accept_ra').Trim() | Should -Be '2'
        $state = Get-LabState
        $r = Invoke-ChildPwsh -Script 'Disable-NamespaceNat testnet br0 -DisableForwarding -WhatIf'
        $r.Output | Should -Match ([regex]::Escape("sysctl -w net.ipv6.conf.all.forwarding=0"))
        $r.Output | Should -Match ([regex]::Escape("sysctl -w net.ipv6.conf.eth0.accept_ra=$before"))
        Get-LabState | Should -Be $state
        Disable-NamespaceNat testnet br0 -DisableForwarding
        [System.IO.File]::ReadAllText('/proc/sys/net/ipv6/conf/eth0/accept_ra').Trim() | Should -Be $before
    }
}
