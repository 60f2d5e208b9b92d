# Issue 12: NAT as state NetnsNat owns. Each case of the issue fails on 0.1 and passes here; traffic is real.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    function Get-Forwarding { [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() }
    function Get-Rules([string] $Pattern) { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -match $Pattern }) }
    function Invoke-Quietly([scriptblock] $Action) { & $Action 3>$null 6>$null }
}

Describe 'Ownership: what NetnsNat enabled and what it added' {
    BeforeAll {
        $lab = New-NetnsNatLab -Client ''
        Add-LabClient -Name c1 -Bridge br0 -Address 10.0.0.11/24
        Add-LabClient -Name c2 -Bridge br0 -Address 10.0.0.12/24
    }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach {
        Reset-LabFirewall
        [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
        foreach ($ns in 'c1', 'c2') { Invoke-LabCommand ip -ArgumentList @('-n', $ns, 'route', 'del', 'default') -AllowFailure | Out-Null }
    }

    Context 'neighbours on a shared bridge' {
        It 'disabling one namespace leaves its neighbour''s NAT in force; the last one takes the rules away' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 | Out-Null
            Disable-NamespaceNat c1 br0
            Test-LabConnection -Namespace c2 | Should -Be $lab.UplinkAddress -Because 'c2 is still enabled: the shared rules stay'
            Test-LabConnection -Namespace c1 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Get-Rules 'netnsnat|MASQUERADE' | Should -HaveCount 4
            (Get-NamespaceNat).Namespace | Should -Be @('c2')
            Disable-NamespaceNat c2 br0
            Get-LabRuleset | Should -BeNullOrEmpty
        }

        It '-DisableForwarding leaves forwarding on, with a warning that says why, while another namespace needs it' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 | Out-Null
            Disable-NamespaceNat c1 br0 -DisableForwarding -WarningVariable w -WarningAction SilentlyContinue
            Get-Forwarding | Should -Be '1'
            "$w" | Should -Match 'stays on: 1 other namespace\(s\) NetnsNat enabled still need it \(c2\)'
            Disable-NamespaceNat c2 br0 -DisableForwarding
            Get-Forwarding | Should -Be '0'
        }

        It 'a namespace NetnsNat never enabled (a typo) is NotEnabled, and nothing changes' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'at-c9') | Out-Null
            try {
                $e = Assert-FailsWithoutChange { Disable-NamespaceNat at-c9 br0 } -ErrorId NotEnabled -Category ObjectNotFound
                $e.Exception.Message | Should -Match 'Get-NamespaceNat'
                Assert-FailsWithoutChange { Disable-NamespaceNat c9 br0 } -ErrorId NotEnabled -Category ObjectNotFound | Out-Null
            }
            finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'at-c9') | Out-Null }
            Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
        }

        It 'a namespace that was enabled and has since been deleted is cleaned up, with a warning' {
            Add-LabClient -Name gone1 -Bridge br0 -Address 10.0.0.21/24
            $before = Get-LabRuleset
            Enable-NamespaceNat gone1 br0 eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'gone1') | Out-Null
            (Get-NamespaceNat gone1).Status | Should -Be 'NamespaceGone'
            Disable-NamespaceNat gone1 br0 -WarningVariable w -WarningAction SilentlyContinue
            "$w" | Should -Match 'does not exist any more'
            Get-LabRuleset | Should -Be $before
            Get-NamespaceNat gone1 | Should -BeNullOrEmpty
        }
    }

    Context 'a bridge with two subnets' {
        BeforeAll {
            Invoke-LabCommand ip -ArgumentList @('addr', 'add', '10.1.0.1/24', 'dev', 'br0') | Out-Null
            Add-LabClient -Name d1 -Bridge br0 -Address 10.1.0.3/24
        }
        AfterAll {
            Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'd1') -AllowFailure | Out-Null
            Invoke-LabCommand ip -ArgumentList @('addr', 'del', '10.1.0.1/24', 'dev', 'br0') -AllowFailure | Out-Null
        }

        It 'a namespace gets the subnet its address is on, and Disable touches only that subnet' {
            $d = Enable-NamespaceNat d1 br0 eth0
            $d.Subnet | Should -Be '10.1.0.0/24'
            $d.Gateway | Should -Be '10.1.0.1'
            Test-LabConnection -Namespace d1 | Should -Be $lab.UplinkAddress
            (Enable-NamespaceNat c1 br0 eth0).Subnet | Should -Be '10.0.0.0/24'
            Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
            Disable-NamespaceNat d1 br0
            Get-Rules '10\.1\.0\.0/24' | Should -BeNullOrEmpty
            Get-Rules '10\.0\.0\.0/24' | Should -HaveCount 4
            Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
        }

        It '-Subnet chooses the subnet, and a subnet the bridge does not have is SubnetNotOnBridge' {
            (Enable-NamespaceNat d1 br0 eth0 -Subnet 10.1.0.0/24).Gateway | Should -Be '10.1.0.1'
            Assert-FailsWithoutChange { Enable-NamespaceNat d1 br0 eth0 -Subnet 10.2.0.0/24 } -ErrorId SubnetNotOnBridge -Category InvalidArgument | Out-Null
        }
    }

    Context 'rules the user wrote' {
        It 'the lesson''s MASQUERADE rule, typed before NetnsNat came, survives Enable and Disable' {
            Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
            $before = Get-LabRuleset
            $r = Enable-NamespaceNat c1 br0 eth0
            $r.Rule.ChangedRules | Should -Be 3 -Because 'the MASQUERADE rule was there'
            Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
            Disable-NamespaceNat c1 br0
            Get-LabRuleset | Should -Be $before
            Get-PostroutingRules | Should -Be @('-A POSTROUTING -s 10.0.0.0/24 -o eth0 -j MASQUERADE')
        }
    }

    Context 'namespaces by path' {
        BeforeAll {
            # A namespace that is not under /run/netns: a process's own, also bound at a Docker-like path.
            $holder = Start-Process -FilePath (Get-Command unshare).Source -ArgumentList @('--net', '--', 'sleep', '600') -PassThru
            $deadline = [DateTime]::UtcNow.AddSeconds(10)
            $nsPath = "/proc/$($holder.Id)/ns/net"
            while (((Get-Item $nsPath).LinkTarget -eq (Get-Item /proc/self/ns/net).LinkTarget) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
            Invoke-LabCommand ip -ArgumentList @('link', 'add', 'vpath', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', "$($holder.Id)") | Out-Null
            Invoke-LabCommand ip -ArgumentList @('link', 'set', 'vpath', 'master', 'br0', 'up') | Out-Null
            foreach ($a in @(@('addr', 'add', '10.0.0.31/24', 'dev', 'eth1'), @('link', 'set', 'eth1', 'up'), @('link', 'set', 'lo', 'up'))) {
                Invoke-LabCommand nsenter -ArgumentList (@("--net=$nsPath", 'ip') + $a) | Out-Null
            }
            New-Item -ItemType Directory /run/docker/netns -Force | Out-Null
            New-Item -ItemType File /run/docker/netns/abc123 -Force | Out-Null
            Invoke-LabCommand mount -ArgumentList @('--bind', $nsPath, '/run/docker/netns/abc123') | Out-Null
            function Test-PathConnection {
                $r = Invoke-LabCommand nsenter -ArgumentList @("--net=$nsPath", 'socat', '-T', '2', '-', "TCP:$($lab.ServerAddress):$($lab.ServerPort),connect-timeout=2") -AllowFailure -TimeoutSeconds 10
                if ($r.ExitCode -eq 0) { $r.Output.Trim() } else { $null }
            }
        }
        AfterAll {
            Invoke-LabCommand umount -ArgumentList @('/run/docker/netns/abc123') -AllowFailure | Out-Null
            if (-not $holder.HasExited) { $holder.Kill() }
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'vpath') -AllowFailure | Out-Null
        }

        It '-NamespacePath <Path>: enabled, reached through the NAT, listed, tested and disabled' -ForEach @(@{ Path = 'proc' }, @{ Path = 'docker' }) {
            $p = if ($Path -eq 'proc') { $nsPath } else { '/run/docker/netns/abc123' }
            $r = Enable-NamespaceNat -NamespacePath $p -Bridge br0 -Outbound eth0
            $r.Namespace | Should -Be $p
            $r.Gateway | Should -Be '10.0.0.1'
            Test-PathConnection | Should -Be $lab.UplinkAddress
            $b = Get-NamespaceNat -NamespacePath $p
            $b.Namespace | Should -BeNullOrEmpty
            $b.NamespacePath | Should -Be $p
            $b.InForce | Should -BeTrue
            $results = Test-NamespaceNat -NamespacePath $p -Target $lab.ServerAddress
            @($results | Where-Object Status -NE 'Pass').Check | Should -BeNullOrEmpty
            Get-NamespaceNat -NamespacePath $p | Disable-NamespaceNat
            Test-PathConnection | Should -BeNullOrEmpty
            Get-LabRuleset | Should -BeNullOrEmpty
        }

        It 'a path given to -Namespace is an error that points to -NamespacePath, and -Dns needs a name' {
            $e = Assert-FailsWithoutChange { Enable-NamespaceNat $nsPath br0 eth0 } -ErrorId InvalidNamespaceName -Category InvalidArgument
            $e.Exception.Message | Should -Match '-NamespacePath'
            Assert-FailsWithoutChange { Enable-NamespaceNat -NamespacePath $nsPath -Bridge br0 -Dns 203.0.113.53 } -ErrorId DnsNeedsName -Category InvalidArgument | Out-Null
            Assert-FailsWithoutChange { Enable-NamespaceNat -NamespacePath relative/ns -Bridge br0 } -ErrorId InvalidNamespacePath -Category InvalidArgument | Out-Null
            Assert-FailsWithoutChange { Enable-NamespaceNat -NamespacePath /run/nosuch/ns -Bridge br0 } -ErrorId NamespaceNotFound -Category ObjectNotFound | Out-Null
        }
    }

    Context 'Get- and Restore-NamespaceNat' {
        It 'after a firewall reload, Get shows RulesMissing and Restore brings the NAT back; a second Restore changes nothing' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -Dns 203.0.113.53 | Out-Null
            $before = Get-LabRuleset
            Invoke-LabCommand nft -ArgumentList @('flush', 'ruleset') | Out-Null
            Test-LabConnection -Namespace c1 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            (Get-NamespaceNat).Status | Should -Be @('RulesMissing', 'RulesMissing')
            $r = Restore-NamespaceNat
            $r.Namespace | Should -Be @('c1', 'c2')
            $r[0].Rule.ChangedRules | Should -Be 4
            Get-LabRuleset | Should -Be $before
            Test-LabConnection -Namespace c2 | Should -Be $lab.UplinkAddress
            (Get-NamespaceNat).InForce | Should -Be @($true, $true)
            (Restore-NamespaceNat).Rule.ChangedRules | Should -Be @(0, 0)
        }

        It 'what Disable removed stays removed; a lost route comes back' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 | Out-Null
            Disable-NamespaceNat c2 br0
            Invoke-LabCommand ip -ArgumentList @('-n', 'c1', 'route', 'del', 'default') | Out-Null
            (Get-NamespaceNat c1).Status | Should -Be 'RouteMissing'
            (Restore-NamespaceNat).Namespace | Should -Be @('c1')
            Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
            Test-LabConnection -Namespace c2 -TimeoutSeconds 1 | Should -BeNullOrEmpty
        }

        It 'a binding whose namespace is gone is reported and skipped, and stays recorded' {
            Add-LabClient -Name gone2 -Bridge br0 -Address 10.0.0.22/24
            'c1', 'gone2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'gone2') | Out-Null
            $r = Restore-NamespaceNat -WarningVariable w -WarningAction SilentlyContinue
            $r.Namespace | Should -Be @('c1')
            "$w" | Should -Match "Skipping 'gone2'"
            (Get-NamespaceNat gone2).Status | Should -Be 'NamespaceGone'
            Invoke-Quietly { Disable-NamespaceNat gone2 br0 }
        }

        It 'a binding whose uplink is gone is UplinkGone, Test-NamespaceNat fails Uplink naming it, and Restore skips it with a warning that names the namespace' {
            # A second uplink of the host, taken away after the namespace was enabled on it (a VPN or a USB modem that went).
            Invoke-LabCommand ip -ArgumentList @('link', 'add', 'eth9', 'type', 'veth', 'peer', 'name', 'eth9p') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('addr', 'add', '192.0.2.1/24', 'dev', 'eth9') | Out-Null
            foreach ($link in 'eth9', 'eth9p') { Invoke-LabCommand ip -ArgumentList @('link', 'set', $link, 'up') | Out-Null }
            try {
                Enable-NamespaceNat c1 br0 eth9 -AddressFamily IPv4 | Out-Null
                (Get-NamespaceNat c1).Status | Should -Be 'InForce'
                Invoke-LabCommand ip -ArgumentList @('link', 'del', 'eth9') | Out-Null
                $b = Get-NamespaceNat c1
                $b.Status | Should -Be 'UplinkGone'
                $b.Detail | Should -Match 'eth9'
                $uplink = Test-NamespaceNat c1 -AddressFamily IPv4 | Where-Object Check -eq 'Uplink'
                $uplink.Status | Should -Be 'Fail' -Because 'the rule names an uplink that is gone: not "cannot be checked"'
                $uplink.Detail | Should -Match "no interface 'eth9'"
                $r = Restore-NamespaceNat -WarningVariable w -WarningAction SilentlyContinue -ErrorVariable e -ErrorAction SilentlyContinue
                $r | Should -BeNullOrEmpty
                $e | Should -BeNullOrEmpty -Because 'a binding that cannot be laid again is skipped with a warning, as one whose bridge is gone'
                "$w" | Should -Match "Skipping 'c1' on br0: its uplink eth9 no longer exists"
                Disable-NamespaceNat c1 br0 | Out-Null
                Get-NamespaceNat c1 | Should -BeNullOrEmpty
            }
            finally { Invoke-LabCommand ip -ArgumentList @('link', 'del', 'eth9') -AllowFailure | Out-Null }
        }

        It 'Get-NamespaceNat | Export-Clixml, then Import-Clixml | Enable-NamespaceNat rebuilds the same setup' {
            'c1', 'c2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -Dns 203.0.113.53 | Out-Null
            $before = Get-LabState
            Get-NamespaceNat | Export-Clixml /run/netnsnat-bindings.xml
            Get-NamespaceNat | Disable-NamespaceNat
            Get-NamespaceNat | Should -BeNullOrEmpty
            Import-Clixml /run/netnsnat-bindings.xml | Enable-NamespaceNat | Out-Null
            Get-LabState | Should -Be $before
            (Get-NamespaceNat).Dns | Should -Be @('203.0.113.53', '203.0.113.53')
            Remove-Item /run/netnsnat-bindings.xml
        }

        It 'views apply to the bindings, also deserialized' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            (Get-NamespaceNat | Format-Table | Out-String) | Should -Match 'c1\s+br0\s+10\.0\.0\.0/24\s+eth0\s+10\.0\.0\.1\s+iptables-nft\s+InForce'
            Get-NamespaceNat | Export-Clixml /run/netnsnat-view.xml
            (Import-Clixml /run/netnsnat-view.xml | Format-List | Out-String) | Should -Match 'Status\s+: InForce'
            Remove-Item /run/netnsnat-view.xml
        }
    }

    Context 'the state store' {
        It 'a corrupt store is StateStoreUnreadable (ReadError) naming the file, nothing changed, the file kept' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            # Changes after the first write keep a .bak: the file the journal follows (or the last file of a store emptied).
            Disable-NamespaceNat c1 br0 | Out-Null
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            $store = Get-ChildItem /var/lib/netnsnat -Filter 'netns-*.json' | Select-Object -First 1
            Set-Content $store.FullName '{ "version": 1, "bindings": [ { "namespace": '
            $e = Assert-FailsWithoutChange { Enable-NamespaceNat c2 br0 eth0 } -ErrorId StateStoreUnreadable -Category ReadError
            $e.Exception.Message | Should -Match ([regex]::Escape($store.FullName))
            Get-Content $store.FullName -Raw | Should -Match '"namespace": '
            "$($store.FullName).bak" | Should -Exist
            Assert-FailsWithoutChange { Get-NamespaceNat } -ErrorId StateStoreUnreadable -Category ReadError | Out-Null
            Move-Item "$($store.FullName).bak" $store.FullName -Force
            (Get-NamespaceNat).Namespace | Should -Be @('c1')
        }

        It 'a change is one line appended to its journal, which a fresh process reads; a line cut short (a crash) is a save that did not happen' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            $store = (Get-ChildItem /var/lib/netnsnat -Filter 'netns-*.json' | Select-Object -First 1).FullName
            $journal = [System.IO.Path]::ChangeExtension($store, '.journal')
            $journal | Should -Not -Exist -Because 'the first save writes the file whole'
            $file = Get-Content $store -Raw
            Enable-NamespaceNat c2 br0 eth0 | Out-Null
            Get-Content $store -Raw | Should -Be $file -Because 'the change went to the journal, not into the file'
            @(Get-Content $journal) | Should -HaveCount 1
            (Get-Content $journal | ConvertFrom-Json).add.bindings.namespace | Should -Be 'c2'
            $r = Invoke-ChildPwsh -Script '(Get-NamespaceNat).Namespace -join ","'
            $r.Output.Trim() | Should -Be 'c1,c2' -Because $r.Error
            Disable-NamespaceNat c1 br0 | Out-Null
            @(Get-Content $journal) | Should -HaveCount 2
            (Get-Content $journal | Select-Object -Last 1 | ConvertFrom-Json).remove.bindings.namespace | Should -Be 'c1'
            # A crash in the middle of a save: its line cut short. The store is what the last whole line left.
            [System.IO.File]::AppendAllText($journal, '{"generation":"')
            $r = Invoke-ChildPwsh -Script '(Get-NamespaceNat).Namespace -join ","'
            $r.Output.Trim() | Should -Be 'c2' -Because $r.Error
            Test-LabConnection -Namespace c2 | Should -Be $lab.UplinkAddress
            # The next save writes the file whole, with no journal to append to a broken line.
            $r = Invoke-ChildPwsh -Script 'Enable-NamespaceNat c1 br0 eth0 | Out-Null; (Get-NamespaceNat).Namespace -join ","'
            $r.Output.Trim() | Should -Be 'c2,c1' -Because $r.Error
            $journal | Should -Not -Exist
            (Get-Content $store -Raw | ConvertFrom-Json).bindings.namespace | Should -Be @('c2', 'c1')
        }

        It 'a journal line that is not JSON is StateStoreUnreadable naming the journal; the .bak and the journal put the store back; another file''s generation takes none of it' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            Disable-NamespaceNat c1 br0 | Out-Null
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            $store = (Get-ChildItem /var/lib/netnsnat -Filter 'netns-*.json' | Select-Object -First 1).FullName
            $journal = [System.IO.Path]::ChangeExtension($store, '.journal')
            Enable-NamespaceNat c2 br0 eth0 | Out-Null
            $lines = Get-Content $journal
            Set-Content $journal "not json`n"
            $e = Assert-FailsWithoutChange { Get-NamespaceNat } -ErrorId StateStoreUnreadable -Category ReadError
            $e.Exception.Message | Should -Match ([regex]::Escape($journal))
            Set-Content $journal $lines
            (Get-NamespaceNat).Namespace | Should -Be @('c1', 'c2')
            # The .bak is the file the journal follows: put back, it comes up to date with the journal.
            Copy-Item "$store.bak" $store -Force
            (Get-NamespaceNat).Namespace | Should -Be @('c1', 'c2')
            # A file of another generation (an older copy put back) takes none of this journal's lines.
            $old = Get-Content $store -Raw | ConvertFrom-Json
            $old.generation = 'another'
            $old | ConvertTo-Json -Depth 6 | Set-Content $store
            (Get-NamespaceNat).Namespace | Should -Be @('c1')
        }

        It 'folds the journal into the file when it has grown as large, and keeps as .bak the content before that change (the file with its journal)' {
            [NetnsNat.InternalHooks]::StoreJournalFloor = 0
            try {
                Enable-NamespaceNat c1 br0 eth0 | Out-Null
                $store = (Get-ChildItem /var/lib/netnsnat -Filter 'netns-*.json' | Select-Object -First 1).FullName
                $journal = [System.IO.Path]::ChangeExtension($store, '.journal')
                $folded = $false
                foreach ($i in 1..8) {
                    $before = @((Get-NamespaceNat).Namespace)
                    if ($i % 2) { Enable-NamespaceNat c2 br0 eth0 | Out-Null } else { Disable-NamespaceNat c2 br0 | Out-Null }
                    if ($i -gt 1 -and -not (Test-Path $journal)) { $folded = $true; break }
                }
                $folded | Should -BeTrue -Because 'a journal as large as the file is folded into it'
                @((Get-Content "$store.bak" -Raw | ConvertFrom-Json).bindings.namespace | Select-Object -Unique) | Should -Be $before
                @((Get-Content $store -Raw | ConvertFrom-Json).bindings.namespace | Select-Object -Unique) | Should -Be @((Get-NamespaceNat).Namespace | Select-Object -Unique)
            }
            finally { [NetnsNat.InternalHooks]::StoreJournalFloor = $null }
        }

        It 'is kept per network namespace: another host on the same filesystem sees none of these bindings' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            $r = Invoke-ChildPwsh -Script '@(Get-NamespaceNat).Count' -Prefix @('unshare', '--net', '--')
            $r.Output.Trim() | Should -Be '0' -Because $r.Error
            (Get-NamespaceNat).Namespace | Should -Be @('c1')
        }
    }

    Context 're-running provisioning after something changed (issue 16)' {
        BeforeAll {
            Invoke-LabCommand ip -ArgumentList @('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'wan1', 'netns', $lab.Internet) | Out-Null
            Invoke-LabCommand ip -ArgumentList @('addr', 'add', '100.64.0.1/24', 'dev', 'eth1') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('link', 'set', 'eth1', 'up') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'addr', 'add', '100.64.0.254/24', 'dev', 'wan1') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'link', 'set', 'wan1', 'up') | Out-Null
        }
        AfterAll {
            Invoke-LabCommand ip -ArgumentList @('route', 'replace', 'default', 'via', '198.51.100.254', 'dev', 'eth0') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'eth1') -AllowFailure | Out-Null
        }
        AfterEach { Invoke-LabCommand ip -ArgumentList @('route', 'replace', 'default', 'via', '198.51.100.254', 'dev', 'eth0') | Out-Null }

        It 'the default route moved to a second uplink: Enable again leaves no rule of the old uplink, and says so' {
            Enable-NamespaceNat c1 br0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('route', 'replace', 'default', 'via', '100.64.0.254', 'dev', 'eth1') | Out-Null
            (Test-NamespaceNat c1 | Where-Object Check -EQ StaleRules).Status | Should -Be 'Pass'
            $r = Enable-NamespaceNat c1 br0 -WarningVariable w -WarningAction SilentlyContinue
            $r.Outbound | Should -Be 'eth1'
            "$w" | Should -Match 'Removed the 4 rules NetnsNat had added .* via eth0'
            Get-ForwardRules | Should -HaveCount 3
            Get-Rules 'eth0' | Should -BeNullOrEmpty
            Test-LabConnection -Namespace c1 | Should -Be '100.64.0.1'
        }

        It 'the bridge re-addressed: Test-NamespaceNat warns about the old subnet''s rules, Enable again removes them' {
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('addr', 'add', '10.5.0.1/24', 'dev', 'br0') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('addr', 'del', '10.0.0.1/24', 'dev', 'br0') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'c1', 'addr', 'add', '10.5.0.11/24', 'dev', 'veth1') | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'c1', 'addr', 'del', '10.0.0.11/24', 'dev', 'veth1') | Out-Null
            try {
                $stale = Test-NamespaceNat c1 | Where-Object Check -EQ StaleRules
                $stale.Status | Should -Be 'Warn'
                $stale.Detail | Should -Match '10\.0\.0\.0/24 via eth0 \(the bridge no longer has this subnet\)'
                Enable-NamespaceNat c1 br0 eth0 -WarningAction SilentlyContinue | Out-Null
                Get-Rules '10\.0\.0\.0/24' | Should -BeNullOrEmpty
                Get-Rules '10\.5\.0\.0/24' | Should -HaveCount 4
                Test-LabConnection -Namespace c1 | Should -Be $lab.UplinkAddress
                (Test-NamespaceNat c1 | Where-Object Check -EQ StaleRules).Status | Should -Be 'Pass'
            }
            finally {
                Invoke-Quietly { Disable-NamespaceNat c1 br0 -ErrorAction SilentlyContinue }
                Invoke-LabCommand ip -ArgumentList @('addr', 'add', '10.0.0.1/24', 'dev', 'br0') | Out-Null
                Invoke-LabCommand ip -ArgumentList @('addr', 'del', '10.5.0.1/24', 'dev', 'br0') | Out-Null
                Invoke-LabCommand ip -ArgumentList @('-n', 'c1', 'addr', 'add', '10.0.0.11/24', 'dev', 'veth1') | Out-Null
                Invoke-LabCommand ip -ArgumentList @('-n', 'c1', 'addr', 'del', '10.5.0.11/24', 'dev', 'veth1') | Out-Null
            }
        }
    }

    Context 'tables NetnsNat created (issue 16)' {
        It 'Disable after an Enable on an empty ruleset leaves no empty nat and filter tables behind' {
            Invoke-LabCommand nft -ArgumentList @('flush', 'ruleset') | Out-Null
            Remove-Item /var/lib/netnsnat -Recurse -Force -ErrorAction Ignore
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            (Invoke-LabCommand nft -ArgumentList @('list', 'tables')).Output | Should -Match 'table ip nat'
            Disable-NamespaceNat c1 br0
            (Invoke-LabCommand nft -ArgumentList @('list', 'tables')).Output.Trim() | Should -BeNullOrEmpty
        }

        It 'a table another rule still uses is left alone' {
            Invoke-LabCommand nft -ArgumentList @('flush', 'ruleset') | Out-Null
            Remove-Item /var/lib/netnsnat -Recurse -Force -ErrorAction Ignore
            Enable-NamespaceNat c1 br0 eth0 | Out-Null
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'x9', '-j', 'ACCEPT') | Out-Null
            Disable-NamespaceNat c1 br0
            (Invoke-LabCommand nft -ArgumentList @('list', 'tables')).Output | Should -Match 'table ip filter'
            (Invoke-LabCommand nft -ArgumentList @('list', 'tables')).Output | Should -Not -Match 'table ip nat'
        }
    }
}

