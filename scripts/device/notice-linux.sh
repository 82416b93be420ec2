#!/bin/bash
# tempadmin device notice, Linux. Installed by `tempadmin jumpcloud
# install-commands` as a JumpCloud command (commandType linux, user root,
# launchType trigger). It runs on every system bound to the command, as
# root, with the trigger's variables in the environment (JumpCloud turns
# each top-level key of the trigger's JSON body into a variable):
#   targetSystemId  the JumpCloud system id the notice is for
#   noticeTitle     a short title, written by tempadmin
#   noticeMessage   one sentence, written by tempadmin
# The text is data: it only ever reaches notify-send as an argument, never
# a shell, and tempadmin never puts anything a person typed into it.
set -u

# The agent's own identity. Several systems may be bound to this command at
# once (several grants), and a trigger runs on all of them: only the one
# whose systemKey is the target shows anything.
JCAGENT_CONF=/opt/jc/jcagent.conf
key=$(sed -n 's/.*"systemKey" *: *"\([0-9a-fA-F]\{24\}\)".*/\1/p' "$JCAGENT_CONF" 2>/dev/null | head -n 1)
if [[ -z "${targetSystemId:-}" || "$key" != "$targetSystemId" ]]; then
    exit 0
fi
title=${noticeTitle:-tempadmin}
message=${noticeMessage:-}

# No notify-send (libnotify) or no logind: a headless server; the chat
# thread is the notice there.
command -v notify-send >/dev/null 2>&1 || exit 0
command -v loginctl >/dev/null 2>&1 || exit 0

# Each logind session with a graphical seat: X11 sessions report Display=,
# Wayland ones may not, so the Type is what selects them. The user's session
# bus lives at /run/user/UID/bus (systemd --user).
shown=0
while read -r session _; do
    [[ -n "$session" ]] || continue
    type=$(loginctl show-session "$session" -p Type --value 2>/dev/null)
    [[ "$type" == x11 || "$type" == wayland ]] || continue
    user=$(loginctl show-session "$session" -p Name --value 2>/dev/null)
    uid=$(loginctl show-session "$session" -p User --value 2>/dev/null)
    display=$(loginctl show-session "$session" -p Display --value 2>/dev/null)
    # Names come from logind, not from the trigger; checked all the same
    # before they reach runuser.
    [[ "$user" =~ ^[a-z_][a-z0-9._-]{0,31}$ && "$uid" =~ ^[0-9]+$ ]] || continue
    [[ -S "/run/user/$uid/bus" ]] || continue
    # runuser, not sudo: root needs no sudoers rule to become the user.
    # `--` ends the options, so a title starting with `-` stays a title.
    runuser -u "$user" -- env DISPLAY="${display:-:0}" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" \
        notify-send --app-name=tempadmin -- "$title" "$message" && shown=$((shown + 1))
done < <(loginctl list-sessions --no-legend 2>/dev/null)
echo "tempadmin notice shown in $shown session(s)"
exit 0
