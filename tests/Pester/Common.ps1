# Dot-sourced by every *.Tests.ps1 in its BeforeAll: the built module, the lab, and small helpers.
$modulePath = if ($env:NETNSNAT_MODULE) { $env:NETNSNAT_MODULE } else { Join-Path $PSScriptRoot '../../out/NetnsNat' }
# Once per process: re-importing a binary module with -Force drops its format data.
if (-not (Get-Module NetnsNat)) { Import-Module $modulePath }
Import-Module (Join-Path $PSScriptRoot '../Lab/NetnsNatLab.psm1') -Force
Assert-LabSandbox

function Start-CapturedProcess {
    <#
      Starts a program with its stdout and stderr captured (read as they come, so a full pipe never stalls it) and its
      stdin closed; NO_COLOR=1 unless -Color. Returns the process and the two reads (tasks).
    #>
    param([Parameter(Mandatory)][string[]] $Argv, [hashtable] $Environment = @{}, [string[]] $Unset = @(), [string] $WorkingDirectory, [switch] $Color)
    $psi = [System.Diagnostics.ProcessStartInfo]::new($Argv[0])
    foreach ($a in ($Argv | Select-Object -Skip 1)) { $psi.ArgumentList.Add($a) }
    if ($WorkingDirectory) { $psi.WorkingDirectory = $WorkingDirectory }
    if ($Color) { $psi.Environment.Remove('NO_COLOR') | Out-Null } else { $psi.Environment['NO_COLOR'] = '1' }
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    foreach ($k in $Unset) { $psi.Environment.Remove($k) | Out-Null }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    [pscustomobject]@{ Process = $p; Output = $p.StandardOutput.ReadToEndAsync(); Error = $p.StandardError.ReadToEndAsync(); Argv = $Argv }
}

function Start-ChildPwsh {
    <# Starts a fresh pwsh (module imported) on a script's text, optionally behind a prefix command (setpriv, unshare). #>
    param([Parameter(Mandatory)][string] $Script, [string[]] $Prefix = @(), [hashtable] $Environment = @{})
    $pwsh = if ($env:NETNSNAT_PWSH) { $env:NETNSNAT_PWSH } else { Join-Path $PSHOME 'pwsh' }
    # No colour in a child's output: its text ends up in failure messages and in the JUnit report (XML takes no ESC).
    $full = "`$ErrorActionPreference = 'Stop'; `$PSStyle.OutputRendering = 'PlainText'; Import-Module '$modulePath'; $Script"
    $argv = [System.Collections.Generic.List[string]]::new()
    foreach ($a in $Prefix) { $argv.Add($a) }
    foreach ($a in @($pwsh, '-NoProfile', '-NonInteractive', '-Command', $full)) { $argv.Add($a) }
    Start-CapturedProcess -Argv $argv -Environment $Environment | Add-Member -NotePropertyName Script -NotePropertyValue $Script -PassThru
}

function Wait-ChildPwsh {
    param([Parameter(Mandatory, ValueFromPipeline)] $Child, [int] $TimeoutSeconds = 120)
    process {
        if (-not $Child.Process.WaitForExit($TimeoutSeconds * 1000)) { $Child.Process.Kill($true); throw "child pwsh timed out: $($Child.Script)" }
        $Child.Process.WaitForExit()
        [pscustomobject]@{ ExitCode = $Child.Process.ExitCode; Output = $Child.Output.Result; Error = $Child.Error.Result }
    }
}

function Invoke-ChildPwsh {
    <# Runs a script's text in a fresh pwsh and waits for it. #>
    param([Parameter(Mandatory)][string] $Script, [string[]] $Prefix = @(), [hashtable] $Environment = @{}, [int] $TimeoutSeconds = 60)
    Start-ChildPwsh -Script $Script -Prefix $Prefix -Environment $Environment | Wait-ChildPwsh -TimeoutSeconds $TimeoutSeconds
}

function New-ToolWrapper {
    <#
      Puts a bash script in front of real tools: a folder with one script linked under each tool's name, for PATH.
      The script sees the real tool as $REAL (by its own name) and a counter file as $COUNT. Returns the folder.
    #>
    param([Parameter(Mandatory)][string[]] $Tool, [Parameter(Mandatory)][string] $Body)
    $dir = Join-Path '/run' "netnsnat-wrap-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    New-Item -ItemType Directory $dir | Out-Null
    $realDir = Join-Path $dir 'real'
    New-Item -ItemType Directory $realDir | Out-Null
    foreach ($t in $Tool) {
        New-Item -ItemType SymbolicLink -Path (Join-Path $realDir $t) -Target (Get-Command $t -CommandType Application)[0].Source | Out-Null
    }
    $script = Join-Path $dir 'wrapper.sh'
    Set-Content -Path $script -Value "#!/bin/bash`nREAL=$realDir/`$(basename `"`$0`")`nCOUNT=$dir/count`n$Body`n" -NoNewline
    Invoke-LabCommand chmod -ArgumentList @('+x', $script) | Out-Null
    foreach ($t in $Tool) { New-Item -ItemType SymbolicLink -Path (Join-Path $dir $t) -Target $script | Out-Null }
    $dir
}

