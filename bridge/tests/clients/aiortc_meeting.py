#!/usr/bin/env python3
"""Three aiortc participants meet through the bridge and must decode each other.

    aiortc_meeting.py CONTROL_URL SECRET          the meeting through the bridge
    aiortc_meeting.py --loopback                  two peers directly, no bridge (sanity check
                                                   of this driver's media path)
    aiortc_meeting.py --offer-only                print one participant's offer and exit

The flow, as a signaling daemon would drive it (bridge/API.md): create a conference and three
endpoints; each participant creates its offer (audio + video sendonly, then one recvonly audio
per other participant, then one recvonly video per other participant); PATCH each endpoint
with what its offer says; GET the conference and give each participant an answer composed
with the others' sources (sfu.compose_answer). Then every received track is consumed for
--duration seconds, counting decoded video frames and audio frames per remote participant.

Success: every participant got at least --min-frames video frames and audio frames from each of
the others. Prints one JSON line; exit 0 on success, 1 on failure. A hard timeout (--timeout)
bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import os
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aioice.ice  # noqa: E402
import av  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack  # noqa: E402
from aiortc.rtcconfiguration import RTCBundlePolicy  # noqa: E402

import sfu  # noqa: E402

CODECS = ("opus", "VP8")  # RTX follows VP8
WIDTH, HEIGHT = 320, 240


# aioice leaves 127.0.0.1 out of its host candidates (DESIGN.md); inside the test's network
# namespace loopback is the only interface, so add it.
_host_addresses = aioice.ice.get_host_addresses


def _host_addresses_with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


aioice.ice.get_host_addresses = _host_addresses_with_loopback


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone, 20 ms frames of 48 kHz mono s16 (what opus encodes without resampling)."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self, hz: int = 400):
        super().__init__()
        self._payload = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / self.RATE))) for i in range(self.SAMPLES)
        )
        self._start: float | None = None
        self._timestamp = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._timestamp += self.SAMPLES
            wait = self._start + self._timestamp / self.RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._payload)
        frame.pts = self._timestamp
        frame.sample_rate = self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        return frame


class PatternTrack(VideoStreamTrack):
    """A bright bar moving over a grey background, 30 fps (VideoStreamTrack's clock), so the
    encoder makes real inter frames rather than a still picture."""

    def __init__(self, shade: int):
        super().__init__()
        self._shade = shade
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        x = (self._n * 4) % WIDTH
        for i, plane in enumerate(frame.planes):
            stride = plane.line_size
            rows = HEIGHT if i == 0 else HEIGHT // 2
            if i == 0:
                row = bytearray([self._shade]) * stride
                row[x : x + 16] = b"\xeb" * len(row[x : x + 16])
            else:
                row = bytearray([128]) * stride
            plane.update(bytes(row) * rows)
        frame.pts = pts
        frame.time_base = time_base
        self._n += 1
        return frame


class Participant:
    def __init__(self, name: str, num_others: int, shade: int):
        self.name = name
        self.num_others = num_others
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.audio = ToneTrack()
        self.video = PatternTrack(shade)
        self.offer_sdp: str | None = None
        self.endpoint: dict | None = None
        self.answer: sfu.Answer | None = None
        # mid -> label of the remote participant the m-line receives
        self.receiving: dict[str, str] = {}
        # label -> {"audio_frames": n, "video_frames": n, ...}
        self.received: dict[str, dict] = {}
        self.tasks: list[asyncio.Task] = []
        self.errors: list[str] = []

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "failed":
                self.errors.append("connection failed")

    async def make_offer(self) -> str:
        self.pc.addTransceiver(self.audio, direction="sendonly")
        self.pc.addTransceiver(self.video, direction="sendonly")
        for _ in range(self.num_others):
            self.pc.addTransceiver("audio", direction="recvonly")
        for _ in range(self.num_others):
            self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.offer_sdp = self.pc.localDescription.sdp
        return self.offer_sdp

    async def set_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def take_seat(self, seat: sfu.Seat) -> None:
        """Sets the bridge's answer and starts counting what the others send."""
        self.answer = seat.answer
        self.receiving = seat.receiving
        await self.set_answer(seat.answer.sdp)
        self.start_consuming()

    def start_consuming(self) -> None:
        for t in self.pc.getTransceivers():
            label = self.receiving.get(t.mid)
            if label is None or t.receiver.track is None:
                continue
            counts = self.received.setdefault(label, {"audio_frames": 0, "video_frames": 0})
            self.tasks.append(asyncio.ensure_future(self._consume(t.receiver.track, counts, label)))

    async def _consume(self, track: MediaStreamTrack, counts: dict, label: str) -> None:
        key = f"{track.kind}_frames"
        try:
            while True:
                frame = await track.recv()
                counts[key] += 1
                if track.kind == "video":
                    counts["video_size"] = f"{frame.width}x{frame.height}"
                elif counts[key] == 1:
                    counts["audio_rate"] = frame.sample_rate
        except MediaStreamError:
            pass
        except Exception as e:  # noqa: BLE001 - reported, not raised
            self.errors.append(f"{track.kind} from {label}: {type(e).__name__}: {e}")

    def transport_summary(self) -> dict:
        out = {"connectionState": self.pc.connectionState, "iceConnectionState": self.pc.iceConnectionState}
        try:
            t = self.pc.getTransceivers()[0].sender.transport
            out["dtls"] = t.state
            ssl = getattr(t, "_ssl", None)  # aiortc's pyOpenSSL connection
            if ssl is not None and t.state == "connected":
                profile = ssl.get_selected_srtp_profile()
                out["srtp_profile"] = profile.decode() if profile else None
                out["dtls_cipher"] = ssl.get_cipher_name()
                out["dtls_version"] = ssl.get_protocol_version_name()
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        return out

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


def evaluate(participants: list[Participant], others: dict[str, list[str]], min_frames: int) -> list[str]:
    problems = []
    for p in participants:
        mine = [f"{p.name}: {e}" for e in p.errors]
        for other in others[p.name]:
            got = p.received.get(other, {})
            for kind in ("video", "audio"):
                n = got.get(f"{kind}_frames", 0)
                if n < min_frames:
                    mine.append(f"{p.name} decoded {n} {kind} frames from {other} (< {min_frames})")
        if mine:
            t = p.transport_summary()
            mine.append(f"{p.name}: ICE {t.get('iceConnectionState')}, DTLS {t.get('dtls')}, SRTP {t.get('srtp_profile')}")
        problems += mine
    return problems


async def meeting(args: argparse.Namespace) -> tuple[bool, dict]:
    ctl = sfu.Control(args.control_url, args.secret)
    conference = ctl.create_conference()
    names = ["alice", "bob", "carol"][: args.participants]
    participants = [Participant(n, len(names) - 1, 60 + 50 * i) for i, n in enumerate(names)]
    summary: dict = {"driver": "aiortc", "conference": conference}
    try:
        for p in participants:
            p.endpoint = ctl.create_endpoint(conference)
        # 1. every participant offers, 2. PATCH, 3. answers with the others' sources.
        for p in participants:
            await p.make_offer()
        endpoints = {p.name: p.endpoint for p in participants}
        seats = sfu.seat(ctl, conference, endpoints, {p.name: p.offer_sdp for p in participants}, codecs=CODECS)
        for p in participants:
            await p.take_seat(seats[p.name])
        await asyncio.sleep(args.duration)
        others = {p.name: [o.name for o in participants if o is not p] for p in participants}
        problems = evaluate(participants, others, args.min_frames)
        try:
            summary["bridge"] = ctl.conference(conference)
        except sfu.ApiError as e:
            problems.append(f"final GET conference: {e}")
        summary["participants"] = {
            p.name: {"endpoint": p.endpoint["id"], "received": p.received, "transport": p.transport_summary()}
            for p in participants
        }
        summary["problems"] = problems
        return not problems, summary
    finally:
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
        try:
            ctl.delete_conference(conference)
        except sfu.ApiError:
            pass


async def loopback(args: argparse.Namespace) -> tuple[bool, dict]:
    """Two peers directly: A offers like a meeting participant with one other; B answers natively,
    sending its media on A's recvonly m-lines (where the bridge would put another participant)."""
    a = Participant("a", 1, 60)
    b = Participant("b", 1, 200)
    try:
        offer = await a.make_offer()
        await b.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        parsed = sfu.parse_sdp(offer)
        offered = {m.mid: m.direction for m in parsed.media}
        for t in b.pc.getTransceivers():
            if offered.get(t.mid) == "recvonly":
                t.sender.replaceTrack(b.audio if t.kind == "audio" else b.video)
                t.direction = "sendonly"
            else:
                t.direction = "recvonly"
                b.receiving[t.mid] = "a"
        await b.pc.setLocalDescription(await b.pc.createAnswer())
        await a.set_answer(b.pc.localDescription.sdp)
        a.receiving = {mid: "b" for mid, d in offered.items() if d == "recvonly"}
        a.start_consuming()
        b.start_consuming()
        await asyncio.sleep(args.duration)
        problems = evaluate([a, b], {"a": ["b"], "b": ["a"]}, args.min_frames)
        summary = {
            "driver": "aiortc",
            "mode": "loopback",
            "participants": {p.name: {"received": p.received, "transport": p.transport_summary()} for p in (a, b)},
            "problems": problems,
        }
        return not problems, summary
    finally:
        await asyncio.gather(a.close(), b.close(), return_exceptions=True)


async def offer_only(args: argparse.Namespace) -> None:
    p = Participant("alice", args.participants - 1, 60)
    try:
        sys.stdout.write(await p.make_offer())
    finally:
        await p.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("control_url", nargs="?", help="the bridge's control API, e.g. http://127.0.0.1:8080")
    ap.add_argument("secret", nargs="?", help="control.secret")
    ap.add_argument("--participants", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of media after the answers")
    ap.add_argument("--min-frames", type=int, default=10)
    ap.add_argument("--timeout", type=int, default=60, help="hard limit for the whole run, seconds")
    ap.add_argument("--loopback", action="store_true", help="two peers directly, no bridge")
    ap.add_argument("--offer-only", action="store_true", help="print one participant's offer SDP")
    args = ap.parse_args()
    if not (args.loopback or args.offer_only) and not (args.control_url and args.secret):
        ap.error("CONTROL_URL and SECRET are required (or --loopback / --offer-only)")

    def hard_timeout(_sig, _frame) -> None:
        print(json.dumps({"driver": "aiortc", "ok": False, "problems": [f"hard timeout after {args.timeout} s"]}), flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(args.timeout)

    if args.offer_only:
        asyncio.run(offer_only(args))
        return 0
    started = time.monotonic()
    try:
        ok, summary = asyncio.run(loopback(args) if args.loopback else meeting(args))
    except Exception as e:  # noqa: BLE001 - one clear line instead of a traceback only
        import traceback

        traceback.print_exc(file=sys.stderr)
        ok, summary = False, {"driver": "aiortc", "problems": [f"{type(e).__name__}: {e}"]}
    summary["ok"] = ok
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, sort_keys=True), flush=True)
    if not ok:
        print("aiortc meeting FAILED: " + "; ".join(summary.get("problems", [])), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
