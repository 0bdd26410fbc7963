"""Unit tests of sfu.py: offer parsing, the PATCH body, the answer composer (API.md's "Writing
the answer") against real offers of Chromium 156 and aiortc 1.16 (fixtures/), and the control
API client against a stub server. Stdlib only:

    python3 -m unittest discover -s bridge/tests/clients -p 'test_*.py'

fixtures/chromium_offer.sdp and fixtures/aiortc_offer.sdp are what `chromium_meeting.py
--offer-only` and `aiortc_meeting.py --offer-only` printed inside `unshare -n` (own audio and
video sendonly, then 2 recvonly audio, then 2 recvonly video).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sfu  # noqa: E402


def fixture(name: str) -> str:
    with open(os.path.join(HERE, "fixtures", name), newline="") as f:
        return f.read()


FP = ":".join(f"{b:02X}" for b in range(32))
ENDPOINT = {
    "id": "a1b2c3d4e5f60718",
    "ice": {
        "ufrag": "k3XrV2c9",
        "pwd": "Zq0m6b1yJ4tW8pV3sN7cA2dE",
        "lite": True,
        "candidates": [
            {"foundation": "1", "component": 1, "transport": "udp", "priority": 2130706431,
             "ip": "127.0.0.1", "port": 10000, "type": "host"}
        ],
    },
    "dtls": {"setup": "passive", "fingerprint": {"hash": "sha-256", "value": FP}},
}
CONFERENCE = {
    "id": "5f0c6a1d9e2b4c87",
    "dominant_speaker": None,
    "endpoints": [
        {"id": "a1b2c3d4e5f60718", "ice": "new", "dtls": "new", "srtp_profile": None,
         "sources": [{"ssrc": 11, "kind": "audio", "msid": "me a"}, {"ssrc": 12, "kind": "video", "msid": "me v"}]},
        {"id": "00000000000000b0", "ice": "new", "dtls": "new", "srtp_profile": None,
         "sources": [{"ssrc": 1001, "kind": "audio", "msid": "stream-b track-b1"},
                     {"ssrc": 1002, "kind": "video", "msid": "stream-b track-b2", "rtx_ssrc": 1003}]},
        {"id": "00000000000000c0", "ice": "new", "dtls": "new", "srtp_profile": None,
         "sources": [{"ssrc": 2001, "kind": "audio", "msid": "stream-c track-c1"},
                     {"ssrc": 2002, "kind": "video", "msid": "stream-c track-c2", "rtx_ssrc": 2003}]},
    ],
}
DROPPED_URIS = (
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "transport-wide-cc",
)


class SdpParsing(unittest.TestCase):
    def test_sections_and_attributes(self):
        sdp = sfu.parse_sdp("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
                            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=recvonly\r\na=rtcp-mux\r\n")
        self.assertEqual(sdp.session_attributes("ice-lite"), [""])
        self.assertEqual(len(sdp.media), 1)
        m = sdp.media[0]
        self.assertEqual((m.kind, m.port, m.proto, m.fmts), ("audio", 9, "UDP/TLS/RTP/SAVPF", ["111"]))
        self.assertEqual((m.mid, m.direction), ("a", "recvonly"))
        self.assertEqual(m.attributes("rtcp-mux"), [""])

    def test_lf_only_and_default_direction(self):
        sdp = sfu.parse_sdp("v=0\nm=video 9 RTP/AVP 96\na=mid:0\n")
        self.assertEqual(sdp.media[0].direction, "sendrecv")

    def test_garbage_is_rejected(self):
        with self.assertRaises(sfu.SdpError):
            sfu.parse_sdp("hello\r\n")
        with self.assertRaises(sfu.SdpError):
            sfu.parse_sdp("o=- 1 1 IN IP4 0.0.0.0\r\n")
        with self.assertRaises(sfu.SdpError):
            sfu.parse_sdp("v=0\r\nm=audio\r\n")


class ChromiumOffer(unittest.TestCase):
    def setUp(self):
        self.text = fixture("chromium_offer.sdp")
        self.offer = sfu.parse_offer(self.text)

    def test_ice_and_dtls(self):
        o = self.offer
        self.assertEqual((o.ice_ufrag, o.ice_pwd), ("hbXO", "e+ZaYx4WZMo6yl6e2y5xzLS3"))
        self.assertEqual(o.fingerprint[0], "sha-256")
        self.assertTrue(sfu.is_sha256_fingerprint(o.fingerprint[1]), o.fingerprint)
        self.assertTrue(o.fingerprint[1].startswith("AE:99:C4"))
        self.assertEqual(o.setup, "actpass")
        self.assertEqual(o.mids, ["0", "1", "2", "3", "4", "5"])
        self.assertEqual(o.directions, ["sendonly", "sendonly", "recvonly", "recvonly", "recvonly", "recvonly"])

    def test_sources(self):
        stream = "efdfe4d0-1611-4f65-82b7-8cf70eecee6f"
        self.assertEqual(
            self.offer.sources,
            [
                {"ssrc": 3907202182, "kind": "audio", "msid": f"{stream} 6288aa11-7bdb-40d8-abe2-f6cd09f39d94",
                 "mid": "0"},
                {"ssrc": 2991698661, "kind": "video", "msid": f"{stream} 7599b09d-2185-40bb-bbd3-9349b7daa75a",
                 "rtx_ssrc": 4058958742, "mid": "1"},
            ],
        )

    def test_payload_types_and_extensions(self):
        pts = {(c.kind, c.pt): c for c in self.offer.payload_types}
        self.assertEqual(pts[("audio", 111)].to_api(),
                         {"pt": 111, "kind": "audio", "name": "opus", "clock_rate": 48000, "channels": 2})
        self.assertEqual(pts[("video", 96)].to_api(), {"pt": 96, "kind": "video", "name": "VP8", "clock_rate": 90000})
        self.assertEqual(pts[("video", 97)].to_api(),
                         {"pt": 97, "kind": "video", "name": "rtx", "clock_rate": 90000, "apt": 96})
        # The recvonly video m-lines offer more payload types than the sending one (98, 35...).
        self.assertIn(("video", 35), pts)
        self.assertEqual(len(pts), len(self.offer.payload_types), "one entry per (kind, pt)")
        exts = {(e["id"], e["uri"]) for e in self.offer.header_extensions}
        self.assertIn((1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"), exts)
        self.assertIn((4, "urn:ietf:params:rtp-hdrext:sdes:mid"), exts)

    def test_patch_body(self):
        body = sfu.patch_body(self.offer, codecs=("opus", "VP8"))
        json.dumps(body)
        self.assertEqual(body["ice"], {"ufrag": "hbXO", "pwd": "e+ZaYx4WZMo6yl6e2y5xzLS3"})
        self.assertEqual(body["dtls"]["setup"], "active")
        self.assertEqual(body["dtls"]["fingerprint"], {"hash": "sha-256", "value": self.offer.fingerprint[1]})
        self.assertEqual([s["ssrc"] for s in body["sources"]], [3907202182, 2991698661])
        self.assertNotIn("mid", body["sources"][0])
        self.assertEqual(body["sources"][1]["rtx_ssrc"], 4058958742)
        self.assertEqual(
            [(p["kind"], p["pt"], p["name"]) for p in body["payload_types"]],
            [("audio", 111, "opus"), ("video", 96, "VP8"), ("video", 97, "rtx")],
        )
        uris = [e["uri"] for e in body["header_extensions"]]
        self.assertIn("urn:ietf:params:rtp-hdrext:ssrc-audio-level", uris)
        for dropped in DROPPED_URIS:
            self.assertFalse([u for u in uris if dropped in u], dropped)

    def test_patch_body_without_filter_keeps_every_payload_type(self):
        body = sfu.patch_body(self.offer)
        self.assertEqual(len(body["payload_types"]), len(self.offer.payload_types))


class AiortcOffer(unittest.TestCase):
    def setUp(self):
        self.offer = sfu.parse_offer(fixture("aiortc_offer.sdp"))

    def test_ice_dtls_and_sources(self):
        o = self.offer
        self.assertEqual((o.ice_ufrag, o.ice_pwd), ("bThW", "oOz1w1HO3Jm0EUmXkgZ1C6"))
        # aiortc lists sha-256, sha-384 and sha-512: the sha-256 one is taken.
        self.assertTrue(o.fingerprint[1].startswith("0E:F5:D8:6B"))
        self.assertTrue(sfu.is_sha256_fingerprint(o.fingerprint[1]))
        # aiortc also puts a=ssrc lines on its recvonly m-lines: those are not sources.
        self.assertEqual(
            o.sources,
            [
                {"ssrc": 69382287, "kind": "audio", "mid": "0",
                 "msid": "e2c824c7-84bc-491b-95a0-d3a1c310af64 40bd2f7f-ff27-4ce7-b046-d009c22436ee"},
                {"ssrc": 1239941976, "kind": "video", "mid": "1", "rtx_ssrc": 2406208245,
                 "msid": "e2c824c7-84bc-491b-95a0-d3a1c310af64 1a8f41f5-d14c-469d-889a-9e018f3ebf99"},
            ],
        )

    def test_patch_body(self):
        body = sfu.patch_body(self.offer, codecs=("opus", "VP8"))
        self.assertEqual(
            body["payload_types"],
            [
                {"pt": 96, "kind": "audio", "name": "opus", "clock_rate": 48000, "channels": 2},
                {"pt": 97, "kind": "video", "name": "VP8", "clock_rate": 90000},
                {"pt": 98, "kind": "video", "name": "rtx", "clock_rate": 90000, "apt": 97},
            ],
        )
        self.assertEqual(
            body["header_extensions"],
            [{"id": 2, "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level"},
             {"id": 3, "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"}],
        )


class AnswerChecks:
    """Checks shared by the Chromium and aiortc answers."""

    offer_file = ""
    audio_pt = video_pt = rtx_pt = 0

    def setUp(self):
        self.offer_text = fixture(self.offer_file)
        self.sources = sfu.other_sources(CONFERENCE, ENDPOINT["id"])
        self.answer = sfu.compose_answer(self.offer_text, ENDPOINT, self.sources, codecs=("opus", "VP8"))
        self.sdp = sfu.parse_sdp(self.answer.sdp)
        self.by_mid = {m.mid: m for m in self.sdp.media}

    def test_wire_format(self):
        text = self.answer.sdp
        self.assertTrue(text.startswith("v=0\r\no="))
        self.assertTrue(text.endswith("\r\n"))
        for line in text.split("\r\n")[:-1]:
            self.assertRegex(line, r"^[a-z]=\S", line)
            self.assertNotIn("\n", line)

    def test_session_level(self):
        s = self.sdp
        self.assertEqual(s.session_attributes("ice-lite"), [""])
        self.assertEqual(s.session_attributes("group"), ["BUNDLE 0 1 2 3 4 5"])
        self.assertEqual(s.session_attributes("ice-ufrag"), ["k3XrV2c9"])
        self.assertEqual(s.session_attributes("ice-pwd"), ["Zq0m6b1yJ4tW8pV3sN7cA2dE"])
        self.assertEqual(s.session_attributes("fingerprint"), [f"sha-256 {FP}"])
        self.assertEqual(s.session_attributes("setup"), ["passive"])
        self.assertNotIn("a=setup:act", self.answer.sdp)

    def test_every_m_line(self):
        offer = sfu.parse_sdp(self.offer_text)
        self.assertEqual([m.mid for m in self.sdp.media], [m.mid for m in offer.media])
        self.assertEqual([m.kind for m in self.sdp.media], [m.kind for m in offer.media])
        for m in self.sdp.media:
            self.assertEqual(m.port, 10000)
            self.assertEqual(m.proto, "UDP/TLS/RTP/SAVPF")
            self.assertIn(("c", "IN IP4 127.0.0.1"), m.lines)
            self.assertEqual(m.attributes("rtcp-mux"), [""])
            self.assertEqual(m.attributes("candidate"), ["1 1 udp 2130706431 127.0.0.1 10000 typ host"])
            self.assertEqual(m.attributes("end-of-candidates"), [""])
            self.assertEqual(len([n for n in ("sendrecv", "sendonly", "recvonly", "inactive") if m.attributes(n)]), 1)

    def test_own_sending_m_lines_are_recvonly(self):
        for mid in ("0", "1"):
            m = self.by_mid[mid]
            self.assertEqual(m.direction, "recvonly")
            self.assertEqual(m.attributes("ssrc"), [])
            self.assertEqual(m.attributes("msid"), [])

    def test_recvonly_m_lines_carry_the_others_sources(self):
        expected = {
            "2": ("audio", 1001, None, "stream-b track-b1"),
            "3": ("audio", 2001, None, "stream-c track-c1"),
            "4": ("video", 1002, 1003, "stream-b track-b2"),
            "5": ("video", 2002, 2003, "stream-c track-c2"),
        }
        for mid, (kind, ssrc, rtx, msid) in expected.items():
            m = self.by_mid[mid]
            self.assertEqual((m.kind, m.direction), (kind, "sendonly"), mid)
            self.assertEqual(m.attributes("msid"), [msid])
            ssrc_lines = m.attributes("ssrc")
            cname = "00000000000000b0" if ssrc < 2000 else "00000000000000c0"
            if rtx is None:
                self.assertEqual(ssrc_lines, [f"{ssrc} cname:{cname}"])
                self.assertEqual(m.attributes("ssrc-group"), [])
            else:
                self.assertEqual(m.attributes("ssrc-group"), [f"FID {ssrc} {rtx}"])
                self.assertEqual(ssrc_lines, [f"{ssrc} cname:{cname}", f"{rtx} cname:{cname}"])
            self.assertEqual(self.answer.assignments[mid]["ssrc"], ssrc)
        self.assertEqual(self.answer.assignments["2"]["endpoint"], "00000000000000b0")
        self.assertEqual(self.answer.unassigned, [])

    def test_codecs(self):
        for m in self.sdp.media:
            if m.kind == "audio":
                self.assertEqual(m.fmts, [str(self.audio_pt)])
                self.assertEqual(m.attribute("rtpmap"), f"{self.audio_pt} opus/48000/2")
                self.assertEqual(m.attributes("rtcp-fb"), [])
            else:
                self.assertEqual(m.fmts, [str(self.video_pt), str(self.rtx_pt)])
                self.assertEqual(m.attributes("rtpmap"), [f"{self.video_pt} VP8/90000", f"{self.rtx_pt} rtx/90000"])
                self.assertEqual(m.attributes("fmtp"), [f"{self.rtx_pt} apt={self.video_pt}"])
                feedback = {v.split(" ", 1)[1] for v in m.attributes("rtcp-fb")}
                self.assertIn("nack", feedback)
                self.assertIn("nack pli", feedback)
                self.assertLessEqual(feedback, {"nack", "nack pli", "ccm fir"})

    def test_no_transport_cc_remb_mid_or_rid(self):
        text = self.answer.sdp
        for dropped in DROPPED_URIS + ("transport-cc", "goog-remb"):
            self.assertNotIn(dropped, text)

    def test_audio_level_extension_kept_with_the_offer_id(self):
        offer = sfu.parse_sdp(self.offer_text)
        for o, a in zip(offer.media, self.sdp.media):
            want = [v for v in o.attributes("extmap") if "ssrc-audio-level" in v]
            got = [v for v in a.attributes("extmap") if "ssrc-audio-level" in v]
            self.assertEqual(got, want)

    def test_without_codec_filter_every_offered_payload_type_is_answered(self):
        answer = sfu.compose_answer(self.offer_text, ENDPOINT, self.sources)
        offer = sfu.parse_sdp(self.offer_text)
        for o, a in zip(offer.media, sfu.parse_sdp(answer.sdp).media):
            rtpmapped = {v.split(" ", 1)[0] for v in o.attributes("rtpmap")}
            self.assertEqual(a.fmts, [f for f in o.fmts if f in rtpmapped])

    def test_fewer_sources_than_m_lines(self):
        only_b = [s for s in self.sources if s["endpoint"] == "00000000000000b0"]
        answer = sfu.compose_answer(self.offer_text, ENDPOINT, only_b, codecs=("opus", "VP8"))
        dirs = {m.mid: m.direction for m in sfu.parse_sdp(answer.sdp).media}
        self.assertEqual(dirs, {"0": "recvonly", "1": "recvonly", "2": "sendonly", "3": "inactive",
                                "4": "sendonly", "5": "inactive"})
        self.assertEqual(sorted(answer.assignments), ["2", "4"])

    def test_sources_without_endpoint_get_the_default_cname(self):
        bare = [{k: v for k, v in s.items() if k != "endpoint"} for s in self.sources]
        answer = sfu.compose_answer(self.offer_text, ENDPOINT, bare, codecs=("opus", "VP8"), cname="xyz")
        m = {m.mid: m for m in sfu.parse_sdp(answer.sdp).media}["2"]
        self.assertEqual(m.attributes("ssrc"), ["1001 cname:xyz"])

    def test_more_sources_than_m_lines(self):
        extra = self.sources + [{"ssrc": 3001, "kind": "video", "msid": "d v", "endpoint": "d"}]
        answer = sfu.compose_answer(self.offer_text, ENDPOINT, extra, codecs=("opus", "VP8"))
        self.assertEqual([s["ssrc"] for s in answer.unassigned], [3001])

    def test_reparsed_answer_is_an_offer_complement(self):
        offer = sfu.parse_offer(self.offer_text)
        complement = {"sendonly": "recvonly", "recvonly": "sendonly"}
        for direction, m in zip(offer.directions, self.sdp.media):
            self.assertEqual(m.direction, complement[direction])


class ChromiumAnswer(AnswerChecks, unittest.TestCase):
    offer_file = "chromium_offer.sdp"
    audio_pt, video_pt, rtx_pt = 111, 96, 97

    def test_chromium_only_lines_are_not_copied(self):
        for unwanted in ("a=ice-options", "a=rtcp:", "a=rtcp-rsize", "a=rtcp-xr", "typ host generation",
                         "a=extmap-allow-mixed", "tcptype"):
            self.assertNotIn(unwanted, self.answer.sdp)

    def test_video_extensions(self):
        ids = {int(v.split()[0]) for v in self.by_mid["1"].attributes("extmap")}
        # toffset 14, abs-send-time 2, video-orientation 13, playout-delay 5, content-type 6,
        # video-timing 7, color-space 8; not transport-cc 3, mid 4, rid 10, repaired rid 11.
        self.assertEqual(ids, {2, 5, 6, 7, 8, 13, 14})


class AiortcAnswer(AnswerChecks, unittest.TestCase):
    offer_file = "aiortc_offer.sdp"
    audio_pt, video_pt, rtx_pt = 96, 97, 98

    def test_offer_ssrcs_of_recvonly_lines_are_not_echoed(self):
        for ssrc in ("3376935779", "1776010665", "670897713", "1174488443"):
            self.assertNotIn(ssrc, self.answer.sdp)


class ComposerErrors(unittest.TestCase):
    def test_no_candidates(self):
        ep = json.loads(json.dumps(ENDPOINT))
        ep["ice"]["candidates"] = []
        with self.assertRaises(sfu.SdpError):
            sfu.compose_answer(fixture("aiortc_offer.sdp"), ep, [])

    def test_m_line_without_mid(self):
        with self.assertRaises(sfu.SdpError):
            sfu.compose_answer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", ENDPOINT, [])

    def test_offer_without_fingerprint(self):
        text = re.sub(r"a=fingerprint:sha-256 [^\r\n]*\r\n", "", fixture("chromium_offer.sdp"))
        with self.assertRaises(sfu.SdpError):
            sfu.parse_offer(text)


class OtherSources(unittest.TestCase):
    def test_excludes_self_and_tags_endpoint(self):
        got = sfu.other_sources(CONFERENCE, "00000000000000b0")
        self.assertEqual([(s["endpoint"], s["ssrc"]) for s in got],
                         [("a1b2c3d4e5f60718", 11), ("a1b2c3d4e5f60718", 12),
                          ("00000000000000c0", 2001), ("00000000000000c0", 2002)])


class PayloadTypes(unittest.TestCase):
    """What mixed_meeting.py requires to differ: the two clients' numbers for the same codecs."""

    def numbers(self, name: str) -> tuple:
        offer = sfu.parse_offer(fixture(name))
        vp8 = sfu.payload_type(offer, "vp8")
        return sfu.payload_type(offer, "OPUS"), vp8, sfu.payload_type(offer, "rtx", apt=vp8)

    def test_chromium_and_aiortc_number_codecs_differently(self):
        self.assertEqual(self.numbers("chromium_offer.sdp"), (111, 96, 97))
        self.assertEqual(self.numbers("aiortc_offer.sdp"), (96, 97, 98))

    def test_absent_codec(self):
        offer = sfu.parse_offer(fixture("aiortc_offer.sdp"))
        self.assertIsNone(sfu.payload_type(offer, "AV1"))
        self.assertIsNone(sfu.payload_type(offer, "rtx", apt=96))


