# Issue 12, many hosts: NetnsNat driven over PowerShell SSH remoting, against two lab hosts with an sshd each.
#
#   client        the sandbox's own namespace, where this pwsh runs: 198.51.100.1 on rnet0, the "provider network"
#   rem-inet      the "internet" on rnet0: 198.51.100.254, and the server 203.0.113.10:8080 on its lo. It has no route
#                 to 10.0.0.0/24: a client's connection gets a reply only through its host's NAT.
#   h1, h2        two hosts, each a namespace with its own sshd (on 198.51.100.11 / .12, its uplink eth0, default route
#                 via .254), a bridge br0 10.0.0.1/24 and a client namespace (h1-testnet / h2-testnet, 10.0.0.2 on br0).
#                 The cmdlets run in the remote pwsh that sshd starts there: in that host's namespace, not the client's.
#
# The client key, the host keys, known_hosts, the sshd configs and the remote HOME live in one folder under /run (the
# sandbox's tmpfs), removed in AfterAll; ~/.ssh and /etc/ssh are never read for keys or written. Each sshd is stopped by
# its PID; the last Describe checks that no sshd and no key is left. (If the run dies, the sandbox's PID namespace and
# tmpfs take them away.)
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    # What ~/.ssh held before (usually nothing): the test must leave it exactly so.
    $script:UserSshDir = Join-Path ([Environment]::GetFolderPath('UserProfile')) '.ssh'
    $script:UserSshBefore = if (Test-Path $script:UserSshDir) { @(Get-ChildItem -Force $script:UserSshDir | ForEach-Object { "$($_.Name) $($_.Length) $($_.LastWriteTimeUtc.Ticks)" }) -join "`n" } else { '(none)' }
    $script:KeyDirPattern = 'netnsnat-remoting-*'
    $script:SshdLeftAfterKill = @('(the remoting tests did not get to stop their sshd)')

    function labip { Invoke-LabCommand ip -ArgumentList $args | Out-Null }
    # A program's full path (sshd re-executes itself by it; the subsystem line needs it): sshd, ssh, setpriv, ip.
    function Get-ToolPath([string] $Name) { (Get-Command $Name -CommandType Application -ErrorAction Stop)[0].Source }

    function Get-SshdProcess {
        <# Every sshd process in the sandbox (its PID namespace shows only the run's own processes). #>
        foreach ($d in [System.IO.Directory]::GetDirectories('/proc')) {
            if ((Split-Path -Leaf $d) -notmatch '^\d+$') { continue }
            $exe = try { (Get-Item (Join-Path $d 'exe') -ErrorAction Stop).LinkTarget } catch { $null }
            if ($exe -and (Split-Path -Leaf $exe) -eq 'sshd') { [int](Split-Path -Leaf $d) }
        }
    }

    function Get-RemoteShellProcess {
        <# The pwsh processes sshd started as the powershell subsystem (-sshs) and still running. #>
        foreach ($d in [System.IO.Directory]::GetDirectories('/proc')) {
            if ((Split-Path -Leaf $d) -notmatch '^\d+$') { continue }
            $cmd = try { [System.IO.File]::ReadAllText((Join-Path $d 'cmdline')) } catch { '' }
            if ($cmd -match "pwsh`0-sshs") { [int](Split-Path -Leaf $d) }
        }
    }
}

