# Issue 16: scripts, CI and systemd can trust it. Each test runs NetnsNat the way a script does (a fresh pwsh -c or
# -File process, or signals sent to one) and checks its exit code and stdout.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }

    function Invoke-Script {
        <# Runs pwsh -NoProfile -NonInteractive -Command (or -File) as a script would; the module is imported by path. #>
        param([Parameter(Mandatory)][string] $Script, [hashtable] $Environment = @{}, [string[]] $Prefix = @(), [switch] $File, [int] $TimeoutSeconds = 60)
        $text = "Import-Module '$modulePath'`n$Script"
        $argv = [System.Collections.Generic.List[string]]::new()
        foreach ($a in $Prefix) { $argv.Add($a) }
        $argv.Add($pwsh); $argv.Add('-NoProfile'); $argv.Add('-NonInteractive')
        $scriptFile = $null
        if ($File) {
            $scriptFile = "/run/netnsnat-script-$([guid]::NewGuid().ToString('n')).ps1"
            Set-Content -Path $scriptFile -Value $text
            $argv.Add('-File'); $argv.Add($scriptFile)
        }
        else { $argv.Add('-Command'); $argv.Add($text) }
        $started = Start-CapturedProcess -Argv $argv -Environment $Environment
        $p = $started.Process; $out = $started.Output; $err = $started.Error
        try {
            if (-not $p.WaitForExit($TimeoutSeconds * 1000)) { $p.Kill($true); throw "script timed out: $Script" }
            $p.WaitForExit()
        }
        finally { if ($scriptFile) { Remove-Item $scriptFile -ErrorAction Ignore } }
        [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result; Error = $err.Result }
    }

    function Get-Forwarding { [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() }
    function Set-Forwarding([string] $v) { [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "$v`n") }
}

