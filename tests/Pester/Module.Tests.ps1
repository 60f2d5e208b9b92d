BeforeDiscovery {
    # The per-cmdlet contexts come from the manifest (importing the module during discovery loses its format data).
    $exported = (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../NetnsNat.psd1')).CmdletsToExport
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $module = Get-Module NetnsNat
}

Describe 'The NetnsNat module' {
    It 'exports the cmdlets of the design card, as the manifest lists them' {
        $names = (Get-Command -Module NetnsNat).Name
        ($names | Sort-Object) | Should -Be ((Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../NetnsNat.psd1')).CmdletsToExport | Sort-Object)
        foreach ($n in 'Enable-IpForwarding', 'Get-BridgeSubnet', 'Add-NatMasquerade', 'Remove-NatMasquerade', 'Set-NamespaceDefaultRoute', 'Enable-NamespaceNat', 'Disable-NamespaceNat', 'Get-NatMasquerade', 'Test-NamespaceNat') {
            $names | Should -Contain $n
        }
    }

    It 'passes Test-ModuleManifest and ships no System.Management.Automation.dll' {
        $manifest = Join-Path $module.ModuleBase 'NetnsNat.psd1'
        { Test-ModuleManifest $manifest -ErrorAction Stop } | Should -Not -Throw
        Join-Path $module.ModuleBase 'System.Management.Automation.dll' | Should -Not -Exist
        (Get-ChildItem $module.ModuleBase -Filter *.dll).Name | Sort-Object | Should -Be @('CliWrap.dll', 'NetnsNat.Cmdlets.dll')
    }

    Context '<_>' -ForEach $exported {
        BeforeAll {
            $cmd = Get-Command $_
            $help = Get-Help $_ -Full
            $changes = $cmd.Verb -notin 'Get', 'Test'
        }

        It 'declares [OutputType] with a table view for each type, also after deserialization' {
            $cmd.OutputType | Should -Not -BeNullOrEmpty
            foreach ($t in @($cmd.OutputType.Name) -like 'NetnsNat.*') {
                Get-FormatData -TypeName $t | Should -Not -BeNullOrEmpty
                Get-FormatData -TypeName "Deserialized.$t" | Should -Not -BeNullOrEmpty
            }
        }

        It 'supports -WhatIf and -Confirm when it changes state, and not otherwise' {
            $cmd.Parameters.ContainsKey('WhatIf') | Should -Be $changes
            $cmd.Parameters.ContainsKey('Confirm') | Should -Be $changes
        }

        It 'has help with a synopsis, a description and at least one example' {
            $help.Synopsis | Should -Not -Match ("^" + [regex]::Escape($cmd.Name)) -Because "a synopsis that starts with the name is the syntax Get-Help makes up when there is no help"
            $help.Synopsis.Length | Should -BeGreaterThan 10
            ($help.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty
            @($help.Examples.Example).Count | Should -BeGreaterOrEqual 1
            @($help.Examples.Example)[0].Code | Should -Match $cmd.Name.Split('-')[1]
        }

        It 'documents every parameter' {
            $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
            foreach ($p in $cmd.Parameters.Keys | Where-Object { $_ -notin $common -or $_ -in 'WhatIf', 'Confirm' }) {
                (Get-Help $cmd.Name -Parameter $p).Description.Text | Should -Not -BeNullOrEmpty -Because "-$p of $($cmd.Name) needs a description"
            }
        }
    }

    It 'exports no type but the cmdlets, the objects they emit, their exceptions, completers, the enums parameters take and the one test hook' {
        $assembly = [NetnsNat.Commands.NetnsCmdlet].Assembly
        # What the cmdlets emit, and the types of those objects' properties, recursively.
        $emitted = [System.Collections.Generic.HashSet[type]]::new()
        $todo = [System.Collections.Generic.Queue[type]]::new()
        foreach ($c in Get-Command -Module NetnsNat) { foreach ($t in $c.OutputType.Type) { if ($t -and $t.Assembly -eq $assembly) { $todo.Enqueue($t) } } }
        while ($todo.Count) {
            $t = $todo.Dequeue()
            if (-not $emitted.Add($t)) { continue }
            foreach ($p in $t.GetProperties()) {
                $pt = if ($p.PropertyType.IsGenericType) { $p.PropertyType.GetGenericArguments()[0] } else { $p.PropertyType }
                if ($pt.Assembly -eq $assembly) { $todo.Enqueue($pt) }
            }
        }
        # Enums the parameters take (-Backend's NatBackendKind): their names complete and bind.
        $parameterTypes = @((Get-Command -Module NetnsNat).Parameters.Values | ForEach-Object ParameterType)
        $unexpected = foreach ($t in $assembly.GetExportedTypes()) {
            $ok = [System.Management.Automation.Cmdlet].IsAssignableFrom($t) -or [System.Exception].IsAssignableFrom($t) -or ($t.IsEnum -and $parameterTypes -contains $t) -or
                [System.Management.Automation.IArgumentCompleter].IsAssignableFrom($t) -or $emitted.Contains($t) -or $t.FullName -eq 'NetnsNat.InternalHooks'
            if (-not $ok) { $t.FullName }
        }
        $unexpected | Should -BeNullOrEmpty
        $emitted.Count | Should -BeGreaterThan 5
    }

    It 'has the about_NetnsNat topic' {
        (Get-Help about_NetnsNat | Out-String) | Should -Match 'POSTROUTING'
    }
}

Describe 'Tab completion' {
    BeforeAll { $lab = New-NetnsNatLab; Add-LabBridge -Name brx -Address 10.5.0.1/24 }
    AfterAll { Remove-NetnsNatLab }

    It '-Bridge completes bridges only' {
        $r = TabExpansion2 -inputScript 'Enable-NamespaceNat -Namespace testnet -Bridge ' -cursorColumn 47
        $r.CompletionMatches.CompletionText | Should -Be @('br0', 'brx')
    }

    It '-Bridge completes from what is typed' {
        $r = TabExpansion2 -inputScript 'Get-BridgeSubnet -Name brx' -cursorColumn 26
        $r.CompletionMatches.CompletionText | Should -Be @('brx')
    }

    It '-Namespace completes the named namespaces' {
        $r = TabExpansion2 -inputScript 'Set-NamespaceDefaultRoute -Namespace test' -cursorColumn 41
        $r.CompletionMatches.CompletionText | Should -Be @('testnet')
    }

    It '-Outbound offers the default-route interface first' {
        $r = TabExpansion2 -inputScript 'Add-NatMasquerade -Subnet 10.0.0.0/24 -Outbound ' -cursorColumn 48
        $r.CompletionMatches[0].CompletionText | Should -Be 'eth0'
    }

    It 'views apply to deserialized objects (Export-Clixml / Import-Clixml, remoting)' {
        $file = "/run/netnsnat-clixml-$PID.xml"
        Get-BridgeSubnet br0 | Export-Clixml $file
        $back = Import-Clixml $file
        $back.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.BridgeSubnet'
        $table = $back | Format-Table | Out-String
        $table | Should -Match 'Bridge\s+Address\s+PrefixLength\s+Subnet\s+IsUp'
        ($back | Format-List | Out-String) | Should -Match 'Subnet\s+: 10\.0\.0\.0/24'
        Remove-Item $file
    }

    It 'has list views for detail' {
        (Get-FormatData -TypeName NetnsNat.NamespaceNatResult).FormatViewDefinition | ForEach-Object { $_.Control.GetType().Name } | Should -Contain 'ListControl'
    }

    It '-Subnet completes the subnets of the bridges' {
        $r = TabExpansion2 -inputScript 'Add-NatMasquerade -Subnet ' -cursorColumn 26
        $r.CompletionMatches.CompletionText | Sort-Object | Should -Be @('10.0.0.0/24', '10.5.0.0/24')
    }
}
