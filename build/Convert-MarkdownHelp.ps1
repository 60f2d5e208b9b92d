<#
.SYNOPSIS
    Compiles docs/*.md (platyPS's markdown shape) into MAML help and about_ topics for the built module.
.DESCRIPTION
    platyPS is not reachable from this build's package sources, so this one file does its job for our pages:
    text (synopsis, description, examples, parameter descriptions, inputs, outputs, notes, links) comes from
    docs/<Cmdlet>.md; syntax and parameter metadata (type, position, pipeline input, aliases) come from the
    loaded cmdlets themselves, so help can never disagree with the code. docs/about_*.md become
    about_*.help.txt. A missing page, synopsis or example fails the build.
#>
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [Parameter(Mandatory)][string] $DocsPath,
    [Parameter(Mandatory)][string] $OutputPath
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$module = Import-Module $ModulePath -PassThru -Force
$common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
$defaultText = @{
    WhatIf  = 'Shows what would happen, with the equivalent command line, and changes nothing.'
    Confirm = 'Asks for confirmation before each change.'
}

function Split-Sections([string[]] $lines, [string] $marker) {
    # Splits lines at headings that start with $marker ("## " or "### "); returns ordered name => lines.
    $sections = [ordered]@{}
    $current = $null
    $inFence = $false
    foreach ($line in $lines) {
        if ($line.StartsWith('```')) { $inFence = -not $inFence }
        if (-not $inFence -and $line.StartsWith($marker)) {
            $current = $line.Substring($marker.Length).Trim()
            $sections[$current] = [System.Collections.Generic.List[string]]::new()
            continue
        }
        if ($null -ne $current) { $sections[$current].Add($line) }
    }
    $sections
}

function Get-Paragraphs([string[]] $lines) {
    # Markdown text into paragraphs; fenced yaml blocks (platyPS metadata) are skipped.
    $paras = [System.Collections.Generic.List[string]]::new()
    $buf = [System.Collections.Generic.List[string]]::new()
    $inFence = $false
    foreach ($line in $lines) {
        if ($line.StartsWith('```')) { $inFence = -not $inFence; continue }
        if ($inFence) { continue }
        if ($line.Trim() -eq '') { if ($buf.Count) { $paras.Add(($buf -join ' ')); $buf.Clear() }; continue }
        $buf.Add($line.Trim())
    }
    if ($buf.Count) { $paras.Add(($buf -join ' ')) }
    , $paras.ToArray()
}

function Add-Paras($xml, $parent, [string[]] $paras) {
    $ns = 'http://schemas.microsoft.com/maml/2004/10'
    if (-not $paras -or $paras.Count -eq 0) { $paras = @('') }
    foreach ($p in $paras) {
        $el = $xml.CreateElement('maml', 'para', $ns)
        $el.InnerText = ($p -replace '`', '')
        $parent.AppendChild($el) | Out-Null
    }
}

function New-El($xml, [string] $qualified, [string] $text) {
    $prefix, $local = $qualified.Split(':')
    $uri = @{ maml = 'http://schemas.microsoft.com/maml/2004/10'; command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'; dev = 'http://schemas.microsoft.com/maml/dev/2004/10' }[$prefix]
    $el = $xml.CreateElement($prefix, $local, $uri)
    if ($PSBoundParameters.ContainsKey('text')) { $el.InnerText = $text }
    $el
}

function Get-TypeName([type] $t) {
    if ($t -eq [System.Management.Automation.SwitchParameter]) { return 'SwitchParameter' }
    if ($t.IsArray) { return $t.GetElementType().Name + '[]' }
    $t.Name
}

$xml = [System.Xml.XmlDocument]::new()
$xml.AppendChild($xml.CreateXmlDeclaration('1.0', 'utf-8', $null)) | Out-Null
$root = $xml.CreateElement('helpItems', 'http://msh')
$root.SetAttribute('schema', 'maml')
$xml.AppendChild($root) | Out-Null

$problems = [System.Collections.Generic.List[string]]::new()
foreach ($cmd in ($module.ExportedCmdlets.Values | Sort-Object Name)) {
    $page = Join-Path $DocsPath "$($cmd.Name).md"
    if (-not (Test-Path $page)) { $problems.Add("$($cmd.Name): no page $page"); continue }
    $lines = Get-Content $page
    $sections = Split-Sections $lines '## '
    $synopsis = if ($sections.Contains('SYNOPSIS')) { Get-Paragraphs $sections['SYNOPSIS'] } else { @() }
    if (-not $synopsis) { $problems.Add("$($cmd.Name): no SYNOPSIS") }
    $examples = if ($sections.Contains('EXAMPLES')) { Split-Sections $sections['EXAMPLES'] '### ' } else { [ordered]@{} }
    if ($examples.Count -eq 0) { $problems.Add("$($cmd.Name): no example") }
    $paramDocs = if ($sections.Contains('PARAMETERS')) { Split-Sections $sections['PARAMETERS'] '### ' } else { [ordered]@{} }

    $command = New-El $xml 'command:command'
    foreach ($prefixPair in @(@('maml', 'http://schemas.microsoft.com/maml/2004/10'), @('command', 'http://schemas.microsoft.com/maml/dev/command/2004/10'), @('dev', 'http://schemas.microsoft.com/maml/dev/2004/10'))) {
        $command.SetAttribute("xmlns:$($prefixPair[0])", $prefixPair[1])
    }
    $root.AppendChild($command) | Out-Null
    $details = $command.AppendChild((New-El $xml 'command:details'))
    $details.AppendChild((New-El $xml 'command:name' $cmd.Name)) | Out-Null
    $details.AppendChild((New-El $xml 'command:verb' $cmd.Verb)) | Out-Null
    $details.AppendChild((New-El $xml 'command:noun' $cmd.Noun)) | Out-Null
    $d = $details.AppendChild((New-El $xml 'maml:description'))
    Add-Paras $xml $d $synopsis
    $desc = $command.AppendChild((New-El $xml 'maml:description'))
    Add-Paras $xml $desc $(if ($sections.Contains('DESCRIPTION')) { Get-Paragraphs $sections['DESCRIPTION'] } else { @() })

    $paramDescription = @{}
    foreach ($p in $cmd.Parameters.Values) {
        if ($p.Name -in $common -and $p.Name -notin 'WhatIf', 'Confirm') { continue }
        $text = if ($paramDocs.Contains("-$($p.Name)")) { Get-Paragraphs $paramDocs["-$($p.Name)"] } elseif ($defaultText.ContainsKey($p.Name)) { @($defaultText[$p.Name]) } else { @() }
        if (-not $text) { $problems.Add("$($cmd.Name): parameter -$($p.Name) is not documented") }
        $paramDescription[$p.Name] = $text
    }

    function New-ParamEl($p, $setInfo) {
        $pe = New-El $xml 'command:parameter'
        $attrs = if ($setInfo) { $setInfo } else { $p.ParameterSets.Values | Select-Object -First 1 }
        $pipeline = @()
        if ($attrs.ValueFromPipelineByPropertyName) { $pipeline += 'ByPropertyName' }
        if ($attrs.ValueFromPipeline) { $pipeline += 'ByValue' }
        $pe.SetAttribute('required', $attrs.IsMandatory.ToString().ToLowerInvariant())
        $pe.SetAttribute('variableLength', 'true')
        $pe.SetAttribute('globbing', 'false')
        $pe.SetAttribute('pipelineInput', $(if ($pipeline) { "True ($($pipeline -join ', '))" } else { 'False' }))
        $pe.SetAttribute('position', $(if ($attrs.Position -ge 0) { [string]$attrs.Position } else { 'named' }))
        $pe.SetAttribute('aliases', $(if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' }))
        $pe.AppendChild((New-El $xml 'maml:name' $p.Name)) | Out-Null
        $pd = $pe.AppendChild((New-El $xml 'maml:description'))
        Add-Paras $xml $pd $paramDescription[$p.Name]
        $typeName = Get-TypeName $p.ParameterType
        if ($p.ParameterType -ne [System.Management.Automation.SwitchParameter]) {
            $pv = New-El $xml 'command:parameterValue' $typeName
            $pv.SetAttribute('required', 'true'); $pv.SetAttribute('variableLength', 'false')
            $pe.AppendChild($pv) | Out-Null
        }
        $type = $pe.AppendChild((New-El $xml 'dev:type'))
        $type.AppendChild((New-El $xml 'maml:name' $typeName)) | Out-Null
        $pe.AppendChild((New-El $xml 'dev:defaultValue' 'None')) | Out-Null
        $pe
    }

    $syntax = $command.AppendChild((New-El $xml 'command:syntax'))
    foreach ($set in $cmd.ParameterSets) {
        $item = $syntax.AppendChild((New-El $xml 'command:syntaxItem'))
        $item.AppendChild((New-El $xml 'maml:name' $cmd.Name)) | Out-Null
        foreach ($sp in $set.Parameters) {
            if (-not $paramDescription.ContainsKey($sp.Name)) { continue }
            $item.AppendChild((New-ParamEl $cmd.Parameters[$sp.Name] $sp)) | Out-Null
        }
    }
    $params = $command.AppendChild((New-El $xml 'command:parameters'))
    foreach ($name in $paramDescription.Keys | Sort-Object) {
        $params.AppendChild((New-ParamEl $cmd.Parameters[$name] $null)) | Out-Null
    }

    foreach ($kind in @(@('INPUTS', 'command:inputTypes', 'command:inputType'), @('OUTPUTS', 'command:returnValues', 'command:returnValue'))) {
        if (-not $sections.Contains($kind[0])) { $problems.Add("$($cmd.Name): no $($kind[0])"); continue }
        $container = $command.AppendChild((New-El $xml $kind[1]))
        foreach ($entry in (Split-Sections $sections[$kind[0]] '### ').GetEnumerator()) {
            $it = $container.AppendChild((New-El $xml $kind[2]))
            $t = $it.AppendChild((New-El $xml 'dev:type'))
            $t.AppendChild((New-El $xml 'maml:name' $entry.Key)) | Out-Null
            $dd = $it.AppendChild((New-El $xml 'maml:description'))
            Add-Paras $xml $dd (Get-Paragraphs $entry.Value)
        }
    }
    if ($sections.Contains('NOTES')) {
        $alertSet = $command.AppendChild((New-El $xml 'maml:alertSet'))
        $alert = $alertSet.AppendChild((New-El $xml 'maml:alert'))
        Add-Paras $xml $alert (Get-Paragraphs $sections['NOTES'])
    }

    $exs = $command.AppendChild((New-El $xml 'command:examples'))
    foreach ($ex in $examples.GetEnumerator()) {
        $code = [System.Collections.Generic.List[string]]::new()
        $rest = [System.Collections.Generic.List[string]]::new()
        $inFence = $false; $seenFence = $false
        foreach ($line in $ex.Value) {
            if ($line.StartsWith('```')) { $inFence = -not $inFence; $seenFence = $true; continue }
            if ($inFence) { $code.Add($line) } elseif ($seenFence) { $rest.Add($line) }
        }
        if ($code.Count -eq 0) { $problems.Add("$($cmd.Name): '$($ex.Key)' has no code block") }
        $e = $exs.AppendChild((New-El $xml 'command:example'))
        $e.AppendChild((New-El $xml 'maml:title' "-------------------------- $($ex.Key) --------------------------")) | Out-Null
        $e.AppendChild((New-El $xml 'dev:code' ($code -join "`n"))) | Out-Null
        $r = $e.AppendChild((New-El $xml 'dev:remarks'))
        Add-Paras $xml $r (Get-Paragraphs $rest)
    }
    $links = $command.AppendChild((New-El $xml 'command:relatedLinks'))
    if ($sections.Contains('RELATED LINKS')) {
        foreach ($line in $sections['RELATED LINKS']) {
            if ($line -match '\[([^\]]+)\]\(([^)]*)\)') {
                $nl = $links.AppendChild((New-El $xml 'maml:navigationLink'))
                $nl.AppendChild((New-El $xml 'maml:linkText' $Matches[1])) | Out-Null
                $nl.AppendChild((New-El $xml 'maml:uri' $(if ($Matches[2] -match '^https?:') { $Matches[2] } else { '' }))) | Out-Null
            }
        }
    }
}
if ($problems.Count) { throw "Help is incomplete:`n  $($problems -join "`n  ")" }

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$writer = [System.Xml.XmlWriter]::Create((Join-Path $OutputPath 'NetnsNat.Cmdlets.dll-Help.xml'), $settings)
$xml.Save($writer)
$writer.Dispose()

# about_ topics: markdown to plain text, headings upper-cased, code indented.
foreach ($about in Get-ChildItem $DocsPath -Filter 'about_*.md') {
    $text = [System.Collections.Generic.List[string]]::new()
    $inFence = $false
    foreach ($line in Get-Content $about.FullName) {
        if ($line.StartsWith('```')) { $inFence = -not $inFence; continue }
        if ($inFence) { $text.Add('    ' + $line); continue }
        if ($line -match '^#+\s+(.*)$') { $text.Add($Matches[1].ToUpperInvariant()); continue }
        $text.Add(($line -replace '`', '' -replace '\*\*', ''))
    }
    Set-Content -Path (Join-Path $OutputPath "$($about.BaseName).help.txt") -Value $text -Encoding utf8NoBOM
}
