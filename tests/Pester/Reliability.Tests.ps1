# Issue 3: nothing half-applied, nothing duplicated, nothing let in, under faults and concurrency.
# docs/reliability.md lists these promises; a test at the end checks the two agree.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Concurrent = 8
    $Rounds = 50
    $RoundBridges = 5
    function Get-Forwarding { [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() }
    function Set-Forwarding([string] $v) { [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "$v`n") }
    function Start-AtOnce([string[]] $Scripts) {
        # Each child imports the module and warms the call up (-WhatIf), then all wait for one file and go together,
        # so their read-compute-write cycles really overlap.
        $dir = "/run/netnsnat-barrier-$([guid]::NewGuid().ToString('n'))"
        New-Item -ItemType Directory $dir | Out-Null
        $go = Join-Path $dir 'go'
        $children = for ($i = 0; $i -lt $Scripts.Count; $i++) {
            $s = $Scripts[$i]
            Start-ChildPwsh -Script "$s -WhatIf 6>`$null | Out-Null; [IO.File]::WriteAllText('$dir/ready$i', ''); while (-not [IO.File]::Exists('$go')) { [Threading.Thread]::Sleep(1) }; $s | Out-Null; 'ok'"
        }
        $deadline = [DateTime]::UtcNow.AddSeconds(90)
        while ([DateTime]::UtcNow -lt $deadline -and @(Get-ChildItem $dir -Filter 'ready*').Count -lt $Scripts.Count) { Start-Sleep -Milliseconds 20 }
        [IO.File]::WriteAllText($go, 'go')
        try { $children | Wait-ChildPwsh } finally { Remove-Item $dir -Recurse -ErrorAction Ignore }
    }
    function Get-NsRoute([string] $ns) { (Invoke-LabCommand ip -ArgumentList @('-n', $ns, 'route', 'show', 'default')).Output.Trim() }
}

