#!/usr/bin/env bash
# The appliance with real browsers, inside a private network namespace:
#
#     unshare -n appliance/tests/browser/run.sh <scenario> [meeting.py options]
#
# Sets lo up, gives the appliance a fresh HOME (its self-signed certificate goes to
# $HOME/.local/state/meeting-appliance), starts it ($APPLIANCE_BIN, default
# target/release/appliance), waits (bounded) until https://127.0.0.1:8443/ answers, runs
# meeting.py <scenario>, stops the appliance with SIGTERM, prints its log when something failed,
# and exits with meeting.py's status. scripts/install-test-deps.sh installs Chromium and
# chromedriver.
set -euo pipefail

die() {
    printf 'browser/run.sh: %s\n' "$*" >&2
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
scenario=${1:-}
[ -n "$scenario" ] || die "usage: unshare -n $0 <topology|lobby|fresh|e2ee> [meeting.py options]"
shift

appliance_bin=${APPLIANCE_BIN:-$root/target/release/appliance}
base=https://127.0.0.1:8443
# meeting.py bounds itself (150 s); this is the backstop.
driver_limit=${MEETING_TIMEOUT_S:-180}

[ -x "$appliance_bin" ] || die "no appliance binary at $appliance_bin (cargo build --release -p appliance, or set APPLIANCE_BIN)"
command -v ip >/dev/null || die "ip (iproute2) not found: run scripts/install-test-deps.sh"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

# Only in a namespace of our own: the appliance takes fixed ports, and no packet may leave.
ip link set lo up || die "cannot set lo up (run me under unshare -n, as root or with unshare -rn)"
if [ -z "${APPLIANCE_TEST_ALLOW_HOST_NETWORK:-}" ] && ip -o link show | grep -qv ': lo:'; then
    die "this network namespace has interfaces besides lo: run me under unshare -n"
fi

tmp=$(mktemp -d -t appliance-browsers.XXXXXX)
mkdir -p "$tmp/home"
appliance_pid=
cleanup() {
    if [ -n "$appliance_pid" ] && kill -0 "$appliance_pid" 2>/dev/null; then
        kill -KILL "$appliance_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

appliance_log() {
    echo "--- appliance log (last 300 lines) ---" >&2
    tail -n 300 "$tmp/appliance.log" >&2 || true
    echo "--- end of appliance log ---" >&2
}

# A test build of the appliance (cargo feature test-tap) records the first packets its bridge
# forwards and says where its control API is; a production build ignores both variables.
export APPLIANCE_TEST_CONTROL_FILE=$tmp/control.json
HOME=$tmp/home NO_COLOR=1 APPLIANCE_TEST_TAP=10000 "$appliance_bin" >"$tmp/appliance.log" 2>&1 </dev/null &
appliance_pid=$!

deadline=$((SECONDS + 30))
until curl -ksf -o /dev/null --max-time 2 "$base/" 2>"$tmp/curl.err"; do
    if ! kill -0 "$appliance_pid" 2>/dev/null; then
        wait "$appliance_pid" && status=0 || status=$?
        appliance_pid=
        echo "browser/run.sh: the appliance exited with status $status before $base/ answered" >&2
        appliance_log
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "browser/run.sh: $base/ did not answer within 30 s: $(cat "$tmp/curl.err")" >&2
        appliance_log
        exit 1
    fi
    sleep 0.2
done

status=0
timeout -k 10 "$driver_limit" python3 "$here/meeting.py" "$base" "$scenario" "$@" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "browser/run.sh: meeting.py did not finish within $driver_limit s" >&2
fi

# Stop the appliance: SIGTERM, then a bounded wait.
appliance_status=
kill -TERM "$appliance_pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$appliance_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$appliance_pid" 2>/dev/null; then
    echo "browser/run.sh: the appliance did not exit within 10 s of SIGTERM; killing it" >&2
    kill -KILL "$appliance_pid" 2>/dev/null || true
fi
wait "$appliance_pid" && appliance_status=0 || appliance_status=$?
appliance_pid=

if [ "$status" != 0 ]; then
    echo "browser/run.sh: the $scenario scenario failed (status $status)" >&2
    appliance_log
elif [ "$appliance_status" != 0 ]; then
    echo "browser/run.sh: warning: the appliance exited with status $appliance_status after SIGTERM" >&2
    appliance_log
fi
exit "$status"
