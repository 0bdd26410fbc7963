#!/usr/bin/env python3
"""Headless Chromium participants forced to relay-only reach the bridge through our TURN server,
and must decode each other.

    relay_meeting.py CONTROL_URL SECRET [--transport udp|tcp|tls] [--participants N]

Run by run_meeting.sh (`relay`) inside the private network namespace, with the bridge already
up on 127.0.0.1. This driver starts our `turn` daemon ($TURN_BIN, or --turn-bin) on 127.0.0.2
with REST API credentials (use-auth-secret) and `allowed-peer-ip=127.0.0.1` (the bridge's media
address: loopback, which the peer policy refuses otherwise), a self-signed certificate for its
TLS listener, and its Prometheus endpoint. Each Chromium gets `iceServers: [{urls:
"turn:127.0.0.2:3478?transport=<udp|tcp>", username, credential}]` (with `--transport tls`:
"turns:127.0.0.2:5349?transport=tcp", and --ignore-certificate-errors for the self-signed
certificate) and `iceTransportPolicy: "relay"`, so a relay candidate is the only one it has;
the bridge (ICE-lite) answers from its host candidate as usual. The meeting is
chromium_meeting.py's (conference, endpoints, offers, answers, getStats polled until every
participant decoded video from every other one, over AEAD_AES_128_GCM). Then, for each
participant: the transport's selected candidate pair is nominated and succeeded, its local
candidate is of type "relay" with the asked relayProtocol, every local candidate is a relay one,
and its remote candidate is the bridge's. And from the TURN server's /metrics: datagrams
relayed in both directions, at least 90% of what the participants counted on their selected
pairs (sent, and received), and an allocation per participant.

Prints one JSON line (participants, turn counters); exit 0 on success, 1 on failure. A hard
timeout (--timeout) bounds the whole run; the turn daemon is stopped with SIGTERM (SIGKILL
after 10 s) however the run ends.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chromium_meeting as cm  # noqa: E402
import sfu  # noqa: E402

# The bridge is on 127.0.0.1 (run_meeting.sh); the TURN server gets an address of its own, so
# the bridge is not one of the server's own addresses, which it never relays to.
TURN_IP = "127.0.0.2"
BRIDGE_IP = "127.0.0.1"
TURN_SECRET = "relay-test-secret-0123456789"
REALM = "bridge.test"
# A relayed datagram must have been seen by the TURN server for at least this share of what
# the browsers counted on their selected pairs (the counters are read a moment apart).
MIN_SHARE = 0.9


class Turn:
    """Our turn daemon with a temp turnserver.conf; stopped by `stop` (SIGTERM, then SIGKILL)."""

    def __init__(self, binary: str, workdir: str, port: int, tls_port: int, metrics_port: int):
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError(f"no turn binary at {binary!r} (set TURN_BIN or --turn-bin)")
        self.metrics_url = f"http://{TURN_IP}:{metrics_port}/metrics"
        self.config = os.path.join(workdir, "turnserver.conf")
        cert, key = self_signed_certificate(workdir)
        with open(self.config, "w") as f:
            f.write(
                "# written by bridge/tests/clients/relay_meeting.py\n"
                f"listening-ip={TURN_IP}\nlistening-port={port}\n"
                "min-port=50000\nmax-port=50999\n"
                f"use-auth-secret\nstatic-auth-secret={TURN_SECRET}\nrealm={REALM}\n"
                f"allowed-peer-ip={BRIDGE_IP}\n"
                f"tls-listening-port={tls_port}\ncert={cert}\npkey={key}\n"
                f"prometheus\nprometheus-address={TURN_IP}\nprometheus-port={metrics_port}\n"
            )
        self.log_path = os.path.join(workdir, "turn.stderr")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--config", self.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        # turn logs "<time>  INFO ready" once it serves (to stderr when not under systemd).
        while not any(line.rstrip().endswith(" ready") for line in self.text().splitlines()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"turn exited with {self.proc.returncode} before ready:\n{self.text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"turn did not say ready within 20 s:\n{self.text()}")
            time.sleep(0.05)

    def text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            body = resp.read().decode()
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, SIGKILL; the exit status (None if it had to be killed)."""
        status = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                status = None
        self.log.close()
        return status


