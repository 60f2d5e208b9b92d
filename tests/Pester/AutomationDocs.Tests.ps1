# docs/automation.md, run for real. Every block the page marks (<!-- example: NAME --> before a fence) and every table
# it marks (<!-- table: NAME -->) is read from the page itself and run in the lab the way the page says to run it: a
# fresh pwsh or sh process, with pwsh on PATH and the module found by name as when it is installed for all users. A
# claim of the page that stops being true, or an example that changes without its test, fails here.
BeforeDiscovery {
    $text = Get-Content (Join-Path $PSScriptRoot '../../docs/automation.md') -Raw
    $examples = @{}
    foreach ($m in [regex]::Matches($text, '(?ms)^<!-- example: (?<name>\S+) -->\r?\n```[^\n]*\n(?<body>.*?)^```[ \t]*$')) {
        $examples[$m.Groups['name'].Value] = $m.Groups['body'].Value
    }
    $tables = @{}
    foreach ($m in [regex]::Matches($text, '(?m)^<!-- table: (?<name>\S+) -->\r?\n(?<rows>(?:^\|.*(?:\r?\n|$))+)')) {
        # Rows after the heading and the --- line; cells split on unescaped '|', '\|' read as '|', a cell that is one
        # code span read without its backticks.
        $rows = foreach ($line in @($m.Groups['rows'].Value.Trim() -split '\r?\n' | Select-Object -Skip 2)) {
            $cells = [regex]::Split($line.Trim(), '(?<!\\)\|') | Select-Object -Skip 1 | Select-Object -SkipLast 1
            , @($cells | ForEach-Object { $c = $_.Trim().Replace('\|', '|'); if ($c -match '^`([^`]*)`$') { $Matches[1] } else { $c } })
        }
        $tables[$m.Groups['name'].Value] = @($rows)
    }
    $exitRows = @($tables['exit-codes'] | ForEach-Object { @{ Script = $_[0]; Command = [int]$_[1]; File = [int]$_[2] } })
    $signalRows = @($tables['signals'] | ForEach-Object { @{ Command = $_[0]; Code = [int]$_[1] } })
    $units = @($examples.Keys | Where-Object { $_ -like '/etc/systemd/system/*.service' } | Sort-Object | ForEach-Object { @{ Unit = $_ } })
    $page = @{ Examples = $examples; Tables = $tables }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }

    function Get-Forwarding { [System.IO.File]::ReadAllText('/proc/sys/net/ipv4/ip_forward').Trim() }
    function Set-Forwarding([string] $v) { [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "$v`n") }

    function ConvertTo-Visible([string] $Text) { $Text -replace "`e", '<ESC>' }

    function Start-DocProcess {
        <#
          Starts a program as the page's reader would: in the work folder, pwsh on PATH, NetnsNat and Pester found by
          name, NO_COLOR=1 unless -Color (then NO_COLOR is unset, and TERM as -Environment says).
        #>
        param([Parameter(Mandatory)][string[]] $Argv, [hashtable] $Environment = @{}, [string[]] $Unset = @(), [switch] $Color)
        $all = @{ PATH = "$root/bin:$env:PATH"; PSModulePath = "$root/modules" }
        foreach ($k in $Environment.Keys) { $all[$k] = $Environment[$k] }
        Start-CapturedProcess -Argv $Argv -Environment $all -Unset $Unset -WorkingDirectory $work -Color:$Color
    }

    function Wait-DocProcess {
        <# Waits for a started program: its exit code, both outputs, and all of it shown for a failure message. #>
        param([Parameter(Mandatory, ValueFromPipeline)] $Started, [int] $TimeoutSeconds = 120)
        process {
            $p = $Started.Process
            if (-not $p.WaitForExit($TimeoutSeconds * 1000)) { $p.Kill($true); throw "timed out: $($Started.Argv -join ' ')" }
            $p.WaitForExit()
            $r = [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $Started.Output.Result; Error = $Started.Error.Result; Shown = '' }
            $r.Shown = ConvertTo-Visible "exit code $($r.ExitCode); stdout: $($r.Output); stderr: $($r.Error)"
            $r
        }
    }

    function Invoke-DocProcess {
        param([Parameter(Mandatory)][string[]] $Argv, [hashtable] $Environment = @{}, [string[]] $Unset = @(), [switch] $Color, [int] $TimeoutSeconds = 120)
        Start-DocProcess -Argv $Argv -Environment $Environment -Unset $Unset -Color:$Color | Wait-DocProcess -TimeoutSeconds $TimeoutSeconds
    }

    function Get-DocShellArgv([string] $Command) { @((Get-Command sh -CommandType Application)[0].Source, '-c', (Resolve-DocCommand $Command)) }

    function Resolve-DocCommand([string] $Text) {
        <# A command line of the page, with its install paths pointing at the examples as written out here. #>
        $Text = $Text.Replace('/usr/bin/pwsh', $pwsh)
        foreach ($name in ($Page.Examples.Keys | Where-Object { $_.StartsWith('/') } | Sort-Object Length -Descending)) { $Text = $Text.Replace($name, "$root$name") }
        $Text
    }

    function Invoke-DocShell {
        <# Runs a command line of the page with sh -c (as cron, Ansible's shell and CI runners do). #>
        param([Parameter(Mandatory)][string] $Command, [hashtable] $Environment = @{}, [string[]] $Unset = @(), [switch] $Color, [int] $TimeoutSeconds = 120)
        Invoke-DocProcess -Argv (Get-DocShellArgv $Command) -Environment $Environment -Unset $Unset -Color:$Color -TimeoutSeconds $TimeoutSeconds
    }

    function Start-DocPwsh {
        <# Starts pwsh -NoProfile -NonInteractive -Command TEXT, or -File with TEXT written to a file. #>
        param([Parameter(Mandatory)][string] $Script, [switch] $File, [string[]] $Prefix = @(), [hashtable] $Environment = @{}, [string[]] $Unset = @(), [switch] $Color)
        $argv = @($Prefix) + @($pwsh, '-NoProfile', '-NonInteractive')
        if ($File) {
            $path = Join-Path $work "script-$([guid]::NewGuid().ToString('n').Substring(0, 8)).ps1"
            Set-Content -Path $path -Value $Script
            $argv += @('-File', $path)
        }
        else { $argv += @('-Command', $Script) }
        Start-DocProcess -Argv $argv -Environment $Environment -Unset $Unset -Color:$Color
    }

    function Invoke-DocPwsh {
        param([Parameter(Mandatory)][string] $Script, [switch] $File, [string[]] $Prefix = @(), [hashtable] $Environment = @{}, [string[]] $Unset = @(), [switch] $Color)
        Start-DocPwsh @PSBoundParameters | Wait-DocProcess
    }

    function Split-UnitCommand([string] $Line) {
        <# A systemd command line as systemd splits it: words, double quotes grouping. #>
        @([regex]::Matches($Line, '"([^"]*)"|(\S+)') | ForEach-Object { if ($_.Groups[1].Success) { $_.Groups[1].Value } else { $_.Groups[2].Value } })
    }

    function Get-Unit([string] $Name) {
        <# A unit file of the page as section -> list of (key, value). #>
        $unit = [ordered]@{}
        $section = $null
        foreach ($line in $Page.Examples[$Name] -split '\r?\n') {
            if ($line -match '^\s*([#;]|$)') { continue }
            if ($line -match '^\[(.+)\]$') { $section = $Matches[1]; $unit[$section] = [System.Collections.Generic.List[object]]::new(); continue }
            if ($line -notmatch '^([A-Za-z]+)=(.*)$') { throw "${Name}: not a key=value line: $line" }
            $unit[$section].Add([pscustomobject]@{ Key = $Matches[1]; Value = $Matches[2] })
        }
        $unit
    }

    function Invoke-UnitCommand([string] $Name, [string] $Key) {
        <# Runs a unit's Exec line (pwsh as installed, the scripts as the page writes them) with the unit's Environment=. #>
        $unit = Get-Unit $Name
        $line = @($unit['Service'] | Where-Object Key -EQ $Key)[0].Value
        $environment = @{}
        foreach ($e in @($unit['Service'] | Where-Object Key -EQ 'Environment')) { $k, $v = $e.Value -split '=', 2; $environment[$k] = $v }
        Invoke-DocProcess -Argv (Split-UnitCommand (Resolve-DocCommand $line)) -Environment $environment
    }

    function Get-Binding { @(Get-NamespaceNat -Namespace testnet) }
}

