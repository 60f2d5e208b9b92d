BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    function Get-Flag([string] $path) { [System.IO.File]::ReadAllText($path).Trim() }
    $v4 = '/proc/sys/net/ipv4/ip_forward'
    $v6 = '/proc/sys/net/ipv6/conf/all/forwarding'
}

Describe 'Enable-IpForwarding' {
    BeforeEach {
        [System.IO.File]::WriteAllText($v4, "0`n")
        [System.IO.File]::WriteAllText($v6, "0`n")
    }
    AfterAll {
        [System.IO.File]::WriteAllText($v4, "0`n")
        [System.IO.File]::WriteAllText($v6, "0`n")
    }

    It 'turns IPv4 forwarding on and says it changed it' {
        $r = Enable-IpForwarding
        $r.PSObject.TypeNames[0] | Should -Be 'NetnsNat.IpForwardingState'
        $r.AddressFamily | Should -Be 'IPv4'
        $r.Key | Should -Be 'net.ipv4.ip_forward'
        $r.Enabled | Should -BeTrue
        $r.Changed | Should -BeTrue
        Get-Flag $v4 | Should -Be '1'
    }

    It 'does not write when forwarding is already on' {
        Enable-IpForwarding | Out-Null
        $r = Enable-IpForwarding
        $r.Changed | Should -BeFalse
        $r.Enabled | Should -BeTrue
    }

    It 'turns IPv6 forwarding on with -AddressFamily IPv6, leaving IPv4 alone' {
        $r = Enable-IpForwarding -AddressFamily IPv6
        $r.Key | Should -Be 'net.ipv6.conf.all.forwarding'
        Get-Flag $v6 | Should -Be '1'
        Get-Flag $v4 | Should -Be '0'
    }

    It 'changes nothing under -WhatIf' {
        Enable-IpForwarding -WhatIf | Should -BeNullOrEmpty
        Get-Flag $v4 | Should -Be '0'
    }

    It 'rejects an unknown family' {
        { Enable-IpForwarding -AddressFamily IPv5 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,NetnsNat.Commands.EnableIpForwardingCommand'
    }
}

Describe 'Disable-IpForwarding' {
    It 'turns forwarding off again' {
        [System.IO.File]::WriteAllText($v4, "1`n")
        $r = Disable-IpForwarding
        $r.Enabled | Should -BeFalse
        $r.Changed | Should -BeTrue
        Get-Flag $v4 | Should -Be '0'
    }
}
