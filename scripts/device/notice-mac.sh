#!/bin/bash
# tempadmin device notice, macOS. Installed by `tempadmin jumpcloud
# install-commands` as a JumpCloud command (commandType mac, user root,
# launchType trigger). It runs on every system bound to the command, as
# root, with the trigger's variables in the environment:
#   targetSystemId  the JumpCloud system id the notice is for
#   noticeTitle     a short title, written by tempadmin
#   noticeMessage   one sentence, written by tempadmin
# The text reaches AppleScript only as `argv` items: the AppleScript below
# is fixed, never built from the text, and it uses only Standard Additions
# (no `tell application "System Events"`), so no PPPC profile is needed.
set -u

# Only the system the notice is for shows it (a trigger runs on every system
# bound to the command).
JCAGENT_CONF=/opt/jc/jcagent.conf
key=$(sed -n 's/.*"systemKey" *: *"\([0-9a-fA-F]\{24\}\)".*/\1/p' "$JCAGENT_CONF" 2>/dev/null | head -n 1)
if [[ -z "${targetSystemId:-}" || "$key" != "$targetSystemId" ]]; then
    exit 0
fi
title=${noticeTitle:-tempadmin}
message=${noticeMessage:-}

# The console user: the owner of /dev/console. At the login window it is
# root (or loginwindow / _mbsetupuser during setup): nobody to tell.
user=$(stat -f %Su /dev/console 2>/dev/null)
case "$user" in
    "" | root | loginwindow | _mbsetupuser) exit 0 ;;
esac
[[ "$user" =~ ^[A-Za-z_][A-Za-z0-9._-]{0,254}$ ]] || exit 0
uid=$(id -u "$user" 2>/dev/null) || exit 0

# `launchctl asuser` puts osascript into the user's GUI bootstrap namespace
# (a notification from root's context would not reach the user's screen);
# `sudo -u` then drops to the user. `osascript -` reads the fixed script from
# stdin, and the two words after it become `argv`.
launchctl asuser "$uid" sudo -u "$user" /usr/bin/osascript - "$title" "$message" <<'APPLESCRIPT'
on run argv
    display notification (item 2 of argv) with title (item 1 of argv)
end run
APPLESCRIPT
echo "tempadmin notice shown to the console user"
exit 0