Describe 'docs/automation.md, run in the lab' -ForEach @(@{ Page = $page }) {
    BeforeAll {
        $lab = New-NetnsNatLab
        # The page's files, where its command lines expect them, under a folder of this run's own.
        $root = "/run/netnsnat-docs-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        $work = Join-Path $root 'work'
        New-Item -ItemType Directory $work, "$root/bin", "$root/modules" | Out-Null
        foreach ($name in $Page.Examples.Keys) {
            $path = if ($name.StartsWith('/')) { "$root$name" } else { Join-Path $work $name }
            New-Item -ItemType Directory (Split-Path $path) -Force | Out-Null
            Set-Content -Path $path -Value $Page.Examples[$name] -NoNewline
        }
        # pwsh on PATH; NetnsNat and Pester in a module folder, as installed for all users.
        New-Item -ItemType SymbolicLink -Path "$root/bin/pwsh" -Target $pwsh | Out-Null
        New-Item -ItemType SymbolicLink -Path "$root/modules/NetnsNat" -Target (Resolve-Path $modulePath).Path | Out-Null
        New-Item -ItemType SymbolicLink -Path "$root/modules/Pester" -Target (Get-Module Pester | Select-Object -First 1).ModuleBase | Out-Null
    }
    AfterAll {
        Remove-NetnsNatLab
        Remove-Item $root -Recurse -Force -ErrorAction Ignore
    }
    BeforeEach {
        Reset-LabFirewall
        Set-Forwarding 0
        Invoke-LabCommand ip -ArgumentList @('-n', 'testnet', 'route', 'del', 'default') -AllowFailure | Out-Null
    }

    Context 'the page' {
        It 'marks exactly the examples and tables this file runs' {
            @($Page.Examples.Keys | Sort-Object) | Should -Be @(
                '.gitlab-ci.yml', '/etc/cron.d/netnsnat', '/etc/systemd/system/netnsnat-restore.service', '/etc/systemd/system/netnsnat.service',
                '/usr/local/lib/netnsnat/health.ps1', '/usr/local/lib/netnsnat/netnsnat-restore.ps1', '/usr/local/lib/netnsnat/netnsnat-up.ps1',
                'ansible-task', 'ci/verify-nat.ps1', 'health-one-liner', 'json', 'json-file', 'lock-wait', 'state-files' | Sort-Object)
            @($Page.Tables.Keys | Sort-Object) | Should -Be @('exit-codes', 'json-fields', 'signals')
            $Page.Tables['exit-codes'] | Should -HaveCount 5
            $Page.Tables['signals'] | Should -HaveCount 3
        }
    }

    Context 'exit codes' {
        It '<Script>: <Command> with -Command, <File> with -File' -ForEach $exitRows {
            # Both at once: they are independent, and each pwsh takes seconds to start.
            $started = @{ Command = Start-DocPwsh -Script $Script; File = Start-DocPwsh -Script $Script -File }
            foreach ($mode in 'Command', 'File') {
                $r = $started[$mode] | Wait-DocProcess
                $r.ExitCode | Should -Be (Get-Variable $mode -ValueOnly) -Because "pwsh -$mode gave $($r.Shown)"
                $r.Error | Should -Not -BeNullOrEmpty -Because 'each row has a call that fails and says so on stderr'
                if ($Script -match 'not reached') { $r.Output | Should -Not -Match 'not reached' }
            }
        }

        It 'RootRequired ends the statement, not the script: without Stop a -File script goes on and exits 0' {
            $r = Invoke-DocPwsh -Script "Enable-NamespaceNat testnet br0 eth0`n'after'" -File -Prefix @('setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin')
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Output | Should -Match 'after'
            $r.Error | Should -Match 'needs root'
        }

        It 'the FullyQualifiedErrorId of an error starts with its stable id: InterfaceNotFound, NamespaceNotFound' {
            { Enable-NamespaceNat testnet nosuchbr eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'InterfaceNotFound,*'
            { Enable-NamespaceNat nosuch br0 eth0 -ErrorAction Stop } | Should -Throw -ErrorId 'NamespaceNotFound,*'
        }
    }

    Context 'signals' {
        BeforeAll {
            # iptables-restore hangs, so the signal comes in the middle of the call; the count file says it got there.
            $hang = New-ToolWrapper -Tool iptables-restore -Body @'
touch "$COUNT"
sleep 60
exec "$REAL" "$@"
'@
        }
        AfterAll { Remove-Item $hang -Recurse -Force }

        It '<Command>: exits <Code>, rules, routes and forwarding as before' -ForEach $signalRows {
            $before = Get-LabState
            # The signal must come while iptables-restore runs (it hangs there for a minute): the page's command with 3
            # seconds instead of its 10, which is time enough for pwsh to get there. On a machine so busy that pwsh has
            # not got there when the time runs out, the same command runs again with more time: the duration is not what
            # is claimed.
            foreach ($seconds in 3, 30, 90) {
                Remove-Item "$hang/count" -ErrorAction Ignore
                $line = [regex]::Replace($Command, '(?<=^timeout(?: --\S+)* )\d+', "$seconds")
                $r = Invoke-DocShell $line -Environment @{ PATH = "${hang}:$root/bin:$env:PATH" } -TimeoutSeconds 150
                if (Test-Path "$hang/count") { break }
            }
            Test-Path "$hang/count" | Should -BeTrue -Because 'the signal must have come while iptables-restore ran'
            $r.ExitCode | Should -Be $Code -Because $r.Shown
            Get-LabState | Should -Be $before
            $deadline = [DateTime]::UtcNow.AddSeconds(5)
            while ((Get-Process sleep -ErrorAction Ignore) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Get-Process sleep -ErrorAction Ignore | Should -BeNullOrEmpty -Because 'the hanging child is ended'
        }
    }

    Context 'output streams' {
        It 'json-file: -Verbose goes to stdout, and the file PowerShell writes holds the JSON alone' {
            $r = Invoke-DocShell $Page.Examples['json-file']
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Output | Should -Match '(?m)^VERBOSE: '
            $result = Get-Content (Join-Path $work 'result.json') -Raw | ConvertFrom-Json
            $result.Namespace | Should -Be 'testnet'
            $result.Enabled | Should -BeTrue
        }

        It 'on a terminal the summary is shown, in colour' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $r = Invoke-DocProcess -Argv @('script', '-qec', "$pwsh -NoProfile -NonInteractive -Command 'Test-NamespaceNat testnet'", '/dev/null') -Color -Environment @{ TERM = 'xterm' }
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Output | Should -Match 'Test-NamespaceNat testnet: 16 passed, 0 warnings, 0 failed' -Because $r.Shown
            $r.Output | Should -Match "`e\[[0-9;]*m" -Because 'a terminal gets colour'
        }

        It 'redirected, the summary is not on stdout, but colour is, even without TERM; -InformationAction Continue prints the summary' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $plain = Start-DocPwsh -Script 'Test-NamespaceNat testnet' -Color -Unset TERM
            $info = Start-DocPwsh -Script 'Test-NamespaceNat testnet -InformationAction Continue | Out-Null'
            $r = $plain | Wait-DocProcess
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Output | Should -Match 'NamespaceExists'
            $r.Output | Should -Not -Match 'passed, 0 warnings'
            $r.Output | Should -Match "`e\[[0-9;]*m" -Because 'the page warns that a redirected stdout alone keeps the colour'
            $r = $info | Wait-DocProcess
            $r.Output.Trim() | Should -Be 'Test-NamespaceNat testnet: 16 passed, 0 warnings, 0 failed' -Because $r.Shown
        }

        It 'NO_COLOR=1, and TERM=dumb, give plain text' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $started = @(
                Start-DocPwsh -Script 'Test-NamespaceNat testnet' -Color -Environment @{ TERM = 'xterm'; NO_COLOR = '1' }
                Start-DocPwsh -Script 'Test-NamespaceNat testnet' -Color -Environment @{ TERM = 'dumb' }
            )
            foreach ($r in ($started | Wait-DocProcess)) {
                $r.Output | Should -Match 'NamespaceExists\s+Pass' -Because $r.Shown
                $r.Output | Should -Not -Match "`e" -Because $r.Shown
            }
        }
    }

    Context 'health checks' {
        It 'health-one-liner: exit 0 with NAT in force, 1 with forwarding off' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $r = Invoke-DocShell $Page.Examples['health-one-liner']
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            Set-Forwarding 0
            $r = Invoke-DocShell $Page.Examples['health-one-liner']
            $r.ExitCode | Should -Be 1 -Because $r.Shown
        }

        It '-Quiet: one answer for a pipeline, False for a namespace that does not exist, and a Warn counts as passed' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            @('testnet', 'nosuch' | Test-NamespaceNat -Quiet) | Should -Be @($false)
            @('testnet', 'testnet' | Test-NamespaceNat -Quiet) | Should -Be @($true)
            # A rule of the other backend for the subnet: the BackendMix check warns.
            Invoke-LabCommand iptables-legacy -ArgumentList @('-t', 'nat', '-A', 'POSTROUTING', '-s', '10.0.0.0/24', '-o', 'eth0', '-j', 'MASQUERADE') | Out-Null
            (Test-NamespaceNat testnet 3>$null | Where-Object Check -EQ BackendMix).Status | Should -Be 'Warn'
            Test-NamespaceNat testnet -Quiet 3>$null | Should -BeTrue
        }

        It 'the cron line runs health.ps1 with cron''s PATH and NO_COLOR: exit 0 with NAT in force, nothing on stderr' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $lines = @($Page.Examples['/etc/cron.d/netnsnat'] -split '\r?\n' | Where-Object { $_ -and $_ -notmatch '^\s*#' })
            $environment = @{ PATH = "$root/bin:/usr/bin:/bin" }
            foreach ($assign in ($lines | Where-Object { $_ -match '^\w+=' })) { $k, $v = $assign -split '=', 2; $environment[$k] = $v }
            $jobs = @($lines | Where-Object { $_ -notmatch '^\w+=' })
            $jobs | Should -HaveCount 1
            $fields = $jobs[0] -split '\s+', 7
            $fields[5] | Should -Be 'root'
            $r = Invoke-DocShell $fields[6] -Environment $environment
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Error | Should -BeNullOrEmpty
        }

        It 'health.ps1 (every namespace NetnsNat enabled): exit 1 with forwarding off, the failed checks on stderr' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Set-Forwarding 0
            $r = Invoke-DocShell 'pwsh -NoProfile -NonInteractive -File /usr/local/lib/netnsnat/health.ps1'
            $r.ExitCode | Should -Be 1 -Because $r.Shown
            $r.Error | Should -Match '(?m)^testnet IpForwarding Fail: .* Fix: Enable-IpForwarding'
        }

        It 'health.ps1 -Namespace testnet: exit 1 when the checks could not run (iptables-save fails), Error on stderr' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $broken = New-ToolWrapper -Tool iptables-save -Body 'echo "simulated iptables-save failure" >&2; exit 1'
            try {
                $r = Invoke-DocShell 'pwsh -NoProfile -NonInteractive -File /usr/local/lib/netnsnat/health.ps1 -Namespace testnet' -Environment @{ PATH = "${broken}:$root/bin:$env:PATH" }
                $r.ExitCode | Should -Be 1 -Because $r.Shown
                $r.Error | Should -Match '(?m)^testnet Masquerade Error: Could not check: .*simulated iptables-save failure'
            }
            finally { Remove-Item $broken -Recurse -Force }
        }
    }

    Context 'JSON' {
        It 'json: the fields the page lists, Status as words, each check named with its namespace' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $r = Invoke-DocShell $Page.Examples['json']
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $fields = @{}
            foreach ($row in $Page.Tables['json-fields']) { $fields[$row[0]] = @($row[1] -split ',\s*' | ForEach-Object { $_.Trim('`') } | Sort-Object) }
            $checksText = Get-Content (Join-Path $work 'checks.json') -Raw
            $checks = $checksText | ConvertFrom-Json -NoEnumerate
            $checks.GetType().IsArray | Should -BeTrue
            $checks | Should -HaveCount 16
            @($checks[0].PSObject.Properties.Name | Sort-Object) | Should -Be $fields['Test-NamespaceNat']
            ($checks.Status | Sort-Object -Unique) | Should -Be 'Pass'
            ($checks.Severity | Sort-Object -Unique) | Should -Be 0
            ($checks.Namespace | Sort-Object -Unique) | Should -Be 'testnet'
            $checks.Fix | Where-Object { $_ } | Should -BeNullOrEmpty
            $checksText | Should -Match '"Status": "Pass"'
            $bindingsText = Get-Content (Join-Path $work 'bindings.json') -Raw
            $bindings = $bindingsText | ConvertFrom-Json -NoEnumerate
            $bindings.GetType().IsArray | Should -BeTrue -Because '-AsArray makes one binding an array'
            $bindings | Should -HaveCount 1
            @($bindings[0].PSObject.Properties.Name | Sort-Object) | Should -Be $fields['Get-NamespaceNat']
            $bindings[0].Status | Should -Be 'InForce'
            $bindings[0].InForce | Should -BeTrue
            $bindingsText | Should -Match '"EnabledAt": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"'
        }
    }

    Context 'concurrency and state' {
        BeforeAll {
            $inode = (Get-Item /proc/self/ns/net).LinkTarget -replace '\D', ''
            $lock = "/run/netnsnat/netns-$inode.lock"
            function Start-LockHolder {
                <# flock holding the lock (its sleep inherits it: Stop-LockHolder ends both). #>
                New-Item -ItemType Directory /run/netnsnat -Force | Out-Null
                $holder = Start-Process -FilePath (Get-Command flock).Source -ArgumentList @($lock, 'sleep', '60') -PassThru
                $deadline = [DateTime]::UtcNow.AddSeconds(10)
                while (-not (Test-LockOpenedBy $holder.Id) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
                $holder
            }
            function Stop-LockHolder($Holder) { if (-not $Holder.HasExited) { $Holder.Kill($true); $Holder.WaitForExit() } }
            function Test-LockOpenedBy([int] $ProcessId) {
                <# Whether the process has the lock file open (a NetnsNat call opens it, then waits for it). #>
                foreach ($fd in @(Get-ChildItem "/proc/$ProcessId/fd" -ErrorAction Ignore)) { if ($fd.LinkTarget -eq $lock) { return $true } }
                $false
            }
        }

        It 'state-files: the record and the lock are where the page says, named by the namespace''s inode' {
            $r = Invoke-DocShell $Page.Examples['state-files']
            $r.Error | Should -Match 'No such file' -Because 'nothing was enabled yet, so there is no record'
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $r = Invoke-DocShell $Page.Examples['state-files']
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Error | Should -BeNullOrEmpty
            $r.Output | Should -Match '"testnet"'
            $r.Output | Should -Match "(?m)^lock: $([regex]::Escape($lock))$"
        }

        It 'lock-wait: a second call waits, says so in -Verbose, and goes on when the lock is freed in time' {
            $holder = Start-LockHolder
            try {
                $started = Start-DocProcess -Argv (Get-DocShellArgv $Page.Examples['lock-wait'])
                # Free the lock once the call is waiting for it (its pwsh has the lock file open).
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                $waiting = $false
                while (-not $started.Process.HasExited -and [DateTime]::UtcNow -lt $deadline) {
                    $pids = @(Get-Process pwsh -ErrorAction Ignore | Where-Object Id -NE $PID | ForEach-Object Id)
                    if ($pids | Where-Object { Test-LockOpenedBy $_ }) { $waiting = $true; break }
                    Start-Sleep -Milliseconds 50
                }
                Stop-LockHolder $holder
                $r = $started | Wait-DocProcess
                $waiting | Should -BeTrue -Because "the call waits for the lock: $($r.Shown)"
                $r.ExitCode | Should -Be 0 -Because $r.Shown
                $r.Output | Should -Match ([regex]::Escape("VERBOSE: Another NetnsNat command holds $lock; waiting up to 5 s for it"))
                (Get-Binding).Status | Should -Be 'InForce'
            }
            finally { Stop-LockHolder $holder }
        }

        It 'lock-wait: held too long, the call changes nothing and fails, exit 1, CommandTimedOut (OperationTimeout) naming the lock' {
            $before = Get-LabState
            $holder = Start-LockHolder
            try {
                $r = Invoke-DocShell $Page.Examples['lock-wait']
                $r.ExitCode | Should -Be 1 -Because $r.Shown
                $r.Error | Should -Match ([regex]::Escape("fuser $lock"))
                Get-LabState | Should -Be $before
                $env:NETNSNAT_TIMEOUT_SECONDS = '1'
                try { Enable-NamespaceNat testnet br0 eth0 -ErrorAction Stop; throw 'not refused' }
                catch {
                    $_.FullyQualifiedErrorId | Should -BeLike 'CommandTimedOut,*'
                    $_.CategoryInfo.Category | Should -Be 'OperationTimeout'
                }
                finally { Remove-Item Env:NETNSNAT_TIMEOUT_SECONDS }
            }
            finally { Stop-LockHolder $holder }
        }
    }

    Context 'systemd units' {
        It '<Unit>: a oneshot unit of known directives whose commands run pwsh -NoProfile -NonInteractive on the page''s scripts' -ForEach $units {
            $u = Get-Unit $Unit
            @($u.Keys) | Should -Be @('Unit', 'Service', 'Install')
            $known = @{
                Unit    = 'Description', 'Wants', 'After', 'Requires', 'PartOf', 'ReloadPropagatedFrom'
                Service = 'Type', 'RemainAfterExit', 'Environment', 'ExecStart', 'ExecStop', 'ExecReload'
                Install = 'WantedBy'
            }
            foreach ($section in $u.Keys) { foreach ($e in $u[$section]) { $e.Key | Should -BeIn $known[$section] -Because "[$section] of $Unit" } }
            @($u['Service'] | Where-Object Key -EQ Type).Value | Should -Be 'oneshot'
            @($u['Service'] | Where-Object Key -EQ RemainAfterExit).Value | Should -Be 'yes'
            $exec = @($u['Service'] | Where-Object Key -Like 'Exec*')
            $exec.Key | Should -Contain 'ExecStart'
            foreach ($e in $exec) {
                $e.Value | Should -Match '^/usr/bin/pwsh -NoProfile -NonInteractive -(File|Command) '
                $e.Value | Should -Not -Match '\$' -Because 'systemd would expand $NAME in a command line'
                if ($e.Value -match '-File (\S+)') { $Page.Examples.Keys | Should -Contain $Matches[1] }
            }
        }

        It 'netnsnat.service: ExecStart enables NAT (traffic flows), ExecStop disables it' {
            $r = Invoke-UnitCommand '/etc/systemd/system/netnsnat.service' ExecStart
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            $r.Output | Should -Match 'testnet\s+br0\s+10\.0\.0\.0/24\s+eth0'
            $r.Output | Should -Not -Match "`e" -Because 'the unit sets NO_COLOR=1'
            (Get-Binding).Status | Should -Be 'InForce'
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            $r = Invoke-UnitCommand '/etc/systemd/system/netnsnat.service' ExecStop
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            Get-Binding | Should -BeNullOrEmpty
            Get-LabRuleset | Should -Not -Match 'MASQUERADE|netnsnat'
            Test-LabConnection -Namespace testnet | Should -BeNullOrEmpty
        }

        It 'netnsnat-restore.service: after a firewall flush ExecStart and ExecReload put NAT back; in force, it changes nothing' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            foreach ($key in 'ExecStart', 'ExecReload') {
                Invoke-LabCommand nft -ArgumentList @('flush', 'ruleset') | Out-Null
                (Get-Binding).Status | Should -Be 'RulesMissing'
                $r = Invoke-UnitCommand '/etc/systemd/system/netnsnat-restore.service' $key
                $r.ExitCode | Should -Be 0 -Because $r.Shown
                (Get-Binding).Status | Should -Be 'InForce' -Because "$key ran Restore-NamespaceNat"
                Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            }
            $before = Get-LabState
            $r = Invoke-UnitCommand '/etc/systemd/system/netnsnat-restore.service' ExecStart
            $r.ExitCode | Should -Be 0 -Because $r.Shown
            Get-LabState | Should -Be $before
        }
    }

    Context 'CI' {
        BeforeAll {
            $yaml = $Page.Examples['.gitlab-ci.yml']
            $ciScript = @([regex]::Match($yaml, '(?m)^[ ]+script:[ ]*\n(?<lines>(?:^[ ]+- [^\n]*\n?)+)').Groups['lines'].Value -split '\n' | Where-Object { $_.Trim() } | ForEach-Object { $_.Trim().Substring(2) })
            $junit = [regex]::Match($yaml, '(?m)^\s+junit:\s*(\S+)').Groups[1].Value
            function Invoke-CiJob {
                $report = Join-Path $work $junit
                Remove-Item $report -ErrorAction Ignore
                $code = 0
                foreach ($line in $ciScript) { $r = Invoke-DocShell $line; $code = $r.ExitCode; if ($code -ne 0) { break } }
                [pscustomobject]@{ ExitCode = $code; Run = $r; Report = if (Test-Path $report) { [xml](Get-Content $report -Raw) } }
            }
        }

        It 'the job''s script writes a JUnit report where the job says: 20 tests, 0 failures, exit 0' {
            $ciScript | Should -HaveCount 1
            $junit | Should -Be 'out/netnsnat-verify.xml'
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            $job = Invoke-CiJob
            $job.ExitCode | Should -Be 0 -Because $job.Run.Shown
            $job.Report | Should -Not -BeNullOrEmpty
            $job.Report.testsuites.tests | Should -Be '20'
            $job.Report.testsuites.failures | Should -Be '0'
        }

        It 'with forwarding off: 3 failures (IpForwarding, Probe, ip_forward prints 1), exit 3' {
            Enable-NamespaceNat testnet br0 eth0 | Out-Null
            Set-Forwarding 0
            $job = Invoke-CiJob
            $job.ExitCode | Should -Be 3 -Because $job.Run.Shown
            $job.Report.testsuites.tests | Should -Be '20'
            $job.Report.testsuites.failures | Should -Be '3'
            $failed = @($job.Report.SelectNodes('//testcase[failure]') | ForEach-Object name)
            $failed | Should -HaveCount 3
            $failed -match 'IpForwarding' | Should -HaveCount 1
            $failed -match 'Probe' | Should -HaveCount 1
            $failed -match 'ip_forward prints 1' | Should -HaveCount 1
        }
    }

    Context 'Ansible' {
        It 'the task''s shell command prints changed on the first run and unchanged on the next, exit 0' {
            $yaml = $Page.Examples['ansible-task']
            # The folded scalar (>-) after shell: its lines joined with spaces, as YAML reads them.
            $m = [regex]::Match($yaml, '(?m)^(?<indent>[ ]*)ansible\.builtin\.shell: >-[ ]*\n(?<body>(?:^\k<indent>[ ]+\S.*\n?)+)')
            $m.Success | Should -BeTrue
            $command = (@($m.Groups['body'].Value -split '\n' | Where-Object { $_.Trim() } | ForEach-Object { $_.Trim() })) -join ' '
            $yaml | Should -Match 'changed_when: "''changed'' in nat.stdout_lines"'
            $first = Invoke-DocShell $command
            $first.ExitCode | Should -Be 0 -Because $first.Shown
            @($first.Output.Trim() -split '\r?\n') | Should -Contain 'changed'
            Test-LabConnection -Namespace testnet | Should -Be $lab.UplinkAddress
            $next = Invoke-DocShell $command
            $next.ExitCode | Should -Be 0 -Because $next.Shown
            @($next.Output.Trim() -split '\r?\n') | Should -Contain 'unchanged'
            @($next.Output.Trim() -split '\r?\n') | Should -Not -Contain 'changed'
        }
    }
}
