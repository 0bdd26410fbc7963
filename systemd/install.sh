#!/usr/bin/env bash
# Installs the meeting back end on a plain Debian host, from a release build of this tree:
#
#   cargo build --release -p bridge -p signaling -p turn
#   sudo systemd/install.sh
#   sudo systemctl enable --now meeting.target
#
# - binaries bridge, signaling, turn         -> /usr/local/bin (replaced)
# - meeting-bridge.service, meeting-signaling.service, meeting-turn.service, meeting.target
#                                             -> /etc/systemd/system (replaced)
# - bridge.toml, signaling.toml, turnserver.conf
#                                             -> /etc/meeting (only when missing: never
#                                                overwritten; mode 0640, group of its daemon)
# - system users meeting-bridge, meeting-signaling, meeting-turn (no login, no home)
#
# New configuration files start from each daemon's documented defaults (`bridge
# --print-default-config`, `signaling --print-default-config`, systemd/turnserver.conf) with a
# fresh random control secret (bridge <-> signaling) and TURN secret (turn <-> signaling), the
# signaling daemon on port 443 and the TURN realm set to this host's name.
#
# Options:
#   --bin-dir DIR   where the built binaries are (default: $CARGO_TARGET_DIR/release, else
#                   target/release of this tree)
#   --root DIR      install under DIR instead of / (packaging, tests): no users, no ownership
#                   changes, no systemctl
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
root=/

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}
say() { printf 'install.sh: %s\n' "$*"; }

while [ $# -gt 0 ]; do
    case "$1" in
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

# Every path below is a literal under $root: never empty, never a bare variable.
dest() { printf '%s%s' "${root%/}" "$1"; }
live=0
[ "$root" = / ] && live=1

daemons=(bridge signaling turn)
units=(meeting-bridge.service meeting-signaling.service meeting-turn.service meeting.target)

for daemon in "${daemons[@]}"; do
    [ -x "$bin_dir/$daemon" ] \
        || die "$bin_dir/$daemon is missing: cargo build --release -p bridge -p signaling -p turn"
done
if [ "$live" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR)"
    command -v systemctl >/dev/null || die "systemctl not found: this installs systemd units"
fi

# A random secret of 32 URL-safe characters.
random_secret() {
    head -c 24 /dev/urandom | base64 | tr '+/' '-_'
}

# Sets `key = value` in [section] of a TOML file on stdin (the first such line in the section),
# keeping the comments around it. Fails when the key is not there: the defaults changed.
set_toml() {
    local section=$1 key=$2 value=$3
    awk -v section="[$section]" -v key="$key" -v value="$value" '
        /^\[/ { in_section = ($0 == section) }
        in_section && !done && $0 ~ "^" key " = " { print key " = " value; done = 1; next }
        { print }
        END { if (!done) exit 3 }
    ' || die "no $key in [$section] of the default configuration"
}

# Writes stdin to a new configuration file, readable by root and the daemon's group only (the
# files hold secrets). Through a temporary file, so that a file is whole or absent.
install_new() {
    local file=$1 group=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod 0640 "$tmp"
    if [ "$live" = 1 ]; then
        chown "root:$group" "$tmp"
    fi
    mv "$tmp" "$file"
    say "wrote $file"
}

# --- users -----------------------------------------------------------------------------------
if [ "$live" = 1 ]; then
    for daemon in "${daemons[@]}"; do
        user="meeting-$daemon"
        if ! getent passwd "$user" >/dev/null; then
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --comment "meeting $daemon daemon" "$user"
            say "created system user $user"
        fi
    done
fi

# --- binaries --------------------------------------------------------------------------------
install -d -m 0755 "$(dest /usr/local/bin)"
for daemon in "${daemons[@]}"; do
    install -m 0755 "$bin_dir/$daemon" "$(dest /usr/local/bin)/$daemon"
done
say "installed ${daemons[*]} in $(dest /usr/local/bin)"

# --- configuration ---------------------------------------------------------------------------
etc=$(dest /etc/meeting)
install -d -m 0755 "$etc"
control_secret=$(random_secret)
turn_secret=$(random_secret)
realm=$(hostname -f 2>/dev/null || hostname)
written=()

bridge_toml() {
    printf '# Written by systemd/install.sh from `bridge --print-default-config`.\n'
    "$bin_dir/bridge" --print-default-config | set_toml control secret "\"$control_secret\""
}
signaling_toml() {
    printf '# Written by systemd/install.sh from `signaling --print-default-config`.\n'
    "$bin_dir/signaling" --print-default-config \
        | set_toml server listen '"[::]:443"' \
        | set_toml server state_dir '"/var/lib/meeting-signaling"' \
        | set_toml bridge url '"http://127.0.0.1:8080"' \
        | set_toml bridge secret "\"$control_secret\"" \
        | set_toml turn secret "\"$turn_secret\""
}
turnserver_conf() {
    sed -e "s/@REALM@/$realm/" -e "s/@STATIC_AUTH_SECRET@/$turn_secret/" "$here/turnserver.conf"
}
for file in bridge.toml signaling.toml turnserver.conf; do
    if [ -e "$etc/$file" ]; then
        say "keeping $etc/$file"
        continue
    fi
    # Generated whole before anything is written: a failure here stops the script (set -e).
    case "$file" in
    bridge.toml) content=$(bridge_toml) group=meeting-bridge ;;
    signaling.toml) content=$(signaling_toml) group=meeting-signaling ;;
    turnserver.conf) content=$(turnserver_conf) group=meeting-turn ;;
    esac
    printf '%s\n' "$content" | install_new "$etc/$file" "$group"
    written+=("$file")
done

"$bin_dir/bridge" --check-config "$etc/bridge.toml" >/dev/null || die "$etc/bridge.toml does not check"
"$bin_dir/signaling" --check-config "$etc/signaling.toml" >/dev/null \
    || die "$etc/signaling.toml does not check"
# The secrets pair up only when the files were written together.
if [ "${#written[@]}" -gt 0 ] && [ "${#written[@]}" -lt 3 ]; then
    say "WARNING: only ${written[*]} written: make [control] secret in bridge.toml equal [bridge] secret"
    say "WARNING: in signaling.toml, and static-auth-secret in turnserver.conf equal its [turn] secret"
fi

# --- units -----------------------------------------------------------------------------------
install -d -m 0755 "$(dest /etc/systemd/system)"
for unit in "${units[@]}"; do
    install -m 0644 "$here/$unit" "$(dest /etc/systemd/system)/$unit"
done
say "installed ${units[*]} in $(dest /etc/systemd/system)"
if [ "$live" = 1 ]; then
    systemctl daemon-reload
fi

cat <<EOF

Next:
  1. In $etc/bridge.toml, set [media] announce to the addresses participants reach this host
     on (the bridge's media port is UDP 10000).
  2. In $etc/signaling.toml, set [turn] urls (for example "turn:$realm:3478"), and [tls]
     cert and key for a real certificate (readable by the meeting-signaling group).
  3. In $etc/turnserver.conf, set relay-ip (or listening-ip) to this host's public address,
     or external-ip behind NAT: turn does not start without one.
  4. Optionally: sysctl settings for the bridge (tuning/99-meeting-bridge.conf).
  5. systemctl enable --now meeting.target
EOF