Describe 'Reliability' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach {
        Reset-LabFirewall
        Set-Forwarding 0
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') -AllowFailure | Out-Null
    }

    Context 'all or nothing' {
        It 'an iptables that fails on its second call leaves the ruleset and forwarding as before' {
            $wrap = New-ToolWrapper -Tool iptables, iptables-save, iptables-restore -Body @'
n=$(( $(cat $COUNT 2>/dev/null || echo 0) + 1 )); echo $n > $COUNT
if [ "$n" = 2 ]; then echo "simulated failure of call $n" >&2; exit 1; fi
exec $REAL "$@"
'@
            $saved = $env:PATH
            try {
                $env:PATH = "${wrap}:$saved"
                $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 } -ErrorId IptablesFailed -Category InvalidOperation
                $e.Exception.Message | Should -Match 'simulated failure of call 2'
                Get-Forwarding | Should -Be '0'
                Get-Content (Join-Path $wrap 'count') | Should -Be '3' -Because 'iptables-save, the failing iptables-restore, and iptables-save to see what took effect'
            }
            finally { $env:PATH = $saved; Remove-Item $wrap -Recurse -Force }
        }

        It 'an iptables-restore that commits the nat table and then fails leaves nothing behind' {
            # iptables-restore commits table by table; this one writes the first table of its input, then fails.
            $wrap = New-ToolWrapper -Tool iptables-restore -Body @'
sed '/^COMMIT/q' | "$REAL" "$@" || exit 1
echo "simulated failure after the first table" >&2
exit 1
'@
            $saved = $env:PATH
            try {
                $env:PATH = "${wrap}:$saved"
                $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 } -ErrorId IptablesFailed -Category InvalidOperation
                $e.Exception.Message | Should -Match 'simulated failure after the first table'
            }
            finally { $env:PATH = $saved; Remove-Item $wrap -Recurse -Force }
        }

        It 'a missing namespace is found before anything changes' {
            Assert-FailsWithoutChange { Enable-NamespaceNat nosuchns br0 eth0 } -ErrorId NamespaceNotFound -Category ObjectNotFound | Out-Null
        }

        It 'a route step that fails rolls back the rules and forwarding already applied' {
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'unwired') | Out-Null
            try { Assert-FailsWithoutChange { Enable-NamespaceNat unwired br0 eth0 } -ErrorId GatewayUnreachable -Category InvalidArgument | Out-Null }
            finally { Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'unwired') | Out-Null }
        }

        It 'a bridge removed mid-way rolls back rules, route and forwarding' {
            Add-LabBridge -Name brmid -Address 10.40.0.1/24
            Add-LabClient -Name midns -Bridge brmid -Address 10.40.0.2/24
            # The bridge disappears while iptables-restore writes the rules.
            $wrap = New-ToolWrapper -Tool iptables-restore -Body @'
ip link del brmid
exec "$REAL" "$@"
'@
            $saved = $env:PATH
            try {
                $rules = Get-LabRuleset
                $env:PATH = "${wrap}:$saved"
                { Enable-NamespaceNat midns brmid eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'BridgeRemoved,NetnsNat.Commands.EnableNamespaceNatCommand'
                $env:PATH = $saved
                Get-LabRuleset | Should -Be $rules
                Get-Forwarding | Should -Be '0'
                Get-NsRoute midns | Should -BeNullOrEmpty
            }
            finally {
                $env:PATH = $saved
                Remove-Item $wrap -Recurse -Force
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'midns') -AllowFailure | Out-Null
                Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brmid') -AllowFailure | Out-Null
            }
        }

        It 'Disable-NamespaceNat puts the rules back when removing the route fails' {
            Add-LabBridge -Name brgone -Address 10.41.0.1/24
            Add-LabClient -Name gonens -Bridge brgone -Address 10.41.0.2/24
            Enable-NamespaceNat gonens brgone eth0 | Out-Null
            $rules = Get-LabRuleset
            # The namespace's handle is unmounted while iptables-restore deletes the rules: the route step then fails.
            $wrap = New-ToolWrapper -Tool iptables-restore -Body @'
umount /run/netns/gonens
exec "$REAL" "$@"
'@
            $saved = $env:PATH
            try {
                $env:PATH = "${wrap}:$saved"
                { Disable-NamespaceNat gonens brgone -ErrorAction Stop } | Should -Throw -ErrorId 'RouteFailed,NetnsNat.Commands.DisableNamespaceNatCommand'
                $env:PATH = $saved
                Get-LabRuleset | Should -Be $rules
            }
            finally {
                $env:PATH = $saved
                Remove-Item $wrap -Recurse -Force
                Remove-Item /run/netns/gonens -Force -ErrorAction Ignore
                Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brgone') -AllowFailure | Out-Null
                Remove-NatMasquerade 10.41.0.0/24 eth0 -Force
            }
        }
    }

    Context 'bad input' {
        BeforeAll {
            Add-LabBridge -Name brdown -Address 10.8.0.1/24 -Down
            $script:badInputs = 0
        }
        AfterAll {
            Invoke-LabCommand ip -ArgumentList @('link', 'del', 'brdown') -AllowFailure | Out-Null
            Write-Figure 'bad inputs tried, each with the ruleset, routes and sysctls unchanged' $script:badInputs
        }

        It '<Call>: <ErrorId> (<Category>), nothing changed' -ForEach @(
            @{ Call = { Enable-NamespaceNat testnet 'br0;reboot' eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet br0 '$(id)' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet 'br 0' eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet 'br0/x' eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet 'abcdefghijklmnop' eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet '' eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat '' br0 eth0 }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet "br$([char]0x043E)" eth0 }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat 'tеstnet' br0 eth0 }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat '..' br0 eth0 }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat '../../etc/passwd' br0 eth0 }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat 'testnet;id' br0 eth0 }; ErrorId = 'InvalidNamespaceName'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet vtestnet eth0 }; ErrorId = 'NotABridge'; Category = 'InvalidArgument' }
            @{ Call = { Enable-NamespaceNat testnet brdown eth0 }; ErrorId = 'BridgeDown'; Category = 'InvalidOperation' }
            @{ Call = { Enable-NamespaceNat testnet br0 '-j' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet 10.0.0.0/33 -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet 300.1.1.1/24 -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet 10.0.0.1 -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet ::/0 -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet '' -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet '10.0.0.0/24 -j ACCEPT' -Outbound eth0 }; ErrorId = 'InvalidSubnet'; Category = 'InvalidArgument' }
            @{ Call = { Add-NatMasquerade -Subnet 10.0.0.0/24 -Outbound 'eth0 -j DROP' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Remove-NatMasquerade -Subnet 10.0.0.0/24 -Outbound 'eth0`nx' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Set-NamespaceDefaultRoute testnet '10.0.0.1; reboot' }; ErrorId = 'InvalidGateway'; Category = 'InvalidArgument' }
            @{ Call = { Set-NamespaceDefaultRoute testnet '::1' }; ErrorId = 'InvalidGateway'; Category = 'InvalidArgument' }
            @{ Call = { Get-BridgeSubnet '$(reboot)' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
            @{ Call = { Disable-NamespaceNat testnet 'br0|x' }; ErrorId = 'InvalidInterfaceName'; Category = 'InvalidArgument' }
        ) {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'replace', 'default', 'via', '10.0.0.254') | Out-Null
            Assert-FailsWithoutChange $Call -ErrorId $ErrorId -Category $Category | Out-Null
            $script:badInputs++
        }
    }

    Context 'concurrency' {
        It 'eight pwsh processes at once on eight bridges all succeed, and each rule exists exactly once' {
            $subnets = foreach ($i in 1..$Concurrent) {
                Add-LabBridge -Name "brc$i" -Address "10.6$i.0.1/24"
                Add-LabClient -Name "c$i" -Bridge "brc$i" -Address "10.6$i.0.2/24"
                "10.6$i.0.0/24"
            }
            $results = Start-AtOnce @(foreach ($i in 1..$Concurrent) { "Enable-NamespaceNat c$i brc$i eth0" })
            $results.ExitCode | Should -Be (@(0) * $Concurrent)
            ($results.Error -join "`n") | Should -Not -Match 'xtables lock'
            $ruleset = (Get-LabRuleset) -split "`n"
            foreach ($s in $subnets) {
                @($ruleset | Where-Object { $_ -like "*POSTROUTING -s $s -o eth0 -j MASQUERADE" }).Count | Should -Be 1
                @($ruleset | Where-Object { $_ -like '-A FORWARD *' -and $_ -like "* $s *" }).Count | Should -Be 3
            }
            $reached = @(1..$Concurrent | Where-Object { (Test-LabConnection -Namespace "c$_") -eq $lab.UplinkAddress }).Count
            $reached | Should -Be $Concurrent
            Write-Figure 'concurrent Enable-NamespaceNat, distinct bridges' "$Concurrent processes, $Concurrent succeeded, $($ruleset.Count) rules (expected $(4 * $Concurrent)), $reached clients reached the server"
            $ruleset.Count | Should -Be (4 * $Concurrent)
            foreach ($i in 1..$Concurrent) {
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', "c$i") | Out-Null
                Invoke-LabCommand ip -ArgumentList @('link', 'del', "brc$i") | Out-Null
            }
        }

        It 'eight pwsh processes at once on the same bridge leave exactly one set of rules' {
            foreach ($i in 1..$Concurrent) { Add-LabClient -Name "s$i" -Bridge br0 -Address "10.0.0.$(10 + $i)/24" }
            $results = Start-AtOnce @(foreach ($i in 1..$Concurrent) { "Enable-NamespaceNat s$i br0 eth0" })
            $results.ExitCode | Should -Be (@(0) * $Concurrent)
            ($results.Error -join "`n") | Should -Not -Match 'xtables lock'
            $ruleset = (Get-LabRuleset) -split "`n"
            Write-Figure 'concurrent Enable-NamespaceNat, one bridge' "$Concurrent processes, $(@($results | Where-Object ExitCode -EQ 0).Count) succeeded, $($ruleset.Count) rules (expected 4)"
            $ruleset.Count | Should -Be 4
            foreach ($i in 1..$Concurrent) {
                Get-NsRoute "s$i" | Should -Match 'via 10\.0\.0\.1'
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', "s$i") | Out-Null
            }
        }
    }

    Context 'the lock holds through a rollback' {
        It 'a rollback is never interleaved with a write by another process: a second Enable waits for the undo of the first' {
            # Process A fails on the route (its namespace has no address on the bridge) after writing the rules, and
            # its undo is slow (an iptables-restore that sleeps when it deletes). Process B enables a namespace on the
            # same bridge meanwhile. Were the lock released before A's undo, B would find A's rules in place, write
            # nothing, and A's undo would then take B's NAT away with B reporting success.
            $dir = "/run/netnsnat-rollback-$PID"
            New-Item -ItemType Directory $dir | Out-Null
            $wrap = New-ToolWrapper -Tool iptables-restore -Body @"
input=`$(cat)
case "`$input" in *"-D "*) touch $dir/rolling; sleep 2;; esac
printf '%s\n' "`$input" | "`$REAL" "`$@"
"@
            Invoke-LabCommand ip -ArgumentList @('netns', 'add', 'unwiredA') | Out-Null
            try {
                $a = Start-ChildPwsh -Script "`$env:PATH = '${wrap}:' + `$env:PATH; try { Enable-NamespaceNat unwiredA br0 eth0 -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId }"
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                while (-not (Test-Path "$dir/rolling") -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 10 }
                "$dir/rolling" | Should -Exist -Because 'process A reached its rollback'
                $b = Enable-NamespaceNat testnet br0 eth0
                $resultA = $a | Wait-ChildPwsh
                $resultA.Output | Should -BeLike 'GatewayUnreachable,*'
                $b.Rule.ChangedRules | Should -Be 4 -Because 'B read the rules after A had taken its own back out'
                @(Get-ForwardRules).Count | Should -Be 3
                Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            }
            finally {
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', 'unwiredA') -AllowFailure | Out-Null
                Remove-Item $wrap, $dir -Recurse -Force -ErrorAction Ignore
            }
        }
    }

    Context 'behind a closed firewall' {
        It 'traffic flows with FORWARD policy <Policy>, and the policy is left as it was' -ForEach @(
            @{ Policy = 'DROP'; Setup = @('-P', 'FORWARD', 'DROP') }
            @{ Policy = 'ACCEPT with a trailing REJECT'; Setup = @('-A', 'FORWARD', '-j', 'REJECT') }
        ) {
            Invoke-LabCommand iptables -ArgumentList $Setup | Out-Null
            $policyBefore = (Invoke-LabCommand iptables -ArgumentList @('-S', 'FORWARD')).Output -split "`n" | Select-Object -First 1
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            ((Invoke-LabCommand iptables -ArgumentList @('-S', 'FORWARD')).Output -split "`n" | Select-Object -First 1) | Should -Be $policyBefore
        }
    }

    Context 'lets no one in' {
        BeforeAll {
            # The "internet" learns a route to the bridge subnet via the host, and the client runs a server.
            Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'add', '10.0.0.0/24', 'via', $lab.UplinkAddress) | Out-Null
            $inside = Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 9090
        }
        AfterAll {
            Stop-LabListener $inside
            Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'route', 'del', '10.0.0.0/24') -AllowFailure | Out-Null
        }

        It 'a new connection from outside to a server in the namespace fails, while the namespace still gets out' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Test-LabConnection -Namespace $lab.Internet -Address 10.0.0.2 -Port 9090 -TimeoutSeconds 1 | Should -BeNullOrEmpty
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
        }

        It "the lesson's blanket FORWARD rules would have let it in" {
            Set-Forwarding 1
            Set-NamespaceDefaultRoute testnet 10.0.0.1 | Out-Null
            foreach ($rule in @(@('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE'), @('-A', 'FORWARD', '-o', 'br0', '-j', 'ACCEPT'), @('-A', 'FORWARD', '-i', 'br0', '-j', 'ACCEPT'))) {
                Invoke-LabCommand iptables -ArgumentList $rule | Out-Null
            }
            Invoke-LabCommand iptables -ArgumentList @('-P', 'FORWARD', 'DROP') | Out-Null
            Test-LabConnection -Namespace $lab.Internet -Address 10.0.0.2 -Port 9090 | Should -Be '198.51.100.254' -Because 'the client sees the real outside address: nothing stopped the new connection'
        }
    }

    Context 'no residue' {
        It 'the ruleset after 50 enable/disable rounds on 5 bridges equals the one before' {
            $bridges = foreach ($i in 1..$RoundBridges) {
                Add-LabBridge -Name "brr$i" -Address "10.7$i.0.1/24"
                Add-LabClient -Name "r$i" -Bridge "brr$i" -Address "10.7$i.0.2/24"
                "brr$i"
            }
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'br0', '-j', 'ACCEPT') | Out-Null
            $before = Get-LabRuleset
            $calls = 0; $most = 0; $duplicates = 0
            foreach ($round in 1..$Rounds) {
                foreach ($i in 1..$RoundBridges) { Enable-NamespaceNat "r$i" "brr$i" eth0 | Out-Null; $calls++ }
                $now = (Get-LabRuleset) -split "`n"
                $most = [Math]::Max($most, $now.Count)
                $duplicates += $now.Count - @($now | Sort-Object -Unique).Count
                foreach ($i in 1..$RoundBridges) { Disable-NamespaceNat "r$i" "brr$i"; $calls++ }
            }
            $after = Get-LabRuleset
            $residue = @(Compare-Object @($before -split "`n") @($after -split "`n")).Count
            Write-Figure 'enable/disable cycle' "$Rounds rounds x $RoundBridges bridges = $calls calls, at most $most rules, $duplicates duplicates, $residue lines of residue"
            $duplicates | Should -Be 0
            $most | Should -Be (1 + 4 * $RoundBridges)
            $after | Should -Be $before
            foreach ($i in 1..$RoundBridges) {
                Invoke-LabCommand ip -ArgumentList @('netns', 'del', "r$i") | Out-Null
                Invoke-LabCommand ip -ArgumentList @('link', 'del', "brr$i") | Out-Null
            }
        }
    }

    Context 'stops cleanly' {
        BeforeAll {
            $slow = New-ToolWrapper -Tool iptables-restore -Body @'
sleep 60
exec "$REAL" "$@"
'@
        }
        AfterAll { Remove-Item $slow -Recurse -Force }

        It 'Ctrl+C (StopProcessing) during iptables-restore kills it, rolls back forwarding and leaves the ruleset as before' {
            $before = Get-LabState
            $ps = [powershell]::Create()
            $null = $ps.AddScript("`$env:PATH = '${slow}:' + `$env:PATH; Import-Module '$modulePath'; Enable-NamespaceNat testnet br0 eth0")
            $async = $ps.BeginInvoke()
            $deadline = [DateTime]::UtcNow.AddSeconds(20)
            while (-not (Get-Process sleep -ErrorAction Ignore) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            Get-Process sleep -ErrorAction Ignore | Should -Not -BeNullOrEmpty
            $watch = [System.Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $watch.Stop()
            $ps.Dispose()
            Start-Sleep -Milliseconds 200
            Write-Figure 'Ctrl+C during iptables-restore' "stopped in $([int]$watch.Elapsed.TotalMilliseconds) ms, $(@(Get-Process sleep -ErrorAction Ignore).Count) child processes left"
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 5
            Get-Process sleep -ErrorAction Ignore | Should -BeNullOrEmpty
            Get-LabState | Should -Be $before
        }

        It 'a command that hangs past the timeout (NETNSNAT_TIMEOUT_SECONDS) is killed: CommandTimedOut, nothing changed' {
            $savedPath = $env:PATH
            $env:PATH = "${slow}:$savedPath"
            $env:NETNSNAT_TIMEOUT_SECONDS = '1'
            try {
                $e = Assert-FailsWithoutChange { Enable-NamespaceNat testnet br0 eth0 } -ErrorId CommandTimedOut -Category OperationTimeout
                $e.Exception.Message | Should -Match 'iptables-restore'
            }
            finally { $env:PATH = $savedPath; Remove-Item Env:NETNSNAT_TIMEOUT_SECONDS }
            Get-Process sleep -ErrorAction Ignore | Should -BeNullOrEmpty
        }
    }
}

Describe 'docs/reliability.md' {
    It 'names only tests that exist, and the number of bad inputs tried' {
        $doc = Get-Content (Join-Path $PSScriptRoot '../../docs/reliability.md') -Raw
        $tests = foreach ($f in 'Reliability', 'Environment', 'NftRules', 'Chaos', 'Automation') { Get-Content (Join-Path $PSScriptRoot "$f.Tests.ps1") -Raw }
        $tests = $tests -join "`n"
        $rows = $doc -split "`n" | Where-Object { $_ -match '^\| [A-Z]' -and $_ -notmatch '^\| promise' }
        $named = foreach ($row in $rows) { [regex]::Matches(($row -split '\|')[3], '`([^`]+)`') | ForEach-Object { $_.Groups[1].Value } }
        $named.Count | Should -BeGreaterThan 15
        foreach ($name in $named) {
            ($tests.Contains("It '$name'") -or $tests.Contains("It `"$name`"")) | Should -BeTrue -Because "docs/reliability.md names the test '$name'"
        }
        $badInputs = ([regex]::Matches($tests, '@\{ Call = ')).Count
        $doc | Should -Match "bad inputs: $badInputs,"
    }
}
