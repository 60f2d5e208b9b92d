# Issue 11: a fresh machine gets every program the tests, the demo and the benchmark run from ./build.ps1 Bootstrap.
BeforeDiscovery {
    $root = Join-Path $PSScriptRoot '../..'
    $listed = (Import-PowerShellDataFile (Join-Path $root 'build/tools.psd1')).Tools
    # The programs the lab code starts: Invoke-LabCommand NAME, Resolve-LabTool NAME, 'netns', 'exec', NS, 'NAME',
    # New-ToolWrapper -Tool NAME, and -Prefix @('NAME' (a child pwsh behind a command).
    $patterns = @(
        'Invoke-LabCommand\s+(?:-FilePath\s+)?["'']?([a-z][a-z0-9-]*)'
        'Resolve-LabTool\s+["'']?([a-z][a-z0-9-]*)'
        "'netns',\s*'exec',\s*[^,]+,\s*'([a-z][a-z0-9-]*)'"
        "-Prefix\s+@\('([a-z][a-z0-9-]*)'"
        "New-ToolWrapper\s+-Tool\s+([a-z][a-z0-9-]*)"
    )
    $files = Get-ChildItem (Join-Path $root 'tests'), (Join-Path $root 'bench') -Recurse -Include *.ps1, *.psm1, *.sh
    $called = foreach ($f in $files) {
        $text = Get-Content $f.FullName -Raw
        foreach ($p in $patterns) { foreach ($m in [regex]::Matches($text, $p)) { $m.Groups[1].Value } }
    }
    $called = @($called | Where-Object { $_ -notin 'tool', 'pwsh' } | Sort-Object -Unique)
}

Describe 'build/tools.psd1, what Bootstrap installs' {
    BeforeAll { $listed = (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../build/tools.psd1')).Tools }

    It '<_> (called by the lab code) is listed' -ForEach $called {
        $listed.ContainsKey($_) | Should -BeTrue -Because "tests or bench run '$_': ./build.ps1 Bootstrap must install its package"
    }

    It 'every listed program is installed' {
        $root = Join-Path $PSScriptRoot '../..'
        $tools = (Import-PowerShellDataFile (Join-Path $root 'build/tools.psd1')).Tools
        $missing = @($tools.Keys | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction Ignore) })
        $missing | Should -BeNullOrEmpty
    }
}
