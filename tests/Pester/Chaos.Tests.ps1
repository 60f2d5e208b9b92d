# Issue 11: several processes at once doing random Enable/Disable/Add/Remove on several bridges, some killed with
# SIGKILL mid-call. Afterwards no rule stands twice, no bridge has half of its rules, and one Enable and Disable per
# bridge bring the ruleset back to what it was before.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Bridges = 4
    $Workers = 5
    $Kills = 5
    $WorkSeconds = 6
    function Get-Worker([int] $Seed) {
        @"
`$rand = [Random]::new($Seed); `$deadline = [DateTime]::UtcNow.AddSeconds($WorkSeconds); `$ops = 0; `$errors = 0
while ([DateTime]::UtcNow -lt `$deadline) {
    `$i = `$rand.Next(1, $($Bridges + 1)); `$b = "brk`$i"; `$ns = "k`$i" + ('a', 'b')[`$rand.Next(2)]; `$e = `$null
    switch (`$rand.Next(5)) {
        0 { Enable-NamespaceNat `$ns `$b eth0 -ErrorAction SilentlyContinue -ErrorVariable e | Out-Null }
        1 { Disable-NamespaceNat `$ns `$b -ErrorAction SilentlyContinue -ErrorVariable e }
        2 { Get-BridgeSubnet `$b | Add-NatMasquerade -Outbound eth0 -ErrorAction SilentlyContinue -ErrorVariable e | Out-Null }
        3 { Get-NatMasquerade -Bridge `$b | Remove-NatMasquerade -Force -ErrorAction SilentlyContinue -ErrorVariable e }
        4 { Remove-NatMasquerade -Subnet "10.8`$i.0.0/24" -Outbound eth0 -Force -ErrorAction SilentlyContinue -ErrorVariable e }
    }
    `$ops++
    # Disabling a namespace NetnsNat has not enabled there is an error by design (NotEnabled): the random calls make many.
    if (`$e -and `$e[0].FullyQualifiedErrorId -notlike 'NotEnabled,*') { `$errors++; [Console]::Error.WriteLine("`$(`$e[0].FullyQualifiedErrorId): `$(`$e[0])") }
}
"`$ops `$errors"
"@
    }
    function Get-BridgeRuleCounts {
        $rules = (Get-LabRuleset) -split "`n"
        foreach ($i in 1..$Bridges) {
            $subnet = "10.8$i.0.0/24"
            [pscustomobject]@{
                Bridge = "brk$i"
                Masquerade = @($rules | Where-Object { $_ -like "*POSTROUTING -s $subnet -o eth0 -j MASQUERADE" }).Count
                Forward = @($rules | Where-Object { $_ -like '-A FORWARD *' -and $_ -like "* $subnet *" -and $_ -like '*netnsnat*' }).Count
            }
        }
    }
}

Describe 'Chaos: concurrent random calls, some killed mid-call' {
    BeforeAll {
        $lab = New-NetnsNatLab
        foreach ($i in 1..$Bridges) {
            Add-LabBridge -Name "brk$i" -Address "10.8$i.0.1/24"
            Add-LabClient -Name "k${i}a" -Bridge "brk$i" -Address "10.8$i.0.2/24"
            Add-LabClient -Name "k${i}b" -Bridge "brk$i" -Address "10.8$i.0.3/24"
        }
        # Rules of others, before NetnsNat: a user's own FORWARD rule and a Docker-like masquerade.
        Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'brk1', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT') | Out-Null
        Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '172.17.0.0/16', '!', '-o', 'docker0', '-j', 'MASQUERADE') | Out-Null
        $before = Get-LabRuleset
    }
    AfterAll { Remove-NetnsNatLab }

    It 'leaves no duplicate, no half set, and one Enable and Disable per bridge bring the ruleset back' {
        $rand = [Random]::new(11)
        $children = [System.Collections.Generic.List[object]]::new()
        $seed = 0
        foreach ($w in 1..$Workers) { $children.Add((Start-ChildPwsh -Script (Get-Worker (++$seed)))) }
        $killed = 0
        # Let the workers import the module and get going, then kill one at a random moment and start another.
        Start-Sleep -Seconds 2
        while ($killed -lt $Kills) {
            Start-Sleep -Milliseconds (300 + $rand.Next(700))
            $alive = @($children | Where-Object { -not $_.Process.HasExited -and -not $_.Killed })
            if (-not $alive) { break }
            $victim = $alive[$rand.Next($alive.Count)]
            $victim.Process.Kill()
            $victim | Add-Member -NotePropertyName Killed -NotePropertyValue $true
            $killed++
            $children.Add((Start-ChildPwsh -Script (Get-Worker (++$seed))))
        }
        $results = foreach ($c in $children) {
            $r = $c | Wait-ChildPwsh -TimeoutSeconds 90
            [pscustomobject]@{ Killed = [bool]($c.PSObject.Properties['Killed']); ExitCode = $r.ExitCode; Output = $r.Output.Trim(); Error = $r.Error.Trim() }
        }
        $finished = @($results | Where-Object { -not $_.Killed })
        $ops = ($finished | ForEach-Object { [int](($_.Output -split ' ')[0]) } | Measure-Object -Sum).Sum
        $errors = ($finished | ForEach-Object { [int](($_.Output -split ' ')[1]) } | Measure-Object -Sum).Sum
        $finished | ForEach-Object { $_.ExitCode | Should -Be 0 -Because $_.Error }
        $errors | Should -Be 0 -Because (($finished.Error | Where-Object { $_ }) -join "`n")

        $rules = (Get-LabRuleset) -split "`n" | Where-Object { $_ }
        $duplicates = $rules.Count - @($rules | Sort-Object -Unique).Count
        $counts = Get-BridgeRuleCounts
        $half = @($counts | Where-Object { -not (($_.Masquerade -eq 0 -and $_.Forward -eq 0) -or ($_.Masquerade -eq 1 -and $_.Forward -eq 3)) })
        # Back to the start: one Enable and Disable per bridge takes away what NetnsNat's bindings added; rules that
        # Add-NatMasquerade wrote with no namespace, or that an Enable found standing, are nobody's binding and stay,
        # so they go the way they came: Remove-NatMasquerade.
        foreach ($i in 1..$Bridges) {
            Enable-NamespaceNat "k${i}a" "brk$i" eth0 | Out-Null
            Test-LabConnection -Namespace "k${i}a" | Should -Be $lab.UplinkAddress
            Disable-NamespaceNat "k${i}a" "brk$i"
            Disable-NamespaceNat "k${i}b" "brk$i" -ErrorAction SilentlyContinue
            Get-NatMasquerade -Bridge "brk$i" | Remove-NatMasquerade
        }
        Get-NamespaceNat | Should -BeNullOrEmpty -Because 'every binding was disabled'
        $after = Get-LabRuleset
        Write-Figure 'chaos: processes, killed mid-call, calls finished' "$($results.Count) processes, $killed killed with SIGKILL, $ops calls by the others, $errors errors, $duplicates duplicate rules, $($half.Count) half sets"
        $duplicates | Should -Be 0
        $half | Should -BeNullOrEmpty
        $after | Should -Be $before
    }
}