Describe 'NetnsNat over SSH remoting: two lab hosts, each with its own sshd' {
    BeforeAll {
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        Remove-NetnsNatLab
        # The provider network, the internet and its server.
        Add-LabBridge -Name rnet0 -Address 198.51.100.1/24
        Add-LabClient -Name rem-inet -Bridge rnet0 -Address 198.51.100.254/24
        labip -n rem-inet addr add 203.0.113.10/32 dev lo
        Start-LabListener -Namespace rem-inet -Address 203.0.113.10 -Port 8080 | Out-Null

        # Keys and configs: one folder on the sandbox's tmpfs, 0700.
        $KeyDir = Join-Path '/run' "netnsnat-remoting-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        New-Item -ItemType Directory $KeyDir | Out-Null
        Invoke-LabCommand chmod -ArgumentList @('700', $KeyDir) | Out-Null
        New-Item -ItemType Directory (Join-Path $KeyDir 'home') | Out-Null
        $ClientKey = Join-Path $KeyDir 'id_ed25519'
        Invoke-LabCommand ssh-keygen -ArgumentList @('-q', '-t', 'ed25519', '-N', '', '-C', 'netnsnat-remoting-test', '-f', $ClientKey) | Out-Null
        Copy-Item "$ClientKey.pub" (Join-Path $KeyDir 'authorized_keys')
        $KnownHosts = Join-Path $KeyDir 'known_hosts'
        # sshd wants its privilege separation directory; /run is the sandbox's tmpfs.
        $CreatedPrivsepDir = -not (Test-Path /run/sshd)
        if ($CreatedPrivsepDir) { New-Item -ItemType Directory /run/sshd | Out-Null }

        # The pwsh sshd starts for the powershell subsystem: this one (under `dotnet pwsh` the process is dotnet).
        $Pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }
        $Hosts = [ordered]@{ h1 = '198.51.100.11'; h2 = '198.51.100.12' }
        # Each host's client namespace, by the address sshd answered on ($env:SSH_CONNECTION on the remote side).
        $Clients = @{ '198.51.100.11' = 'h1-testnet'; '198.51.100.12' = 'h2-testnet' }
        $Sshd = [System.Collections.Generic.List[object]]::new()
        foreach ($name in $Hosts.Keys) {
            $address = $Hosts[$name]
            labip netns add $name
            labip link add "u$name" type veth peer name eth0 netns $name
            labip link set "u$name" master rnet0
            labip link set "u$name" up
            labip -n $name addr add "$address/24" dev eth0
            labip -n $name link set eth0 up
            labip -n $name link set lo up
            labip -n $name route add default via 198.51.100.254
            labip -n $name link add br0 address 02:00:5e:00:00:01 type bridge
            labip -n $name addr add 10.0.0.1/24 dev br0
            labip -n $name link set br0 up
            $client = "$name-testnet"
            labip netns add $client
            labip -n $name link add vtestnet type veth peer name veth1 netns $client
            labip -n $name link set vtestnet master br0
            labip -n $name link set vtestnet up
            labip -n $client addr add 10.0.0.2/24 dev veth1
            labip -n $client link set veth1 up
            labip -n $client link set lo up

            $hostKey = Join-Path $KeyDir "ssh_host_ed25519_key_$name"
            Invoke-LabCommand ssh-keygen -ArgumentList @('-q', '-t', 'ed25519', '-N', '', '-C', $name, '-f', $hostKey) | Out-Null
            Add-Content $KnownHosts ("$address " + ((Get-Content "$hostKey.pub" -Raw).Trim() -replace ' \S+$', ''))
            $config = Join-Path $KeyDir "sshd_config_$name"
            # HOME: the remote pwsh keeps its caches there, not in root's home; and bash, which sshd runs the subsystem
            # through, finds no ~/.bashrc there (this machine's takes seconds, once per session).
            # powershell-noadmin: the same pwsh without CAP_NET_ADMIN, as a user who is not root would have it.
            @(
                "ListenAddress $address"
                'PidFile none'
                "HostKey $hostKey"
                'PermitRootLogin prohibit-password'
                'AuthenticationMethods publickey'
                'PasswordAuthentication no'
                'KbdInteractiveAuthentication no'
                'UsePAM no'
                "AuthorizedKeysFile $(Join-Path $KeyDir 'authorized_keys')"
                "SetEnv HOME=$(Join-Path $KeyDir 'home')"
                "Subsystem powershell $Pwsh -sshs -NoProfile"
                "Subsystem powershell-noadmin $(Get-ToolPath setpriv) --bounding-set=-net_admin --inh-caps=-net_admin -- $Pwsh -sshs -NoProfile"
            ) | Set-Content $config
            $psi = [System.Diagnostics.ProcessStartInfo]::new((Get-ToolPath ip))
            $log = Join-Path $KeyDir "sshd_$name.log"
            foreach ($a in @('netns', 'exec', $name, (Get-ToolPath sshd), '-D', '-f', $config, '-h', $hostKey, '-E', $log)) { $psi.ArgumentList.Add($a) }
            $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
            $process = [System.Diagnostics.Process]::Start($psi)
            $Sshd.Add([pscustomobject]@{ Name = $name; Address = $address; Process = $process; Log = $log })
        }
        foreach ($s in $Sshd) {
            $deadline = [DateTime]::UtcNow.AddSeconds(10)
            while ($true) {
                if ($s.Process.HasExited) { throw "sshd on $($s.Name) exited ($($s.Process.ExitCode)): $($s.Process.StandardError.ReadToEnd()) $(Get-Content $s.Log -Raw -ErrorAction Ignore)" }
                $ss = Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $s.Name, 'ss', '-ltn') -AllowFailure
                if ($ss.Output -match [regex]::Escape("$($s.Address):22")) { break }
                if ([DateTime]::UtcNow -gt $deadline) { throw "sshd on $($s.Name) did not listen within 10 s: $(Get-Content $s.Log -Raw -ErrorAction Ignore)" }
                Start-Sleep -Milliseconds 50
            }
        }
        Write-Host "  lab with two sshd hosts built in $($sw.ElapsedMilliseconds) ms"

        # pwsh runs the ssh client it finds on PATH; these options go to it as -o.
        Get-ToolPath ssh | Out-Null
        $SshOptions = @{ StrictHostKeyChecking = 'yes'; UserKnownHostsFile = $KnownHosts; GlobalKnownHostsFile = '/dev/null'; BatchMode = 'yes'; LogLevel = 'ERROR' }
        $Ssh = @{ UserName = 'root'; KeyFilePath = $ClientKey; Options = $SshOptions }
        $sw.Restart()
        try { $Sessions = New-PSSession -HostName @($Hosts.Values) @Ssh -ConnectingTimeout 30000 -ErrorAction Stop }
        catch { throw "New-PSSession failed: $_`nsshd logs:`n$(($Sshd | ForEach-Object { "$($_.Name): $(Get-Content $_.Log -Raw -ErrorAction Ignore)" }) -join "`n")" }
        Write-Figure 'remoting: New-PSSession to 2 lab hosts over SSH (ms)' $sw.ElapsedMilliseconds
        $S1 = $Sessions | Where-Object ComputerName -eq $Hosts.h1
        $S2 = $Sessions | Where-Object ComputerName -eq $Hosts.h2
        Invoke-Command -Session $Sessions { Import-Module $using:modulePath } -ErrorAction Stop

        function Get-HostState {
            <# What a NetnsNat call may change on a lab host: its rules, its forwarding sysctl, its client's routes, the state store. #>
            param([Parameter(Mandatory)][string] $Name)
            $lines = [System.Collections.Generic.List[string]]::new()
            $lines.AddRange([string[]]@(ConvertTo-LabRuleset (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Name, 'iptables-save')).Output))
            $lines.Add('ip_forward=' + (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Name, 'head', '-c', '1', '/proc/sys/net/ipv4/ip_forward')).Output)
            $lines.AddRange([string[]]@((Invoke-LabCommand ip -ArgumentList @('-n', "$Name-testnet", 'route')).Output -split "`n" | Where-Object { $_ }))
            foreach ($f in @(Get-ChildItem /var/lib/netnsnat -File -ErrorAction Ignore)) { $lines.Add("$($f.Name): $(Get-Content $f.FullName -Raw)") }
            $lines -join "`n"
        }
        function ConvertTo-PlainText([Parameter(ValueFromPipeline)] $InputObject) {
            begin { $all = [System.Collections.Generic.List[object]]::new() }
            process { $all.Add($InputObject) }
            end { ($all | Out-String -Width 200) -replace "`e\[[0-9;]*m", '' }
        }
    }

    AfterAll {
        # Sessions first: their remote pwsh and sshd children end when the connection closes.
        if ($Sessions) { $Sessions | Remove-PSSession -ErrorAction Continue }
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while ((Get-RemoteShellProcess) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        foreach ($s in @($Sshd)) {
            if ($s -and -not $s.Process.HasExited) { $s.Process.Kill($true); $s.Process.WaitForExit(5000) | Out-Null }
        }
        # Before the lab's teardown, which kills whatever still runs in its namespaces: the check below must see
        # whether stopping each sshd by its PID was enough.
        $script:SshdLeftAfterKill = @(Get-SshdProcess)
        if ($KeyDir -and (Test-Path $KeyDir)) { Remove-Item $KeyDir -Recurse -Force }
        if ($CreatedPrivsepDir) { Remove-Item /run/sshd -Recurse -Force -ErrorAction Ignore }
        Remove-NetnsNatLab
    }

    It 'opens a session on each host over SSH, and the commands run in that host''s network namespace' {
        $Sessions | Should -HaveCount 2
        $Sessions.State | Should -Be @('Opened', 'Opened')
        $Sessions.Transport | Should -Be @('SSH', 'SSH')
        $here = (Get-Item /proc/self/ns/net).LinkTarget
        $there = Invoke-Command -Session $S1, $S2 { [pscustomobject]@{ NetNs = (Get-Item /proc/self/ns/net).LinkTarget; Version = "$((Get-Module NetnsNat).Version)"; User = [Environment]::UserName } }
        $there.NetNs | Sort-Object -Unique | Should -HaveCount 2
        $there.NetNs | Should -Not -Contain $here
        $there.Version | Should -Be @("$((Get-Module NetnsNat).Version)", "$((Get-Module NetnsNat).Version)")
        $there.User | Should -Be @('root', 'root')
        # br0 exists on the hosts only.
        (Invoke-Command -Session $S1 { Get-BridgeSubnet br0 }).Subnet | Should -Be '10.0.0.0/24'
        Get-BridgeSubnet br0 -ErrorAction SilentlyContinue -ErrorVariable local | Should -BeNullOrEmpty
        $local | Should -Not -BeNullOrEmpty
    }

    It 'Invoke-Command on both hosts enables NAT on each, and each client reaches the server through its own host' {
        Test-LabConnection -Namespace h1-testnet -TimeoutSeconds 1 | Should -BeNullOrEmpty -Because 'no NAT and no route yet'
        $script:Enabled = Invoke-Command -Session $Sessions {
            Enable-NamespaceNat -Namespace ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] -Bridge br0 -Outbound eth0
        } -ErrorAction Stop
        $script:Enabled | Should -HaveCount 2
        $script:Enabled.PSComputerName | Sort-Object | Should -Be @($Hosts.h1, $Hosts.h2)
        foreach ($r in $script:Enabled) { $r.Namespace | Should -Be $Clients[$r.PSComputerName] }
        # The server sees each host's own uplink address: each client went out through its own host's NAT.
        Test-LabConnection -Namespace h1-testnet | Should -Be $Hosts.h1
        Test-LabConnection -Namespace h2-testnet | Should -Be $Hosts.h2
    }

    It 'the results come back deserialized, with their nested objects, and shown with the module''s view' {
        $r = $script:Enabled | Where-Object PSComputerName -eq $Hosts.h1
        $r.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NamespaceNatResult'
        $r.Enabled | Should -BeTrue
        $r.Forwarding | Should -BeTrue
        $r.Subnet | Should -Be '10.0.0.0/24'
        $r.Gateway | Should -Be '10.0.0.1'
        $r.Outbound | Should -Be 'eth0'
        # Nested objects stay objects (NetnsNat.Types.ps1xml: SerializationDepth 3), not their ToString() text,
        # down to each family's rule.
        $r.Rule.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NatMasqueradeRule'
        @($r.Families) | Should -HaveCount 1
        $r.Families[0].AddressFamily | Should -Be 'IPv4'
        $r.Families[0].Rule.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NatMasqueradeRule'
        @($r.Families[0].Rule.Rules) | Should -HaveCount 4
        @($r.Rule.Rules) | Should -HaveCount 4
        @($r.Rule.Rules) | Should -Contain '-t nat -A POSTROUTING -s 10.0.0.0/24 -o eth0 -j MASQUERADE'
        $r.Route.Gateway | Should -Be '10.0.0.1'
        $r.ForwardingState.Enabled | Should -BeTrue
        # Default formatting picks the module's table view (a dozen properties would otherwise make a list), with the
        # host each row came from.
        $text = $script:Enabled | ConvertTo-PlainText
        $text | Should -Match 'Namespace\s+Bridge\s+Subnet\s+Outbound\s+Gateway\s+Forwarding\s+Enabled\s+PSComputerName'
        $text | Should -Match 'h1-testnet\s+br0\s+10\.0\.0\.0/24\s+eth0\s+10\.0\.0\.1\s+True\s+True\s+198\.51\.100\.11'
        $text | Should -Match 'h2-testnet\s+br0\s+10\.0\.0\.0/24\s+eth0\s+10\.0\.0\.1\s+True\s+True\s+198\.51\.100\.12'
    }

    It 'Get-NamespaceNat on each host lists that host''s binding only (one store folder, a file per host)' {
        $b = Invoke-Command -Session $Sessions { Get-NamespaceNat } -ErrorAction Stop
        $b | Should -HaveCount 2
        foreach ($x in $b) {
            $x.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NamespaceNatBinding'
            $x.Namespace | Should -Be $Clients[$x.PSComputerName]
            $x.Status | Should -Be 'InForce'
            $x.InForce | Should -BeTrue
        }
        ($b | ConvertTo-PlainText) | Should -Match 'Namespace\s+Bridge\s+Subnet\s+Outbound\s+Gateway\s+Backend\s+Status\s+PSComputerName'
    }

    It 'Test-NamespaceNat -Quiet answers a bool from each host; the broken host says False and its checks say why' {
        $q = Invoke-Command -Session $Sessions { Test-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] -Quiet }
        $q | Should -HaveCount 2
        foreach ($x in $q) { $x | Should -BeOfType [bool]; $x | Should -BeTrue }
        labip -n h2-testnet route del default
        $q = Invoke-Command -Session $Sessions { Test-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] -Quiet }
        ($q | Where-Object PSComputerName -eq $Hosts.h1) | Should -BeTrue
        ($q | Where-Object PSComputerName -eq $Hosts.h2) | Should -BeFalse
        ($q | Where-Object PSComputerName -eq $Hosts.h2) | Should -BeOfType [bool]
        $bad = Invoke-Command -Session $Sessions { Test-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] } | Where-Object Status -eq 'Fail'
        $bad | Should -Not -BeNullOrEmpty
        $bad.PSComputerName | Sort-Object -Unique | Should -Be $Hosts.h2
        $route = $bad | Where-Object Check -eq 'DefaultRoute'
        $route.PSObject.TypeNames[0] | Should -Be 'Deserialized.NetnsNat.NatCheckResult'
        $route.Status | Should -Be 'Fail'
        $route.Namespace | Should -Be 'h2-testnet' -Because 'results from many hosts and namespaces say which namespace each is about'
        $route.Fix | Should -Not -BeNullOrEmpty
    }

    It 'Restore-NamespaceNat on every host puts back what a firewall reload (and a lost route) took away' {
        foreach ($name in $Hosts.Keys) { Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $name, 'nft', 'flush', 'ruleset') | Out-Null }
        Test-LabConnection -Namespace h1-testnet -TimeoutSeconds 1 | Should -BeNullOrEmpty
        $r = Invoke-Command -Session $Sessions { Restore-NamespaceNat } -ErrorAction Stop
        $r.PSComputerName | Sort-Object | Should -Be @($Hosts.h1, $Hosts.h2)
        Test-LabConnection -Namespace h1-testnet | Should -Be $Hosts.h1
        Test-LabConnection -Namespace h2-testnet | Should -Be $Hosts.h2
    }

    It 'a client pwsh: Invoke-Command -HostName h1,h2 shows each host''s bindings in the module''s view and its -WhatIf lines; nothing changes' {
        # A fresh pwsh, as a user at a terminal would run it (the module imported there for its views): what it prints
        # is what the user sees. The "What if:" lines come from the remote hosts through its console host.
        $before = @{ h1 = Get-HostState h1; h2 = Get-HostState h2 }
        $script = @"
`$options = @{ StrictHostKeyChecking = 'yes'; UserKnownHostsFile = '$KnownHosts'; GlobalKnownHostsFile = '/dev/null'; BatchMode = 'yes'; LogLevel = 'ERROR' }
`$clients = @{ '$($Hosts.h1)' = 'h1-testnet'; '$($Hosts.h2)' = 'h2-testnet' }
Invoke-Command -HostName $($Hosts.h1), $($Hosts.h2) -UserName root -KeyFilePath '$ClientKey' -Options `$options {
    Import-Module '$modulePath'
    Get-NamespaceNat
    Disable-NamespaceNat -Namespace (`$using:clients)[(`$env:SSH_CONNECTION -split ' ')[2]] -Bridge br0 -WhatIf
} | Sort-Object PSComputerName | Out-String -Width 200
"@
        $r = Invoke-ChildPwsh -Script $script -TimeoutSeconds 90
        $r.ExitCode | Should -Be 0 -Because $r.Error
        $text = $r.Output -replace "`e\[[0-9;]*m", ''
        $text | Should -Match 'Namespace\s+Bridge\s+Subnet\s+Outbound\s+Gateway\s+Backend\s+Status\s+PSComputerName'
        $text | Should -Match 'h1-testnet\s+br0\s+10\.0\.0\.0/24\s+eth0\s+10\.0\.0\.1\s+iptables-nft\s+InForce\s+198\.51\.100\.11'
        $text | Should -Match 'h2-testnet\s+br0\s+10\.0\.0\.0/24\s+eth0\s+10\.0\.0\.1\s+iptables-nft\s+InForce\s+198\.51\.100\.12'
        $whatIf = @($text -split '\r?\n' | Where-Object { $_ -like 'What if:*' })
        @($whatIf | Where-Object { $_ -eq 'What if: Performing the operation "iptables -t nat -D POSTROUTING -s 10.0.0.0/24 -o eth0 -j MASQUERADE" on target "bridge br0".' }) | Should -HaveCount 2 -Because $text
        $whatIf | Should -Contain 'What if: Performing the operation "ip -n h1-testnet route del default" on target "namespace h1-testnet".'
        $whatIf | Should -Contain 'What if: Performing the operation "ip -n h2-testnet route del default" on target "namespace h2-testnet".'
        Get-HostState h1 | Should -Be $before.h1
        Get-HostState h2 | Should -Be $before.h2
        Test-LabConnection -Namespace h1-testnet | Should -Be $Hosts.h1
        Test-LabConnection -Namespace h2-testnet | Should -Be $Hosts.h2
    }

    It '-Confirm over remoting asks the client''s host: a non-interactive client gets an error, and nothing changes' {
        if (-not ([Environment]::GetCommandLineArgs() | Where-Object { $_ -match '^-noni' })) {
            Set-ItResult -Skipped -Because 'this pwsh is interactive: the question would wait for an answer (build.ps1 Test runs Pester with -NonInteractive)'
            return
        }
        $before = Get-HostState h1
        $out = Invoke-Command -Session $S1 { Disable-NamespaceNat h1-testnet br0 -Confirm } -ErrorVariable e -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $e | Should -HaveCount 1
        $e[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
        $e[0].Exception.Message | Should -Match 'NonInteractive'
        $e[0].OriginInfo.PSComputerName | Should -Be $Hosts.h1
        Get-HostState h1 | Should -Be $before
    }

    It 'an error on the hosts comes back as each host''s ErrorRecord, with its id, category and origin; nothing changes' {
        $before = @{ h1 = Get-HostState h1; h2 = Get-HostState h2 }
        $out = Invoke-Command -Session $Sessions { Enable-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] -Bridge br9 } -ErrorVariable e -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $e | Should -HaveCount 2
        $e.OriginInfo.PSComputerName | Sort-Object | Should -Be @($Hosts.h1, $Hosts.h2)
        foreach ($x in $e) {
            $x | Should -BeOfType [System.Management.Automation.ErrorRecord]
            $x.FullyQualifiedErrorId | Should -Be 'InterfaceNotFound,NetnsNat.Commands.EnableNamespaceNatCommand'
            $x.CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $x.Exception.Message | Should -Match 'br9'
        }
        $out = Invoke-Command -Session $Sessions { Enable-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] -Bridge br0 -Dns 127.0.0.53 } -ErrorVariable e -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $e | Should -HaveCount 2
        $e.FullyQualifiedErrorId | Sort-Object -Unique | Should -Be 'InvalidDns,NetnsNat.Commands.EnableNamespaceNatCommand'
        $e.CategoryInfo.Category | Sort-Object -Unique | Should -Be 'InvalidArgument'
        Get-HostState h1 | Should -Be $before.h1
        Get-HostState h2 | Should -Be $before.h2
    }

    It 'with -ErrorAction Stop a remote error ends the call on the client, with the same id' {
        { Invoke-Command -Session $S2 { Enable-NamespaceNat h2-testnet -Bridge br9 } -ErrorAction Stop } |
            Should -Throw -ErrorId 'InterfaceNotFound,NetnsNat.Commands.EnableNamespaceNatCommand'
    }

    It 'a remote pwsh without CAP_NET_ADMIN (not root) stops with RootRequired (PermissionDenied), nothing changed' {
        $before = Get-HostState h1
        # The remote pwsh once died at start in a full run (an unhandled error of pwsh's own, before any module was
        # loaded): a second try, with the first failure and the sshd log written out so that it can be looked into.
        $na = $null
        foreach ($attempt in 1, 2) {
            try { $na = New-PSSession -HostName $Hosts.h1 @Ssh -Subsystem powershell-noadmin -ConnectingTimeout 30000 -ErrorAction Stop; break }
            catch [System.Management.Automation.Remoting.PSRemotingTransportException] {
                Write-Host "New-PSSession -Subsystem powershell-noadmin, attempt ${attempt}: $($_.Exception)`nsshd log: $(Get-Content ($Sshd | Where-Object Name -EQ h1).Log -Raw -ErrorAction Ignore)"
                if ($attempt -eq 2) { throw }
            }
        }
        try {
            Invoke-Command -Session $na { Import-Module $using:modulePath }
            $out = Invoke-Command -Session $na { Enable-NamespaceNat h1-testnet -Bridge br0 -Outbound eth0 } -ErrorVariable e -ErrorAction SilentlyContinue
        }
        finally { Remove-PSSession $na }
        $out | Should -BeNullOrEmpty
        $e | Should -HaveCount 1
        $e[0].FullyQualifiedErrorId | Should -Be 'RootRequired,NetnsNat.Commands.EnableNamespaceNatCommand'
        $e[0].CategoryInfo.Category | Should -Be 'PermissionDenied'
        Get-HostState h1 | Should -Be $before
    }

    It 'an error on one host leaves the other''s work done: Disable on both when one was already disabled' {
        Invoke-Command -Session $S2 { Disable-NamespaceNat h2-testnet br0 } -ErrorAction Stop
        $out = Invoke-Command -Session $Sessions { Disable-NamespaceNat ($using:Clients)[($env:SSH_CONNECTION -split ' ')[2]] br0 -PassThru } -ErrorVariable e -ErrorAction SilentlyContinue
        $out | Should -HaveCount 1
        $out.PSComputerName | Should -Be $Hosts.h1
        $out.Enabled | Should -BeFalse
        $e | Should -HaveCount 1
        $e[0].OriginInfo.PSComputerName | Should -Be $Hosts.h2
        $e[0].FullyQualifiedErrorId | Should -Be 'NotEnabled,NetnsNat.Commands.DisableNamespaceNatCommand'
        $e[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Test-LabConnection -Namespace h1-testnet -TimeoutSeconds 1 | Should -BeNullOrEmpty
        (Invoke-Command -Session $Sessions { Get-NamespaceNat }) | Should -BeNullOrEmpty
    }

    It 'WinRM remoting (-ComputerName) is not there on Linux: SSH is the transport' {
        { Invoke-Command -ComputerName $Hosts.h1 { 1 } -ErrorAction Stop } | Should -Throw -ErrorId 'System.Management.Automation.Remoting.PSRemotingDataStructureException,Microsoft.PowerShell.Commands.InvokeCommandCommand' -ExpectedMessage '*requires WSMan*'
    }
}

Describe 'After the remoting tests' {
    It 'no sshd and no remote pwsh is left running, no key or config is left, and ~/.ssh is as it was' {
        $script:SshdLeftAfterKill | Should -BeNullOrEmpty -Because 'each sshd the test started is stopped by its PID'
        @(Get-SshdProcess) | Should -BeNullOrEmpty
        @(Get-RemoteShellProcess) | Should -BeNullOrEmpty
        @(Get-ChildItem /run -Filter $KeyDirPattern -Force) | Should -BeNullOrEmpty
        $now = if (Test-Path $UserSshDir) { @(Get-ChildItem -Force $UserSshDir | ForEach-Object { "$($_.Name) $($_.Length) $($_.LastWriteTimeUtc.Ticks)" }) -join "`n" } else { '(none)' }
        $now | Should -Be $UserSshBefore
    }
}
