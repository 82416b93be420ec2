# tempadmin device notice, Windows. Installed by `tempadmin jumpcloud
# install-commands` as a JumpCloud command (commandType windows, shell
# powershell, launchType trigger). JumpCloud runs it as LocalSystem in
# session 0, on every system bound to the command, with the trigger's
# variables in the environment:
#   $env:targetSystemId  the JumpCloud system id the notice is for
#   $env:noticeTitle     a short title, written by tempadmin
#   $env:noticeMessage   one sentence, written by tempadmin
# The text is data: it goes into the toast's XML as text nodes and to `msg`
# as one argument, never into script source or a command line that is
# parsed again.
$ErrorActionPreference = 'Stop'

# Only the system the notice is for shows it (a trigger runs on every system
# bound to the command). The agent keeps its systemKey here.
$JcagentConf = 'C:\Program Files\JumpCloud\Plugins\Contrib\jcagent.conf'
$key = ''
try {
    $match = [regex]::Match((Get-Content -Raw -LiteralPath $JcagentConf), '"systemKey"\s*:\s*"([0-9a-fA-F]{24})"')
    if ($match.Success) { $key = $match.Groups[1].Value }
} catch { }
if (-not $env:targetSystemId -or $key -ne $env:targetSystemId) { exit 0 }
$title = if ($env:noticeTitle) { $env:noticeTitle } else { 'tempadmin' }
$message = "$env:noticeMessage"

# The signed-in user: SYSTEM cannot show anything in session 0, and a toast
# called as SYSTEM fails with E_ACCESSDENIED (Windos/BurntToast #27). So the
# toast runs as a scheduled task in the user's interactive session.
$user = (Get-CimInstance -ClassName Win32_ComputerSystem).UserName
if (-not $user) { Write-Output 'nobody is signed in'; exit 0 }

# The text travels in a file only SYSTEM and the user can read, not on the
# task's command line (which PowerShell would parse).
$dir = Join-Path $env:ProgramData 'tempadmin'
New-Item -ItemType Directory -Force -Path $dir | Out-Null
$id = [guid]::NewGuid().ToString('N')
$dataFile = Join-Path $dir "notice-$id.json"
$toastFile = Join-Path $dir "toast-$id.ps1"
@{ title = $title; message = $message } | ConvertTo-Json | Set-Content -LiteralPath $dataFile -Encoding UTF8
$acl = New-Object System.Security.AccessControl.FileSecurity
$acl.SetAccessRuleProtection($true, $false)
foreach ($who in @('NT AUTHORITY\SYSTEM', $user)) {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($who, 'Read', 'Allow')))
}
$acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule('NT AUTHORITY\SYSTEM', 'FullControl', 'Allow')))
Set-Acl -LiteralPath $dataFile -AclObject $acl

# The toast, in the user's session, with no module (nothing is downloaded at
# run time): the WinRT ToastNotificationManager under PowerShell's own
# AppUserModelID, which Windows knows without registering one of ours.
# The text goes in through CreateTextNode, so XML in it stays text.
$toast = @'
param($DataFile)
$data = Get-Content -Raw -LiteralPath $DataFile | ConvertFrom-Json
[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime] | Out-Null
[Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime] | Out-Null
$template = [Windows.UI.Notifications.ToastNotificationManager]::GetTemplateContent([Windows.UI.Notifications.ToastTemplateType]::ToastText02)
$texts = $template.GetElementsByTagName('text')
$texts.Item(0).AppendChild($template.CreateTextNode([string]$data.title)) | Out-Null
$texts.Item(1).AppendChild($template.CreateTextNode([string]$data.message)) | Out-Null
$notifier = [Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier('{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe')
$notifier.Show([Windows.UI.Notifications.ToastNotification]::new($template))
'@
Set-Content -LiteralPath $toastFile -Value $toast -Encoding UTF8
Set-Acl -LiteralPath $toastFile -AclObject $acl

$shown = $false
$taskName = "tempadmin-notice-$id"
try {
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -WindowStyle Hidden -ExecutionPolicy Bypass -File `"$toastFile`" -DataFile `"$dataFile`""
    $principal = New-ScheduledTaskPrincipal -UserId $user -LogonType Interactive -RunLevel Limited
    Register-ScheduledTask -TaskName $taskName -Action $action -Principal $principal -Force | Out-Null
    Start-ScheduledTask -TaskName $taskName
    # Wait for the task to finish reading the file (a few seconds at most).
    for ($i = 0; $i -lt 30; $i++) {
        Start-Sleep -Milliseconds 500
        $info = Get-ScheduledTaskInfo -TaskName $taskName
        if ((Get-ScheduledTask -TaskName $taskName).State -ne 'Running' -and $info.LastRunTime -gt [datetime]::MinValue) { break }
    }
    $shown = ($info.LastTaskResult -eq 0)
} catch {
    Write-Output "toast failed: $($_.Exception.Message)"
} finally {
    Unregister-ScheduledTask -TaskName $taskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $dataFile, $toastFile -Force -ErrorAction SilentlyContinue
}

# Fallback: msg.exe, as JumpCloud's "Send Notification Message" gallery
# command does (missing on Home editions). One argument: the call operator
# passes it whole, quoted as needed.
if (-not $shown) {
    $msg = Join-Path $env:SystemRoot 'System32\msg.exe'
    if (Test-Path -LiteralPath $msg) {
        & $msg '*' '/time:60' "$title - $message"
        $shown = ($LASTEXITCODE -eq 0)
    }
}
Write-Output "tempadmin notice shown: $shown"
exit 0
