#!/usr/bin/env python3
"""The browser half of signaling/tests/e2ee_browser.rs: runs the product's SFrame code
(signaling/web/sframe.js, signaling/web/e2ee-worker.js) in headless Chromium and prints what
it computed and measured as one JSON line, for the Rust test to check.

    driver.py INPUT_JSON [--timeout S]

INPUT_JSON (written by the Rust test): {"vectors", "interop", "passphrases", "served": {"dir",
"csp"}}. The page (page.html, page.js, test-worker.js here; sframe.js and e2ee-worker.js as the
signaling daemon's router served them, from served.dir) comes from http.server on 127.0.0.1
with the daemon's Content-Security-Policy: a secure context, as getUserMedia and
RTCRtpScriptTransform need. One Chromium (DESIGN.md's
flags, fake camera and microphone) driven through chromedriver's W3C WebDriver API, stdlib only.

Steps: the RFC 9605 vectors, the product key schedule against Rust's, hostile input to
sframe.js, then media in three phases on loopback peer connections (see page.js):
  e2ee      alice encrypts to bob (same passphrase), carol (another), dave (none), eve (tamper)
  rotation  alice and bob change passphrase; bob must keep decoding
  clear     alice turns E2EE off; dave (told so) decodes, bob (E2EE on) must stop decoding
and finally a flood of frames with fresh KIDs into bob's worker (the derivation budget).
Each phase polls until its goal or its deadline; the report says which. Exit 0 when every step
ran (the verdict on the numbers is the Rust test's), 1 otherwise. A hard timeout bounds the run.
"""

from __future__ import annotations

import argparse
import collections
import functools
import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "../../../scripts")))
from webdriver import ChromeDriver, PageSession, chromium_flags  # noqa: E402

# The page's own files; the product's two come from the directory the Rust test wrote them to,
# as the signaling daemon's router served them (see `Handler.configure`).
FILES = {
    "/page.html": (HERE, "text/html"),
    "/page.js": (HERE, "text/javascript"),
    "/test-worker.js": (HERE, "text/javascript"),
}
PRODUCT_FILES = ("/sframe.js", "/e2ee-worker.js")

# DESIGN.md "Real clients for tests", as bridge/tests/clients/chromium_meeting.py uses them.
CHROMIUM_FLAGS = chromium_flags()


