#!/usr/bin/env python3
"""Three headless Chromium participants meet through the bridge and must decode each other,
over AEAD_AES_128_GCM.

    chromium_meeting.py CONTROL_URL SECRET        the meeting through the bridge
    chromium_meeting.py --loopback                two browsers directly, no bridge (sanity check
                                                   of this driver's media path)
    chromium_meeting.py --offer-only              print one participant's offer and exit

Each participant is a Chromium (fake camera and microphone, DESIGN.md's flags) with its own
user-data-dir, driven through chromedriver's W3C WebDriver HTTP API with nothing but the
stdlib. The page (page.html) is served on 127.0.0.1 by http.server: getUserMedia needs a secure
context, which http://127.0.0.1 is. The flow is aiortc_meeting.py's: conference, endpoints,
offers (page makeOffer), PATCH, answers composed with the others' sources (page setAnswer).
Then getStats is polled until every participant has decoded frames (inbound-rtp video
framesDecoded > 0) from a source of each other participant and its transport reports
srtpCipher AEAD_AES_128_GCM, or until --duration runs out.

Prints one JSON line (with dtlsCipher, tlsVersion, per-source counters); exit 0 on success, 1 on
failure. A hard timeout (--timeout) bounds the whole run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sfu  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts"))
from webdriver import ChromeDriver, PageSession, chromium_flags, free_port  # noqa: E402

CODECS = ("opus", "VP8")  # RTX follows VP8
# getStats' transport srtpCipher: Chromium 156 reports the IANA profile name
# ("SRTP_AEAD_AES_128_GCM", seen with aiortc as the DTLS server); older libwebrtc reported
# "AEAD_AES_128_GCM". Either means AEAD_AES_128_GCM.
EXPECTED_CIPHER = "AEAD_AES_128_GCM"


def cipher_is(reported: str | None, wanted: str) -> bool:
    return reported is not None and reported.upper().removeprefix("SRTP_") == wanted

CHROMIUM_FLAGS = chromium_flags(fps=30)


class HardTimeout(Exception):
    pass


class Browser(PageSession):
    """One Chromium (one WebDriver session) showing page.html."""

    def __init__(self, driver: ChromeDriver, name: str, url: str, workdir: str):
        self.name = name
        self.profile = tempfile.mkdtemp(prefix=f"chromium-{name}-", dir=workdir)
        args = CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}", "--window-size=640,480"]
        super().__init__(driver, url, args, script_ms=30000, call_timeout=45, label=name)

    def quit(self) -> None:
        try:
            self.call("hangUp")
        except Exception:  # noqa: BLE001 - best effort before the session goes
            pass
        super().quit()


class PageServer:
    """http.server on 127.0.0.1 serving this directory (page.html), in a thread."""

    def __init__(self):
        handler = functools.partial(_QuietHandler, directory=HERE)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/page.html"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def transport_of(stats: dict) -> dict:
    for t in stats.get("transports", []):
        if t.get("dtlsState") == "connected" or t.get("srtpCipher"):
            return t
    return (stats.get("transports") or [{}])[0]


def evaluate(
    name: str,
    stats: dict,
    ssrc_owner: dict[int, str],
    others: list[str],
    need_cipher: str | None,
    need_audio: bool = False,
) -> tuple[list[str], dict]:
    """Problems (empty when `name` is done) and a compact report of its stats. With
    `need_audio`, `name` must also have decoded audio from each of `others`: samples that
    were not concealment (inbound-rtp totalSamplesReceived - concealedSamples > 0)."""
    problems = []
    decoded: dict[str, dict] = {}
    audio: dict[str, dict] = {}
    for s in stats.get("inbound", []):
        owner = ssrc_owner.get(s.get("ssrc"), f"ssrc {s.get('ssrc')}")
        if s.get("kind") == "video":
            prev = decoded.get(owner)
            if prev is None or (s.get("framesDecoded") or 0) > (prev.get("framesDecoded") or 0):
                decoded[owner] = {
                    k: s.get(k) for k in ("ssrc", "mid", "framesDecoded", "packetsReceived", "frameWidth", "frameHeight")
                }
        elif s.get("kind") == "audio":
            audio[owner] = {k: s.get(k) for k in ("ssrc", "mid", "packetsReceived", "totalSamplesReceived")}
            audio[owner]["samplesDecoded"] = (s.get("totalSamplesReceived") or 0) - (s.get("concealedSamples") or 0)
    if ssrc_owner:
        wanted = others
    else:  # loopback: whoever sends to us; the SSRCs come from the other browser's own SDP
        wanted = sorted(decoded) if decoded else others
    ssrcs = set()
    for other in wanted:
        got = decoded.get(other, {})
        if (got.get("framesDecoded") or 0) <= 0:
            problems.append(f"{name} decoded no video frame from {other}")
        else:
            ssrcs.add(got.get("ssrc"))
    if len(ssrcs) < len(others):
        problems.append(f"{name} decoded video from {len(ssrcs)} SSRCs, wants {len(others)}")
    if need_audio:
        for other in wanted:
            if audio.get(other, {}).get("samplesDecoded", 0) <= 0:
                problems.append(f"{name} decoded no audio sample from {other}")
    t = transport_of(stats)
    if need_cipher and not cipher_is(t.get("srtpCipher"), need_cipher):
        problems.append(f"{name}: srtpCipher {t.get('srtpCipher')!r}, wants {need_cipher}")
    if problems:
        problems.append(
            f"{name}: connection {stats.get('connectionState')}, ICE {t.get('iceState')}, DTLS {t.get('dtlsState')}"
        )
    report = {
        "video": decoded,
        "audio": audio,
        "connectionState": stats.get("connectionState"),
        "transport": {
            k: t.get(k) for k in ("srtpCipher", "dtlsCipher", "tlsVersion", "dtlsState", "iceState", "dtlsRole")
        },
        "outbound": [
            {k: o.get(k) for k in ("kind", "ssrc", "packetsSent", "framesEncoded", "encoderImplementation")}
            for o in stats.get("outbound", [])
        ],
    }
    return problems, report


def poll(
    browsers: list,
    owners: dict[str, dict[int, str]],
    others: dict[str, list[str]],
    need_cipher,
    duration: float,
    min_seconds: float,
    need_audio: bool = False,
):
    """Polls stats until every browser is done (and at least `min_seconds` of media have
    passed, so the counters say something) or `duration` runs out. `need_audio` as in
    `evaluate`."""
    start = time.monotonic()
    deadline = start + duration
    while True:
        problems: list[str] = []
        reports = {}
        for b in browsers:
            stats = b.call("stats")
            p, reports[b.name] = evaluate(b.name, stats, owners[b.name], others[b.name], need_cipher, need_audio)
            if p:
                reports[b.name]["log"] = stats.get("log", [])[-8:]
            problems += p
        now = time.monotonic()
        if (not problems and now - start >= min_seconds) or now > deadline:
            return problems, reports
        time.sleep(1.0)


def run(args: argparse.Namespace, workdir: str) -> tuple[bool, dict]:
    server = PageServer()
    driver = None
    browsers: list[Browser] = []
    ctl = None
    conference = None
    summary: dict = {"driver": "chromium"}
    try:
        driver = ChromeDriver(os.path.join(workdir, "chromedriver.log"))
        names = ["alice", "bob", "carol"][: args.participants] if not args.loopback else ["a", "b"]
        if args.offer_only:
            names = names[:1]
        for n in names:
            browsers.append(Browser(driver, n, server.url, workdir))
        summary["chromium"] = browsers[0].version
        num_others = len(names) - 1 if not args.offer_only else args.participants - 1

        if args.offer_only:
            sys.stdout.write(browsers[0].call("makeOffer", num_others))
            return True, summary

        if args.loopback:
            a, b = browsers
            offer = a.call("makeOffer", 1)
            answer = b.call("answerOffer", offer)
            a.call("setAnswer", answer)
            owners = {"a": {}, "b": {}}
            others = {"a": ["b"], "b": ["a"]}
            problems, reports = poll(browsers, owners, others, None, args.duration, args.min_seconds)
            summary.update(mode="loopback", participants=reports, problems=problems)
            return not problems, summary

        ctl = sfu.Control(args.control_url, args.secret)
        conference = ctl.create_conference()
        summary["conference"] = conference
        endpoints = {b.name: ctl.create_endpoint(conference) for b in browsers}
        offers = {b.name: b.call("makeOffer", num_others) for b in browsers}
        seats = sfu.seat(ctl, conference, endpoints, offers, codecs=CODECS)
        for b in browsers:
            b.call("setAnswer", seats[b.name].answer.sdp)
        owners = {name: s.owners for name, s in seats.items()}
        others = {b.name: [o.name for o in browsers if o is not b] for b in browsers}
        problems, reports = poll(browsers, owners, others, EXPECTED_CIPHER, args.duration, args.min_seconds)
        for name, ep in endpoints.items():
            reports[name]["endpoint"] = ep["id"]
        try:
            summary["bridge"] = ctl.conference(conference)
        except sfu.ApiError as e:
            problems.append(f"final GET conference: {e}")
        summary.update(participants=reports, problems=problems)
        return not problems, summary
    finally:
        tear_down(browsers, driver, server, ctl, conference)


def tear_down(browsers: list, driver, server, ctl, conference) -> None:
    """Quits the browsers and chromedriver, stops the page server, and deletes the
    conference, whatever state the run left them in."""
    for b in browsers:
        b.quit()
    if driver is not None:
        driver.close()
    server.close()
    if ctl is not None and conference is not None:
        try:
            ctl.delete_conference(conference)
        except sfu.ApiError:
            pass


def print_chromedriver_log(workdir: str) -> None:
    """The tail of the chromedriver log `ChromeDriver` wrote in `workdir`, on stderr."""
    log_path = os.path.join(workdir, "chromedriver.log")
    if os.path.exists(log_path):
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        print("--- chromedriver.log (tail) ---\n" + tail, file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("control_url", nargs="?", help="the bridge's control API, e.g. http://127.0.0.1:8080")
    ap.add_argument("secret", nargs="?", help="control.secret")
    ap.add_argument("--participants", type=int, default=3)
    ap.add_argument("--duration", type=float, default=25.0, help="longest wait for decoded frames after the answers")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="least media time before success is taken")
    ap.add_argument("--timeout", type=int, default=120, help="hard limit for the whole run, seconds")
    ap.add_argument("--loopback", action="store_true", help="two browsers directly, no bridge")
    ap.add_argument("--offer-only", action="store_true", help="print one participant's offer SDP")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir (chromedriver.log, profiles)")
    args = ap.parse_args()
    if not (args.loopback or args.offer_only) and not (args.control_url and args.secret):
        ap.error("CONTROL_URL and SECRET are required (or --loopback / --offer-only)")

    def hard_timeout(_sig, _frame) -> None:
        # Unwind (so the browsers are closed), and make sure the process ends soon after.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(1))
        signal.alarm(15)
        raise HardTimeout(f"hard timeout after {args.timeout} s")

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(args.timeout)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="chromium-meeting-")
    try:
        ok, summary = run(args, workdir)
    except (Exception, HardTimeout) as e:  # noqa: BLE001 - one clear line, then the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        ok, summary = False, {"driver": "chromium", "problems": [f"{type(e).__name__}: {e}"]}
    finally:
        signal.alarm(0)
    if args.offer_only:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0 if ok else 1
    return report(ok, summary, workdir, args.keep_logs, started, "chromium meeting")


def report(ok: bool, summary: dict, workdir: str, keep_logs: bool, started: float, name: str) -> int:
    """Prints the run's summary as one JSON line (and its problems on stderr), keeps or removes
    the work dir, and returns the exit status."""
    if not ok:
        print_chromedriver_log(workdir)
    if keep_logs:
        summary["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    summary["ok"] = ok
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, sort_keys=True), flush=True)
    if not ok:
        print(f"{name} FAILED: " + "; ".join(summary.get("problems", [])), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
