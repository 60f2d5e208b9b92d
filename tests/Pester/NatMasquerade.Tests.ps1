BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $masq = '-A POSTROUTING -s 10.0.0.0/24 -o eth0 -j MASQUERADE'
    $fwdOut = '-A FORWARD -s 10.0.0.0/24 -i br0 -o eth0 -m comment --comment netnsnat -j ACCEPT'
    $fwdReply = '-A FORWARD -d 10.0.0.0/24 -i eth0 -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment netnsnat -j ACCEPT'
    $fwdDrop = '-A FORWARD -d 10.0.0.0/24 -i eth0 -o br0 -m comment --comment netnsnat -j DROP'
}

Describe 'Add-NatMasquerade' {
    BeforeAll { $lab = New-NetnsNatLab; Add-LabBridge -Name br1 -Address 10.9.0.1/24 }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    Context '-Subnet and -Outbound' {
        It "adds exactly the lesson's rule, and only it" {
            $r = Add-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0
            $r.PSObject.TypeNames[0] | Should -Be 'NetnsNat.NatMasqueradeRule'
            $r.Subnet | Should -Be '10.0.0.0/24'
            $r.Outbound | Should -Be 'eth0'
            $r.Bridge | Should -BeNullOrEmpty
            $r.Backend | Should -Be 'iptables-nft'
            $r.ChangedRules | Should -Be 1
            Get-PostroutingRules | Should -Be @($masq)
            Get-ForwardRules | Should -BeNullOrEmpty
        }

        It "shows in the lesson's check: iptables -t nat -L POSTROUTING -v -n" {
            Add-NatMasquerade 10.0.0.0/24 eth0 | Out-Null
            $list = (Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-L', 'POSTROUTING', '-v', '-n')).Output
            $list | Should -Match 'MASQUERADE'
            $list | Should -Match '10\.0\.0\.0/24'
        }

        It "is removed by the lesson's cleanup command" {
            Add-NatMasquerade 10.0.0.0/24 eth0 | Out-Null
            $r = Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-D', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') -AllowFailure
            $r.ExitCode | Should -Be 0
            Get-PostroutingRules | Should -BeNullOrEmpty
        }

        It 'normalizes the subnet to its network address' {
            (Add-NatMasquerade -Subnet 10.0.0.77/24 -Outbound eth0).Subnet | Should -Be '10.0.0.0/24'
            Get-PostroutingRules | Should -Be @($masq)
        }
    }

    Context 'with a bridge, from the pipeline' {
        It 'Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 adds MASQUERADE and the three FORWARD rules, in order, at the top' {
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'br9', '-j', 'ACCEPT') | Out-Null
            $r = Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0
            $r.Bridge | Should -Be 'br0'
            $r.ChangedRules | Should -Be 4
            Get-PostroutingRules | Should -Be @($masq)
            Get-ForwardRules | Should -Be @($fwdOut, $fwdReply, $fwdDrop, '-A FORWARD -i br9 -j ACCEPT')
        }

        It 'never opens the bridge to new inbound traffic (no blanket -o br0 -j ACCEPT)' {
            Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
            $inbound = Get-ForwardRules | Where-Object { $_ -match '-o br0' }
            $inbound | Should -Be @($fwdReply, $fwdDrop)
        }

        It 'lays a damaged set again in order (a rule deleted by hand)' {
            Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-D', 'FORWARD', '-d', '10.0.0.0/24', '-i', 'eth0', '-o', 'br0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', 'netnsnat', '-j', 'ACCEPT') | Out-Null
            (Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0).ChangedRules | Should -Be 3
            Get-ForwardRules | Should -Be @($fwdOut, $fwdReply, $fwdDrop)
        }

        It 'puts the FORWARD rules before an existing trailing REJECT' {
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-j', 'REJECT') | Out-Null
            Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
            (Get-ForwardRules)[-1] | Should -Be '-A FORWARD -j REJECT --reject-with icmp-port-unreachable'
        }

        It 'never duplicates a rule, however often it runs' {
            $runs = 1..5 | ForEach-Object { Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 }
            $runs.ChangedRules | Should -Be @(4, 0, 0, 0, 0)
            Get-PostroutingRules | Should -Be @($masq)
            Get-ForwardRules | Should -HaveCount 3
        }

        It 'adds only what is missing when part of the set exists' {
            Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
            (Add-NatMasquerade 10.0.0.0/24 eth0 -Bridge br0).ChangedRules | Should -Be 3
            Get-PostroutingRules | Should -Be @($masq)
        }
    }

    Context '-WhatIf' {
        It 'changes nothing and shows the iptables commands' {
            $before = Get-LabState
            Add-NatMasquerade 10.0.0.0/24 eth0 -Bridge br0 -WhatIf | Should -BeNullOrEmpty
            Get-LabState | Should -Be $before
        }
    }

    Context 'bad input changes nothing' {
        It '<Case>: <ErrorId> (<Category>)' -ForEach @(
            @{ Case = 'prefix 33'; Params = @{ Subnet = '10.0.0.0/33'; Outbound = 'eth0' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'octet 300'; Params = @{ Subnet = '300.1.1.1/24'; Outbound = 'eth0' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'no prefix'; Params = @{ Subnet = '10.0.0.1'; Outbound = 'eth0' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'IPv6'; Params = @{ Subnet = '::/0'; Outbound = 'eth0' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'outbound with ;'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = 'eth0;reboot' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'outbound $(id)'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = '$(id)' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'bridge with a space'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = 'eth0'; Bridge = 'br 0' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'missing outbound'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = 'wlan9' }; ErrorId = 'InterfaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'bridge that is a veth'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = 'eth0'; Bridge = 'vtestnet' }; ErrorId = 'NotABridge'; Category = 'InvalidArgument' }
            @{ Case = 'bridge as outbound'; Params = @{ Subnet = '10.0.0.0/24'; Outbound = 'br0'; Bridge = 'br0' }; ErrorId = 'OutboundIsBridge'; Category = 'InvalidArgument' }
        ) {
            Assert-FailsWithoutChange { Add-NatMasquerade @Params } -ErrorId $ErrorId -Category $Category
        }
    }
}

Describe 'Get-NatMasquerade' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Add-LabBridge -Name br1 -Address 10.9.0.1/24
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        Add-NatMasquerade 10.9.0.0/24 eth0 | Out-Null
    }
    AfterAll { Remove-NetnsNatLab }

    It 'lists every MASQUERADE rule with subnet, uplink and bridge' {
        $all = Get-NatMasquerade
        $all | Should -HaveCount 2
        ($all | Where-Object Subnet -EQ '10.0.0.0/24').Bridge | Should -Be 'br0'
        ($all | Where-Object Subnet -EQ '10.9.0.0/24').Bridge | Should -BeNullOrEmpty
        ($all | Where-Object Subnet -EQ '10.0.0.0/24').Rules | Should -HaveCount 4
    }

    It 'filters by -Subnet (normalized), -Outbound and -Bridge' {
        (Get-NatMasquerade -Subnet 10.9.0.5/24).Subnet | Should -Be '10.9.0.0/24'
        Get-NatMasquerade -Outbound eth9 | Should -BeNullOrEmpty
        (Get-NatMasquerade -Bridge br0).Subnet | Should -Be '10.0.0.0/24'
    }

    It 'lists MASQUERADE rules it did not write' {
        Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '172.30.0.0/16', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
        (Get-NatMasquerade -Subnet 172.30.0.0/16).Outbound | Should -Be 'eth0'
    }
}

Describe 'Remove-NatMasquerade' {
    BeforeAll { $lab = New-NetnsNatLab; Add-LabBridge -Name br1 -Address 10.9.0.1/24 }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    It 'removes the MASQUERADE rule and our FORWARD rules, and nothing else' {
        $foreign = @(
            @('-A', 'FORWARD', '-i', 'br0', '-j', 'ACCEPT'),
            @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-p', 'tcp', '-j', 'MASQUERADE')
        )
        $empty = Get-LabRuleset
        foreach ($rule in $foreign) { Invoke-LabCommand iptables -ArgumentList $rule | Out-Null }
        $withForeign = Get-LabRuleset
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        Get-BridgeSubnet br1 | Add-NatMasquerade -Outbound eth0 | Out-Null
        $r = Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -PassThru
        $r.ChangedRules | Should -Be 4
        $left = (Get-LabRuleset) -split "`n"
        $left | Should -Contain '-A FORWARD -i br0 -j ACCEPT'
        $left | Should -Contain '-t nat -A POSTROUTING -s 10.0.0.0/24 -o eth0 -p tcp -j MASQUERADE'
        ($left | Where-Object { $_ -match '10\.9\.0\.0/24' }) | Should -HaveCount 4
        Remove-NatMasquerade -Subnet 10.9.0.0/24 -Outbound eth0
        Get-LabRuleset | Should -Be $withForeign
        $empty | Should -Not -Be $withForeign
    }

    It 'leaves the rules of a namespace NetnsNat enabled to its Disable: RulesInUse (ResourceBusy) naming it, nothing changed; -Force removes them, the binding RulesMissing until Restore' {
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        try {
            $e = Assert-FailsWithoutChange { Get-NatMasquerade -Subnet 10.0.0.0/24 | Remove-NatMasquerade } -ErrorId RulesInUse -Category ResourceBusy
            $e.Exception.Message | Should -Match "'testnet' on br0"
            $e.Exception.Message | Should -Match 'Disable-NamespaceNat testnet br0'
            Test-LabConnection | Should -Be $lab.UplinkAddress
            (Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Force -PassThru).ChangedRules | Should -Be 4
            (Get-NamespaceNat testnet).Status | Should -Be 'RulesMissing'
            Restore-NamespaceNat | Out-Null
            (Get-NamespaceNat testnet).Status | Should -Be 'InForce'
            Test-LabConnection | Should -Be $lab.UplinkAddress
        }
        finally { Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null }
    }

    It 'takes rule objects from Get-NatMasquerade' {
        Get-BridgeSubnet br0, br1 | Add-NatMasquerade -Outbound eth0 | Out-Null
        $before = Get-LabRuleset
        Get-NatMasquerade -Bridge br1 | Remove-NatMasquerade
        ((Get-LabRuleset) -split "`n" | Where-Object { $_ -match '10\.9\.0\.0/24' }) | Should -BeNullOrEmpty
        ((Get-LabRuleset) -split "`n" | Where-Object { $_ -match '10\.0\.0\.0/24' }) | Should -HaveCount 4
        Get-NatMasquerade | Remove-NatMasquerade
        Get-PostroutingRules | Should -BeNullOrEmpty
        Get-ForwardRules | Should -BeNullOrEmpty
    }

    It 'removes every copy of a duplicated rule (the lesson appended duplicates)' {
        1..3 | ForEach-Object { Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null }
        (Remove-NatMasquerade 10.0.0.0/24 eth0 -PassThru).ChangedRules | Should -Be 3
        Get-PostroutingRules | Should -BeNullOrEmpty
    }

    It 'binds -Subnet and -Bridge from Get-BridgeSubnet by property name' {
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        Get-BridgeSubnet br0 | Remove-NatMasquerade -Outbound eth0
        Get-PostroutingRules | Should -BeNullOrEmpty
        Get-ForwardRules | Should -BeNullOrEmpty
    }

    It 'is not an error when the rule is not there' {
        $err = $null
        Remove-NatMasquerade 10.0.0.0/24 eth0 -ErrorVariable err
        $err | Should -BeNullOrEmpty
    }

    It 'changes nothing under -WhatIf' {
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        $before = Get-LabState
        Remove-NatMasquerade 10.0.0.0/24 eth0 -WhatIf
        Get-LabState | Should -Be $before
    }

    It 'never removes everything when called without arguments' {
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        $before = Get-LabState
        { Remove-NatMasquerade } | Should -Throw
        Get-LabState | Should -Be $before
    }

    It 'rejects a bad subnet with InvalidSubnet and changes nothing' {
        Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 | Out-Null
        $before = Get-LabState
        { Remove-NatMasquerade -Subnet 10.0.0.0/33 -Outbound eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidSubnet,NetnsNat.Commands.RemoveNatMasqueradeCommand'
        Get-LabState | Should -Be $before
    }
}