Describe 'Test-NamespaceNat finds the causes it missed (issue 12)' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
        function Restore-Good {
            Reset-LabFirewall
            foreach ($a in @(@('link', 'set', 'vtestnet', 'master', 'br0'), @('link', 'set', 'vtestnet', 'up'))) { Invoke-LabCommand ip -ArgumentList $a | Out-Null }
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
        }
        function Get-NotPassing([object[]] $results) { @($results | Where-Object Status -NE 'Pass' | ForEach-Object { "$($_.Check):$($_.Status)" }) }
    }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Restore-Good }

    It 'the host end of the veth off the bridge (nomaster): HostLink fails, and its fix works' {
        Invoke-LabCommand ip -ArgumentList @('link', 'set', 'vtestnet', 'nomaster') | Out-Null
        $r = Test-NamespaceNat testnet -Target $lab.ServerAddress
        Get-NotPassing $r | Should -Be @('HostLink:Fail', 'Probe:Fail')
        $fix = ($r | Where-Object Check -EQ HostLink).Fix
        $fix | Should -Be 'ip link set vtestnet master br0'
        Invoke-LabCommand ip -ArgumentList ($fix -split ' ' | Select-Object -Skip 1) | Out-Null
        Test-NamespaceNat testnet -Target $lab.ServerAddress -Quiet | Should -BeTrue
    }

    It 'the host end of the veth down: HostLink fails' {
        Invoke-LabCommand ip -ArgumentList @('link', 'set', 'vtestnet', 'down') | Out-Null
        Get-NotPassing (Test-NamespaceNat testnet) | Should -Be @('HostLink:Fail')
    }

    It 'the other iptables backend''s FORWARD policy DROP: Forward fails and BackendMix warns' {
        Invoke-LabCommand iptables-legacy -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
        $r = Test-NamespaceNat testnet -Target $lab.ServerAddress
        Test-LabConnection -Namespace testnet -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'the kernel applies the legacy policy too'
        Get-NotPassing $r | Should -Be @('Forward:Fail', 'BackendMix:Warn', 'Probe:Fail')
        ($r | Where-Object Check -EQ Forward).Detail | Should -Match 'legacy'
        ($r | Where-Object Check -EQ Forward).Fix | Should -Match 'iptables-legacy -P FORWARD ACCEPT'
    }

    It 'a REJECT in the other backend''s FORWARD: Forward fails' {
        Invoke-LabCommand iptables-legacy -ArgumentList @('-A', 'FORWARD', '-i', 'br0', '-j', 'REJECT') | Out-Null
        Get-NotPassing (Test-NamespaceNat testnet) | Should -Be @('Forward:Fail', 'BackendMix:Warn')
    }

    It 'a DROP above NetnsNat''s rules: the Fix it names (Add-NatMasquerade) moves the rules above it and the traffic flows' {
        Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-i', 'br0', '-j', 'DROP') | Out-Null
        $r = Test-NamespaceNat testnet
        Get-NotPassing $r | Should -Be @('Forward:Fail')
        $fix = ($r | Where-Object Check -EQ Forward).Fix
        $changed = Invoke-Expression $fix
        $changed.ChangedRules | Should -Be 3
        Test-NamespaceNat testnet -Target $lab.ServerAddress -Quiet | Should -BeTrue
        (Get-ForwardRules)[3] | Should -Be '-A FORWARD -i br0 -j DROP' -Because 'the user''s DROP stays, below'
    }
}