class HardTimeout(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves FILES, plus the product's scripts from `served_dir`, every response with the
    product's Content-Security-Policy, so the page and the worker run under the policy the
    signaling daemon sends with app.js."""

    files: dict = dict(FILES)
    csp: str = ""

    @classmethod
    def configure(cls, served_dir: str, csp: str) -> None:
        cls.files = dict(FILES, **{path: (served_dir, "text/javascript") for path in PRODUCT_FILES})
        cls.csp = csp

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        entry = self.files.get(self.path.split("?")[0])
        if entry is None:
            self.send_error(404)
            return
        directory, content_type = entry
        with open(os.path.join(directory, self.path.split("?")[0].lstrip("/")), "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", self.csp)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class PageServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/page.html"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser(PageSession):
    """One Chromium session showing the test page."""

    def __init__(self, driver: ChromeDriver, url: str, workdir: str):
        profile = tempfile.mkdtemp(prefix="chromium-e2ee-", dir=workdir)
        args = CHROMIUM_FLAGS + [f"--user-data-dir={profile}", "--window-size=640,480"]
        super().__init__(driver, url, args, script_ms=60000, call_timeout=90)


def hash_match(sender: list[dict], receiver: list[dict]) -> dict:
    """Pairs receiver frames with sender frames by RTP timestamp and compares their hashes.

    The sender's transform sees RTP timestamps before the RTP sender adds its random offset, so
    the offset is found first: the most common difference between a received and a sent
    timestamp of the same hash. Then every received frame whose timestamp (minus the offset)
    the sender also recorded is `common`, and `mismatched` if the hashes differ."""
    if any(e.get("timestamp") is None for e in sender + receiver):
        return {"error": "a frame without an RTP timestamp"}
    sent_by_hash = {e["hash"]: e["timestamp"] for e in sender}
    offsets = collections.Counter(
        (r["timestamp"] - sent_by_hash[r["hash"]]) % 2**32 for r in receiver if r["hash"] in sent_by_hash
    )
    if not offsets:
        return {"common": 0, "mismatched": 0, "received": len(receiver), "sent": len(sender)}
    offset = offsets.most_common(1)[0][0]
    sent_by_ts = {e["timestamp"]: e["hash"] for e in sender}
    common = mismatched = 0
    for r in receiver:
        ts = (r["timestamp"] - offset) % 2**32
        if ts in sent_by_ts:
            common += 1
            mismatched += sent_by_ts[ts] != r["hash"]
    return {
        "common": common,
        "mismatched": mismatched,
        "received": len(receiver),
        "sent": len(sender),
        "offset": offset,
    }


def decoded(report: dict, name: str) -> tuple[int, int]:
    """(video frames decoded, audio samples that were not concealment) at `name`."""
    inbound = report["pairs"][name]["inbound"]
    video = (inbound.get("video") or {}).get("framesDecoded") or 0
    audio = inbound.get("audio") or {}
    return video, (audio.get("totalSamplesReceived") or 0) - (audio.get("concealedSamples") or 0)


def worker_frames(report: dict, name: str, kind: str, side: str = "receiver") -> dict:
    return report["pairs"][name][side].get(kind) or {}


def poll(browser: Browser, goal, limit: float, least: float = 0.0) -> tuple[dict, bool, float]:
    """mediaReport() every second until goal(report) holds (and `least` seconds passed) or
    `limit` seconds pass. Returns the last report, whether the goal was met, and the time."""
    start = time.monotonic()
    while True:
        report = browser.call("mediaReport")
        elapsed = time.monotonic() - start
        if goal(report) and elapsed >= least:
            return report, True, round(elapsed, 1)
        if elapsed > limit:
            return report, False, round(elapsed, 1)
        time.sleep(1.0)


def add_matches(report: dict) -> None:
    """Hash comparison of alice's pre-encryption frames with bob's and eve's decrypted ones."""
    report["matches"] = {}
    for name in ("bob", "eve"):
        for kind in ("audio", "video"):
            sent = worker_frames(report, name, kind, "sender").get("recent", [])
            got = worker_frames(report, name, kind).get("recent", [])
            report["matches"][f"{name}:{kind}"] = hash_match(sent, got)


def media_phases(browser: Browser, passphrases: dict) -> dict:
    room = passphrases["room"]
    out: dict = {"start": browser.call("startMedia", passphrases["alice"], passphrases["carol"], room)}

    def e2ee_goal(r: dict) -> bool:
        video, audio = decoded(r, "bob")
        others_saw = all(
            worker_frames(r, n, "video").get("frames", 0) >= 30
            for n in ("carol", "dave", "eve")
        )
        return video >= 30 and audio > 0 and others_saw

    report, met, secs = poll(browser, e2ee_goal, 40, least=6)
    add_matches(report)
    out["e2ee"] = {"goal_met": met, "seconds": secs, "report": report}

    before = decoded(report, "bob")[0]
    rotated = browser.call("rotate", passphrases["rotated"], room)
    new_id = rotated["aliceId"]

    def rotation_goal(r: dict) -> bool:
        kids = worker_frames(r, "bob", "video").get("kids", [])
        return new_id in kids and decoded(r, "bob")[0] >= before + 30

    report, met, secs = poll(browser, rotation_goal, 30, least=3)
    add_matches(report)
    out["rotation"] = {
        "goal_met": met,
        "seconds": secs,
        "new_alice_id": new_id,
        "bob_before": before,
        "report": report,
    }

    browser.call("goClear")
    dave_before = decoded(report, "dave")[0]
    report, met, secs = poll(browser, lambda r: decoded(r, "dave")[0] >= dave_before + 15, 30, least=3)
    # Bob has E2EE on: once the last encrypted frames are through, he must decode no more.
    settled = decoded(report, "bob")[0]
    time.sleep(3)
    final = browser.call("mediaReport")
    out["clear"] = {
        "goal_met": met,
        "seconds": secs,
        "bob_settled": settled,
        "bob_final": decoded(final, "bob")[0],
        "report": final,
    }
    return out


def run(args: argparse.Namespace, workdir: str) -> dict:
    with open(args.input) as f:
        data = json.load(f)
    Handler.configure(data["served"]["dir"], data["served"]["csp"])
    server = PageServer()
    driver = None
    browser = None
    try:
        driver = ChromeDriver(os.path.join(workdir, "chromedriver.log"))
        browser = Browser(driver, server.url, workdir)
        result: dict = {"chromium": browser.version}
        result["vectors"] = browser.call("runVectors", data["vectors"])
        result["interop"] = browser.call("runInterop", data["interop"])
        result["hostile"] = browser.call("runHostile")
        result["fnv"] = browser.call("fnvSamples")
        result["media"] = media_phases(browser, data["passphrases"])
        result["flood"] = browser.call("runFlood", "bob", 400)
        return result
    finally:
        if browser is not None:
            browser.quit()
        if driver is not None:
            driver.close()
        server.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="the JSON the Rust test wrote")
    ap.add_argument("--timeout", type=int, default=200, help="hard limit for the whole run, seconds")
    args = ap.parse_args()

    def hard_timeout(_sig, _frame) -> None:
        # Unwind (so Chromium is closed), and make sure the process ends soon after.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(1))
        signal.alarm(15)
        raise HardTimeout(f"hard timeout after {args.timeout} s")

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(args.timeout)
    workdir = tempfile.mkdtemp(prefix="e2ee-browser-")
    status = 0
    try:
        result = run(args, workdir)
        result["ok"] = True
    except (Exception, HardTimeout) as e:  # noqa: BLE001 - one clear line, then the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "problem": f"{type(e).__name__}: {e}"}
        log_path = os.path.join(workdir, "chromedriver.log")
        if os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                print("--- chromedriver.log (tail) ---\n" + f.read()[-3000:], file=sys.stderr)
        status = 1
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, sort_keys=True), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
