#!/usr/bin/env bash
# Removes what systemd/install.sh installed: stops and disables the units, removes them and the
# binaries. Keeps the configuration (/etc/meeting), the signaling daemon's state
# (/var/lib/meeting-signaling) and the system users, unless --purge.
#
#   sudo systemd/uninstall.sh [--purge]
#
# Options:
#   --purge       also remove /etc/meeting, /var/lib/meeting-signaling and the users
#   --root DIR    remove from under DIR instead of / (as install.sh --root): no systemctl, no
#                 users
set -euo pipefail

root=/
purge=0

die() {
    printf 'uninstall.sh: %s\n' "$*" >&2
    exit 1
}
say() { printf 'uninstall.sh: %s\n' "$*"; }

while [ $# -gt 0 ]; do
    case "$1" in
    --purge) purge=1; shift ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

# Every path below is a literal under $root: never empty, never a bare variable.
dest() { printf '%s%s' "${root%/}" "$1"; }
live=0
[ "$root" = / ] && live=1
if [ "$live" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR)"
fi

daemons=(bridge signaling turn)
units=(meeting.target meeting-bridge.service meeting-signaling.service meeting-turn.service)

if [ "$live" = 1 ] && command -v systemctl >/dev/null; then
    # Stopping a unit that is not loaded is no error worth stopping for.
    systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
fi
for unit in "${units[@]}"; do
    rm -f -- "$(dest /etc/systemd/system)/$unit"
done
if [ "$live" = 1 ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl reset-failed "${units[@]}" >/dev/null 2>&1 || true
fi
say "removed the units"

for daemon in "${daemons[@]}"; do
    rm -f -- "$(dest /usr/local/bin)/$daemon"
done
say "removed ${daemons[*]} from $(dest /usr/local/bin)"

if [ "$purge" = 1 ]; then
    rm -rf -- "$(dest /etc/meeting)" "$(dest /var/lib/meeting-signaling)"
    say "removed $(dest /etc/meeting) and $(dest /var/lib/meeting-signaling)"
    if [ "$live" = 1 ]; then
        for daemon in "${daemons[@]}"; do
            if getent passwd "meeting-$daemon" >/dev/null; then
                userdel "meeting-$daemon"
                say "removed system user meeting-$daemon"
            fi
        done
    fi
else
    say "kept $(dest /etc/meeting) (--purge removes it)"
fi