Describe 'The uplink a working setup uses (issue 12)' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
        # A second uplink, to the same "internet": the server is reached through it by a route of its own.
        Invoke-LabCommand ip -ArgumentList @('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'wan1', 'netns', $lab.Internet) | Out-Null
        Invoke-LabCommand ip -ArgumentList @('addr', 'add', '100.64.0.1/24', 'dev', 'eth1') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('link', 'set', 'eth1', 'up') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'addr', 'add', '100.64.0.254/24', 'dev', 'wan1') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'link', 'set', 'wan1', 'up') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('route', 'add', "$($lab.ServerAddress)/32", 'via', '100.64.0.254', 'dev', 'eth1') | Out-Null
        Invoke-LabCommand ip -ArgumentList @('route', 'add', '203.0.113.53/32', 'via', '100.64.0.254', 'dev', 'eth1') | Out-Null
        Enable-NamespaceNat testnet br0 eth1 -Dns 203.0.113.53 | Out-Null
    }
    AfterAll { Remove-NetnsNatLab }

    It 'NAT out of eth1 while the default route is eth0: with -Target, every check passes (no Fix that would break it)' {
        Test-LabConnection -Namespace testnet | Should -Be '100.64.0.1'
        $r = Test-NamespaceNat testnet -Target $lab.ServerAddress
        @($r | Where-Object Status -NE 'Pass' | ForEach-Object { "$($_.Check):$($_.Status)" }) | Should -BeNullOrEmpty
        ($r | Where-Object Check -EQ Uplink).Detail | Should -Match 'leaves by eth1'
    }

    It 'without -Target, the difference from the default route is a warning, not a failure' {
        $u = Test-NamespaceNat testnet | Where-Object Check -EQ Uplink
        $u.Status | Should -Be 'Warn'
        $u.Fix | Should -Match '-Target'
    }
}

