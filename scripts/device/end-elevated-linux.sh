#!/bin/bash
# tempadmin: end what ran elevated, Linux. Installed by `tempadmin jumpcloud
# install-commands` as a JumpCloud command (commandType linux, user root,
# launchType trigger) and fired when a grant ends with
# `[device] end_elevated` set. It runs as root on every system bound to the
# command, with the trigger's variables in the environment:
#   targetSystemId  the JumpCloud system id the grant was on
#   userName        the account name from the user's JumpCloud record
#   endMode         "notify": forget cached sudo credentials only;
#                   "terminate": also end the sudo process trees
# It touches only processes whose real user is that account: never another
# user's, never a system service's.
set -u

# Only the system the grant was on acts (a trigger runs on every system
# bound to the command).
JCAGENT_CONF=/opt/jc/jcagent.conf
key=$(sed -n 's/.*"systemKey" *: *"\([0-9a-fA-F]\{24\}\)".*/\1/p' "$JCAGENT_CONF" 2>/dev/null | head -n 1)
if [[ -z "${targetSystemId:-}" || "$key" != "$targetSystemId" ]]; then
    exit 0
fi

user=${userName:-}
mode=${endMode:-notify}
# The name comes from JumpCloud's record, not from a person, and is checked
# all the same before any use: a plain POSIX account name. Bash's `=~`
# anchors `$` at the end of the string, so a newline cannot sneak through.
if ! [[ "$user" =~ ^[a-z_][a-z0-9._-]{0,31}$ ]]; then
    echo "refused: the user name is not a plain account name" >&2
    exit 2
fi
case "$mode" in
    notify | terminate) ;;
    *) echo "refused: endMode must be notify or terminate" >&2; exit 2 ;;
esac
uid=$(id -u -- "$user" 2>/dev/null) || { echo "no local account $user"; exit 0; }
# Only the range login.defs gives people (UID_MIN..UID_MAX, 1000..60000 by
# default): below it are system accounts that run services, above it
# `nobody` (65534) and other special ids. Those are never touched.
uid_min=$(awk '$1 == "UID_MIN" { print $2 }' /etc/login.defs 2>/dev/null)
uid_max=$(awk '$1 == "UID_MAX" { print $2 }' /etc/login.defs 2>/dev/null)
if ! [[ "$uid" =~ ^[0-9]+$ ]] || (( uid < ${uid_min:-1000} || uid > ${uid_max:-60000} )); then
    echo "refused: $user is a system account" >&2
    exit 2
fi

# 1. Forget the user's cached sudo credentials. `sudo -K` cannot take `-u`,
# so root deletes the user's timestamp file; `sudo -V` (as root) prints the
# directory ("Path to authentication timestamp dir"), /run/sudo/ts on most
# distributions.
ts_dir=$(sudo -V 2>/dev/null | sed -n 's/^Path to authentication timestamp dir: *//p' | head -n 1)
for dir in "$ts_dir" /run/sudo/ts /var/run/sudo/ts /var/lib/sudo/ts; do
    [[ -n "$dir" && -d "$dir" ]] && rm -f -- "$dir/$user"
done
echo "cleared sudo timestamps of $user"

[[ "$mode" == terminate ]] || exit 0

# 2. End the sudo process trees the user started. A sudo process keeps the
# invoking user as its real uid (only the effective uid is root), so
# `pgrep -U` finds them by the user's uid and never another user's. sudo
# stays the parent of its command and relays signals to it: HUP to sudo
# ends `sudo -i` / `sudo -s` shells and most commands.
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
trees=()
for root in $roots; do
    mapfile -t -O "${#trees[@]}" trees < <(tree_of "$root")
done
# A process's start time (field 22 of /proc/PID/stat, counted after the
# command name, which may hold spaces): a pid reused meanwhile is not hit.
start_time() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -ra fields <<<"${stat##*) }"
    echo "${fields[19]}"
}
declare -A started
for pid in "${trees[@]}"; do
    started[$pid]=$(start_time "$pid")
done
pkill -HUP -U "$uid" -x sudo
# Give them up to five seconds to end on their own.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for pid in "${trees[@]}"; do
        [[ -e "/proc/$pid" ]] && alive=1
    done
    (( alive )) || break
    sleep 0.5
done
# 3. KILL what survived the HUP in those trees (a command that ignores
# SIGHUP, or one sudo could not relay to).
killed=0
for pid in "${trees[@]}"; do
    now=$(start_time "$pid") || continue
    if [[ -n "$now" && "$now" == "${started[$pid]}" ]]; then
        kill -KILL "$pid" 2>/dev/null && killed=$((killed + 1))
    fi
done
echo "ended ${#trees[@]} process(es) in sudo trees of $user ($killed needed KILL)"
exit 0
