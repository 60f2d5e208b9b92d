BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    function Get-NsRoute([string] $ns = 'testnet') { ((Invoke-LabCommand ip -ArgumentList @('-n', $ns, 'route', 'show', 'default')).Output).Trim() }
}

Describe 'Set-NamespaceDefaultRoute' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') -AllowFailure | Out-Null }

    It 'adds the default route via the gateway' {
        $r = Set-NamespaceDefaultRoute -Namespace testnet -Gateway 10.0.0.1
        $r.PSObject.TypeNames[0] | Should -Be 'NetnsNat.NamespaceRoute'
        $r.Namespace | Should -Be 'testnet'
        $r.Gateway | Should -Be '10.0.0.1'
        $r.Device | Should -Be 'veth1'
        $r.PreviousGateway | Should -BeNullOrEmpty
        $r.Changed | Should -BeTrue
        Get-NsRoute | Should -Be 'default via 10.0.0.1 dev veth1'
    }

    It 'keeps no hold on a namespace it entered: deleted, the namespace goes at once (its veth with it)' {
        # The route is set from a thread that entered the namespace and left it again; were it still there, the namespace
        # (and the veth whose peer is in it) would outlive ip netns del.
        Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'nnl-brief') | Out-Null
        try {
            Invoke-LabCommand ip -ArgumentList @('link', 'add', 'vbrief0', 'type', 'veth', 'peer', 'name', 'vbrief1', 'netns', 'nnl-brief') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'nnl-brief', 'addr', 'add', '10.9.9.2/24', 'dev', 'vbrief1') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'nnl-brief', 'link', 'set', 'vbrief1', 'up') | Out-Null
            (Set-NamespaceDefaultRoute nnl-brief 10.9.9.1).Changed | Should -BeTrue
        }
        finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'nnl-brief') -AllowFailure | Out-Null }
        $deadline = [DateTime]::UtcNow.AddSeconds(3)
        while ((Test-Path /sys/class/net/vbrief0) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
        '/sys/class/net/vbrief0' | Should -Not -Exist -Because 'the namespace was destroyed when ip netns del dropped the last hold on it'
    }

    It 'changes nothing when the route is already there' {
        Set-NamespaceDefaultRoute testnet 10.0.0.1 | Out-Null
        (Set-NamespaceDefaultRoute testnet 10.0.0.1).Changed | Should -BeFalse
    }

    It 'replaces a default route via another gateway' {
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'add', 'default', 'via', '10.0.0.254') | Out-Null
        $r = Set-NamespaceDefaultRoute testnet 10.0.0.1
        $r.PreviousGateway | Should -Be '10.0.0.254'
        Get-NsRoute | Should -Be 'default via 10.0.0.1 dev veth1'
    }

    It 'takes the gateway from Get-BridgeSubnet (Address binds to -Gateway)' {
        $r = Get-BridgeSubnet br0 | Set-NamespaceDefaultRoute -Namespace testnet
        $r.Gateway | Should -Be '10.0.0.1'
        Get-NsRoute | Should -Be 'default via 10.0.0.1 dev veth1'
    }

    It "makes the lesson's first common error go away: Network is unreachable" {
        $before = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ping', '-c', '1', '-W', '1', '203.0.113.10') -AllowFailure
        $before.Error | Should -Match 'Network is unreachable'
        Set-NamespaceDefaultRoute testnet 10.0.0.1 | Out-Null
        $after = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ping', '-c', '1', '-W', '1', '203.0.113.10') -AllowFailure
        $after.Error | Should -Not -Match 'Network is unreachable'
    }

    It 'changes nothing under -WhatIf' {
        $before = Get-LabState
        Set-NamespaceDefaultRoute testnet 10.0.0.1 -WhatIf | Should -BeNullOrEmpty
        Get-LabState | Should -Be $before
    }

    It '<Case>: <ErrorId> (<Category>)' -ForEach @(
        @{ Case = 'a missing namespace'; Ns = 'nosuchns'; Gw = '10.0.0.1'; ErrorId = 'NamespaceNotFound'; Category = 'ObjectNotFound' }
        @{ Case = 'a gateway on no link of the namespace'; Ns = 'testnet'; Gw = '192.0.2.1'; ErrorId = 'GatewayUnreachable'; Category = 'InvalidArgument' }
        @{ Case = 'a gateway that is not an address'; Ns = 'testnet'; Gw = '10.0.0'; ErrorId = 'InvalidGateway'; Category = 'InvalidArgument' }
        @{ Case = 'an IPv6 gateway'; Ns = 'testnet'; Gw = 'fe80::1'; ErrorId = 'InvalidGateway'; Category = 'InvalidArgument' }
        @{ Case = 'a namespace path'; Ns = '../testnet'; Gw = '10.0.0.1'; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
        @{ Case = 'a namespace with shell syntax'; Ns = 'testnet;id'; Gw = '10.0.0.1'; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
    ) {
        Assert-FailsWithoutChange { Set-NamespaceDefaultRoute -Namespace $Ns -Gateway $Gw } -ErrorId $ErrorId -Category $Category
    }

    It 'says how to create a missing namespace' {
        { Set-NamespaceDefaultRoute nosuchns 10.0.0.1 -ErrorAction Stop } | Should -Throw -ExpectedMessage '*ip netns add nosuchns*'
    }
}