class _FakeControl:
    """The two calls `sfu.seat` makes, on CONFERENCE's three endpoints."""

    def __init__(self):
        self.patched: dict[str, dict] = {}

    def patch_endpoint(self, conference: str, endpoint: str, body: dict) -> dict:
        self.patched[endpoint] = body
        return {}

    def conference(self, conference: str) -> dict:
        return CONFERENCE


class Seat(unittest.TestCase):
    def test_patches_every_endpoint_then_answers_with_the_others(self):
        ids = [ep["id"] for ep in CONFERENCE["endpoints"]]
        endpoints = {label: dict(ENDPOINT, id=i) for label, i in zip(("me", "bob", "carol"), ids)}
        offers = {"me": fixture("chromium_offer.sdp"), "bob": fixture("aiortc_offer.sdp"),
                  "carol": fixture("chromium_offer.sdp")}
        ctl = _FakeControl()
        seats = sfu.seat(ctl, CONFERENCE["id"], endpoints, offers, codecs=("opus", "VP8"))
        self.assertEqual(sorted(ctl.patched), sorted(ids))
        self.assertEqual({c["pt"] for c in ctl.patched[ids[1]]["payload_types"]}, {96, 97, 98})
        me = seats["me"]
        self.assertEqual(me.owners, {1001: "bob", 1002: "bob", 1003: "bob",
                                     2001: "carol", 2002: "carol", 2003: "carol"})
        label_of = {ep["id"]: label for label, ep in endpoints.items()}
        self.assertEqual(me.receiving, {mid: label_of[src["endpoint"]] for mid, src in me.answer.assignments.items()})
        self.assertEqual(sorted(me.receiving.values()), ["bob", "bob", "carol", "carol"])
        self.assertEqual(seats["bob"].owners[11], "me")


