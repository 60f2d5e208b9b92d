BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    function Get-NsRouteText([string] $ns) { (Invoke-LabCommand ip -ArgumentList @('-n', $ns, 'route', 'show', 'default')).Output.Trim() }
}

Describe 'Enable-NamespaceNat and Disable-NamespaceNat' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach {
        Reset-LabFirewall
        [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') -AllowFailure | Out-Null
    }

    Context 'the lesson made real: a client reaches the lab server through the NAT' {
        It 'reaches the server only after Enable-NamespaceNat, the server sees the uplink address, and Disable-NamespaceNat restores the ruleset' {
            $before = Get-LabRuleset
            Test-LabConnection -Namespace testnet | Should -BeNullOrEmpty

            $r = Enable-NamespaceNat -Namespace testnet -Bridge br0 -Outbound eth0
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            $ping = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ping', '-c', '2', '-i', '0.2', '-W', '1', $lab.ServerAddress) -AllowFailure
            $ping.ExitCode | Should -Be 0

            Disable-NamespaceNat -Namespace testnet -Bridge br0
            Test-LabConnection -Namespace testnet -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Get-LabRuleset | Should -Be $before
        }

        It 'emits one result carrying the forwarding state, the subnet, the rule and the route' {
            $r = Enable-NamespaceNat testnet br0 eth0
            $r.PSObject.TypeNames[0] | Should -Be 'NetnsNat.NamespaceNatResult'
            $r.Namespace | Should -Be 'testnet'
            $r.Bridge | Should -Be 'br0'
            $r.Subnet | Should -Be '10.0.0.0/24'
            $r.Outbound | Should -Be 'eth0'
            $r.Gateway | Should -Be '10.0.0.1'
            $r.Forwarding | Should -BeTrue
            $r.Enabled | Should -BeTrue
            $r.ForwardingState.Changed | Should -BeTrue
            $r.Rule.ChangedRules | Should -Be 4
            $r.Route.Gateway | Should -Be '10.0.0.1'
            $r.Route.Changed | Should -BeTrue
        }

        It 'uses the interface of the default route when -Outbound is left out' {
            (Enable-NamespaceNat -Namespace testnet -Bridge br0).Outbound | Should -Be 'eth0'
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
        }

        It 'takes namespace names from the pipeline, by value and by property name' {
            ('testnet' | Enable-NamespaceNat -Bridge br0).Namespace | Should -Be 'testnet'
            ([pscustomobject]@{ Namespace = 'testnet'; Bridge = 'br0' } | Enable-NamespaceNat).Bridge | Should -Be 'br0'
        }
    }

    Context "the lesson's tests, ported" {
        It 'test_setup_nat: forwarding on, MASQUERADE for the bridge subnet, FORWARD rules for the bridge, route in the namespace' {
            Add-LabBridge -Name br_nat_test -Address 10.0.99.1/24
            try {
                Add-LabClient -Name nattest -Bridge br_nat_test -Address 10.0.99.2/24
                Enable-NamespaceNat -Namespace nattest -Bridge br_nat_test -Outbound eth0 | Out-Null
                [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() | Should -Be '1'
                $nat = (Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-L', 'POSTROUTING', '-v', '-n')).Output
                $nat | Should -Match 'MASQUERADE'
                $nat | Should -Match '10\.0\.99\.0/24'
                $fwd = (Invoke-LabCommand iptables -ArgumentList @('-L', 'FORWARD', '-v', '-n')).Output -split "`n" | Where-Object { $_ -match 'br_nat_test' }
                # The lesson's check: ACCEPT rules for the bridge (out, and replies in), and new inbound connections dropped.
                $fwd | Should -HaveCount 3
                $fwd[0] | Should -Match 'ACCEPT\s+\S+\s+--\s+br_nat_test\s+eth0'
                $fwd[1] | Should -Match 'ACCEPT.*eth0\s+br_nat_test.*RELATED,ESTABLISHED'
                $fwd[2] | Should -Match 'DROP.*eth0\s+br_nat_test'
                $route = (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'nattest', 'ip', 'route')).Output
                $route | Should -Match 'default via 10\.0\.99\.1 dev veth1'
                $route | Should -Match '10\.0\.99\.0/24 dev veth1 proto kernel scope link src 10\.0\.99\.2'
                Test-LabConnection -Namespace nattest | Should -Be $lab.UplinkAddress
            }
            finally {
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'nattest') -AllowFailure | Out-Null
                Invoke-LabCommand ip -ArgumentList @('link', 'del', 'br_nat_test') -AllowFailure | Out-Null
            }
        }

        It "test_nat_cleanup: the lesson's cleanup commands work, and Disable-NamespaceNat removes the rest after the namespace and bridge are gone" {
            $before = Get-LabRuleset
            Add-LabBridge -Name br_cleanup_test -Address 10.0.98.1/24
            Add-LabClient -Name cleanuptest -Bridge br_cleanup_test -Address 10.0.98.2/24
            Enable-NamespaceNat -Namespace cleanuptest -Bridge br_cleanup_test -Outbound eth0 | Out-Null
            # The lesson's cleanup, in its order
            (Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'cleanuptest') -AllowFailure).ExitCode | Should -Be 0
            (Invoke-LabCommand ip -ArgumentList @('link', 'del', 'br_cleanup_test') -AllowFailure).ExitCode | Should -Be 0
            (Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-D', 'POSTROUTING', '-s', '10.0.98.0/24', '-o', 'eth0', '-j', 'MASQUERADE') -AllowFailure).ExitCode | Should -Be 0
            $nat = (Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-L', 'POSTROUTING', '-v', '-n')).Output
            $nat | Should -Not -Match '10\.0\.98\.0/24'
            # The lesson's blanket FORWARD rules never existed; NetnsNat's are found by the bridge name.
            Disable-NamespaceNat -Namespace cleanuptest -Bridge br_cleanup_test -WarningAction SilentlyContinue
            Get-LabRuleset | Should -Be $before
        }
    }

    Context 'many namespaces in one call' {
        BeforeAll {
            $names = foreach ($i in 1..30) { $n = "many$i"; Add-LabClient -Name $n -Bridge br0 -Address "10.0.0.$(100 + $i)/24"; $n }
            Add-LabBridge -Name brm2 -Address 10.50.0.1/24
            foreach ($i in 1..3) { Add-LabClient -Name "other$i" -Bridge brm2 -Address "10.50.0.$(10 + $i)/24" }
            $counter = New-ToolWrapper -Tool iptables-save, iptables-restore -Body @'
echo "$(basename "$0")" >> $COUNT
exec "$REAL" "$@"
'@
        }
        AfterAll {
            foreach ($n in $names + @('other1', 'other2', 'other3')) { Invoke-LabCommand ip -ArgumentList @('netns', 'del', $n) -AllowFailure | Out-Null }
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brm2') -AllowFailure | Out-Null
            Remove-Item $counter -Recurse -Force
        }
        BeforeEach { Remove-Item (Join-Path $counter 'count') -ErrorAction Ignore }

        It 'names piped by value: one iptables-save and one iptables-restore for all of them, every namespace routed' {
            $saved = $env:PATH
            try {
                $env:PATH = "${counter}:$saved"
                $r = $names | Enable-NamespaceNat -Bridge br0 -Outbound eth0
            }
            finally { $env:PATH = $saved }
            $r | Should -HaveCount 30
            Get-Content (Join-Path $counter 'count') | Should -Be @('iptables-save', 'iptables-restore')
            Get-ForwardRules | Should -HaveCount 3
            Test-LabConnection -Namespace many17 | Should -Be $lab.UplinkAddress
            ($names | ForEach-Object { Get-NsRouteText $_ } | Where-Object { $_ -match 'via 10\.0\.0\.1' }).Count | Should -Be 30
        }

        It 'objects with Namespace and Bridge bind by property name, two bridges in one transaction' {
            $objects = @($names | Select-Object -First 5 | ForEach-Object { [pscustomobject]@{ Namespace = $_; Bridge = 'br0' } }) +
                @(1..3 | ForEach-Object { [pscustomobject]@{ Namespace = "other$_"; Bridge = 'brm2' } })
            $saved = $env:PATH
            try { $env:PATH = "${counter}:$saved"; $r = $objects | Enable-NamespaceNat -Outbound eth0 }
            finally { $env:PATH = $saved }
            $r | Should -HaveCount 8
            ($r.Bridge | Sort-Object -Unique) | Should -Be @('br0', 'brm2')
            Get-Content (Join-Path $counter 'count') | Should -Be @('iptables-save', 'iptables-restore')
            Get-ForwardRules | Should -HaveCount 6
            Test-LabConnection -Namespace other2 | Should -Be $lab.UplinkAddress
        }

        It 'reports bad items one by one and sets up the rest' {
            $r = 'many1', 'nosuchns', 'bad;name', 'many2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -ErrorVariable err -ErrorAction SilentlyContinue
            $r.Namespace | Should -Be @('many1', 'many2')
            ($err.FullyQualifiedErrorId | ForEach-Object { $_.Split(',')[0] } | Sort-Object) | Should -Be @('InvalidNamespaceName', 'NamespaceNotFound')
        }

        It 'with -ErrorAction Stop, a bad name among several stops the call before anything changes (pipeline and -Namespace list)' {
            $before = Get-LabState
            { 'many1', 'nosuchns', 'many2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'NamespaceNotFound,*'
            { Enable-NamespaceNat -Namespace many1, nosuchns -Bridge br0 -Outbound eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'NamespaceNotFound,*'
            Get-LabState | Should -Be $before
            @(Get-NamespaceNat many1) | Should -BeNullOrEmpty -Because 'nothing was recorded either'
        }

        It 'when every namespace of a bridge fails, that bridge keeps no rules' {
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'noaddr1') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'noaddr2') | Out-Null
            try {
                $before = Get-LabState
                'noaddr1', 'noaddr2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
                $err | Should -HaveCount 2
                Get-LabState | Should -Be $before
            }
            finally { 'noaddr1', 'noaddr2' | ForEach-Object { Invoke-LabCommand ip -ArgumentList @('netns', 'del', $_) | Out-Null } }
        }
    }

    Context 'idempotence and undo' {
        It 'running three times leaves the same ruleset as once' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $once = Get-LabState
            $again = 1..2 | ForEach-Object { Enable-NamespaceNat testnet br0 eth0 }
            Get-LabState | Should -Be $once
            $again.Rule.ChangedRules | Should -Be @(0, 0)
            $again.Route.Changed | Should -Be @($false, $false)
            $again.ForwardingState.Changed | Should -Be @($false, $false)
        }

        It 'Disable-NamespaceNat leaves forwarding on unless -DisableForwarding' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Disable-NamespaceNat testnet br0
            [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() | Should -Be '1'
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $r = Disable-NamespaceNat testnet br0 -DisableForwarding -PassThru
            [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() | Should -Be '0'
            $r.Enabled | Should -BeFalse
            $r.Forwarding | Should -BeFalse
            $r.Rule.ChangedRules | Should -Be 4
            $r.Route.Changed | Should -BeTrue
        }

        It 'Disable-NamespaceNat leaves a default route that does not point at the bridge' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'replace', 'default', 'via', '10.0.0.254') | Out-Null
            Disable-NamespaceNat testnet br0
            (Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'show', 'default')).Output | Should -Match 'via 10\.0\.0\.254'
        }

        It 'Disable-NamespaceNat on a namespace NetnsNat never enabled is NotEnabled (ObjectNotFound), and changes nothing' {
            Assert-FailsWithoutChange { Disable-NamespaceNat testnet br0 } -ErrorId NotEnabled -Category ObjectNotFound | Out-Null
        }
    }

    Context '-WhatIf' {
        It 'Enable-NamespaceNat -WhatIf changes nothing and emits nothing' {
            $before = Get-LabState
            Enable-NamespaceNat testnet br0 eth0 -WhatIf | Should -BeNullOrEmpty
            Get-LabState | Should -Be $before
        }

        It 'Disable-NamespaceNat -WhatIf changes nothing' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $before = Get-LabState
            Disable-NamespaceNat testnet br0 -DisableForwarding -WhatIf
            Get-LabState | Should -Be $before
        }
    }

    Context 'errors change nothing' {
        BeforeAll {
            Add-LabBridge -Name brdown -Address 10.7.0.1/24 -Down
            Add-LabBridge -Name brbare -Address ''
        }
        AfterAll {
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brdown') -AllowFailure | Out-Null
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brbare') -AllowFailure | Out-Null
        }

        It '<Case>: <ErrorId> (<Category>)' -ForEach @(
            @{ Case = 'a missing namespace'; Params = @{ Namespace = 'nosuchns'; Bridge = 'br0'; Outbound = 'eth0' }; ErrorId = 'NamespaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'a missing bridge'; Params = @{ Namespace = 'testnet'; Bridge = 'br9'; Outbound = 'eth0' }; ErrorId = 'InterfaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'a veth as bridge'; Params = @{ Namespace = 'testnet'; Bridge = 'vtestnet'; Outbound = 'eth0' }; ErrorId = 'NotABridge'; Category = 'InvalidArgument' }
            @{ Case = 'a bridge that is down'; Params = @{ Namespace = 'testnet'; Bridge = 'brdown'; Outbound = 'eth0' }; ErrorId = 'BridgeDown'; Category = 'InvalidOperation' }
            @{ Case = 'a bridge without an address'; Params = @{ Namespace = 'testnet'; Bridge = 'brbare'; Outbound = 'eth0' }; ErrorId = 'BridgeHasNoAddress'; Category = 'ObjectNotFound' }
            @{ Case = 'a missing uplink'; Params = @{ Namespace = 'testnet'; Bridge = 'br0'; Outbound = 'wlan0' }; ErrorId = 'InterfaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'the bridge as uplink'; Params = @{ Namespace = 'testnet'; Bridge = 'br0'; Outbound = 'br0' }; ErrorId = 'OutboundIsBridge'; Category = 'InvalidArgument' }
            @{ Case = 'a bridge name with ;'; Params = @{ Namespace = 'testnet'; Bridge = 'br0;reboot'; Outbound = 'eth0' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'an uplink $(id)'; Params = @{ Namespace = 'testnet'; Bridge = 'br0'; Outbound = '$(id)' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'a namespace with ..'; Params = @{ Namespace = '..'; Bridge = 'br0'; Outbound = 'eth0' }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Case = 'an empty namespace'; Params = @{ Namespace = ' '; Bridge = 'br0'; Outbound = 'eth0' }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Case = 'a look-alike bridge name'; Params = @{ Namespace = 'testnet'; Bridge = "br$([char]0x0030)$([char]0x0301)"; Outbound = 'eth0' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
        ) {
            Assert-FailsWithoutChange { Enable-NamespaceNat @Params } -ErrorId $ErrorId -Category $Category
        }

        It 'says clearly when there is no default route and no -Outbound' {
            Invoke-LabCommand ip -ArgumentList @('route', 'del', 'default') | Out-Null
            try { Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 } -ErrorId NoDefaultRoute -Category ObjectNotFound | Out-Null }
            finally { Invoke-LabCommand ip -ArgumentList @('route', 'add', 'default', 'via', '198.51.100.254', 'dev', 'eth0') | Out-Null }
        }

        It 'rolls back what it applied when the route step fails (namespace without an address on the bridge)' {
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'noaddr') | Out-Null
            try { Assert-FailsWithoutChange { Enable-NamespaceNat noaddr br0 eth0 } -ErrorId GatewayUnreachable -Category InvalidArgument | Out-Null }
            finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'noaddr') | Out-Null }
        }
    }
}
