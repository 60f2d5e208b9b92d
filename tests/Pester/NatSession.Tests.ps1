# Issue 15: the NAT's connections from the kernel's conntrack table (Get-NatSession, Remove-NatSession), with real
# TCP connections and UDP flows from testnet through the NAT to the lab's "internet", each checked against the
# conntrack tool (Debian's conntrack package), which reads the same table by its own code.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:started = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()

    function Start-LabProcess {
        <# A long-running program inside a namespace (ip netns exec), stdin kept open; ended by Stop-LabProcesses. #>
        param([Parameter(Mandatory)][string] $Namespace, [Parameter(Mandatory)][string[]] $ArgumentList)
        $psi = [System.Diagnostics.ProcessStartInfo]::new((Get-Command ip -CommandType Application)[0].Source)
        foreach ($a in @('netns', 'exec', $Namespace) + $ArgumentList) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $script:started.Add($p)
        $p
    }

    function Stop-LabProcesses {
        # Only the processes this file started, by their own handles (PIDs).
        foreach ($p in $script:started) { if (-not $p.HasExited) { $p.Kill($true); $p.WaitForExit(5000) | Out-Null } }
        $script:started.Clear()
    }

    function Wait-Until([scriptblock] $Condition, [string] $What, [int] $Seconds = 10) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while (-not (& $Condition)) {
            if ([DateTime]::UtcNow -gt $deadline) { throw "timed out waiting for $What" }
            Start-Sleep -Milliseconds 50
        }
    }

    function Start-LabServers {
        # In the "internet": a TCP echo server that holds each connection open (9000), a UDP server that answers (5300).
        Start-LabProcess nnl-inet @('socat', 'TCP-LISTEN:9000,bind=203.0.113.10,fork,reuseaddr', 'EXEC:cat') | Out-Null
        Start-LabProcess nnl-inet @('socat', 'UDP-RECVFROM:5300,bind=203.0.113.10,fork', 'SYSTEM:echo pong') | Out-Null
        Wait-Until { (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'nnl-inet', 'ss', '-ltn')).Output -match '203\.0\.113\.10:9000' } 'the TCP server'
        Wait-Until { (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'nnl-inet', 'ss', '-lun')).Output -match '203\.0\.113\.10:5300' } 'the UDP server'
    }

    function Open-HeldConnection {
        # A TCP connection from testnet that stays open (socat with its stdin open) until Stop-LabProcesses.
        Start-LabProcess testnet @('socat', '-', 'TCP:203.0.113.10:9000') | Out-Null
        Wait-Until { (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ss', '-tn', 'state', 'established')).Output -match '203\.0\.113\.10:9000' } 'the held connection'
    }

    function Send-LabUdp([int] $Port = 5300) {
        # One UDP exchange from testnet: a datagram out, the answer back; the flow's entry lives 30 s. The flows of
        # earlier calls are dropped first (by the conntrack tool), so there is exactly one.
        Invoke-LabCommand conntrack -ArgumentList @('-D', '-p', 'udp', '--dport', "$Port") -AllowFailure | Out-Null
        # The answer is waited for up to 5 s (bash's /dev/udp and head, which reads the datagram whole), not the 0.5 s
        # socat gives a reply after its input ends: under load the server's fork and shell take longer than that.
        $exchange = "exec 3<>/dev/udp/203.0.113.10/$Port; echo ping >&3; timeout 5 head -c 5 <&3"
        $r = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'bash', '-c', $exchange) -AllowFailure
        $r.Output.Trim() | Should -Be 'pong' -Because "the UDP server answers ($($r.Error))"
    }

    function Get-ConntrackEntry {
        <# conntrack -L, each line as (protocol number, original source, source port, destination, destination port, reply source, reply destination). #>
        param([string[]] $Option = @())
        $r = Invoke-LabCommand conntrack -ArgumentList (@('-L') + $Option)
        foreach ($line in $r.Output -split "`n" | Where-Object { $_.Trim() }) {
            $fields = $line -split '\s+'
            $src = @($fields | Where-Object { $_ -like 'src=*' } | ForEach-Object { $_.Substring(4) })
            $dst = @($fields | Where-Object { $_ -like 'dst=*' } | ForEach-Object { $_.Substring(4) })
            $sport = @($fields | Where-Object { $_ -like 'sport=*' } | ForEach-Object { $_.Substring(6) })
            $dport = @($fields | Where-Object { $_ -like 'dport=*' } | ForEach-Object { $_.Substring(6) })
            $e = [pscustomobject]@{
                Number = [int]$fields[1]; Source = $src[0]; SourcePort = $sport[0]; Destination = $dst[0]; DestinationPort = $dport[0]
                ReplySource = $src[1]; ReplyDestination = $dst[1]; Line = $line
            }
            $e | Add-Member -NotePropertyName Key -NotePropertyValue "$($e.Number) $($e.Source) $($e.SourcePort) $($e.Destination) $($e.DestinationPort)" -PassThru
        }
    }

    # The NAT's entries: the host's own flows from its uplink address (a name lookup of the host's to the lab's resolver,
    # which can happen at any time) are not NetnsNat's to list or remove.
    function Get-ConntrackKeys { @(Get-ConntrackEntry | Where-Object Source -NE '198.51.100.1' | ForEach-Object Key | Sort-Object) -join "`n" }

    function Get-SessionKey($s) {
        $number = @{ Tcp = 6; Udp = 17; Icmp = 1; 'IPv6-ICMP' = 58 }[$s.Protocol]
        if (-not $number) { $number = [int]$s.Protocol }
        "$number $($s.OriginalSource) $($s.OriginalSourcePort) $($s.OriginalDestination) $($s.OriginalDestinationPort)"
    }

    function Assert-SessionCallFails {
        <# A call that must fail: one error of that id and category, no output, the lab and the conntrack table unchanged. #>
        param([Parameter(Mandatory)][scriptblock] $Action, [Parameter(Mandatory)][string] $ErrorId, [Parameter(Mandatory)][string] $Category)
        $before = Get-ConntrackKeys
        Assert-FailsWithoutChange -Action $Action -ErrorId $ErrorId -Category $Category | Out-Null
        Get-ConntrackKeys | Should -Be $before
    }

    function Set-ConntrackAccounting([int] $Value) {
        # The sandbox's own network namespace (net.netfilter.nf_conntrack_acct is per namespace).
        [System.IO.File]::WriteAllText('/proc/sys/net/netfilter/nf_conntrack_acct', "$Value`n")
    }
}