class _Stub(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Stub.seen.append((self.command, self.path, self.headers.get("Authorization"),
                           self.headers.get("Content-Type"), body))
        if self.headers.get("Authorization") != "Bearer s3cret":
            code, out = 401, {"error": "unauthorized"}
        elif self.path == "/v1/conferences" and self.command == "POST":
            code, out = 201, {"id": "5f0c6a1d9e2b4c87"}
        elif self.path == "/v1/conferences/5f0c6a1d9e2b4c87" and self.command == "DELETE":
            code, out = 204, None
        elif self.path == "/v1/conferences/5f0c6a1d9e2b4c87/endpoints/e" and self.command == "PATCH":
            code, out = 200, {"id": "e", "echo": json.loads(body)}
        else:
            code, out = 404, {"error": "no such conference"}
        data = b"" if out is None else json.dumps(out).encode()
        self.send_response(code)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


class ControlClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f"http://127.0.0.1:{cls.httpd.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def setUp(self):
        _Stub.seen.clear()

    def test_calls_carry_the_secret_and_json(self):
        ctl = sfu.Control(self.url + "/", "s3cret")
        self.assertEqual(ctl.create_conference(), "5f0c6a1d9e2b4c87")
        method, path, auth, ctype, body = _Stub.seen[-1]
        self.assertEqual((method, path, auth, ctype, body),
                         ("POST", "/v1/conferences", "Bearer s3cret", "application/json", b"{}"))
        got = ctl.patch_endpoint("5f0c6a1d9e2b4c87", "e", {"ice": {"ufrag": "u", "pwd": "p"}})
        self.assertEqual(got["echo"], {"ice": {"ufrag": "u", "pwd": "p"}})
        self.assertIsNone(ctl.delete_conference("5f0c6a1d9e2b4c87"))

    def test_errors_name_the_status(self):
        with self.assertRaises(sfu.ApiError) as e:
            sfu.Control(self.url, "wrong").health()
        self.assertEqual(e.exception.status, 401)
        with self.assertRaises(sfu.ApiError) as e:
            sfu.Control(self.url, "s3cret").conference("ffffffffffffffff")
        self.assertEqual(e.exception.status, 404)
        self.assertIn("no such conference", str(e.exception))

    def test_no_server(self):
        with self.assertRaises(sfu.ApiError) as e:
            sfu.Control("http://127.0.0.1:9", "s3cret", timeout=1).health()
        self.assertEqual(e.exception.status, 0)


if __name__ == "__main__":
    unittest.main()
