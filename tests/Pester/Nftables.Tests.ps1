# Issue 14: the nftables backend, NetnsNat's own table "inet netnsnat", with real packets in the lab, beside the hosts
# users have (Docker's FORWARD policy DROP, another program's nftables table, a table named netnsnat that is not ours).
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    function ipc { Invoke-LabCommand -FilePath ip -ArgumentList $args | Out-Null }
    function nftc { (Invoke-LabCommand -FilePath nft -ArgumentList $args).Output }
    function Get-OwnTable { (Invoke-LabCommand nft -ArgumentList @('-s', 'list', 'table', 'inet', 'netnsnat') -AllowFailure).Output }
    function Get-Elements([string] $Set) {
        $r = Invoke-LabCommand nft -ArgumentList @('-j', 'list', 'set', 'inet', 'netnsnat', $Set) -AllowFailure
        if ($r.ExitCode -ne 0) { return @() }
        $elem = (($r.Output | ConvertFrom-Json).nftables | Where-Object set).set.elem
        @($elem | ForEach-Object { ($_.concat | ForEach-Object { if ($_.prefix) { "$($_.prefix.addr)/$($_.prefix.len)" } else { "$_" } }) -join ' . ' })
    }
    # What iptables shows of NetnsNat's: nothing, with the nftables backend.
    function Get-IptablesOwn { @(((Invoke-LabCommand iptables-save).Output + (Invoke-LabCommand ip6tables-save).Output) -split "`n" | Where-Object { $_ -match 'netnsnat|MASQUERADE' }) }
}

