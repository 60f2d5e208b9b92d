# Issue 6: the module installs like any Gallery module, from the .nupkg that ./build.ps1 Package makes.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $version = (Import-PowerShellDataFile (Join-Path (Get-Module NetnsNat).ModuleBase 'NetnsNat.psd1')).ModuleVersion
    $packages = Join-Path $PSScriptRoot '../../out/packages'
}

Describe 'The NetnsNat package' {
    BeforeAll { $lab = New-NetnsNatLab }
    AfterAll { Remove-NetnsNatLab }

    It 'exists as NetnsNat.<version>.nupkg' {
        Join-Path $packages "NetnsNat.$version.nupkg" | Should -Exist
    }

    It 'installs with Install-PSResource from a temporary folder repository, imports by name and works' {
        # A HOME of its own: the repository registration and the CurrentUser module path are both temporary.
        $home_ = "/run/netnsnat-pkg-home-$PID"
        New-Item -ItemType Directory $home_ | Out-Null
        try {
            $script = "Register-PSResourceRepository -Name NetnsNatTest -Uri '$((Resolve-Path $packages).Path)' -Trusted; " +
                "Install-PSResource -Name NetnsNat -Repository NetnsNatTest -Scope CurrentUser -TrustRepository; " +
                "Import-Module NetnsNat; (Get-Module NetnsNat).ModuleBase; (Get-Module NetnsNat).Version.ToString(); (Get-BridgeSubnet br0).Subnet"
            $psi = [System.Diagnostics.ProcessStartInfo]::new((Join-Path $PSHOME 'pwsh'))
            foreach ($a in @('-NoProfile', '-NonInteractive', '-Command', $script)) { $psi.ArgumentList.Add($a) }
            $psi.Environment['HOME'] = $home_
            $psi.WorkingDirectory = $home_
            $psi.Environment.Remove('PSModulePath') | Out-Null
            $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
            $p = [System.Diagnostics.Process]::Start($psi)
            $out = $p.StandardOutput.ReadToEnd(); $err = $p.StandardError.ReadToEnd()
            $p.WaitForExit(120000) | Out-Null
            $lines = $out.Trim() -split "`n"
            $lines[0] | Should -Be "$home_/.local/share/powershell/Modules/NetnsNat/$version" -Because $err
            $lines[1] | Should -Be $version
            $lines[2] | Should -Be '10.0.0.0/24'
            Join-Path $lines[0] 'en-US/NetnsNat.Cmdlets.dll-Help.xml' | Should -Exist
            Join-Path $lines[0] 'NetnsNat.Verify.Tests.ps1' | Should -Exist
        }
        finally { Remove-Item $home_ -Recurse -Force }
    }

    It 'installed with -Scope AllUsers, is found by a root pwsh started with a clean environment (as sudo pwsh starts it)' {
        # AllUsers modules go to /usr/local/share/powershell/Modules: an overlay on /usr/local/share in the sandbox's
        # own mount namespace takes the install, so the machine's folder is never written.
        $overlay = "/run/netnsnat-usrlocal-$PID"
        $home_ = "/run/netnsnat-pkg-allusers-$PID"
        New-Item -ItemType Directory "$overlay/upper", "$overlay/work", $home_ | Out-Null
        Invoke-LabCommand mount -ArgumentList @('-t', 'overlay', 'overlay', '-o', "lowerdir=/usr/local/share,upperdir=$overlay/upper,workdir=$overlay/work", '/usr/local/share') | Out-Null
        try {
            $install = "Register-PSResourceRepository -Name NetnsNatTest -Uri '$((Resolve-Path $packages).Path)' -Trusted; " +
                "Install-PSResource -Name NetnsNat -Repository NetnsNatTest -Scope AllUsers -TrustRepository"
            $psi = [System.Diagnostics.ProcessStartInfo]::new((Join-Path $PSHOME 'pwsh'))
            foreach ($a in @('-NoProfile', '-NonInteractive', '-Command', $install)) { $psi.ArgumentList.Add($a) }
            $psi.Environment['HOME'] = $home_
            $psi.Environment['NO_COLOR'] = '1'
            $psi.WorkingDirectory = $home_
            $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
            $p = [System.Diagnostics.Process]::Start($psi)
            $err = $p.StandardError.ReadToEndAsync(); $null = $p.StandardOutput.ReadToEndAsync()
            $p.WaitForExit(120000) | Out-Null
            $p.ExitCode | Should -Be 0 -Because $err.Result

            # A root shell with nothing of the installing user's environment: env -i, root's HOME, a plain PATH.
            $use = "`$PSStyle.OutputRendering = 'PlainText'; Import-Module NetnsNat; (Get-Module NetnsNat).ModuleBase; (Get-BridgeSubnet br0).Subnet"
            $r = Invoke-LabCommand env -ArgumentList @('-i', 'HOME=/root', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=dumb',
                (Join-Path $PSHOME 'pwsh'), '-NoProfile', '-NonInteractive', '-Command', $use) -AllowFailure -TimeoutSeconds 120
            $lines = $r.Output.Trim() -split "`n"
            $lines[0] | Should -Be "/usr/local/share/powershell/Modules/NetnsNat/$version" -Because $r.Error
            $lines[1] | Should -Be '10.0.0.0/24'
        }
        finally {
            Invoke-LabCommand umount -ArgumentList @('/usr/local/share') -AllowFailure | Out-Null
            Remove-Item $overlay, $home_ -Recurse -Force -ErrorAction Ignore
        }
    }

    It 'has a manifest with what a gallery shows' {
        $m = Test-ModuleManifest (Join-Path (Get-Module NetnsNat).ModuleBase 'NetnsNat.psd1')
        $m.CompatiblePSEditions | Should -Be 'Core'
        $m.PowerShellVersion | Should -Be ([version]'7.4')
        $m.ProjectUri | Should -Not -BeNullOrEmpty
        $m.LicenseUri | Should -Not -BeNullOrEmpty
        $m.ReleaseNotes | Should -Not -BeNullOrEmpty
        $m.Tags | Should -Contain 'iptables'
        $m.Description | Should -Not -BeNullOrEmpty
    }
}