Describe 'Get-NatSession' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        Add-LabClient -Name idle -Address 10.0.0.3/24
        Start-LabServers
        Open-HeldConnection
        Test-LabConnection | Should -Be '198.51.100.1'
    }
    AfterAll { Stop-LabProcesses; Remove-NetnsNatLab }
    BeforeEach { Send-LabUdp }

    Context 'the connections through the NAT' {
        It 'shows the open TCP connection from testnet, masqueraded to the uplink address' {
            $s = @(Get-NatSession | Where-Object OriginalDestinationPort -EQ 9000)
            $s | Should -HaveCount 1
            $s[0].PSObject.TypeNames[0] | Should -Be 'NetnsNat.NatSession'
            $s[0].Protocol | Should -Be 'Tcp'
            $s[0].AddressFamily | Should -Be 'IPv4'
            $s[0].State | Should -Be 'ESTABLISHED'
            $s[0].Assured | Should -BeTrue
            $s[0].OriginalSource | Should -Be '10.0.0.2'
            $s[0].OriginalDestination | Should -Be '203.0.113.10'
            $s[0].TranslatedSource | Should -Be '198.51.100.1'
            $s[0].TranslatedSourcePort | Should -BeGreaterThan 0
            $s[0].TranslatedDestination | Should -BeNullOrEmpty
            $s[0].TimeoutSeconds | Should -BeGreaterThan 3600
        }

        It 'shows the UDP flow and the closed connections to the lab server with the translated source 198.51.100.1' {
            $udp = @(Get-NatSession | Where-Object OriginalDestinationPort -EQ 5300)
            $udp | Should -HaveCount 1
            $udp[0].Protocol | Should -Be 'Udp'
            $udp[0].Replied | Should -BeTrue
            $udp[0].TranslatedSource | Should -Be '198.51.100.1'
            $web = @(Get-NatSession | Where-Object OriginalDestinationPort -EQ 8080)
            $web.Count | Should -BeGreaterOrEqual 1
            $web.TranslatedSource | Sort-Object -Unique | Should -Be '198.51.100.1'
            $web.State | Sort-Object -Unique | Should -Be 'TIME_WAIT'
        }

        It 'lists what conntrack -L lists' {
            $before = @(Get-ConntrackEntry)
            $all = @(Get-NatSession -IncludeUntranslated)
            $after = @(Get-ConntrackEntry)
            $ours = @($all | ForEach-Object { Get-SessionKey $_ })
            foreach ($e in $before | Where-Object { $after.Key -contains $_.Key }) { $ours | Should -Contain $e.Key }
            foreach ($k in $ours) { @($before.Key) + @($after.Key) | Should -Contain $k }
            # And the masqueraded ones are those whose replies go to the uplink address, less the host's own connections
            # from that address (a name lookup of the host's to the lab's resolver has its replies go there too).
            $masqueraded = @(Get-ConntrackEntry -Option @('--reply-dst', '198.51.100.1') | Where-Object Source -NE '198.51.100.1' | ForEach-Object Key | Sort-Object)
            @(Get-NatSession | Where-Object TranslatedSource -EQ '198.51.100.1' | ForEach-Object { Get-SessionKey $_ } | Sort-Object) | Should -Be $masqueraded
        }

        It 'leaves out the connections the NAT did not translate, unless -IncludeUntranslated' {
            # testnet to the bridge address: tracked by the host, not translated.
            Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ping', '-c', '1', '-W', '1', '10.0.0.1') | Out-Null
            Get-NatSession | Where-Object OriginalDestination -EQ '10.0.0.1' | Should -BeNullOrEmpty
            $local = @(Get-NatSession -IncludeUntranslated | Where-Object OriginalDestination -EQ '10.0.0.1')
            $local.Count | Should -BeGreaterOrEqual 1
            $local[0].TranslatedSource | Should -BeNullOrEmpty
        }

        It 'reads the table itself: no process is started (strace)' {
            $trace = "/run/netnsnat-strace-$PID"
            $r = Invoke-ChildPwsh -Script 'Get-NatSession | Out-Null; Remove-NatSession -Port 1 | Out-Null' -Prefix @('strace', '-f', '-qq', '-e', 'trace=execve', '-o', $trace)
            $r.ExitCode | Should -Be 0 -Because $r.Error
            $execs = @(Get-Content $trace | Where-Object { $_ -match 'execve\(' -and $_ -notmatch '= -1 ' })
            Remove-Item $trace
            # pwsh itself (dotnet may re-exec it once); nothing else.
            $execs | Where-Object { $_ -notmatch 'execve\("[^"]*(pwsh|dotnet)"' } | Should -BeNullOrEmpty
        }
    }

    Context 'filters' {
        It '-Namespace testnet: the connections of its address' {
            $s = @(Get-NatSession -Namespace testnet)
            $s.Count | Should -BeGreaterOrEqual 3
            $s.OriginalSource | Sort-Object -Unique | Should -Be '10.0.0.2'
            $s.OriginalDestinationPort | Should -Contain 9000
            $s.OriginalDestinationPort | Should -Contain 5300
        }

        It '-Namespace of a namespace without connections lists nothing; of the server''s namespace, the connections to it' {
            Get-NatSession -Namespace idle | Should -BeNullOrEmpty
            @(Get-NatSession -Namespace nnl-inet).Count | Should -Be @(Get-NatSession -Namespace testnet).Count
        }

        It '-Subnet 10.0.0.0/24, and the subnet of Get-BridgeSubnet by pipeline' {
            $bySubnet = @(Get-NatSession -Subnet 10.0.0.0/24 | ForEach-Object { Get-SessionKey $_ } | Sort-Object)
            $bySubnet.Count | Should -BeGreaterOrEqual 3
            $bySubnet | Should -Be @(Get-NatSession -Namespace testnet | ForEach-Object { Get-SessionKey $_ } | Sort-Object)
            @(Get-BridgeSubnet br0 | Get-NatSession | ForEach-Object { Get-SessionKey $_ } | Sort-Object) | Should -Be $bySubnet
            Get-NatSession -Subnet 10.9.0.0/24 | Should -BeNullOrEmpty
        }

        It '-Protocol Udp' {
            $s = @(Get-NatSession -Protocol Udp)
            $s.Count | Should -BeGreaterOrEqual 1
            $s.Protocol | Sort-Object -Unique | Should -Be 'Udp'
            (Get-NatSession -Protocol tcp).Protocol | Sort-Object -Unique | Should -Be 'Tcp'
        }

        It '-Port 8080' {
            Test-LabConnection | Out-Null
            $s = @(Get-NatSession -Port 8080)
            $s.Count | Should -BeGreaterOrEqual 1
            $s.OriginalDestinationPort | Sort-Object -Unique | Should -Be 8080
            Get-NatSession -Port 8080 -Protocol Udp | Should -BeNullOrEmpty
        }

        It 'a port mapping (destination NAT): TranslatedDestination, found by the port reached and by the namespace' {
            Invoke-LabCommand conntrack -ArgumentList @('-I', '-p', 'tcp', '-s', '203.0.113.20', '-d', '198.51.100.1', '--sport', '5555', '--dport', '8081',
                '--state', 'ESTABLISHED', '-t', '300', '--dst-nat', '10.0.0.2:80') | Out-Null
            $s = @(Get-NatSession -Port 80)
            $s | Should -HaveCount 1
            $s[0].OriginalDestination | Should -Be '198.51.100.1'
            $s[0].OriginalDestinationPort | Should -Be 8081
            $s[0].TranslatedDestination | Should -Be '10.0.0.2'
            $s[0].TranslatedDestinationPort | Should -Be 80
            $s[0].TranslatedSource | Should -BeNullOrEmpty
            (Get-NatSession -Namespace testnet -Port 8081).OriginalSource | Should -Be '203.0.113.20'
            Invoke-LabCommand conntrack -ArgumentList @('-D', '-p', 'tcp', '-s', '203.0.113.20', '--sport', '5555') | Out-Null
        }

        It 'IPv6 entries too' {
            Invoke-LabCommand conntrack -ArgumentList @('-I', '-p', 'udp', '-s', 'fd00::2', '-d', '2001:db8::10', '--sport', '4000', '--dport', '53',
                '-t', '300', '--src-nat', '2001:db8::1') | Out-Null
            $s = @(Get-NatSession -Subnet fd00::/64)
            $s | Should -HaveCount 1
            $s[0].AddressFamily | Should -Be 'IPv6'
            $s[0].TranslatedSource | Should -Be '2001:db8::1'
            $s[0].ToString() | Should -Be 'Udp [fd00::2]:4000 -> [2001:db8::10]:53'
            (Get-NatSession -Protocol Udp).AddressFamily | Should -Contain 'IPv6'
            Invoke-LabCommand conntrack -ArgumentList @('-D', '-f', 'ipv6', '-p', 'udp', '-s', 'fd00::2') | Out-Null
        }

        It 'Packets and Bytes with conntrack accounting on, null without' {
            (Get-NatSession -Port 9000).Packets | Should -BeNullOrEmpty
            Set-ConntrackAccounting 1
            try {
                Send-LabUdp
                $s = @(Get-NatSession -Port 5300 | Where-Object { $null -ne $_.Packets })
                $s | Should -HaveCount 1
                $s[0].Packets | Should -Be 2
                $s[0].Bytes | Should -BeGreaterThan 56
            }
            finally { Set-ConntrackAccounting 0 }
        }
    }

    Context 'views and completion' {
        It '-Protocol completes the protocols it takes, whatever the case typed; -Namespace the namespaces' {
            (TabExpansion2 -inputScript 'Get-NatSession -Protocol ' -cursorColumn 25).CompletionMatches.CompletionText | Should -Be @('Tcp', 'Udp', 'Icmp', 'IPv6-ICMP')
            (TabExpansion2 -inputScript 'Remove-NatSession -Protocol u' -cursorColumn 29).CompletionMatches.CompletionText | Should -Be @('Udp')
            (TabExpansion2 -inputScript 'Get-NatSession -Namespace tes' -cursorColumn 29).CompletionMatches.CompletionText | Should -Be @('testnet')
        }

        It 'a table by default, a list with every property, also after Export-Clixml / Import-Clixml' {
            $table = Get-NatSession -Port 9000 | Out-String -Width 200
            $table | Should -Match 'Protocol\s+State\s+Source\s+Destination\s+NatSource\s+NatDestination\s+Timeout'
            $table | Should -Match 'Tcp\s+ESTABLISHED\s+10\.0\.0\.2:\d+\s+203\.0\.113\.10:9000\s+198\.51\.100\.1:\d+'
            $file = "/run/netnsnat-sessions-$PID.xml"
            Get-NatSession -Port 9000 | Export-Clixml $file
            $back = Import-Clixml $file
            Remove-Item $file
            $back.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NatSession'
            ($back | Out-String -Width 200) | Should -Match '203\.0\.113\.10:9000'
            ($back | Format-List | Out-String) | Should -Match 'TranslatedSource\s+: 198\.51\.100\.1'
        }
    }

    Context 'bad input is an error that changes nothing' {
        It '<Case>: <ErrorId> (<Category>)' -ForEach @(
            @{ Case = 'subnet prefix 33'; Params = @{ Subnet = '10.0.0.0/33' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'subnet without prefix'; Params = @{ Subnet = '10.0.0.1' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'port 0'; Params = @{ Port = 0 }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'port 65536'; Params = @{ Port = 65536 }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'port http'; Params = @{ Port = 'http' }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'protocol sctp'; Params = @{ Protocol = 'sctp' }; ErrorId = 'InvalidProtocol'; Category = 'InvalidArgument' }
            @{ Case = 'namespace that does not exist'; Params = @{ Namespace = 'nosuch' }; ErrorId = 'NamespaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'namespace name with ;'; Params = @{ Namespace = 'a;b' }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
        ) {
            Assert-SessionCallFails { Get-NatSession @Params } -ErrorId $ErrorId -Category $Category
        }
    }
}

Describe 'Remove-NatSession' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        Start-LabServers
        Open-HeldConnection
    }
    AfterAll { Stop-LabProcesses; Remove-NetnsNatLab }
    BeforeEach { Send-LabUdp }

    It 'Remove-NatSession -Protocol Udp removes the UDP entry, and nothing else (conntrack -L)' {
        $before = @(Get-ConntrackEntry)
        @($before | Where-Object DestinationPort -EQ '5300') | Should -HaveCount 1
        $removed = @(Remove-NatSession -Protocol Udp -PassThru)
        $removed | Should -HaveCount 1
        $removed[0].OriginalDestinationPort | Should -Be 5300
        # The NAT's UDP flows are those from the bridge subnet; the host's own (a name lookup to the lab's resolver, not
        # translated) are not Remove-NatSession's, and stay with the rest.
        $natUdp = { $_.Number -eq 17 -and $_.Source -like '10.0.0.*' }
        $after = @(Get-ConntrackEntry)
        $after | Where-Object $natUdp | Should -BeNullOrEmpty
        @($after | Where-Object { -not ($_.Number -eq 17 -and $_.Source -like '10.0.0.*') } | ForEach-Object Key | Sort-Object) | Should -Be @($before | Where-Object { -not ($_.Number -eq 17 -and $_.Source -like '10.0.0.*') } | ForEach-Object Key | Sort-Object)
    }

    It '-WhatIf removes nothing and shows the conntrack -D command, which deletes that entry' {
        $before = Get-ConntrackKeys
        $r = Invoke-ChildPwsh -Script 'Remove-NatSession -Protocol Udp -WhatIf'
        $r.ExitCode | Should -Be 0 -Because $r.Error
        Get-ConntrackKeys | Should -Be $before
        $r.Output | Should -Match 'What if: Performing the operation "(conntrack -D -p udp -s 10\.0\.0\.2 -d 203\.0\.113\.10 --sport \d+ --dport 5300)"'
        $command = [regex]::Match($r.Output, '"conntrack (-D [^"]+)"').Groups[1].Value -split ' '
        Invoke-LabCommand conntrack -ArgumentList $command | Out-Null
        Get-ConntrackEntry | Where-Object DestinationPort -EQ '5300' | Should -BeNullOrEmpty
    }

    It 'Get-NatSession | Remove-NatSession removes the piped sessions' {
        Test-LabConnection | Out-Null
        $piped = @(Get-NatSession -Namespace testnet -Port 8080)
        $piped.Count | Should -BeGreaterOrEqual 1
        $removed = @($piped | Remove-NatSession -PassThru)
        @($removed | ForEach-Object { Get-SessionKey $_ } | Sort-Object) | Should -Be @($piped | ForEach-Object { Get-SessionKey $_ } | Sort-Object)
        Get-ConntrackEntry | Where-Object DestinationPort -EQ '8080' | Should -BeNullOrEmpty
        @(Get-ConntrackEntry | Where-Object DestinationPort -EQ '5300') | Should -HaveCount 1
    }

    It 'an entry already gone is not an error' {
        $s = @(Get-NatSession -Port 5300)
        $s | Should -HaveCount 1
        Invoke-LabCommand conntrack -ArgumentList @('-D', '-p', 'udp', '--dport', '5300') | Out-Null
        $out = $s | Remove-NatSession -PassThru -ErrorVariable failed
        $out | Should -BeNullOrEmpty
        $failed | Should -BeNullOrEmpty
        Remove-NatSession -Port 5300 -ErrorVariable failed2 | Should -BeNullOrEmpty
        $failed2 | Should -BeNullOrEmpty
    }

    It 'removes IPv6 entries by -Subnet' {
        Invoke-LabCommand conntrack -ArgumentList @('-I', '-p', 'tcp', '-s', 'fd00::2', '-d', '2001:db8::10', '--sport', '4000', '--dport', '443',
            '--state', 'ESTABLISHED', '-t', '300', '--src-nat', '2001:db8::1') | Out-Null
        (Remove-NatSession -Subnet fd00::/64 -PassThru).OriginalSource | Should -Be 'fd00::2'
        Get-ConntrackEntry -Option @('-f', 'ipv6') | Should -BeNullOrEmpty
    }

    It '-Namespace testnet removes its sessions, the open connection among them' {
        @(Get-ConntrackEntry | Where-Object DestinationPort -EQ '9000') | Should -HaveCount 1
        $removed = @(Remove-NatSession -Namespace testnet -PassThru)
        $removed.OriginalDestinationPort | Should -Contain 9000
        $removed.OriginalDestinationPort | Should -Contain 5300
        Get-ConntrackEntry | Where-Object Source -EQ '10.0.0.2' | Where-Object ReplyDestination -EQ '198.51.100.1' | Should -BeNullOrEmpty
    }

    Context 'never everything' {
        It 'a call without a filter is an error (<Case>) and changes nothing' -ForEach @(
            @{ Case = 'no parameter'; Params = @{} }
            @{ Case = '-IncludeUntranslated alone'; Params = @{ IncludeUntranslated = $true } }
            @{ Case = '-PassThru alone'; Params = @{ PassThru = $true } }
        ) {
            @(Get-ConntrackEntry).Count | Should -BeGreaterOrEqual 1
            Assert-SessionCallFails { Remove-NatSession @Params } -ErrorId 'FilterRequired' -Category 'InvalidArgument'
        }
    }

    Context 'bad input is an error that changes nothing' {
        It '<Case>: <ErrorId> (<Category>)' -ForEach @(
            @{ Case = 'subnet prefix 33'; Params = @{ Subnet = '10.0.0.0/33' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'subnet 300.1.1.0/24'; Params = @{ Subnet = '300.1.1.0/24' }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Case = 'port 0'; Params = @{ Port = 0 }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'port 65536'; Params = @{ Port = 65536 }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'port http'; Params = @{ Port = 'http' }; ErrorId = 'InvalidPort'; Category = 'InvalidArgument' }
            @{ Case = 'protocol sctp'; Params = @{ Protocol = 'sctp' }; ErrorId = 'InvalidProtocol'; Category = 'InvalidArgument' }
            @{ Case = 'protocol sctp with a good port'; Params = @{ Protocol = 'sctp'; Port = 5300 }; ErrorId = 'InvalidProtocol'; Category = 'InvalidArgument' }
            @{ Case = 'namespace that does not exist'; Params = @{ Namespace = 'nosuch' }; ErrorId = 'NamespaceNotFound'; Category = 'ObjectNotFound' }
            @{ Case = 'namespace name with a space'; Params = @{ Namespace = 'a b' }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
        ) {
            Assert-SessionCallFails { Remove-NatSession @Params } -ErrorId $ErrorId -Category $Category
        }
    }
}
