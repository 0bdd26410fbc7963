#!/usr/bin/env bash
# A three-participant meeting of real WebRTC clients through the bridge, inside a private
# network namespace:
#
#     unshare -n bridge/tests/clients/run_meeting.sh <aiortc|chromium|mixed|relay> [driver options]
#
# Sets lo up, writes a bridge config to a temp dir, starts the bridge ($BRIDGE_BIN, default
# target/release/bridge) with --config, waits until GET /v1/health answers, runs the driver
# (<driver>_meeting.py) with the test venv's python, stops the bridge with SIGTERM, prints the
# bridge's stderr when something failed, and exits with the driver's status.
# scripts/install-test-deps.sh installs what this needs (Chromium, chromedriver, the venv).
set -euo pipefail

die() {
    printf 'run_meeting: %s\n' "$*" >&2
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
driver=${1:-}
case "$driver" in
aiortc | chromium | mixed | relay) shift ;;
*) die "usage: unshare -n $0 <aiortc|chromium|mixed|relay> [driver options]" ;;
esac

bridge_bin=${BRIDGE_BIN:-$root/target/release/bridge}
venv=${BRIDGE_TEST_VENV:-$HOME/.cache/bridge-tests/venv}
python=$venv/bin/python
secret=test-secret-0123456789abcdef
control=http://127.0.0.1:8080
# The drivers bound themselves (60 s aiortc, 120 s chromium and mixed); this is the backstop.
driver_limit=${MEETING_TIMEOUT_S:-180}

[ -x "$bridge_bin" ] || die "no bridge binary at $bridge_bin (cargo build --release -p bridge, or set BRIDGE_BIN)"
[ -x "$python" ] || die "no test venv at $venv: run scripts/install-test-deps.sh"
command -v ip >/dev/null || die "ip (iproute2) not found: run scripts/install-test-deps.sh"

# Only in a namespace of our own: the config takes fixed ports, and no packet may leave.
ip link set lo up || die "cannot set lo up (run me under unshare -n, as root or with unshare -rn)"
if [ -z "${BRIDGE_TEST_ALLOW_HOST_NETWORK:-}" ] && ip -o link show | grep -qv ': lo:'; then
    die "this network namespace has interfaces besides lo: run me under unshare -n"
fi

tmp=$(mktemp -d -t bridge-meeting.XXXXXX)
bridge_pid=
cleanup() {
    if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
        kill -KILL "$bridge_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/bridge.toml" <<EOF
[engine]
listen = "127.0.0.1:10000"
workers = 2
lock_memory = "best-effort"
pool_slots_per_worker = 4096
[metrics]
listen = "127.0.0.1:9464"
[control]
listen = "127.0.0.1:8080"
secret = "$secret"
[media]
announce = ["127.0.0.1"]
EOF

bridge_log() {
    echo "--- bridge stderr (last 300 lines) ---" >&2
    tail -n 300 "$tmp/bridge.stderr" >&2 || true
    echo "--- end of bridge stderr ---" >&2
}

BRIDGE_LOG=${BRIDGE_LOG:-info} NO_COLOR=1 "$bridge_bin" --config "$tmp/bridge.toml" \
    >"$tmp/bridge.stdout" 2>"$tmp/bridge.stderr" </dev/null &
bridge_pid=$!

# Wait (bounded) until the control API answers GET /v1/health with 200.
health() {
    "$python" - "$here" "$control" "$secret" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import sfu
try:
    sfu.Control(sys.argv[2], sys.argv[3], timeout=1.0).health()
except sfu.ApiError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
EOF
}
deadline=$((SECONDS + 20))
until health 2>"$tmp/health.err"; do
    if ! kill -0 "$bridge_pid" 2>/dev/null; then
        wait "$bridge_pid" && status=0 || status=$?
        bridge_pid=
        echo "run_meeting: the bridge exited with status $status before its control API answered" >&2
        bridge_log
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "run_meeting: GET $control/v1/health did not answer 200 within 20 s: $(cat "$tmp/health.err")" >&2
        bridge_log
        exit 1
    fi
    sleep 0.2
done

status=0
timeout -k 10 "$driver_limit" "$python" "$here/${driver}_meeting.py" "$control" "$secret" "$@" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "run_meeting: the $driver driver did not finish within $driver_limit s" >&2
fi

# Stop the bridge: SIGTERM, then a bounded wait for it to drain and exit.
bridge_status=
kill -TERM "$bridge_pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$bridge_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$bridge_pid" 2>/dev/null; then
    echo "run_meeting: the bridge did not exit within 10 s of SIGTERM; killing it" >&2
    kill -KILL "$bridge_pid" 2>/dev/null || true
fi
wait "$bridge_pid" && bridge_status=0 || bridge_status=$?
bridge_pid=

if [ "$status" != 0 ]; then
    echo "run_meeting: the $driver meeting failed (status $status)" >&2
    bridge_log
elif [ "$bridge_status" != 0 ]; then
    echo "run_meeting: warning: the bridge exited with status $bridge_status after SIGTERM" >&2
    bridge_log
fi
exit "$status"
