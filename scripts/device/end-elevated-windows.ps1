# tempadmin: end what ran elevated, Windows. Installed by `tempadmin
# jumpcloud install-commands` as a JumpCloud command (commandType windows,
# shell powershell, launchType trigger) and fired when a grant ends with
# `[device] end_elevated` set. It runs as LocalSystem on every system bound
# to the command, with the trigger's variables in the environment:
#   $env:targetSystemId  the JumpCloud system id the grant was on
#   $env:userName        the account name from the user's JumpCloud record
#   $env:endMode         "notify": change nothing here (the user is told in
#                        the notice that a sign-out completes the removal);
#                        "terminate": end the user's elevated processes
# Windows keeps the admin token of a sign-in until sign-out, and processes
# elevated during the grant keep running after the binding is restored.
# Only processes whose owner is that user AND whose token is elevated are
# ended: never another user's, never a service's (session 0).
$ErrorActionPreference = 'Stop'

$JcagentConf = 'C:\Program Files\JumpCloud\Plugins\Contrib\jcagent.conf'
$key = ''
try {
    $match = [regex]::Match((Get-Content -Raw -LiteralPath $JcagentConf), '"systemKey"\s*:\s*"([0-9a-fA-F]{24})"')
    if ($match.Success) { $key = $match.Groups[1].Value }
} catch { }
if (-not $env:targetSystemId -or $key -ne $env:targetSystemId) { exit 0 }

$user = "$env:userName"
$mode = if ($env:endMode) { "$env:endMode" } else { 'notify' }
# From JumpCloud's record, checked before any use. \z, not $: .NET's `$`
# also matches before a final newline.
if ($user -notmatch '\A[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\z') {
    Write-Output 'refused: the user name is not a plain account name'; exit 2
}
if ($mode -notin @('notify', 'terminate')) {
    Write-Output 'refused: endMode must be notify or terminate'; exit 2
}
if ($mode -ne 'terminate') { Write-Output 'notify: nothing ended'; exit 0 }

# Whether a process's token is elevated (TokenElevation), read with the
# rights LocalSystem has. Compiled from this fixed source; no text from the
# trigger goes into it.
Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class TempadminToken {
    [DllImport("advapi32.dll", SetLastError = true)]
    static extern bool OpenProcessToken(IntPtr process, uint access, out IntPtr token);
    [DllImport("advapi32.dll", SetLastError = true)]
    static extern bool GetTokenInformation(IntPtr token, int cls, out int info, int length, out int returned);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern IntPtr OpenProcess(uint access, bool inherit, int pid);
    [DllImport("kernel32.dll")]
    static extern bool CloseHandle(IntPtr handle);
    public static bool IsElevated(int pid) {
        IntPtr process = OpenProcess(0x1000, false, pid); // PROCESS_QUERY_LIMITED_INFORMATION
        if (process == IntPtr.Zero) return false;
        try {
            IntPtr token;
            if (!OpenProcessToken(process, 0x0008, out token)) return false; // TOKEN_QUERY
            try {
                int elevated, returned;
                return GetTokenInformation(token, 20, out elevated, 4, out returned) && elevated != 0; // TokenElevation
            } finally { CloseHandle(token); }
        } finally { CloseHandle(process); }
    }
}
'@

$ended = 0
foreach ($p in Get-CimInstance -ClassName Win32_Process) {
    if ($p.SessionId -eq 0) { continue }
    $owner = Invoke-CimMethod -InputObject $p -MethodName GetOwner -ErrorAction SilentlyContinue
    if (-not $owner -or $owner.User -ne $user) { continue }
    if (-not [TempadminToken]::IsElevated([int]$p.ProcessId)) { continue }
    try {
        Stop-Process -Id $p.ProcessId -Force
        $ended++
    } catch { }
}
Write-Output "ended $ended elevated process(es) of $user; a sign-out completes the removal"
exit 0
