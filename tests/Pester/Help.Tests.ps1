# Issue 6: help is complete, and every example in it is code that works in the lab.
BeforeDiscovery {
    $cmdlets = (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../NetnsNat.psd1')).CmdletsToExport
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:examplesRun = 0
}

Describe 'Help for <_>' -ForEach $cmdlets {
    BeforeAll {
        $name = $_
        $help = Get-Help $name -Full
        $examples = @($help.Examples.Example)
        # Dual stack: every example runs against a bridge with IPv4 and IPv6, as many hosts have.
        $lab = New-NetnsNatLab -DualStack
        Start-LabDns | Out-Null
    }
    AfterAll {
        Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore
        Remove-NetnsNatLab
    }
    BeforeEach {
        Reset-LabFirewall
        Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
    }

    It 'has at least two examples, one of them a pipeline' {
        $examples.Count | Should -BeGreaterOrEqual 2
        @($examples | Where-Object { $_.Code -match '\|' }).Count | Should -BeGreaterOrEqual 1
    }

    It 'has inputs, outputs and related links' {
        ($help.inputTypes | Out-String).Trim() | Should -Not -BeNullOrEmpty
        ($help.returnValues | Out-String).Trim() | Should -Not -BeNullOrEmpty
        @($help.relatedLinks.navigationLink).Count | Should -BeGreaterOrEqual 1
    }

    It 'every example runs without an error in the lab' {
        foreach ($example in $examples) {
            $code = $example.Code
            $errors = $null
            try {
                & ([scriptblock]::Create("`$ErrorActionPreference = 'Stop'; $code")) *>&1 | Out-Null
            }
            catch { $errors = $_ }
            $errors | Should -BeNullOrEmpty -Because "the example '$($example.Title.Trim('- '))' of $name is: $code"
            $script:examplesRun++
        }
    }
}

Describe 'Help figures' {
    It 'ran every example' {
        Write-Figure 'help examples run in the lab without an error' $script:examplesRun
        $script:examplesRun | Should -BeGreaterOrEqual 20
    }
}
