BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
}

Describe 'Running without the privileges or tools it needs' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }

    Context 'not root' {
        It '<Command> as root without CAP_NET_ADMIN: RootRequired (PermissionDenied) naming sudo, nothing changed' -ForEach @(
            @{ Command = 'Enable-NamespaceNat testnet br0 eth0' }
            @{ Command = 'Add-NatMasquerade 10.0.0.0/24 eth0' }
            @{ Command = 'Enable-IpForwarding' }
            @{ Command = 'Remove-NatMasquerade 10.0.0.0/24 eth0' }
            @{ Command = 'Set-NamespaceDefaultRoute testnet 10.0.0.1' }
            @{ Command = 'Disable-NamespaceNat testnet br0' }
            @{ Command = 'Get-NatMasquerade' }
        ) {
            $before = Get-LabState
            $script = "try { $Command | Out-Null; 'NO ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.CategoryInfo.Category.ToString(); `$_.Exception.Message }"
            $r = Invoke-ChildPwsh -Script $script -Prefix @('setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin', '--')
            $lines = $r.Output -split "`n"
            $lines[0] | Should -BeLike 'RootRequired,*'
            $lines[1] | Should -Be 'PermissionDenied'
            $lines[2] | Should -Match 'sudo pwsh'
            Get-LabState | Should -Be $before
        }

        It 'as an ordinary user (nobody): RootRequired, nothing changed' {
            # Neither the PowerShell tool (under /root) nor the checkout (often under /root or a mktemp -d folder, both
            # 0700) is readable by nobody: show it a bind mount of PowerShell and a copy of the module under /run (this
            # is the sandbox's own mount namespace and tmpfs; the machine's mounts are untouched).
            $pwshHome = Join-Path '/run' 'pwsh-for-nobody'
            $moduleCopy = Join-Path '/run' 'netnsnat-for-nobody'
            New-Item -ItemType Directory $pwshHome -Force | Out-Null
            Remove-Item $moduleCopy -Recurse -Force -ErrorAction Ignore
            New-Item -ItemType Directory $moduleCopy | Out-Null
            Copy-Item (Split-Path (Get-Module NetnsNat).ModuleBase) $moduleCopy -Recurse
            Invoke-LabCommand chmod -ArgumentList @('-R', 'a+rX', $moduleCopy) | Out-Null
            Invoke-LabCommand mount -ArgumentList @('--bind', $PSHOME, $pwshHome) | Out-Null
            try {
                $before = Get-LabState
                $psi = [System.Diagnostics.ProcessStartInfo]::new('setpriv')
                foreach ($a in @('--reuid=65534', '--regid=65534', '--clear-groups', '--', (Join-Path $pwshHome 'pwsh'), '-NoProfile', '-NonInteractive', '-Command',
                        "`$PSStyle.OutputRendering = 'PlainText'; Import-Module '$moduleCopy/NetnsNat'; try { Enable-NamespaceNat testnet br0 eth0 } catch { `$_.FullyQualifiedErrorId; `$_.CategoryInfo.Category.ToString() }")) { $psi.ArgumentList.Add($a) }
                $psi.Environment['HOME'] = '/tmp'
                $psi.Environment['DOTNET_CLI_HOME'] = '/tmp'
                $psi.Environment['NO_COLOR'] = '1'
                $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
                $p = [System.Diagnostics.Process]::Start($psi)
                $out = $p.StandardOutput.ReadToEndAsync(); $err = $p.StandardError.ReadToEndAsync()
                $p.WaitForExit(60000) | Out-Null
                ($out.Result -split "`n")[0] | Should -BeLike 'RootRequired,*' -Because "stderr: $($err.Result)"
                ($out.Result -split "`n")[1] | Should -Be 'PermissionDenied'
                Get-LabState | Should -Be $before
            }
            finally {
                Invoke-LabCommand umount -ArgumentList @($pwshHome) -AllowFailure | Out-Null
                Remove-Item $moduleCopy -Recurse -Force -ErrorAction Ignore
            }
        }
    }

    Context 'a process that entered a network namespace without a sysfs of its own' {
        It 'still finds its own interfaces (the trap: /sys/class/net shows the namespace it came from)' {
            # unshare --net alone: /sys/class/net still lists the sandbox's br0 and eth0, not this namespace's.
            $script = "ip link set lo up; ip link add brs type bridge; ip addr add 10.77.0.1/24 dev brs; ip link add br0 type bridge; ip addr add 10.78.0.1/24 dev br0; " +
                "(Get-BridgeSubnet brs).Subnet; (Get-BridgeSubnet br0).Subnet; try { Get-BridgeSubnet eth0 -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId }"
            $r = Invoke-ChildPwsh -Script $script -Prefix @('unshare', '--net', '--')
            $lines = $r.Output.Trim() -split "`n" | ForEach-Object Trim
            $lines[0] | Should -Be '10.77.0.0/24' -Because $r.Error
            $lines[1] | Should -Be '10.78.0.0/24' -Because 'br0 of the sandbox (10.0.0.0/24) is not this namespace''s br0'
            $lines[2] | Should -BeLike 'InterfaceNotFound,*'
        }
    }

    Context 'a read-only /proc/sys' {
        It 'Enable-NamespaceNat: SysctlNotWritable (PermissionDenied) that says what to do, nothing half-applied' {
            [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "0`n")
            $before = Get-LabState
            # A mount namespace of the child's own, where /proc/sys is bind-mounted read-only (as in a container).
            $readOnly = @('unshare', '--mount', '--', 'sh', '-c', 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"', 'sh')
            $script = "try { Enable-NamespaceNat testnet br0 eth0 | Out-Null; 'NO ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.CategoryInfo.Category.ToString(); `$_.Exception.Message }"
            $r = Invoke-ChildPwsh -Script $script -Prefix $readOnly
            $lines = $r.Output -split "`n"
            $lines[0] | Should -BeLike 'SysctlNotWritable,*' -Because $r.Error
            $lines[1] | Should -Be 'PermissionDenied'
            $lines[2] | Should -Match 'read-only'
            Get-LabState | Should -Be $before
        }
    }

    Context 'rules in the other iptables backend' {
        AfterEach { Reset-LabFirewall }

        It 'Enable-NamespaceNat warns when iptables-legacy holds rules for the same subnet, and still works' {
            Invoke-LabCommand iptables-legacy -ArgumentList @('-A', 'FORWARD', '-d', '10.0.0.0/24', '-j', 'ACCEPT') | Out-Null
            $r = Enable-NamespaceNat testnet br0 eth0 -WarningVariable warnings -WarningAction SilentlyContinue
            $r.Rule.Backend | Should -Be 'iptables-nft'
            $warnings | Should -HaveCount 1
            $warnings[0].Message | Should -Match 'legacy iptables backend is in use too: has 1 rule'
            $warnings[0].Message | Should -Match 'update-alternatives'
            Disable-NamespaceNat testnet br0
        }

        It 'does not warn when the legacy backend has nothing for the subnet' {
            Invoke-LabCommand iptables-legacy -ArgumentList @('-A', 'FORWARD', '-d', '172.31.0.0/24', '-j', 'ACCEPT') | Out-Null
            Enable-NamespaceNat testnet br0 eth0 -WarningVariable warnings -WarningAction SilentlyContinue | Out-Null
            $warnings | Should -BeNullOrEmpty
            Disable-NamespaceNat testnet br0
        }
    }

    Context 'a tool missing' {
        BeforeAll {
            # NetnsNat looks in /usr/local/sbin, /usr/sbin and /sbin after PATH (cron's PATH lacks them), so a tool is
            # only missing when those lack it too: the child runs in a mount namespace of its own with /usr/sbin empty.
            $bin = "/run/netnsnat-path-$PID"
            New-Item -ItemType Directory $bin -Force | Out-Null
            $hideSbin = @((Get-Command unshare).Source, '--mount', '--', '/bin/sh', '-c', '/usr/bin/mount -t tmpfs tmpfs /usr/sbin && /usr/bin/mount -t tmpfs tmpfs /usr/local/sbin && exec "$@"', 'sh')
        }
        AfterAll { Remove-Item $bin -Recurse -Force }

        It 'iptables missing, -Backend Iptables: ToolNotFound (NotInstalled) naming the iptables package and where it looked, nothing changed' {
            $before = Get-LabState
            $script = "try { Enable-NamespaceNat testnet br0 eth0 -Backend Iptables | Out-Null; 'NO ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.CategoryInfo.Category.ToString(); `$_.Exception.Message }"
            $r = Invoke-ChildPwsh -Script $script -Prefix $hideSbin -Environment @{ PATH = $bin }
            $lines = $r.Output -split "`n"
            $lines[0] | Should -BeLike 'ToolNotFound,*' -Because $r.Error
            $lines[1] | Should -Be 'NotInstalled'
            $lines[2] | Should -Match 'apt-get install iptables'
            $lines[2] | Should -Match '/usr/sbin'
            Get-LabState | Should -Be $before
        }

        It 'iptables missing, no -Backend: the nftables backend (issue 14), the namespace gets out, and its port is published' {
            # Enable, Test, Get and Disable, all without iptables: the nftables backend, read and written over netlink.
            $script = "(Enable-NamespaceNat testnet br0 eth0).Rule.Backend; Test-NamespaceNat testnet -Quiet; (Get-NamespaceNat testnet).Backend; 'mapping:' + (Add-NatPortMapping testnet -Protocol Tcp -ExternalPort 8080 -InternalPort 80 -AddressFamily IPv4).Backend"
            # Test-NamespaceNat runs ip: a copy of it is all the child has (the sbin folders are hidden).
            Copy-Item (Get-Item (Get-Command ip -CommandType Application)[0].Source).ResolvedTarget (Join-Path $bin 'ip')
            $r = Invoke-ChildPwsh -Script $script -Prefix $hideSbin -Environment @{ PATH = $bin }
            try {
                ($r.Output.Trim() -split "`n") | Should -Be @('nftables', 'True', 'nftables', 'mapping:nftables') -Because $r.Error
                Test-LabConnection | Should -Be '198.51.100.1'
                # The port mapping too, without iptables: an element of the table's map.
                (Invoke-LabCommand nft -ArgumentList @('list', 'map', 'inet', 'netnsnat', 'dnat4')).Output | Should -Match '198\.51\.100\.1 \. tcp \. 8080 \. 0\.0\.0\.0/0 : 10\.0\.0\.2 \. 80'
            }
            finally {
                $r = Invoke-ChildPwsh -Script 'Disable-NamespaceNat testnet br0 | Out-Null; (Get-NamespaceNat).Count' -Prefix $hideSbin -Environment @{ PATH = $bin }
                Remove-Item (Join-Path $bin 'ip')
            }
            $r.Output.Trim() | Should -Be '0' -Because $r.Error
            @(Get-LabNftTables) | Should -BeNullOrEmpty
        }

        It 'ip missing: ToolNotFound naming iproute2 for Test-NamespaceNat, which runs it' {
            $script = "try { Test-NamespaceNat testnet | Out-Null; 'NO ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }"
            $r = Invoke-ChildPwsh -Script $script -Prefix $hideSbin -Environment @{ PATH = '/nonexistent' }
            $lines = $r.Output -split "`n"
            $lines[0] | Should -Be 'ToolNotFound,NetnsNat.Commands.TestNamespaceNatCommand' -Because $r.Error
            $lines[1] | Should -Match 'iproute2'
        }

        It 'the NAT cmdlets need no ip: interfaces come from getifaddrs, routes from rtnetlink' {
            # Copies of iptables' multi-call binary under the names NetnsNat runs; no ip anywhere the child looks.
            foreach ($t in 'iptables-save', 'iptables-restore') { Copy-Item (Get-Item (Get-Command $t -CommandType Application)[0].Source).ResolvedTarget (Join-Path $bin $t) }
            try {
                $script = "(Get-BridgeSubnet br0).Subnet; (Enable-NamespaceNat testnet br0 eth0).Route.Gateway; Disable-NamespaceNat testnet br0; if (Get-Command ip -ErrorAction Ignore) { 'ip is there' }"
                $r = Invoke-ChildPwsh -Script $script -Prefix $hideSbin -Environment @{ PATH = $bin }
                ($r.Output.Trim() -split "`n") | Should -Be @('10.0.0.0/24', '10.0.0.1') -Because $r.Error
            }
            finally { foreach ($t in 'iptables-save', 'iptables-restore') { Remove-Item (Join-Path $bin $t) -ErrorAction Ignore } }
        }
    }
}