Describe 'The nftables backend on a dual-stack bridge' {
    BeforeAll { $lab = New-NetnsNatLab -DualStack }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    It 'gets both families out through NAT, in a table of its own, with nothing in iptables' {
        $ruleset = nftc list ruleset
        $r = Enable-NamespaceNat testnet br0 eth0 -Backend Nftables
        $r.Families.Rule.Backend | Should -Be @('nftables', 'nftables')
        Test-LabConnection | Should -Be $lab.UplinkAddress
        Test-LabConnection -Address $lab.ServerAddress6 | Should -Be $lab.UplinkAddress6
        # The user's verification command: the subnet and the uplink (and the bridge) as elements of the sets.
        Get-Elements masquerade4 | Should -Be @('10.0.0.0/24 . eth0')
        Get-Elements inbound4 | Should -Be @('10.0.0.0/24 . eth0 . br0')
        Get-Elements masquerade6 | Should -Be @('fd00:0:0:1::/64 . eth0')
        Get-Elements inbound6 | Should -Be @('fd00:0:0:1::/64 . eth0 . br0')
        Get-IptablesOwn | Should -BeNullOrEmpty
        (Get-NamespaceNat testnet).Backend | Should -Be @('nftables', 'nftables')
        (Get-NamespaceNat testnet).Status | Should -Be @('InForce', 'InForce')
        @(Get-NatMasquerade -Backend Nftables).Count | Should -Be 2

        # Again: nothing changes.
        $state = Get-LabState
        $again = Enable-NamespaceNat testnet br0 eth0 -Backend Nftables
        $again.Families.Rule.ChangedRules | Should -Be @(0, 0)
        Get-LabState | Should -Be $state

        # Disable: the table goes with its last elements, and the ruleset is what it was before.
        Disable-NamespaceNat testnet br0 | Out-Null
        nftc list ruleset | Should -Be $ruleset
        Test-LabConnection -TimeoutSeconds 1 | Should -BeNullOrEmpty
    }

    It 'drops a new connection from outside to the namespace in both families, and lets replies in' {
        $listener6 = Start-LabListener -Namespace testnet -Address fd00:0:0:1::2 -Port 9090
        $listener4 = Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 9090
        try {
            Add-InboundRoutes
            # Without the table's drop, forwarding on and a default route open the namespace: what makes this test able to fail.
            Enable-IpForwarding | Out-Null
            Set-NamespaceDefaultRoute testnet 10.0.0.1 | Out-Null
            Test-LabConnection -Namespace nnl-inet -Address 10.0.0.2 -Port 9090 | Should -Be '198.51.100.254'
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
            Test-LabConnection -Namespace nnl-inet -Address 10.0.0.2 -Port 9090 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Test-LabConnection -Namespace nnl-inet -Address fd00:0:0:1::2 -Port 9090 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Test-LabConnection | Should -Be $lab.UplinkAddress
        }
        finally {
            Stop-LabListener $listener6; Stop-LabListener $listener4
            ipc -n nnl-inet route del 10.0.0.0/24; ipc -n nnl-inet -6 route del fd00:0:0:1::/64
            Disable-NamespaceNat testnet br0 -DisableForwarding -ErrorAction Ignore | Out-Null
        }
    }

    It 'makes, over netlink, the table that nft -f makes from its definition' {
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
        try {
            $ours = Get-OwnTable
            # The definition as nft commands, given to nft -f in a namespace of its own: the same table, element for element.
            $file = "/run/netnsnat-definition-$PID.nft"
            [System.IO.File]::WriteAllText($file, [NetnsNat.InternalHooks]::NftablesDefinition() +
                "add element inet netnsnat masquerade4 { 10.0.0.0/24 . `"eth0`" }`nadd element inet netnsnat inbound4 { 10.0.0.0/24 . `"eth0`" . `"br0`" }`n" +
                "add element inet netnsnat masquerade6 { fd00:0:0:1::/64 . `"eth0`" }`nadd element inet netnsnat inbound6 { fd00:0:0:1::/64 . `"eth0`" . `"br0`" }`n")
            ipc netns add nnl-nftdef
            try {
                Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'nnl-nftdef', 'nft', '-f', $file) | Out-Null
                $theirs = (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'nnl-nftdef', 'nft', '-s', 'list', 'table', 'inet', 'netnsnat')).Output
            }
            finally { ipc netns del nnl-nftdef; Remove-Item $file -ErrorAction Ignore }
            $ours | Should -Be $theirs
            $ours | Should -Match 'ip saddr \. oifname @masquerade4 counter masquerade'
        }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }

    It 'starts no process in a fresh pwsh: Enable and Disable go over netlink (strace)' {
        $trace = "/run/netnsnat-strace-$PID"
        try {
            $r = Invoke-ChildPwsh -Script 'Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -Verbose 4>&1 | ForEach-Object { "$_" }; Disable-NamespaceNat testnet br0 -Verbose 4>&1 | ForEach-Object { "$_" }' -Prefix @('strace', '-f', '-qq', '-e', 'trace=execve', '-o', $trace)
            $r.ExitCode | Should -Be 0 -Because $r.Error
            $r.Output | Should -Match 'one nf_tables netlink batch into inet netnsnat'
            $execs = @(Get-Content $trace | Where-Object { $_ -match 'execve\(' -and $_ -notmatch '= -1 ' })
            $others = @($execs | Where-Object { $_ -notmatch 'execve\("[^"]*(pwsh|dotnet)"' })
            # Legacy tables left by an earlier test of the run are read once to see what would drop the traffic there.
            $others = @($others | Where-Object { $_ -notmatch 'execve\("[^"]*/ip6?tables-legacy-save"' })
            $others | Should -BeNullOrEmpty
        }
        finally { Remove-Item $trace -ErrorAction Ignore }
    }

    It 'runs precompiled code in a fresh pwsh (ReadyToRun): its first Enable JIT-compiles a few hundred methods, not a thousand' {
        # Without ReadyToRun code the runtime uses (made by the crossgen2 of pwsh's .NET, against pwsh's own
        # System.Management.Automation) the first Enable-NamespaceNat compiles about 950 methods; with it, about 230
        # (430 while netlink's lists and the caches were generics over value tuples and structs, which no image holds).
        $script = '$j = [System.Runtime.JitInfo]::GetCompiledMethodCount(); Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null; [System.Runtime.JitInfo]::GetCompiledMethodCount() - $j; Disable-NamespaceNat testnet br0'
        $r = Invoke-ChildPwsh -Script $script
        $r.ExitCode | Should -Be 0 -Because $r.Error
        $compiled = [int]($r.Output.Trim() -split "`n")[0]
        Write-Figure 'methods JIT-compiled by a fresh pwsh''s first Enable (nftables)' $compiled
        $compiled | Should -BeLessThan 450
    }

    It 'shares one bridge''s elements between its namespaces: the last Disable takes them' {
        Add-LabClient -Name nnl-second -Address 10.0.0.3/24 -Address6 fd00:0:0:1::3/64
        try {
            'testnet', 'nnl-second' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -Backend Nftables | Out-Null
            Test-LabConnection -Namespace nnl-second | Should -Be $lab.UplinkAddress
            Disable-NamespaceNat testnet br0 | Out-Null
            Get-Elements masquerade4 | Should -Be @('10.0.0.0/24 . eth0')
            Test-LabConnection -Namespace nnl-second | Should -Be $lab.UplinkAddress
            Disable-NamespaceNat nnl-second br0 | Out-Null
            @(Get-LabNftTables) | Should -BeNullOrEmpty
        }
        finally { ipc netns del nnl-second }
    }

    It 'on a bridge with two subnets, NATs the one the namespace is on and only that one' {
        ipc addr add 10.9.0.1/24 dev br0
        try {
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 | Out-Null
            Get-Elements masquerade4 | Should -Be @('10.0.0.0/24 . eth0')
            Add-NatMasquerade -Subnet 10.9.0.0/24 -Outbound eth0 -Bridge br0 -Backend Nftables | Out-Null
            Get-Elements masquerade4 | Sort-Object | Should -Be @('10.0.0.0/24 . eth0', '10.9.0.0/24 . eth0')
            # Disable takes the namespace's subnet; the one added by hand stays, and the table with it.
            Disable-NamespaceNat testnet br0 | Out-Null
            Get-Elements masquerade4 | Should -Be @('10.9.0.0/24 . eth0')
            Get-NatMasquerade -Backend Nftables | Remove-NatMasquerade
            @(Get-LabNftTables) | Should -BeNullOrEmpty
        }
        finally { ipc addr del 10.9.0.1/24 dev br0 }
    }

    It 'lays the table again after it was deleted (Restore) or changed by hand (Enable)' {
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
        try {
            nftc delete table inet netnsnat | Out-Null
            (Get-NamespaceNat testnet).Status | Should -Be @('RulesMissing', 'RulesMissing')
            Test-LabConnection -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Restore-NamespaceNat | Out-Null
            Test-LabConnection | Should -Be $lab.UplinkAddress
            # A rule deleted by hand: the table is no longer NetnsNat's shape, and Enable lays it whole again.
            $handle = ((nftc -a list chain inet netnsnat postrouting) -split "`n" | Where-Object { $_ -match 'masquerade4' } | ForEach-Object { ($_ -split '# handle ')[1].Trim() })
            nftc delete rule inet netnsnat postrouting handle $handle | Out-Null
            (Get-NamespaceNat testnet).Status | Should -Be @('RulesMissing', 'RulesMissing')
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
            Test-LabConnection | Should -Be $lab.UplinkAddress
            (Get-NamespaceNat testnet).Status | Should -Be @('InForce', 'InForce')
        }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }

    It '-WhatIf shows the table once and each element, changes nothing, and its commands run as printed make the same table' {
        $state = Get-LabState
        $r = Invoke-ChildPwsh -Script 'Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -WhatIf'
        $r.ExitCode | Should -Be 0 -Because $r.Error
        Get-LabState | Should -Be $state
        $commands = Get-WhatIfCommand $r.Output
        @($commands | Where-Object { $_ -match 'add table inet netnsnat' }) | Should -HaveCount 1
        @($commands | Where-Object { $_ -match 'nft add element inet netnsnat' }) | Should -HaveCount 4
        # Each command as printed, run by a shell: the table Enable makes.
        foreach ($command in $commands) { Invoke-LabCommand sh -ArgumentList @('-c', $command) | Out-Null }
        $byHand = Get-OwnTable
        nftc delete table inet netnsnat | Out-Null
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
        try { Get-OwnTable | Should -Be $byHand }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }

    It '-Verbose on a host without the table counts the elements it adds and no deletion (the table''s creation is none)' {
        $verbose = @(Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
        try {
            $verbose | Should -Contain '2 rules to add for 10.0.0.0/24 via eth0.'
            ($verbose -join "`n") | Should -Not -Match 'after deleting'
        }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }

    It 'a namespace without -Backend takes its bridge''s backend; -Backend of the other one for the same subnet is an error' {
        Add-LabClient -Name nnl-third -Address 10.0.0.5/24 -Address6 fd00:0:0:1::5/64
        try {
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
            (Enable-NamespaceNat nnl-third br0 eth0).Rule.Backend | Should -Be 'nftables'
            Get-IptablesOwn | Should -BeNullOrEmpty
            Disable-NamespaceNat nnl-third br0 | Out-Null
            $e = Assert-FailsWithoutChange { Enable-NamespaceNat nnl-third br0 eth0 -Backend Iptables } -ErrorId BackendMismatch -Category InvalidOperation
            $e.Exception.Message | Should -Match 'testnet'
            # The elements testnet still uses are its Disable's to remove: without -Force, an error naming it.
            $e = Assert-FailsWithoutChange { Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Bridge br0 } -ErrorId RulesInUse -Category ResourceBusy
            $e.Exception.Message | Should -Match 'Disable-NamespaceNat testnet br0'
            # Remove-NatMasquerade by its fields, without -Backend, finds the subnet where it is.
            Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Bridge br0 -Force -PassThru | ForEach-Object Backend | Should -Be 'nftables'
            Get-Elements masquerade4 | Should -BeNullOrEmpty
        }
        finally {
            Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null
            ipc netns del nnl-third
        }
    }

    It 'keeps a namespace in its backend: the other one is an error that changes nothing' {
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
        try {
            $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Backend Iptables } -ErrorId BackendMismatch -Category InvalidOperation
            $e.Exception.Message | Should -Match '-Backend Nftables'
            # Get-NamespaceNat output piped back in keeps each binding's backend.
            Get-NamespaceNat testnet | Enable-NamespaceNat | ForEach-Object { $_.Rule.ChangedRules } | Should -Be @(0, 0)
            # Its port mappings go into its backend too.
            $e = Assert-FailsWithoutChange { Add-NatPortMapping -Namespace testnet -Protocol Tcp -ExternalPort 8080 -Backend Iptables } -ErrorId BackendMismatch -Category InvalidArgument
            $e.Exception.Message | Should -Match '\(nftables\)'
        }
        finally { Disable-NamespaceNat testnet br0 | Out-Null }
    }
}

Describe 'The nftables backend beside other firewalls' {
    BeforeAll { $lab = New-NetnsNatLab -DualStack }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach { Reset-LabFirewall }

    It 'fails before changing anything when iptables'' FORWARD policy is DROP (Docker, ufw)' {
        Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
        $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 } -ErrorId ForwardBlocked -Category ResourceUnavailable
        $e.Exception.Message | Should -Match 'FORWARD chain of iptables \(iptables-nft\) drops new traffic from br0 out of eth0 \(policy DROP\)'
        $e.Exception.Message | Should -Match 'iptables -I FORWARD -i br0 -o eth0 -j ACCEPT'
        # The fix the message names works.
        Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '-i', 'br0', '-o', 'eth0', '-j', 'ACCEPT') | Out-Null
        Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '-i', 'eth0', '-o', 'br0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT') | Out-Null
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 | Out-Null
        Test-LabConnection | Should -Be $lab.UplinkAddress
        Disable-NamespaceNat testnet br0 | Out-Null
    }

    It 'fails before changing anything when another table''s forward chain drops everything' {
        nftc add table inet othertool | Out-Null
        nftc add chain inet othertool fw_filter '{ type filter hook forward priority 10; policy drop; }' | Out-Null
        $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Backend Nftables } -ErrorId ForwardBlocked -Category ResourceUnavailable
        $e.Exception.Message | Should -Match "'inet othertool fw_filter'"
        # With a rule that lets the bridge out, the chain is theirs to judge: Enable goes on, and the traffic passes.
        nftc add rule inet othertool fw_filter iifname br0 accept | Out-Null
        nftc add rule inet othertool fw_filter ct state 'established,related' accept | Out-Null
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
        Test-LabConnection | Should -Be $lab.UplinkAddress
        Disable-NamespaceNat testnet br0 | Out-Null
        (nftc list tables) | Should -Match 'table inet othertool'
    }

    It '<Backend> backend: another table''s forward chain is walked, a host firewall''s policy drop with accepts for other interfaces is ForwardBlocked naming it before anything is written, and its fix as printed lets the traffic out' -ForEach @(
        @{ Backend = 'Nftables'; Written = '^nftables$' }
        @{ Backend = 'Iptables'; Written = '^iptables' }
    ) {
        # The shape of a hand-written /etc/nftables.conf: replies and one other interface let through, the rest dropped.
        # No rule in iptables' FORWARD nor in NetnsNat's table overrides its drop.
        nftc add table inet filter | Out-Null
        nftc add chain inet filter forward '{ type filter hook forward priority 0; policy drop; }' | Out-Null
        nftc add rule inet filter forward ct state 'established,related' accept | Out-Null
        nftc add rule inet filter forward iifname docker0 accept | Out-Null
        try {
            $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Backend $Backend -AddressFamily IPv4 } -ErrorId ForwardBlocked -Category ResourceUnavailable
            $e.Exception.Message | Should -Match "'inet filter forward' on the forward hook drops new traffic from br0 out of eth0 \(policy drop\)"
            $fix = [regex]::Match($e.Exception.Message, 'Let the traffic through it \((?<fix>.*?)\), or set').Groups['fix'].Value
            $fix | Should -Match '^nft insert rule inet filter forward iifname "br0" oifname "eth0" accept; '
            foreach ($command in $fix -split '; ') { Invoke-LabCommand sh -ArgumentList @('-c', $command) | Out-Null }
            (Enable-NamespaceNat testnet br0 eth0 -Backend $Backend -AddressFamily IPv4 -WarningVariable warned).Rule.Backend | Should -Match $Written
            $warned | Should -BeNullOrEmpty
            Test-LabConnection | Should -Be $lab.UplinkAddress
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward').Status | Should -Be 'Pass'
        }
        finally {
            Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null
            nftc delete table inet filter | Out-Null
        }
    }

    It 'warns, and goes on, when another table''s forward chain may accept the traffic by rules it does not evaluate (a port): the warning''s fix works' {
        nftc add table inet filter | Out-Null
        nftc add chain inet filter forward '{ type filter hook forward priority 0; policy drop; }' | Out-Null
        nftc add rule inet filter forward ct state 'established,related' accept | Out-Null
        nftc add rule inet filter forward tcp dport 443 accept | Out-Null
        try {
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 -WarningVariable warned -WarningAction SilentlyContinue | Out-Null
            "$warned" | Should -Match "'inet filter forward' on the forward hook may drop the traffic of br0 \(rule handle \d+ \(with matches NetnsNat does not evaluate\) or else policy drop\)"
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward').Status | Should -Be 'Warn'
            $fix = [regex]::Match("$warned", 'let the traffic through it: (?<fix>.*)\.$').Groups['fix'].Value
            foreach ($command in $fix -split '; ') { Invoke-LabCommand sh -ArgumentList @('-c', $command) | Out-Null }
            Test-LabConnection | Should -Be $lab.UplinkAddress
            (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward').Status | Should -Be 'Pass' -Because 'the inserted accepts decide before the rules it cannot evaluate'
        }
        finally {
            Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null
            nftc delete table inet filter | Out-Null
        }
    }

    It 'never touches a table named netnsnat that it did not create' {
        nftc add table inet netnsnat | Out-Null
        nftc add chain inet netnsnat mine | Out-Null
        $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 -Backend Nftables } -ErrorId NftablesTableNotOwned -Category ResourceExists
        $e.Exception.Message | Should -Match 'nft list table inet netnsnat'
        Assert-FailsWithoutChange { Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Backend Nftables } -ErrorId NftablesTableNotOwned -Category ResourceExists | Out-Null
    }

    It 'a batch the kernel refuses (an overlapping subnet) applies nothing, and says why' {
        Add-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Bridge br0 -Backend Nftables | Out-Null
        $e = Assert-FailsWithoutChange { Add-NatMasquerade -Subnet 10.0.0.0/16 -Outbound eth0 -Backend Nftables } -ErrorId NftablesRefused -Category ResourceExists
        $e.Exception.Message | Should -Match 'overlaps'
        $e.Exception.Message | Should -Match 'Nothing of this call'
        Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound eth0 -Backend Nftables
        @(Get-LabNftTables) | Should -BeNullOrEmpty
    }

    It 'lists both backends when a host has bindings in each' {
        Add-LabBridge -Name br1 -Address 10.1.0.1/24
        Add-LabClient -Name nnl-ipt -Bridge br1 -Address 10.1.0.2/24 -HostEnd vnnl-ipt
        try {
            Enable-NamespaceNat testnet br0 eth0 -Backend Nftables -AddressFamily IPv4 | Out-Null
            Enable-NamespaceNat nnl-ipt br1 eth0 -Backend Iptables | Out-Null
            $listed = Get-NatMasquerade -AddressFamily IPv4
            ($listed | Where-Object Bridge -eq br0).Backend | Should -Be 'nftables'
            ($listed | Where-Object Bridge -eq br1).Backend | Should -Be 'iptables-nft'
            (Get-NamespaceNat).Backend | Sort-Object | Should -Be @('iptables-nft', 'nftables')
        }
        finally {
            Disable-NamespaceNat testnet br0 -ErrorAction Continue | Out-Null
            Disable-NamespaceNat nnl-ipt br1 -ErrorAction Continue | Out-Null
            ipc netns del nnl-ipt; ipc link del br1
        }
    }
}