Describe 'What NetnsNat shows (issue 12)' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    It '-WhatIf prints commands that, run as printed, give the chain NetnsNat writes' {
        Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'x1', '-j', 'ACCEPT') | Out-Null
        Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-j', 'REJECT') | Out-Null
        $r = Invoke-ChildPwsh -Script 'Enable-NamespaceNat testnet br0 eth0 -WhatIf'
        $commands = @($r.Output -split "`n" | Where-Object { $_ -match 'What if: Performing the operation "(iptables [^"]+)"' } | ForEach-Object { $Matches[1] })
        $commands | Should -HaveCount 4
        $commands[1] | Should -Match '^iptables -I FORWARD 1 '
        foreach ($c in $commands) { Invoke-LabCommand iptables -ArgumentList (@($c -split ' ') | Select-Object -Skip 1) | Out-Null }
        $pasted = Get-LabRuleset
        Reset-LabFirewall
        Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'x1', '-j', 'ACCEPT') | Out-Null
        Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-j', 'REJECT') | Out-Null
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        Get-LabRuleset | Should -Be $pasted
    }

    It 'Get-NatMasquerade shows Docker''s negated uplink and a rule with ports as they are, and Remove says it cannot remove them' {
        Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '172.17.0.0/16', '!', '-o', 'docker0', '-j', 'MASQUERADE') | Out-Null
        Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '1024-65535') | Out-Null
        $before = Get-LabRuleset
        $docker = Get-NatMasquerade -Subnet 172.17.0.0/16
        $docker.Outbound | Should -Be '!docker0'
        $docker.Removable | Should -BeFalse
        $ports = Get-NatMasquerade | Where-Object Subnet -EQ '10.0.0.0/24'
        $ports.Removable | Should -BeFalse
        $ports.Note | Should -Match '-p tcp'
        $ports.Note | Should -Match 'iptables -t nat -D POSTROUTING -s 10.0.0.0/24 -o eth0 -p tcp -j MASQUERADE --to-ports 1024-65535'
        Get-NatMasquerade | Remove-NatMasquerade -ErrorVariable err -ErrorAction SilentlyContinue
        @($err).Count | Should -Be 2
        $err[0].FullyQualifiedErrorId | Should -BeLike 'RuleNotRemovable,*'
        Get-LabRuleset | Should -Be $before
    }

    It 'Format-List shows the nested objects readably, and -Verbose counts what the object counts' {
        $list = Enable-NamespaceNat testnet br0 eth0 | Format-List | Out-String
        $list | Should -Match 'ForwardingState\s+: net\.ipv4\.ip_forward = 1'
        $list | Should -Match 'Route\s+: default via 10\.0\.0\.1 dev veth1'
        Invoke-LabCommand iptables -ArgumentList @('-D', 'FORWARD', '-d', '10.0.0.0/24', '-i', 'eth0', '-o', 'br0', '-m', 'comment', '--comment', 'netnsnat', '-j', 'DROP') | Out-Null
        $out = Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 -Verbose 4>&1
        $verbose = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
        $rule = $out | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
        $rule.ChangedRules | Should -Be 3
        $verbose -match '^3 rules to add for 10\.0\.0\.0/24 via eth0, after deleting 2' | Should -HaveCount 1
    }

    It 'tab completion offers only names the cmdlets take' {
        Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'ns:1') | Out-Null
        try {
            $r = TabExpansion2 -inputScript 'Enable-NamespaceNat -Namespace ' -cursorColumn 31
            $r.CompletionMatches.CompletionText | Should -Contain 'testnet'
            $r.CompletionMatches.CompletionText | Should -Not -Contain 'ns:1'
        }
        finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'ns:1') | Out-Null }
    }

    It 'Get-BridgeSubnet takes wildcards, and its errors name -Name' {
        Add-LabBridge -Name brw1 -Address 10.61.0.1/24
        (Get-BridgeSubnet 'brw*').Subnet | Should -Be '10.61.0.0/24'
        Get-BridgeSubnet 'nomatch*' | Should -BeNullOrEmpty
        $e = Assert-FailsWithoutChange { Get-BridgeSubnet -Name brnone } -ErrorId InterfaceNotFound -Category ObjectNotFound
        $e.Exception.Message | Should -Match '^-Name:'
    }

    It 'the Status column of Test-NamespaceNat is coloured (and plain where output is plain text)' {
        Enable-NamespaceNat testnet br0 eth0 | Out-Null
        $saved = $PSStyle.OutputRendering
        try {
            $PSStyle.OutputRendering = 'Ansi'
            (Test-NamespaceNat testnet 6>$null | Format-Table | Out-String) | Should -Match ([regex]::Escape("$($PSStyle.Foreground.Green)Pass"))
            $PSStyle.OutputRendering = 'PlainText'
            (Test-NamespaceNat testnet 6>$null | Format-Table | Out-String) | Should -Not -Match "`e\["
        }
        finally { $PSStyle.OutputRendering = $saved }
    }
}
