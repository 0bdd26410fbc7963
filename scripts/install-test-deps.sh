#!/usr/bin/env bash
# Installs what the real-client tests (bridge/tests/real_clients.rs) need on a machine that has
# only the Rust toolchain, gcc and python3:
#   - headless Chromium and its WebDriver (Debian packages chromium, chromium-driver),
#   - ip and unshare (iproute2, util-linux) for the private network namespace,
#   - systemd-analyze (systemd) to check the unit files in systemd/,
#   - clang, whose BPF target compiles turn's in-kernel ChannelData relay (turn/build.rs),
#   - coturn's turnutils_uclient and turnutils_peer (Debian package coturn), the yardstick
#     client for turn/tests/uclient.rs; coturn's own turnserver is installed with them but is
#     never started, and stays disabled,
#   - a Python venv with aiortc, pinned, at ${BRIDGE_TEST_VENV:-$HOME/.cache/bridge-tests/venv}.
# Chromium is driven through chromedriver's W3C WebDriver HTTP API with Python's stdlib, so the
# venv needs nothing for it.
#
# Idempotent and silent when everything is already there; exits non-zero with a message naming
# what failed otherwise. Safe to run from several processes at once (a lock serializes them).
set -euo pipefail

VENV="${BRIDGE_TEST_VENV:-$HOME/.cache/bridge-tests/venv}"
PYTHON="${PYTHON:-python3}"

# Every package of the venv, pinned (aiortc 1.16.0 and what it pulls in; all prebuilt wheels).
REQUIREMENTS="aioice==0.13.0
aiortc==1.16.0
av==18.1.0
cffi==2.1.1
cryptography==50.0.2
dnspython==2.9.2
google-crc32c==1.9.0
ifaddr==0.2.0
pycparser==3.12
pyee==13.0.1
pylibsrtp==1.0.0
pyOpenSSL==26.4.0
typing_extensions==4.16.0"

die() {
    printf 'install-test-deps: FAILED: %s\n' "$*" >&2
    exit 1
}
say() { printf 'install-test-deps: %s\n' "$*" >&2; }

# One installer at a time (cargo runs tests in parallel; apt and pip must not race).
mkdir -p "$(dirname "$VENV")" || die "cannot create $(dirname "$VENV")"
exec 9>"$(dirname "$VENV")/.install.lock"
if command -v flock >/dev/null; then
    flock 9 || die "cannot lock $(dirname "$VENV")/.install.lock"
fi

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install these by hand: $*"
    say "installing $* with apt-get"
    local log
    log=$(mktemp)
    if [ "$APT_UPDATED" = 0 ]; then
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            die "apt-get update failed"
        fi
        APT_UPDATED=1
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        --no-install-recommends "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed"
    fi
    rm -f "$log"
}

# --- system packages -----------------------------------------------------------------------
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
# systemd-analyze verify/security for the unit files (sdnotify/tests/systemd_units.rs).
command -v systemd-analyze >/dev/null || missing+=(systemd)
# clang's BPF target compiles turn's in-kernel relay (turn/build.rs); without it turn builds
# without the relay, and turn/tests/kernel_relay.rs fails.
command -v clang >/dev/null || missing+=(clang)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi
for tool in chromium chromedriver ip unshare systemd-analyze clang; do
    command -v "$tool" >/dev/null || die "$tool is still missing after apt-get install"
done

# --- coturn's test clients -------------------------------------------------------------------
# The package's maintainer scripts would start (and on systemd hosts enable) a turnserver
# listening on 3478: a policy-rc.d that forbids every start is in place while it installs
# (Docker images ship one already; then it is left as it is), and afterwards the service is
# disabled wherever an init system could start it.
if ! command -v turnutils_uclient >/dev/null || ! command -v turnutils_peer >/dev/null; then
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# install-test-deps.sh: no service starts while coturn installs\nexit 101\n' \
            | as_root tee "$policy" >/dev/null || die "cannot write $policy"
        as_root chmod 755 "$policy"
        own_policy=1
    fi
    install_status=0
    (apt_install coturn) || install_status=$?
    if [ "$own_policy" = 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$install_status" = 0 ] || die "apt-get install coturn failed"
fi
for tool in turnutils_uclient turnutils_peer; do
    command -v "$tool" >/dev/null || die "$tool is still missing after apt-get install coturn"
done
# Idempotent, and done on every run: a service someone enabled since is disabled again.
if [ -f /etc/default/coturn ] && grep -Eq '^[[:space:]]*TURNSERVER_ENABLED=[[:space:]]*"?(1|yes|true)' \
    /etc/default/coturn; then
    as_root sed -i -E 's/^([[:space:]]*TURNSERVER_ENABLED=)/#\1/' /etc/default/coturn
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    if systemctl is-enabled --quiet coturn.service 2>/dev/null \
        || systemctl is-active --quiet coturn.service 2>/dev/null; then
        as_root systemctl disable --now coturn.service >/dev/null 2>&1 || die "cannot disable coturn.service"
    fi
elif [ -e /etc/systemd/system/multi-user.target.wants/coturn.service ]; then
    # No systemd running (a container): the unit may still have been enabled for a later boot.
    # deb-systemd-helper refuses to run outside a maintainer script unless told which package.
    as_root env DPKG_MAINTSCRIPT_PACKAGE=coturn deb-systemd-helper disable coturn.service >/dev/null 2>&1 \
        || as_root rm -f /etc/systemd/system/multi-user.target.wants/coturn.service
fi
if command -v update-rc.d >/dev/null && ls /etc/rc[2-5].d/S*coturn >/dev/null 2>&1; then
    as_root update-rc.d coturn disable >/dev/null 2>&1 || true
fi

# --- the Python venv -------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
stamp="$VENV/.bridge-tests-requirements"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$REQUIREMENTS" ] \
    && "$VENV/bin/python" -c 'import aiortc' >/dev/null 2>&1; then
    exit 0
fi

say "creating the Python venv at $VENV"
rm -rf "$VENV"
if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) for this.
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv $VENV failed even with python3-venv installed"
fi
log=$(mktemp)
reqfile=$(mktemp)
printf '%s\n' "$REQUIREMENTS" >"$reqfile"
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$reqfile" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log" "$reqfile"
    rm -rf "$VENV"
    die "pip install of the pinned test requirements (aiortc) into $VENV failed"
fi
rm -f "$log" "$reqfile"
"$VENV/bin/python" -c 'import aiortc, aioice, av' || die "aiortc does not import in $VENV"
printf '%s' "$REQUIREMENTS" >"$stamp"
say "venv ready: $VENV"
