#!/bin/bash
# tempadmin: end what ran elevated, macOS. Installed by `tempadmin jumpcloud
# install-commands` as a JumpCloud command (commandType mac, user root,
# launchType trigger) and fired when a grant ends with
# `[device] end_elevated` set. It runs as root on every system bound to the
# command, with the trigger's variables in the environment:
#   targetSystemId  the JumpCloud system id the grant was on
#   userName        the account name from the user's JumpCloud record
#   endMode         "notify": forget cached sudo credentials only;
#                   "terminate": also end the sudo process trees
# It touches only processes whose real user is that account: never another
# user's, never a system service's. Written for the bash 3.2 macOS ships
# (no mapfile, no associative arrays).
set -u

JCAGENT_CONF=/opt/jc/jcagent.conf
key=$(sed -n 's/.*"systemKey" *: *"\([0-9a-fA-F]\{24\}\)".*/\1/p' "$JCAGENT_CONF" 2>/dev/null | head -n 1)
if [[ -z "${targetSystemId:-}" || "$key" != "$targetSystemId" ]]; then
    exit 0
fi

user=${userName:-}
mode=${endMode:-notify}
# From JumpCloud's record, checked before any use: a plain account name.
if ! [[ "$user" =~ ^[a-z_][a-z0-9._-]{0,31}$ ]]; then
    echo "refused: the user name is not a plain account name" >&2
    exit 2
fi
case "$mode" in
    notify | terminate) ;;
    *) echo "refused: endMode must be notify or terminate" >&2; exit 2 ;;
esac
uid=$(id -u "$user" 2>/dev/null) || { echo "no local account $user"; exit 0; }
# macOS people start at 501; below that are system accounts (daemons), and
# nobody is -2 (4294967294).
if ! [[ "$uid" =~ ^[0-9]+$ ]] || (( uid < 501 || uid > 60000 )); then
    echo "refused: $user is a system account" >&2
    exit 2
fi

# 1. Forget the user's cached sudo credentials: macOS keeps sudo's
# timestamps in /var/db/sudo/ts, one file per user (`sudo -K` cannot take
# `-u`).
rm -f "/var/db/sudo/ts/$user"
echo "cleared sudo timestamps of $user"

[[ "$mode" == terminate ]] || exit 0

# 2. End the sudo process trees the user started: sudo keeps the invoking
# user as its real uid, which `pgrep -U` matches; HUP to sudo is relayed to
# its command.
tree_of() {
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid"); do
        tree_of "$child"
    done
}
roots=$(pgrep -U "$uid" -x sudo)
if [[ -z "$roots" ]]; then
    echo "no sudo processes of $user"
    exit 0
fi
trees=""
for root in $roots; do
    trees="$trees $(tree_of "$root" | tr '\n' ' ')"
done
# "pid start-time" pairs: a pid reused meanwhile is not hit.
snapshot=$(for pid in $trees; do echo "$pid $(ps -o lstart= -p "$pid" 2>/dev/null)"; done)
pkill -HUP -U "$uid" -x sudo
for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for pid in $trees; do
        kill -0 "$pid" 2>/dev/null && alive=1
    done
    (( alive )) || break
    sleep 0.5
done
# 3. KILL what survived the HUP in those trees.
echo "$snapshot" | while read -r pid started; do
    [[ -n "$pid" ]] || continue
    now=$(ps -o lstart= -p "$pid" 2>/dev/null) || continue
    [[ -n "$now" && "$now" == "$started" ]] && kill -KILL "$pid" 2>/dev/null
done
echo "ended the sudo process trees of $user"
exit 0