function Get-ForwardRules { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -like '-A FORWARD *' }) }
function Get-PostroutingRules { @((Get-LabRuleset) -split "`n" | Where-Object { $_ -like '-t nat -A POSTROUTING *' } | ForEach-Object { $_.Substring(7) }) }

function Assert-FailsWithoutChange {
    <#
      Runs a NetnsNat call that must fail: exactly one error with the id and category given, no output, and the lab
      (rules of both backends, routes everywhere, forwarding sysctls) byte-for-byte as before. Returns the error.
    #>
    param([Parameter(Mandatory)][scriptblock] $Action, [Parameter(Mandatory)][string] $ErrorId, [Parameter(Mandatory)][string] $Category)
    $before = Get-LabState
    $records = [System.Collections.Generic.List[object]]::new()
    $output = [System.Collections.Generic.List[object]]::new()
    try {
        foreach ($o in (& $Action 2>&1)) {
            if ($o -is [System.Management.Automation.ErrorRecord]) { $records.Add($o) } else { $output.Add($o) }
        }
    }
    catch { $records.Add($_) }
    $output | Should -BeNullOrEmpty
    $records | Should -HaveCount 1
    $records[0].FullyQualifiedErrorId | Should -BeLike "$ErrorId,*"
    $records[0].CategoryInfo.Category | Should -Be $Category
    Get-LabState | Should -Be $before
    $records[0]
}

function Write-Figure {
    <# Prints a measured figure and keeps it in out/figures.txt, which build.ps1 Test prints at the end. #>
    param([Parameter(Mandatory)][string] $Name, [Parameter(Mandatory)] $Value)
    $line = "{0,-58} {1}" -f $Name, $Value
    Write-Host "  figure: $line"
    if ($env:NETNSNAT_RESULTS) { Add-Content -Path (Join-Path $env:NETNSNAT_RESULTS 'figures.txt') -Value $line }
}

function Add-InboundRoutes {
    <# The lab's "internet" learns a route to the bridge subnets through the host: what a neighbour on the uplink's LAN can do, and what makes a new inbound connection to a namespace possible at all. #>
    Invoke-LabCommand ip -ArgumentList @('-n', 'nnl-inet', '-6', 'route', 'replace', 'fd00:0:0:1::/64', 'via', '2001:db8:1::1') | Out-Null
    Invoke-LabCommand ip -ArgumentList @('-n', 'nnl-inet', 'route', 'replace', '10.0.0.0/24', 'via', '198.51.100.1') | Out-Null
}

# Port mappings (both backends): a TCP client that reports the source the lab listener saw, a UDP echo server, a UDP client.
function Get-PeerSeen {
    <# Opens a TCP connection (from a namespace, or from the host when -Namespace is empty); the source the listener saw, or $null. #>
    param([string] $Namespace, [string] $Address, [int] $Port, [string] $Bind, [int] $TimeoutSeconds = 2)
    $target = if ($Address.Contains(':')) { "TCP6:[${Address}]:$Port" } else { "TCP:${Address}:$Port" }
    $target += ",connect-timeout=$TimeoutSeconds"
    if ($Bind) { $target += ",bind=$Bind" }
    $argv = @('socat', '-T', "$TimeoutSeconds", '-', $target)
    $r = if ($Namespace) { Invoke-LabCommand ip -ArgumentList (@('netns', 'exec', $Namespace) + $argv) -AllowFailure -TimeoutSeconds ($TimeoutSeconds + 5) }
         else { Invoke-LabCommand socat -ArgumentList ($argv | Select-Object -Skip 1) -AllowFailure -TimeoutSeconds ($TimeoutSeconds + 5) }
    $seen = $r.Output.Trim().Trim('[', ']')
    if ($r.ExitCode -ne 0 -or -not $seen) { return $null }
    ([System.Net.IPAddress]::Parse($seen)).ToString()
}

