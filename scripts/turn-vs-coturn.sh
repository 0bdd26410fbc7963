#!/usr/bin/env bash
# Our `turn` against coturn with the shared benchmark (../shared/bench/turn-vs-coturn.sh, which
# drives both with coturn's turnutils_uclient and turnutils_peer on loopback).
#
# Each scenario runs in its own invocation, so both servers start fresh every time: uclient
# leaves its allocations behind when it exits, and a later run whose client happens to get the
# same ephemeral port would meet one of them (437 Allocation Mismatch) on either server.
#
#   scripts/turn-vs-coturn.sh [--quick] [--repeat N] [--kernel-relay] [--port-offset N] [SCENARIO ...]
#
# --kernel-relay runs ours with its in-kernel ChannelData relay on loopback
# (kernel-relay-interface=lo; needs root). The benchmark charges each server its own process's
# CPU; the kernel relay's work runs in softirq context, which this kernel (no
# CONFIG_IRQ_TIME_ACCOUNTING) charges to whichever task is on the CPU, mostly uclient and
# turnutils_peer. So with it, the same run also reports the whole machine's CPU per message
# (all processes and interrupts, from /proc/stat), for both servers, to show the saving is real.
#
# --port-offset N moves every port both servers and the echo peer listen on (and our relay
# range) up by N, so that two runs can share the machine.
#
# Needs coturn (scripts/install-test-deps.sh installs it), openssl and a release build, which
# this script makes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${TURN_BENCH:-$ROOT/../shared/bench/turn-vs-coturn.sh}
QUICK=() KERNEL_RELAY=0 REPEAT=1 OFFSET=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --quick) QUICK=(--quick);;
    --repeat) REPEAT=$2; shift;;
    --kernel-relay) KERNEL_RELAY=1;;
    --port-offset) OFFSET=$2; shift;;
    *) echo "turn-vs-coturn: unknown option $1" >&2; exit 2;;
  esac
  shift
done
SCENARIOS=("$@")
if [[ ${#SCENARIOS[@]} == 0 ]]; then
  SCENARIOS=(udp_m10_l120_z20 udp_m50_l120_z20 udp_m100_l120_z20 udp_m100_l1200_z20 udp_m20_l120_z1
             udp_m40_l120_z1 udp_m40_l1200_z1 udp_send_m20_l120_z1 tcp_m20_l120_z1
             tls_norctp_m20_l120_z1 udp_flood_m10_l120 tcprelay_m4_l120_z1)
fi

[[ -f $BENCH ]] || { echo "turn-vs-coturn: $BENCH not found (set TURN_BENCH)" >&2; exit 2; }
bash "$ROOT/scripts/install-test-deps.sh"
cargo build --release -q -p turn --manifest-path "$ROOT/Cargo.toml"
TURN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/turn

WORK=$(mktemp -d "${TMPDIR:-/tmp}/turn-vs-coturn.XXXXXX")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
SECRET=bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
# The echo peer is on 127.0.0.1, the daemon's own address: allowed explicitly, as the
# benchmark requires (never in production). Relay ports apart from coturn's 40000-44999.
cat > "$WORK/turn.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$((3479 + OFFSET))
tls-listening-port=$((5350 + OFFSET))
min-port=$((45000 + OFFSET))
max-port=$((49999 + OFFSET))
realm=bench.local
use-auth-secret
static-auth-secret=$SECRET
cert=$WORK/cert.pem
pkey=$WORK/key.pem
allowed-peer-ip=127.0.0.1
CONF
if [[ $KERNEL_RELAY == 1 ]]; then echo "kernel-relay-interface=lo" >> "$WORK/turn.conf"; fi

for scenario in "${SCENARIOS[@]}"; do
  echo "turn-vs-coturn: $scenario" >&2
  timeout $((900 * REPEAT)) bash "$BENCH" --mode compare "${QUICK[@]}" --repeat "$REPEAT" --label ours --port $((3479 + OFFSET)) --tls-port $((5350 + OFFSET)) \
      --coturn-port $((34780 + OFFSET)) --peer-port $((34790 + OFFSET)) \
      --secret "$SECRET" --server-cmd "$TURN_BIN --config $WORK/turn.conf" \
      --scenarios "$scenario" --outdir "$WORK/$scenario" > "$WORK/$scenario.log" 2>&1 \
    || { echo "turn-vs-coturn: $scenario failed, see $WORK/$scenario.log" >&2; exit 1; }
done
bash "$BENCH" --summarize "$WORK"/*/results.jsonl
# The cost of the whole relayed path, per message: the server's CPU plus that of uclient and
# turnutils_peer, which is where softirq work (the kernel relay's included) is charged here.
python3 - "$WORK"/*/results.jsonl <<'PY'
import json, statistics, sys
runs = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        if r.get("rc") == 0 and r.get("msg_s"):
            runs.setdefault(r["scenario"], {}).setdefault(r["target"], []).append(r)
def path_us(r):
    # The benchmark leaves peer_cpu_pct out when it could not sample turnutils_peer, which
    # tcprelay (-T, client to client) does not use anyway.
    return (r["srv_cpu_pct"] + r.get("peer_cpu_pct", 0) + r["client_cpu_pct"]) * 1e4 / r["msg_s"]
def median(rs, f):
    return statistics.median(f(r) for r in rs)
print("\nMedians over repetitions; path = server + uclient + turnutils_peer CPU per message.")
print("| scenario | runs | coturn srv us/msg | ours srv us/msg | srv ratio | coturn path | ours path | path ratio | msg/s ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for scenario, pair in sorted(runs.items()):
    c, o = pair.get("coturn"), pair.get("ext")
    if not (c and o):
        continue
    cs, os_ = median(c, lambda r: r["srv_us_per_msg"]), median(o, lambda r: r["srv_us_per_msg"])
    cp, op = median(c, path_us), median(o, path_us)
    rate = median(o, lambda r: r["msg_s"]) / median(c, lambda r: r["msg_s"])
    print(f"| {scenario} | {len(o)} | {cs:.1f} | {os_:.1f} | {os_ / cs:.2f} | {cp:.1f} | {op:.1f} | "
          f"{op / cp:.2f} | {rate:.2f} |")
PY
echo "raw results: $WORK" >&2
