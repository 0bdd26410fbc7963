#!/usr/bin/env python3
"""Two headless Chromium participants and one aiortc participant meet through the bridge, and
each must decode the others' video and audio although they number codecs differently.

    mixed_meeting.py CONTROL_URL SECRET

Chromium offers Opus as 111 and VP8 as 96 (RTX 97); aiortc offers Opus as 96 and VP8 as 97
(RTX 98). The bridge gives every forwarded packet the receiver's numbers (API.md, "Writing the
answer"); forwarded unchanged, aiortc's VP8 would reach Chromium as its RTX and Chromium's VP8
would reach aiortc as its Opus. The run fails unless the offers really number VP8 differently,
so that it cannot pass by accident when a client changes its defaults.

The flow is the other drivers' (sfu.seat): conference, endpoints, offers (page.html makeOffer
for Chromium, aiortc_meeting.Participant for aiortc), PATCH, answers. One asyncio loop runs
aiortc; the blocking WebDriver calls run in threads beside it, so that aiortc's media does not
stall while the browsers are asked for their stats.

Success: each Chromium decoded video frames (inbound-rtp framesDecoded > 0) and audio samples
(totalSamplesReceived - concealedSamples > 0) from both others, over AEAD_AES_128_GCM, and the
aiortc participant decoded at least --min-frames video frames and audio frames from each
browser. Prints one JSON line (each offer's payload types, per-participant counters); exit 0 on
success, 1 on failure. --timeout bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiortc_meeting  # noqa: E402
import chromium_meeting  # noqa: E402
import sfu  # noqa: E402
from chromium_meeting import Browser, ChromeDriver, PageServer  # noqa: E402

CODECS = aiortc_meeting.CODECS
BROWSERS = ("alice", "bob")
AIORTC = ("carol",)

# The ChromeDriver of the run, for the last-resort timeout: chromedriver and its browsers live
# in a process group of their own, which nothing else would end.
_chromedriver: list[ChromeDriver] = []


def numbering(offer_sdp: str) -> dict[str, int | None]:
    """How an offer numbers the meeting's codecs: Opus, VP8 and VP8's RTX."""
    offer = sfu.parse_offer(offer_sdp)
    vp8 = sfu.payload_type(offer, "VP8")
    return {
        "opus": sfu.payload_type(offer, "opus"),
        "VP8": vp8,
        "rtx": sfu.payload_type(offer, "rtx", apt=vp8) if vp8 is not None else None,
    }


async def run(args: argparse.Namespace, workdir: str, summary: dict) -> list[str]:
    """The meeting; fills `summary` as it goes and returns the problems (none: success)."""
    names = BROWSERS + AIORTC
    problems: list[str] = []
    server = PageServer()
    browsers: list[Browser] = []
    peers = [aiortc_meeting.Participant(n, len(names) - 1, 160 + 40 * i) for i, n in enumerate(AIORTC)]
    ctl = sfu.Control(args.control_url, args.secret)
    conference = None
    try:
        _chromedriver.append(await asyncio.to_thread(ChromeDriver, os.path.join(workdir, "chromedriver.log")))
        for name in BROWSERS:
            browsers.append(await asyncio.to_thread(Browser, _chromedriver[0], name, server.url, workdir))
        summary["chromium"] = browsers[0].version

        conference = ctl.create_conference()
        summary["conference"] = conference
        endpoints = {name: ctl.create_endpoint(conference) for name in names}
        offers = {b.name: await asyncio.to_thread(b.call, "makeOffer", len(names) - 1) for b in browsers}
        for p in peers:
            p.endpoint = endpoints[p.name]
            offers[p.name] = await p.make_offer()
        summary["payload_types"] = {name: numbering(sdp) for name, sdp in offers.items()}
        vp8 = {name: n["VP8"] for name, n in summary["payload_types"].items()}
        if len(set(vp8.values())) < 2:
            problems.append(f"every offer numbers VP8 alike ({vp8}): this meeting proves no renumbering")

        seats = sfu.seat(ctl, conference, endpoints, offers, codecs=CODECS)
        for b in browsers:
            await asyncio.to_thread(b.call, "setAnswer", seats[b.name].answer.sdp)
        for p in peers:
            await p.take_seat(seats[p.name])

        others = {n: [o for o in names if o != n] for n in names}
        deadline = time.monotonic() + args.duration
        browser_problems, reports = await asyncio.to_thread(
            chromium_meeting.poll,
            browsers,
            {b.name: seats[b.name].owners for b in browsers},
            others,
            chromium_meeting.EXPECTED_CIPHER,
            args.duration,
            args.min_seconds,
            True,
        )
        # aiortc counted all along; it gets what is left of the same deadline.
        while True:
            aiortc_problems = aiortc_meeting.evaluate(peers, others, args.min_frames)
            if not aiortc_problems or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
        problems += browser_problems + aiortc_problems

        for name, report in reports.items():
            report["endpoint"] = endpoints[name]["id"]
        for p in peers:
            reports[p.name] = {"endpoint": p.endpoint["id"], "received": p.received, "transport": p.transport_summary()}
        summary["participants"] = reports
        try:
            summary["bridge"] = ctl.conference(conference)
        except sfu.ApiError as e:
            problems.append(f"final GET conference: {e}")
        return problems
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        for b in browsers:
            await asyncio.to_thread(b.quit)
        if _chromedriver:
            _chromedriver.pop().close()
        server.close()
        if conference is not None:
            try:
                ctl.delete_conference(conference)
            except sfu.ApiError:
                pass


async def bounded(args: argparse.Namespace, workdir: str, summary: dict) -> list[str]:
    try:
        return await asyncio.wait_for(run(args, workdir, summary), args.timeout)
    except asyncio.TimeoutError:
        return [f"timeout after {args.timeout} s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("control_url", help="the bridge's control API, e.g. http://127.0.0.1:8080")
    ap.add_argument("secret", help="control.secret")
    ap.add_argument("--duration", type=float, default=30.0, help="longest wait for decoded media after the answers")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="least media time before the browsers' success")
    ap.add_argument("--min-frames", type=int, default=10, help="least frames aiortc decodes per kind and sender")
    ap.add_argument("--timeout", type=int, default=120, help="limit for the whole run, seconds")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir (chromedriver.log, profiles)")
    args = ap.parse_args()

    def last_resort(_sig, _frame) -> None:
        # The run did not unwind after its timeout (a WebDriver call hangs in a thread).
        for driver in _chromedriver:
            try:
                os.killpg(driver.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        line = {"driver": "mixed", "ok": False, "problems": [f"hard timeout after {args.timeout} s"]}
        print(json.dumps(line), flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, last_resort)
    signal.alarm(args.timeout + 30)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="mixed-meeting-")
    summary: dict = {"driver": "mixed"}
    try:
        problems = asyncio.run(bounded(args, workdir, summary))
    except Exception as e:  # noqa: BLE001 - one clear line, then the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        problems = [f"{type(e).__name__}: {e}"]
    ok = not problems
    if not ok:
        chromium_meeting.print_chromedriver_log(workdir)
    if args.keep_logs:
        summary["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    signal.alarm(0)
    summary.update(ok=ok, problems=problems, seconds=round(time.monotonic() - started, 1))
    print(json.dumps(summary, sort_keys=True), flush=True)
    if not ok:
        print("mixed meeting FAILED: " + "; ".join(problems), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
