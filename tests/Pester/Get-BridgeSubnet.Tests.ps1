BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
}

Describe 'Get-BridgeSubnet' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Add-LabBridge -Name br16 -Address 10.1.2.3/16
        Add-LabBridge -Name br25 -Address 192.168.5.130/25
        Add-LabBridge -Name brbare -Address ''
        Add-LabBridge -Name brtwo -Address 172.20.0.1/24
        Invoke-LabCommand ip -ArgumentList @('addr', 'add', '172.21.7.9/28', 'dev', 'brtwo') | Out-Null
    }
    AfterAll { Remove-NetnsNatLab }

    Context 'a bridge by name' {
        It 'emits Bridge, Address, PrefixLength and Subnet for br0' {
            $s = Get-BridgeSubnet br0
            $s | Should -HaveCount 1
            $s.PSObject.TypeNames[0] | Should -Be 'NetnsNat.BridgeSubnet'
            $s.Bridge | Should -Be 'br0'
            $s.Address | Should -Be '10.0.0.1'
            $s.PrefixLength | Should -Be 24
            $s.Subnet | Should -Be '10.0.0.0/24'
            $s.IsUp | Should -BeTrue
        }

        It 'computes the network for prefix <Bridge> as <Subnet>' -ForEach @(
            @{ Bridge = 'br16'; Subnet = '10.1.0.0/16' }
            @{ Bridge = 'br25'; Subnet = '192.168.5.128/25' }
        ) {
            (Get-BridgeSubnet -Name $Bridge).Subnet | Should -Be $Subnet
        }

        It 'emits one object per IPv4 address of a bridge' {
            (Get-BridgeSubnet brtwo).Subnet | Should -Be @('172.20.0.0/24', '172.21.7.0/28')
        }
    }

    Context 'the pipeline and no name' {
        It 'takes names by value' {
            ('br0', 'br16' | Get-BridgeSubnet).Bridge | Should -Be @('br0', 'br16')
        }

        It 'takes names by property name (Bridge)' {
            ([pscustomobject]@{ Bridge = 'br25' } | Get-BridgeSubnet).Subnet | Should -Be '192.168.5.128/25'
        }

        It 'lists every bridge with an IPv4 address and nothing else without -Name' {
            $all = Get-BridgeSubnet
            ($all.Bridge | Sort-Object -Unique) | Should -Be @('br0', 'br16', 'br25', 'brtwo')
            $all.Bridge | Should -Not -Contain 'eth0'
        }
    }

    Context 'errors' {
        It '<Case> is <ErrorId> (<Category>)' -ForEach @(
            @{ Case = 'a missing interface'; Name = 'nosuch0'; ErrorId = 'InterfaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'a veth, not a bridge'; Name = 'eth0'; ErrorId = 'NotABridge'; Category = 'InvalidArgument' }
            @{ Case = 'a bridge with no address'; Name = 'brbare'; ErrorId = 'BridgeHasNoAddress'; Category = 'ObjectNotFound' }
            @{ Case = 'a name with shell syntax'; Name = 'br0;reboot'; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Case = 'a name of 16 characters'; Name = 'abcdefghijklmnop'; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
        ) {
            Assert-FailsWithoutChange { Get-BridgeSubnet -Name $Name } -ErrorId $ErrorId -Category $Category
        }

        It 'says how to fix a bridge without an address' {
            { Get-BridgeSubnet brbare -ErrorAction Stop } | Should -Throw -ExpectedMessage '*ip addr add*dev brbare*'
        }

        It 'reports a bad name and still emits the good ones' {
            $out = 'nosuch0', 'br0' | Get-BridgeSubnet -ErrorVariable err -ErrorAction SilentlyContinue
            $out.Bridge | Should -Be 'br0'
            $err | Should -HaveCount 1
        }
    }
}