Describe 'Scripts and automation' {
    BeforeAll {
        $lab = New-NetnsNatLab
        Start-LabDns | Out-Null
    }
    AfterAll { Remove-NetnsNatLab }
    BeforeEach {
        Reset-LabFirewall
        Set-Forwarding 0
        Remove-Item /etc/netns/testnet -Recurse -Force -ErrorAction Ignore
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') -AllowFailure | Out-Null
    }

    Context 'health checks never say healthy by mistake' {
        It 'Test-NamespaceNat -Quiet is False when iptables-save fails, and the checks that could not run say why' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $wrap = New-ToolWrapper -Tool iptables-save -Body 'echo "simulated iptables-save failure" >&2; exit 1'
            try {
                $r = Invoke-Script 'if (Test-NamespaceNat testnet -Quiet) { "healthy" } else { "broken"; exit 1 }' -Environment @{ PATH = "${wrap}:$env:PATH" }
                $r.Output.Trim() | Should -Be 'broken' -Because $r.Error
                $r.ExitCode | Should -Be 1
                $j = Invoke-Script 'Test-NamespaceNat testnet | Where-Object Status -EQ Error | Select-Object Check, Status, Detail | ConvertTo-Json' -Environment @{ PATH = "${wrap}:$env:PATH" }
                $errors = $j.Output | ConvertFrom-Json
                $errors.Check | Should -Contain 'Masquerade'
                $errors.Check | Should -Contain 'Forward'
                $errors[0].Detail | Should -Match 'simulated iptables-save failure'
            }
            finally { Remove-Item $wrap -Recurse -Force }
        }

        It 'Test-NamespaceNat -Quiet is False when iptables-save hangs past the timeout' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $wrap = New-ToolWrapper -Tool iptables-save -Body 'sleep 30'
            try {
                $r = Invoke-Script 'Test-NamespaceNat testnet -Quiet' -Environment @{ PATH = "${wrap}:$env:PATH"; NETNSNAT_TIMEOUT_SECONDS = '1' }
                $r.Output.Trim() | Should -Be 'False' -Because $r.Error
            }
            finally { Remove-Item $wrap -Recurse -Force }
        }

        It '-Quiet over a pipeline gives one answer: False when any namespace fails, True when all pass' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $r = Invoke-Script "'testnet', 'nosuchns' | Test-NamespaceNat -Quiet"
            @($r.Output.Trim() -split "`n") | Should -Be @('False')
            $r = Invoke-Script "'testnet', 'testnet' | Test-NamespaceNat -Quiet"
            @($r.Output.Trim() -split "`n") | Should -Be @('True')
        }
    }

    Context 'clean machine-readable output' {
        It 'pwsh -c "Test-NamespaceNat | ConvertTo-Json" > file is valid JSON with Status as names' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $r = Invoke-Script 'Test-NamespaceNat testnet | ConvertTo-Json'
            $r.ExitCode | Should -Be 0
            $checks = $r.Output | ConvertFrom-Json
            $checks.Count | Should -Be 16
            ($checks.Status | Sort-Object -Unique) | Should -Be @('Pass')
            $r.Output | Should -Not -Match 'passed,'
        }

        It 'the summary line is on the information stream, shown with -InformationAction Continue' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            $r = Invoke-Script 'Test-NamespaceNat testnet -InformationAction Continue | Out-Null'
            $r.Output | Should -Match 'Test-NamespaceNat testnet: 16 passed, 0 warnings, 0 failed'
        }

        It 'Enable-NamespaceNat | ConvertTo-Json is valid JSON, and -Debug narrates to the debug stream only' {
            $r = Invoke-Script 'Enable-NamespaceNat testnet br0 eth0 | ConvertTo-Json -Depth 4'
            $r.ExitCode | Should -Be 0
            ($r.Output | ConvertFrom-Json).Namespace | Should -Be 'testnet'
            $d = Invoke-Script '$d = Enable-NamespaceNat testnet br0 eth0 -Debug 5>&1 | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }; "DEBUG RECORDS: $($d.Count)"; $d.Message'
            $d.Output | Should -Match 'DEBUG RECORDS: [1-9]'
            $d.Output | Should -Match 'ruleset lock'
        }
    }

    Context 'exit codes' {
        It 'pwsh -c exits 1 on a bad bridge, and a -File script with $ErrorActionPreference = Stop stops at the error' {
            $r = Invoke-Script 'Enable-NamespaceNat testnet nosuchbr eth0'
            $r.ExitCode | Should -Be 1
            $r.Error | Should -Match 'nosuchbr'
            $f = Invoke-Script "`$ErrorActionPreference = 'Stop'`nEnable-NamespaceNat testnet nosuchbr eth0`n'not reached'" -File
            $f.ExitCode | Should -Be 1
            $f.Output | Should -Not -Match 'not reached'
        }
    }

    Context 'signals' {
        BeforeAll {
            $slow = New-ToolWrapper -Tool iptables-restore -Body @'
sleep 60
exec "$REAL" "$@"
'@
        }
        AfterAll { Remove-Item $slow -Recurse -Force }

        It '<Signal> during iptables-restore rolls back, ends the child and exits <Code>' -ForEach @(
            @{ Signal = 'TERM'; Code = 143 }
            @{ Signal = 'HUP'; Code = 129 }
        ) {
            $before = Get-LabState
            $child = Start-ChildPwsh -Script 'Enable-NamespaceNat testnet br0 eth0' -Environment @{ PATH = "${slow}:$env:PATH" }
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while (-not (Get-Process sleep -ErrorAction Ignore) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            Get-Process sleep -ErrorAction Ignore | Should -Not -BeNullOrEmpty
            Get-Forwarding | Should -Be '1' -Because 'forwarding was turned on before the rules were written'
            Invoke-LabCommand kill -ArgumentList @("-$Signal", "$($child.Process.Id)") | Out-Null
            $r = $child | Wait-ChildPwsh -TimeoutSeconds 30
            $r.ExitCode | Should -Be $Code -Because $r.Error
            Start-Sleep -Milliseconds 200
            Get-Process sleep -ErrorAction Ignore | Should -BeNullOrEmpty
            Get-LabState | Should -Be $before
        }
    }

    Context 'another program writing between the read and the write' {
        It 'the batch carries the generation it was planned at; refused, the call reads and plans again: no duplicate' {
            Invoke-LabCommand iptables -ArgumentList @('-A', 'FORWARD', '-i', 'x0', '-j', 'ACCEPT') | Out-Null
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Disable-NamespaceNat testnet br0
            $script:fired = 0
            [NetnsNat.InternalHooks]::BeforeRuleWrite = {
                if ($script:fired++ -eq 0) {
                    # Another program adds the very MASQUERADE rule NetnsNat is about to add, and a rule on top of FORWARD.
                    Invoke-LabCommand iptables -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
                    Invoke-LabCommand iptables -ArgumentList @('-I', 'FORWARD', '1', '-i', 'x1', '-j', 'ACCEPT') | Out-Null
                }
            }
            try { $verbose = @(Enable-NamespaceNat testnet br0 eth0 -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message) }
            finally { [NetnsNat.InternalHooks]::BeforeRuleWrite = $null }
            $script:fired | Should -Be 2
            $verbose -match 'reading them again' | Should -HaveCount 1
            Get-PostroutingRules | Should -Be @('-A POSTROUTING -s 10.0.0.0/24 -o eth0 -j MASQUERADE')
            @(Get-ForwardRules)[0..2] | ForEach-Object { $_ | Should -Match 'netnsnat' }
            Get-ForwardRules | Should -HaveCount 5
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
        }
    }

    Context 'files a namespace reads' {
        It 'under umask 077, -Dns writes /etc/netns/NAME 0755 and resolv.conf 0644, and a non-root process resolves' {
            $r = Invoke-Script 'Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null' -Prefix @('sh', '-c', 'umask 077; exec "$@"', 'sh')
            $r.ExitCode | Should -Be 0 -Because $r.Error
            [Convert]::ToString([int](Get-Item /etc/netns/testnet).UnixFileMode, 8) | Should -Be '755'
            [Convert]::ToString([int](Get-Item /etc/netns/testnet/resolv.conf).UnixFileMode, 8) | Should -Be '644'
            $lookup = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'getent', 'ahostsv4', 'server.lab.test') -AllowFailure -TimeoutSeconds 15
            $lookup.ExitCode | Should -Be 0 -Because 'nobody in the namespace reads the resolver the file names'
            ($lookup.Output -split '\s+')[0] | Should -Be $lab.ServerAddress
        }

        It 'Test-NamespaceNat fails the Resolver check when only root can read the file' {
            Enable-NamespaceNat testnet br0 eth0 -Dns 203.0.113.53 | Out-Null
            (Get-Item /etc/netns/testnet/resolv.conf).UnixFileMode = 'UserRead, UserWrite'
            $check = Test-NamespaceNat testnet | Where-Object Check -EQ Resolver
            $check.Status | Should -Be 'Fail'
            $check.Detail | Should -Match 'only root can read it'
            $check.Fix | Should -Match 'chmod 0644'
        }
    }

    Context 'the lock' {
        It 'waiting for it is said in -Verbose, bounded by NETNSNAT_TIMEOUT_SECONDS, and the error names the lock' {
            $lock = "/run/netnsnat/netns-$(((Get-Item /proc/self/ns/net).LinkTarget -replace '\D', '')).lock"
            New-Item -ItemType Directory /run/netnsnat -Force | Out-Null
            # Held until the test ends (killed with its sleep, which holds the lock too): a slow child start cannot outlast it.
            $holder = Start-Process -FilePath (Get-Command flock).Source -ArgumentList @($lock, 'sleep', '120') -PassThru
            try {
                Start-Sleep -Milliseconds 300
                $r = Invoke-Script 'Enable-NamespaceNat testnet br0 eth0 -Verbose' -Environment @{ NETNSNAT_TIMEOUT_SECONDS = '1' }
                $r.ExitCode | Should -Be 1
                $r.Output + $r.Error | Should -Match 'waiting up to 1 s'
                $r.Error | Should -Match ([regex]::Escape($lock))
            }
            finally { if (-not $holder.HasExited) { $holder.Kill($true) } }
            Get-Forwarding | Should -Be '0'
        }

        It 'an invalid NETNSNAT_TIMEOUT_SECONDS (<Value>) is a warning, not silence' -ForEach @(@{ Value = 'abc' }, @{ Value = '0' }, @{ Value = '1.5' }) {
            $r = Invoke-Script 'Get-BridgeSubnet br0 | Out-Null' -Environment @{ NETNSNAT_TIMEOUT_SECONDS = $Value }
            $r.ExitCode | Should -Be 0
            ($r.Output + $r.Error) | Should -Match "NETNSNAT_TIMEOUT_SECONDS='$([regex]::Escape($Value))' is not a whole number"
        }

        It 'belongs to one network namespace: a host of its own is not held up by this one''s lock' {
            $lock = "/run/netnsnat/netns-$(((Get-Item /proc/self/ns/net).LinkTarget -replace '\D', '')).lock"
            New-Item -ItemType Directory /run/netnsnat -Force | Out-Null
            $holder = Start-Process -FilePath (Get-Command flock).Source -ArgumentList @($lock, 'sleep', '10') -PassThru
            try {
                Start-Sleep -Milliseconds 300
                $script = "& ip link add eth0 type veth peer name eth1; & ip link set eth0 up; Add-NatMasquerade -Subnet 10.9.0.0/24 -Outbound eth0 | Select-Object -ExpandProperty ChangedRules"
                $r = Invoke-Script $script -Prefix @('unshare', '--net', '--') -Environment @{ NETNSNAT_TIMEOUT_SECONDS = '2' }
                $r.Output.Trim() | Should -Be '1' -Because $r.Error
            }
            finally { if (-not $holder.HasExited) { $holder.Kill() } }
        }
    }

    Context 'smaller things a script meets' {
        It 'works with cron''s PATH (/usr/bin), which lacks the sbin folders where iptables lives' {
            $r = Invoke-Script 'Enable-NamespaceNat testnet br0 eth0 | Select-Object -ExpandProperty Enabled' -Environment @{ PATH = '/usr/bin:/bin' }
            $r.Output.Trim() | Should -Be 'True' -Because $r.Error
        }

        It 'three namespaces on one bridge in one call: the 4 rules written are reported once' {
            foreach ($i in 1..2) { Add-LabClient -Name "trio$i" -Bridge br0 -Address "10.0.0.$(50 + $i)/24" }
            try {
                $r = 'testnet', 'trio1', 'trio2' | Enable-NamespaceNat -Bridge br0 -Outbound eth0
                $r.Rule.ChangedRules | Should -Be @(4, 0, 0)
            }
            finally { foreach ($i in 1..2) { Invoke-LabCommand ip -ArgumentList @('netns', 'del', "trio$i") | Out-Null } }
        }

        It 'ip netns list | Enable-NamespaceNat takes the names as that command prints them ("ns (id: N)")' {
            $listed = @((Invoke-LabCommand ip -ArgumentList @('netns', 'list')).Output.Trim() -split "`n" | Where-Object { $_ -like 'testnet*' })
            $listed | Should -HaveCount 1
            ($listed + 'testnet (id: 77)') | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -OutVariable r | Out-Null
            $r.Namespace | Should -Be @('testnet', 'testnet')
        }
    }
}