def self_signed_certificate(workdir: str) -> tuple[str, str]:
    """A self-signed certificate for TURN_IP (PEM files in `workdir`), made with the venv's
    cryptography (aiortc's dependency). Chromium takes it with --ignore-certificate-errors."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay test TURN server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(TURN_IP))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(workdir, "turn-cert.pem"), os.path.join(workdir, "turn-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def rest_credentials(user: str, lifetime_s: int = 3600) -> tuple[str, str]:
    """TURN REST API credentials (draft-uberti-behave-turn-rest, as coturn's use-auth-secret and
    stun/src/rest.rs): username "expiry:user", password base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + lifetime_s}:{user}"
    digest = hmac.new(TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def relay_problems(name: str, stats: dict, transport: str) -> tuple[list[str], dict]:
    """Whether `name`'s selected pair runs from a relay candidate (over `transport` to the TURN
    server) to the bridge; the problems, and the pair with its candidates."""
    problems = []
    t = cm.transport_of(stats)
    pair_id = t.get("selectedCandidatePairId")
    pairs = {p["id"]: p for p in stats.get("pairs", [])}
    candidates = {c["id"]: c for c in stats.get("candidates", [])}
    pair = pairs.get(pair_id)
    if pair is None:
        return [f"{name}: no nominated selected candidate pair ({pair_id!r} among {sorted(pairs)})"], {}
    local = candidates.get(pair.get("localCandidateId"), {})
    remote = candidates.get(pair.get("remoteCandidateId"), {})
    if pair.get("state") != "succeeded":
        problems.append(f"{name}: selected pair state {pair.get('state')!r}")
    if local.get("candidateType") != "relay":
        problems.append(f"{name}: selected local candidate is {local.get('candidateType')!r}, not relay")
    if local.get("relayProtocol") != transport:
        problems.append(f"{name}: relayProtocol {local.get('relayProtocol')!r}, wants {transport}")
    if local.get("address") != TURN_IP:
        problems.append(f"{name}: relay candidate address {local.get('address')!r}, wants {TURN_IP}")
    if remote.get("address") != BRIDGE_IP:
        problems.append(f"{name}: remote candidate {remote.get('address')!r}, wants the bridge at {BRIDGE_IP}")
    others = [c for c in candidates.values() if c["type"] == "local-candidate" and c["candidateType"] != "relay"]
    if others:
        problems.append(f"{name}: local candidates other than relay despite the relay policy: {others}")
    return problems, {"pair": pair, "local": local, "remote": remote}


def run(args: argparse.Namespace, workdir: str) -> tuple[bool, dict]:
    summary: dict = {"driver": "relay", "transport": args.transport}
    server = cm.PageServer()
    turn = None
    driver = None
    browsers: list[cm.Browser] = []
    ctl = None
    conference = None
    try:
        turn = Turn(args.turn_bin, workdir, args.turn_port, args.turn_tls_port, args.turn_metrics_port)
        driver = cm.ChromeDriver(os.path.join(workdir, "chromedriver.log"))
        names = ["alice", "bob", "carol"][: args.participants]
        if args.transport == "tls":
            url = f"turns:{TURN_IP}:{args.turn_tls_port}?transport=tcp"
            # Our certificate is self-signed.
            cm.CHROMIUM_FLAGS.append("--ignore-certificate-errors")
        else:
            url = f"turn:{TURN_IP}:{args.turn_port}?transport={args.transport}"
        for n in names:
            b = cm.Browser(driver, n, server.url, workdir)
            username, credential = rest_credentials(n)
            b.call(
                "configure",
                {
                    "iceServers": [{"urls": [url], "username": username, "credential": credential}],
                    "iceTransportPolicy": "relay",
                },
            )
            browsers.append(b)
        summary["chromium"] = browsers[0].version

        ctl = sfu.Control(args.control_url, args.secret)
        conference = ctl.create_conference()
        endpoints = {b.name: ctl.create_endpoint(conference) for b in browsers}
        offers = {b.name: b.call("makeOffer", len(names) - 1) for b in browsers}
        for name, offer in offers.items():
            if " typ relay" not in offer or " typ host" in offer:
                raise RuntimeError(f"{name}'s offer should carry relay candidates only:\n{offer}")
        seats = sfu.seat(ctl, conference, endpoints, offers, codecs=cm.CODECS)
        for b in browsers:
            b.call("setAnswer", seats[b.name].answer.sdp)
        owners = {name: s.owners for name, s in seats.items()}
        others = {b.name: [o.name for o in browsers if o is not b] for b in browsers}
        problems, reports = cm.poll(
            browsers, owners, others, cm.EXPECTED_CIPHER, args.duration, args.min_seconds
        )

        # The path: relay candidates at our TURN server, the bridge on the other side.
        sent = received = 0
        for b in browsers:
            p, reports[b.name]["path"] = relay_problems(b.name, b.call("stats"), args.transport)
            problems += p
            pair = reports[b.name]["path"].get("pair", {})
            sent += pair.get("packetsSent") or 0
            received += pair.get("packetsReceived") or 0
        metrics = turn.metrics()
        up = metrics.get('turn_relayed_packets_total{direction="client_to_peer"}', 0)
        down = metrics.get('turn_relayed_packets_total{direction="peer_to_client"}', 0)
        allocations = metrics.get("turn_allocations_total", 0)
        summary["turn"] = {
            "client_to_peer": int(up),
            "peer_to_client": int(down),
            "allocations_total": int(allocations),
            "allocations": int(metrics.get("turn_allocations", 0)),
            "auth_failures": int(metrics.get("turn_auth_failures_total", 0)),
            "browsers_sent": sent,
            "browsers_received": received,
        }
        if up < MIN_SHARE * sent or up <= 0:
            problems.append(f"turn relayed {up:.0f} datagrams client to peer; the browsers sent {sent}")
        if down < MIN_SHARE * received or down <= 0:
            problems.append(f"turn relayed {down:.0f} datagrams peer to client; the browsers received {received}")
        if allocations < len(browsers):
            problems.append(f"turn made {allocations:.0f} allocations for {len(browsers)} participants")
        summary.update(participants=reports, problems=problems)
        return not problems, summary
    finally:
        cm.tear_down(browsers, driver, server, ctl, conference)
        if turn is not None:
            status = turn.stop()
            summary["turn_exit"] = status
            if status != 0:
                print(f"--- turn stderr ---\n{turn.text()[-3000:]}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("control_url", help="the bridge's control API, e.g. http://127.0.0.1:8080")
    ap.add_argument("secret", help="control.secret")
    ap.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp", help="browser to TURN server")
    ap.add_argument("--participants", type=int, default=3)
    ap.add_argument("--turn-bin", default=os.environ.get("TURN_BIN"), help="default $TURN_BIN")
    ap.add_argument("--turn-port", type=int, default=3478)
    ap.add_argument("--turn-tls-port", type=int, default=5349)
    ap.add_argument("--turn-metrics-port", type=int, default=9641)
    ap.add_argument("--duration", type=float, default=30.0, help="longest wait for decoded frames after the answers")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="least media time before success is taken")
    ap.add_argument("--timeout", type=int, default=150, help="hard limit for the whole run, seconds")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir (chromedriver.log, turn.stderr)")
    args = ap.parse_args()

    def hard_timeout(_sig, _frame) -> None:
        # Unwind (so the browsers and turn are stopped), and make sure the process ends soon after.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(1))
        signal.alarm(15)
        raise cm.HardTimeout(f"hard timeout after {args.timeout} s")

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(args.timeout)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="relay-meeting-")
    try:
        ok, summary = run(args, workdir)
    except (Exception, cm.HardTimeout) as e:  # noqa: BLE001 - one clear line, then the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        ok, summary = False, {"driver": "relay", "problems": [f"{type(e).__name__}: {e}"]}
    finally:
        signal.alarm(0)
    return cm.report(ok, summary, workdir, args.keep_logs, started, "relay meeting")


if __name__ == "__main__":
    sys.exit(main())