function Start-UdpEcho([string] $Address = '10.0.0.2') {
    # In testnet: a UDP server on ADDRESS:53 that answers with the source it saw. Returns its process (the caller ends it).
    $v6 = $Address.Contains(':')
    $listen = if ($v6) { "UDP6-RECVFROM:53,bind=[$Address],fork" } else { "UDP-RECVFROM:53,bind=$Address,fork" }
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Get-Command ip -CommandType Application)[0].Source)
    foreach ($a in @('netns', 'exec', 'testnet', 'socat', $listen, 'SYSTEM:echo $SOCAT_PEERADDR')) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
    $process = [System.Diagnostics.Process]::Start($psi)
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    $bound = if ($v6) { [regex]::Escape("[$Address]:53") } else { [regex]::Escape("${Address}:53") + '\b' }
    while (-not ((Invoke-LabCommand ip -ArgumentList @('netns', 'exec', 'testnet', 'ss', '-lun')).Output -match $bound)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw 'the UDP server did not start' }
        Start-Sleep -Milliseconds 50
    }
    $process
}

function Send-Udp([string] $Namespace, [string] $Address, [int] $Port) {
    # One datagram out, the answer (the source the server saw, as an address in its usual text) back, or '' when none comes within 3 s.
    $exchange = "exec 3<>/dev/udp/$Address/$Port; echo ping >&3; timeout 3 head -n 1 <&3"
    $seen = (Invoke-LabCommand ip -ArgumentList @('netns', 'exec', $Namespace, 'bash', '-c', $exchange) -AllowFailure).Output.Trim().Trim('[', ']')
    $address = $seen -as [System.Net.IPAddress]
    if ($address) { $address.ToString() } else { $seen }
}

function New-PortMappingLab {
    <#
    The lab of the port mapping tests: dual stack; a second namespace on br0 ('other', 10.0.0.3); a second source in the
    "internet" (198.51.100.253 and 2001:db8:1::fd, for -RemoteAddressPrefix); TCP listeners in testnet on 10.0.0.2:80,
    10.0.0.2:81 and [fd00:0:0:1::2]:80; UDP echo servers on 10.0.0.2:53 and [fd00:0:0:1::2]:53. Remove-PortMappingLab
    takes it all away.
    #>
    $lab = New-NetnsNatLab -DualStack
    Add-LabClient -Name other -Bridge br0 -Address 10.0.0.3/24 -Address6 fd00:0:0:1::3/64
    Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'addr', 'add', '198.51.100.253/24', 'dev', 'wan0') | Out-Null
    # Deprecated (preferred_lft 0): a source only when a test binds it, never the one the kernel picks.
    Invoke-LabCommand ip -ArgumentList @('-n', $lab.Internet, 'addr', 'add', '2001:db8:1::fd/64', 'dev', 'wan0', 'nodad', 'preferred_lft', '0') | Out-Null
    Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 80 | Out-Null
    Start-LabListener -Namespace testnet -Address 10.0.0.2 -Port 81 | Out-Null
    Start-LabListener -Namespace testnet -Address fd00:0:0:1::2 -Port 80 | Out-Null
    $lab | Add-Member -NotePropertyName UdpEcho -NotePropertyValue @((Start-UdpEcho), (Start-UdpEcho fd00:0:0:1::2)) -PassThru
}

function Remove-PortMappingLab($Lab) {
    foreach ($echo in @(if ($Lab) { $Lab.UdpEcho })) {
        if (-not $echo.HasExited) { $echo.Kill($true); $echo.WaitForExit(5000) | Out-Null }
    }
    Remove-NetnsNatLab
}

function Reset-PortMappingLab([string] $Backend = 'Auto') {
    # Before each test: no rule, no route, no mapping; then testnet and other enabled on br0 in the backend given.
    Reset-LabFirewall
    foreach ($ns in 'testnet', 'other') {
        Invoke-LabCommand ip -ArgumentList @('-n', $ns, 'route', 'del', 'default') -AllowFailure | Out-Null
        Invoke-LabCommand ip -ArgumentList @('-n', $ns, '-6', 'route', 'del', 'default') -AllowFailure | Out-Null
    }
    'testnet', 'other' | Enable-NamespaceNat -Bridge br0 -Outbound eth0 -Backend $Backend | Out-Null
}

function Get-WhatIfCommand([string] $Output, [string] $Tool = 'nft') {
    # The commands of each "What if: Performing the operation "COMMANDS" on target "..."." line that runs the tool, as printed.
    @($Output -split "`n" | Where-Object { $_ -match "^What if: .*`"$Tool " } | ForEach-Object { ($_ -replace '^What if: Performing the operation "', '') -replace '" on target "[^"]*"\.$', '' })
}
