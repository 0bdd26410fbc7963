#!/usr/bin/env bash
# The E2EE browser checks inside a private network namespace:
#
#     unshare -n signaling/tests/browser_e2ee/run.sh INPUT_JSON
#
# Sets lo up (the page server, chromedriver and the loopback peer connections need nothing
# else, and nothing may leave), then runs driver.py, which bounds itself (200 s); `timeout` is
# the backstop. scripts/install-test-deps.sh installs Chromium and chromedriver.
set -euo pipefail

die() {
    printf 'browser_e2ee/run.sh: %s\n' "$*" >&2
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 1 ] || die "usage: unshare -n $0 INPUT_JSON"
command -v ip >/dev/null || die "ip (iproute2) not found: run scripts/install-test-deps.sh"
command -v python3 >/dev/null || die "python3 not found"

ip link set lo up || die "cannot set lo up (run me under unshare -n, as root or with unshare -rn)"
if [ -z "${E2EE_TEST_ALLOW_HOST_NETWORK:-}" ] && ip -o link show | grep -qv ': lo:'; then
    die "this network namespace has interfaces besides lo: run me under unshare -n"
fi

status=0
timeout -k 10 230 python3 "$here/driver.py" "$1" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "browser_e2ee/run.sh: driver.py did not finish within 230 s" >&2
fi
exit "$status"