Describe 'Test-NamespaceNat with the nftables backend' {
    BeforeAll { $lab = New-NetnsNatLab -DualStack }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach {
        Reset-LabFirewall
        Enable-NamespaceNat testnet br0 eth0 -Backend Nftables | Out-Null
    }
    AfterEach { Disable-NamespaceNat testnet br0 -ErrorAction Ignore | Out-Null }

    It 'passes every check of a namespace NetnsNat enabled there, in both families' {
        $results = Test-NamespaceNat testnet
        @($results | Where-Object Status -ne 'Pass') | Should -BeNullOrEmpty -Because ($results | Where-Object Status -ne 'Pass' | Out-String)
        ($results | Where-Object { $_.Check -eq 'Masquerade' -and $_.AddressFamily -eq 'IPv4' }).Detail | Should -Match 'inet netnsnat masquerade4 \{ 10\.0\.0\.0/24 \. "eth0" \}'
        ($results | Where-Object { $_.Check -eq 'Inbound' -and $_.AddressFamily -eq 'IPv6' }).Detail | Should -Match '@inbound6 drop'
    }

    It 'fails Masquerade and Inbound, with fixes that work, when the elements are gone' {
        nftc delete element inet netnsnat masquerade4 '{ 10.0.0.0/24 . "eth0" }' | Out-Null
        nftc delete element inet netnsnat inbound4 '{ 10.0.0.0/24 . "eth0" . "br0" }' | Out-Null
        $results = Test-NamespaceNat testnet -AddressFamily IPv4
        $masquerade = $results | Where-Object Check -eq 'Masquerade'
        $masquerade.Status | Should -Be 'Fail'
        $masquerade.Fix | Should -Be 'Get-BridgeSubnet br0 | Add-NatMasquerade -Outbound eth0 -Backend Nftables'
        ($results | Where-Object Check -eq 'Inbound').Status | Should -Be 'Fail'
        Invoke-Expression $masquerade.Fix | Out-Null
        Test-NamespaceNat testnet -AddressFamily IPv4 -Quiet | Should -BeTrue
        Test-LabConnection | Should -Be $lab.UplinkAddress
    }

    It 'fails Forward when iptables'' FORWARD policy became DROP after Enable (Docker started), with the fix' {
        Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
        Test-LabConnection -TimeoutSeconds 1 | Should -BeNullOrEmpty
        $forward = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward'
        $forward.Status | Should -Be 'Fail'
        $forward.Detail | Should -Match 'beside NetnsNat''s nftables table'
        foreach ($command in $forward.Fix -replace ' \(or .*$' -split '; ') { Invoke-LabCommand sh -ArgumentList @('-c', $command) | Out-Null }
        Test-LabConnection | Should -Be $lab.UplinkAddress
        (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward').Status | Should -Be 'Pass'
    }

    It 'warns when iptables has rules for the subnet too (the lesson''s MASQUERADE left behind), with a fix that works' {
        Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
        $mix = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'BackendMix'
        $mix.Status | Should -Be 'Warn'
        $mix.Detail | Should -Match 'iptables has rules for it too'
        Invoke-Expression $mix.Fix | Out-Null
        (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'BackendMix').Status | Should -Be 'Pass'
        Get-Elements masquerade4 | Should -Be @('10.0.0.0/24 . eth0') -Because 'the fix takes the iptables rule, not the element'
    }

    It 'checks the subnet the namespace was enabled for (-Subnet) on a bridge with two, in the <_> backend' -ForEach 'Iptables', 'Nftables' {
        Disable-NamespaceNat testnet br0 | Out-Null
        ipc addr add 10.9.0.1/24 dev br0
        ipc -n testnet addr add 10.9.0.2/24 dev veth1
        try {
            Enable-NamespaceNat testnet br0 eth0 -Subnet 10.9.0.0/24 -AddressFamily IPv4 -Backend $_ | Out-Null
            Test-LabConnection | Should -Be $lab.UplinkAddress
            $results = Test-NamespaceNat testnet -AddressFamily IPv4
            @($results | Where-Object Status -ne 'Pass') | Should -BeNullOrEmpty -Because ($results | Where-Object Status -ne 'Pass' | Out-String)
            ($results | Where-Object Check -eq 'DefaultRoute').Detail | Should -Match 'via 10\.9\.0\.1'
            Disable-NamespaceNat testnet br0 | Out-Null
        }
        finally {
            ipc -n testnet addr del 10.9.0.2/24 dev veth1
            ipc addr del 10.9.0.1/24 dev br0
        }
    }

    It 'walks another table''s forward chain: a rule that drops by a port it does not evaluate is a warning; one that drops the subnet is a failure naming it, and the fix works' {
        nftc add table inet fw | Out-Null
        nftc add chain inet fw forward '{ type filter hook forward priority 0; policy accept; }' | Out-Null
        nftc add rule inet fw forward tcp dport 25 drop | Out-Null
        $forward = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward'
        $forward.Status | Should -Be 'Warn'
        $forward.Detail | Should -Match "'inet fw forward' has rule handle \d+ \(drop\)"
        Test-NamespaceNat testnet -AddressFamily IPv4 -Quiet | Should -BeTrue -Because 'a warning is no failure'
        nftc add rule inet fw forward ip saddr 10.0.0.0/24 drop | Out-Null
        Test-LabConnection -TimeoutSeconds 1 | Should -BeNullOrEmpty
        $forward = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward'
        $forward.Status | Should -Be 'Fail'
        $forward.Detail | Should -Match "nftables chain 'inet fw forward'.*inet fw forward: rule handle \d+ \(drop\)"
        $forward.Fix | Should -Be 'nft insert rule inet fw forward iifname "br0" oifname "eth0" accept; nft insert rule inet fw forward iifname "eth0" oifname "br0" ct state established,related accept (or set its policy to accept)'
        foreach ($command in ($forward.Fix -replace ' \(or set.*$') -split '; ') { Invoke-LabCommand sh -ArgumentList @('-c', $command) | Out-Null }
        Test-LabConnection | Should -Be $lab.UplinkAddress
        (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward').Status | Should -Be 'Pass'
    }

    It 'in a table changed by hand, reads whether the inbound drop still takes effect: Pass while it does, Fail under an accept added above it or once it is gone' {
        # The hairpin's masquerade deleted by hand: the table is not as NetnsNat made it, but new connections in are still dropped.
        $handle = ((nftc -a list chain inet netnsnat postrouting) -split "`n" | Where-Object { $_ -match '@hairpin4' } | ForEach-Object { ($_ -split '# handle ')[1].Trim() })
        nftc delete rule inet netnsnat postrouting handle $handle | Out-Null
        $inbound = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Inbound'
        $inbound.Status | Should -Be 'Pass' -Because $inbound.Detail
        $inbound.Detail | Should -Match '@inbound4 drop'
        # An accept added by hand above the drop: the drop no longer takes effect for what it accepts.
        nftc insert rule inet netnsnat forward iifname eth0 accept | Out-Null
        $inbound = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Inbound'
        $inbound.Status | Should -Be 'Fail'
        $inbound.Detail | Should -Match 'a rule added by hand above it'
        $handle = ((nftc -a list chain inet netnsnat forward) -split "`n" | Where-Object { $_ -match 'iifname "eth0" accept' } | ForEach-Object { ($_ -split '# handle ')[1].Trim() })
        nftc delete rule inet netnsnat forward handle $handle | Out-Null
        (Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Inbound').Status | Should -Be 'Pass'
        # Then the drop itself: now anyone can reach the namespace, and the check says so.
        $handle = ((nftc -a list chain inet netnsnat forward) -split "`n" | Where-Object { $_ -match '@inbound4 counter packets \d+ bytes \d+ drop' } | ForEach-Object { ($_ -split '# handle ')[1].Trim() })
        nftc delete rule inet netnsnat forward handle $handle | Out-Null
        $inbound = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Inbound'
        $inbound.Status | Should -Be 'Fail'
        $inbound.Detail | Should -Match 'not as NetnsNat made it'
    }

    It 'says what is wrong with a table changed by hand or not NetnsNat''s, with a fix that works' {
        $handle = ((nftc -a list chain inet netnsnat forward) -split "`n" | Where-Object { $_ -match '@inbound4 counter packets \d+ bytes \d+ drop' } | ForEach-Object { ($_ -split '# handle ')[1].Trim() })
        nftc delete rule inet netnsnat forward handle $handle | Out-Null
        $results = Test-NamespaceNat testnet -AddressFamily IPv4
        ($results | Where-Object Check -eq 'Masquerade').Detail | Should -Match 'not as NetnsNat made it: its chain forward has 5 rules, not 6'
        ($results | Where-Object Check -eq 'Inbound').Detail | Should -Match 'not as NetnsNat made it'
        (Get-NamespaceNat testnet | Where-Object AddressFamily -eq IPv4).Detail | Should -Match 'not as NetnsNat made it'
        Invoke-Expression (($results | Where-Object Check -eq 'Masquerade').Fix -replace ' \(it lays.*$') | Out-Null
        Test-NamespaceNat testnet -Quiet | Should -BeTrue
        Disable-NamespaceNat testnet br0 | Out-Null
        nftc add table inet netnsnat | Out-Null
        $masquerade = Test-NamespaceNat testnet -AddressFamily IPv4 -Backend Nftables | Where-Object Check -eq 'Masquerade'
        $masquerade.Detail | Should -Match 'NetnsNat did not create it'
    }

    It 'fails Forward when another table''s forward chain drops everything, naming it' {
        nftc add table ip othertool | Out-Null
        nftc add chain ip othertool fw_filter '{ type filter hook forward priority 10; policy drop; }' | Out-Null
        $forward = Test-NamespaceNat testnet -AddressFamily IPv4 | Where-Object Check -eq 'Forward'
        $forward.Status | Should -Be 'Fail'
        $forward.Detail | Should -Match 'ip othertool fw_filter'
        $forward.Fix | Should -Match 'nft insert rule ip othertool fw_filter iifname "br0" oifname "eth0" accept'
    }
}
