"""The bridge's control API (bridge/API.md) and SDP offer/answer handling for test clients.

Stdlib only, so the unit tests run with any python3.

- `Control`: the HTTP/JSON API with the Bearer secret (urllib).
- `parse_offer(sdp)`: what PATCH needs from a participant's offer (ICE ufrag/pwd, sha-256
  fingerprint, sources with msid and RTX, payload types, header extensions) and the layout of
  its m-lines.
- `patch_body(offer)`: the PATCH body built from it.
- `compose_answer(offer_sdp, endpoint, sources)`: the SDP answer as API.md's "Writing the answer"
  says: ice-lite, BUNDLE, rtcp-mux, setup:passive, the bridge's candidates, the participant's own
  sending m-lines recvonly, each recvonly m-line of the offer sendonly with one other
  participant's source of that kind (msid, a=ssrc, FID group for RTX), without the sdes:mid,
  rtp-stream-id, repaired-rtp-stream-id and transport-wide-cc extensions and without transport-cc
  and goog-remb feedback.
- `seat(ctl, conference, endpoints, offers)`: PATCH every participant's endpoint, then compose
  every answer, and say who sends what to whom (what each meeting driver checks against).
- `payload_type(offer, name)`: how an offer numbers a codec (participants differ).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# Control API


class ApiError(Exception):
    """A non-2xx answer of the control API (or no answer at all: status 0)."""

    def __init__(self, method: str, path: str, status: int, body: str):
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


class Control:
    """Client of the bridge's control API (API.md)."""

    def __init__(self, base_url: str, secret: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout

    def request(self, method: str, path: str, body: object | None = None) -> object | None:
        data = None
        headers = {"Authorization": f"Bearer {self.secret}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(method, path, e.code, e.read().decode(errors="replace")) from None
        except (urllib.error.URLError, OSError) as e:
            raise ApiError(method, path, 0, str(e)) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(method, path, 200, f"not JSON: {raw[:200]!r}") from None

    def health(self) -> dict:
        return self.request("GET", "/v1/health")

    def create_conference(self) -> str:
        return self.request("POST", "/v1/conferences", {})["id"]

    def conference(self, conference: str) -> dict:
        return self.request("GET", f"/v1/conferences/{conference}")

    def delete_conference(self, conference: str) -> None:
        self.request("DELETE", f"/v1/conferences/{conference}")

    def create_endpoint(self, conference: str) -> dict:
        return self.request("POST", f"/v1/conferences/{conference}/endpoints", {})

    def patch_endpoint(self, conference: str, endpoint: str, body: dict) -> dict:
        return self.request("PATCH", f"/v1/conferences/{conference}/endpoints/{endpoint}", body)

    def delete_endpoint(self, conference: str, endpoint: str) -> None:
        self.request("DELETE", f"/v1/conferences/{conference}/endpoints/{endpoint}")


def other_sources(conference: dict, endpoint_id: str) -> list[dict]:
    """The sources of every endpoint of `conference` (a GET /v1/conferences/{c} body) except
    `endpoint_id`, in the conference's endpoint order, each with an added "endpoint" key."""
    out = []
    for ep in conference.get("endpoints", []):
        if ep["id"] == endpoint_id:
            continue
        for src in ep.get("sources", []):
            out.append(dict(src, endpoint=ep["id"]))
    return out


# --------------------------------------------------------------------------------------------
# SDP parsing


class SdpError(ValueError):
    pass


@dataclass
class Media:
    """One m-section: the m= line's fields and its other lines in order."""

    kind: str
    port: int
    proto: str
    fmts: list[str]
    lines: list[tuple[str, str]] = field(default_factory=list)  # (type, value): ("a", "mid:0")

    def attributes(self, name: str) -> list[str]:
        """Values of every `a=name:value` line (`""` for a flag `a=name`)."""
        return [v for n, v in (_split_attr(val) for t, val in self.lines if t == "a") if n == name]

    def attribute(self, name: str) -> str | None:
        values = self.attributes(name)
        return values[0] if values else None

    @property
    def mid(self) -> str | None:
        return self.attribute("mid")

    @property
    def direction(self) -> str:
        for name in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if self.attributes(name):
                return name
        return "sendrecv"


@dataclass
class Sdp:
    session: list[tuple[str, str]]
    media: list[Media]

    def session_attributes(self, name: str) -> list[str]:
        return [v for n, v in (_split_attr(val) for t, val in self.session if t == "a") if n == name]


def _split_attr(value: str) -> tuple[str, str]:
    name, _, rest = value.partition(":")
    return name, rest


def parse_sdp(text: str) -> Sdp:
    """Splits an SDP into session lines and m-sections, line by line (CRLF or LF)."""
    session: list[tuple[str, str]] = []
    media: list[Media] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"line {number}: not <type>=<value>: {raw!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"line {number}: bad m= line: {raw!r}")
            try:
                port = int(parts[1].split("/")[0])
            except ValueError:
                raise SdpError(f"line {number}: bad port in m= line: {raw!r}") from None
            media.append(Media(kind=parts[0], port=port, proto=parts[2], fmts=parts[3:]))
        elif media:
            media[-1].lines.append((kind, value))
        else:
            session.append((kind, value))
    if not session or session[0] != ("v", "0"):
        raise SdpError("an SDP starts with v=0")
    return Sdp(session=session, media=media)


# --------------------------------------------------------------------------------------------
# The offer


# Header extensions the answer leaves out (API.md): receivers demultiplex by SSRC, and the
# bridge does no congestion control yet.
DROPPED_EXTENSIONS = frozenset(
    {
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "http://www.webrtc.org/experiments/rtp-hdrext/transport-wide-cc-02",
    }
)
# rtcp-fb types the answer keeps (API.md: nack, nack pli, ccm fir).
KEPT_FEEDBACK = frozenset({"nack", "nack pli", "ccm fir"})


@dataclass
class Codec:
    pt: int
    kind: str
    name: str
    clock_rate: int
    channels: int | None = None
    apt: int | None = None
    fmtp: str | None = None
    feedback: list[str] = field(default_factory=list)

    def to_api(self) -> dict:
        d = {"pt": self.pt, "kind": self.kind, "name": self.name, "clock_rate": self.clock_rate}
        if self.channels is not None:
            d["channels"] = self.channels
        if self.apt is not None:
            d["apt"] = self.apt
        return d


@dataclass
class Offer:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: tuple[str, str]  # ("sha-256", "AB:CD:...")
    setup: str
    sources: list[dict]  # API.md's source objects, plus "mid"
    payload_types: list[Codec]  # unique (kind, pt), in offer order
    header_extensions: list[dict]  # {"id", "uri"} unique, in offer order
    mids: list[str | None]
    directions: list[str]
    kinds: list[str]


def _codecs(m: Media) -> list[Codec]:
    codecs: dict[int, Codec] = {}
    for fmt in m.fmts:
        try:
            pt = int(fmt)
        except ValueError:
            continue
        codecs[pt] = Codec(pt=pt, kind=m.kind, name="", clock_rate=0)
    for value in m.attributes("rtpmap"):
        pt_s, _, desc = value.partition(" ")
        pt = int(pt_s)
        if pt not in codecs:
            continue
        bits = desc.strip().split("/")
        c = codecs[pt]
        c.name = bits[0]
        c.clock_rate = int(bits[1]) if len(bits) > 1 else 0
        if m.kind == "audio":
            c.channels = int(bits[2]) if len(bits) > 2 else 1
    for value in m.attributes("fmtp"):
        pt_s, _, params = value.partition(" ")
        pt = int(pt_s)
        if pt in codecs:
            codecs[pt].fmtp = params.strip()
            for p in params.split(";"):
                k, _, v = p.strip().partition("=")
                if k == "apt" and v.strip().isdigit():
                    codecs[pt].apt = int(v)
    for value in m.attributes("rtcp-fb"):
        pt_s, _, fb = value.partition(" ")
        fb = " ".join(fb.split())
        targets = codecs.values() if pt_s == "*" else [codecs[int(pt_s)]] if int(pt_s) in codecs else []
        for c in targets:
            c.feedback.append(fb)
    # Static payload types without rtpmap (0 PCMU, 8 PCMA, ...) are not used by WebRTC clients.
    return [c for c in codecs.values() if c.name]


def _extmaps(m: Media) -> list[tuple[int, str, str]]:
    """(id, uri, the whole a=extmap value)."""
    out = []
    for value in m.attributes("extmap"):
        parts = value.split()
        if len(parts) < 2:
            raise SdpError(f"bad a=extmap:{value}")
        out.append((int(parts[0].split("/")[0]), parts[1], value))
    return out


def _sources(m: Media) -> list[dict]:
    """The sources one sending m-section announces: primary SSRCs with msid and RTX SSRC."""
    fid: dict[int, int] = {}
    secondary: set[int] = set()
    for value in m.attributes("ssrc-group"):
        parts = value.split()
        if parts and parts[0] in ("FID", "FEC-FR") and len(parts) >= 3:
            primary, other = int(parts[1]), int(parts[2])
            if parts[0] == "FID":
                fid[primary] = other
            secondary.add(other)
    order: list[int] = []
    ssrc_msid: dict[int, str] = {}
    for value in m.attributes("ssrc"):
        ssrc_s, _, desc = value.partition(" ")
        ssrc = int(ssrc_s)
        if ssrc not in order:
            order.append(ssrc)
        name, _, val = desc.partition(":")
        if name == "msid":
            ssrc_msid[ssrc] = val.strip()
    line_msid = m.attribute("msid")
    out = []
    for ssrc in order:
        if ssrc in secondary:
            continue
        msid = (line_msid or ssrc_msid.get(ssrc) or "").strip()
        src = {"ssrc": ssrc, "kind": m.kind, "msid": msid}
        if ssrc in fid:
            src["rtx_ssrc"] = fid[ssrc]
        out.append(src)
    return out


def parse_offer(text: str) -> Offer:
    """What the bridge needs to know from a participant's offer."""
    sdp = parse_sdp(text)

    def first(name: str) -> str | None:
        for m in sdp.media:
            v = m.attribute(name)
            if v is not None:
                return v
        v = sdp.session_attributes(name)
        return v[0] if v else None

    ufrag, pwd = first("ice-ufrag"), first("ice-pwd")
    if not ufrag or not pwd:
        raise SdpError("the offer has no a=ice-ufrag / a=ice-pwd")
    fingerprint = None
    for value in sdp.session_attributes("fingerprint") + [
        v for m in sdp.media for v in m.attributes("fingerprint")
    ]:
        algo, _, fp = value.partition(" ")
        if algo.lower() == "sha-256":
            fingerprint = ("sha-256", fp.strip())
            break
    if fingerprint is None:
        raise SdpError("the offer has no a=fingerprint:sha-256")

    sources: list[dict] = []
    payload_types: list[Codec] = []
    seen_pt: set[tuple[str, int]] = set()
    extensions: list[dict] = []
    seen_ext: set[tuple[int, str]] = set()
    for m in sdp.media:
        if m.kind not in ("audio", "video") or m.port == 0:
            continue
        if m.direction in ("sendrecv", "sendonly"):
            for src in _sources(m):
                sources.append(dict(src, mid=m.mid))
        for c in _codecs(m):
            if (c.kind, c.pt) not in seen_pt:
                seen_pt.add((c.kind, c.pt))
                payload_types.append(c)
        for ext_id, uri, _ in _extmaps(m):
            if (ext_id, uri) not in seen_ext:
                seen_ext.add((ext_id, uri))
                extensions.append({"id": ext_id, "uri": uri})
    return Offer(
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        fingerprint=fingerprint,
        setup=first("setup") or "actpass",
        sources=sources,
        payload_types=payload_types,
        header_extensions=extensions,
        mids=[m.mid for m in sdp.media],
        directions=[m.direction for m in sdp.media],
        kinds=[m.kind for m in sdp.media],
    )


def _keep_codec(c: Codec, codecs: frozenset[str] | None, kept_pts: set[int]) -> bool:
    if c.name.lower() == "rtx":
        return c.apt in kept_pts
    return codecs is None or c.name.lower() in codecs


def _norm_codecs(codecs) -> frozenset[str] | None:
    return None if codecs is None else frozenset(n.lower() for n in codecs)


def patch_body(offer: Offer, codecs=None) -> dict:
    """The PATCH /v1/conferences/{c}/endpoints/{e} body for `offer`. `codecs` (names such as
    ("opus", "VP8")) limits the payload types to those the answer keeps (RTX follows its apt)."""
    names = _norm_codecs(codecs)
    kept = {c.pt for c in offer.payload_types if c.name.lower() != "rtx" and _keep_codec(c, names, set())}
    return {
        "ice": {"ufrag": offer.ice_ufrag, "pwd": offer.ice_pwd},
        "dtls": {
            "setup": "active" if offer.setup in ("actpass", "active") else offer.setup,
            "fingerprint": {"hash": offer.fingerprint[0], "value": offer.fingerprint[1]},
        },
        "sources": [{k: v for k, v in s.items() if k != "mid"} for s in offer.sources],
        "payload_types": [c.to_api() for c in offer.payload_types if _keep_codec(c, names, kept)],
        "header_extensions": [e for e in offer.header_extensions if e["uri"] not in DROPPED_EXTENSIONS],
    }


def payload_type(offer: Offer, name: str, apt: int | None = None) -> int | None:
    """The offer's first payload type of codec `name` (any case); with `apt`, the first one
    that also repairs payload type `apt` (RTX). None if the offer has no such payload type."""
    for c in offer.payload_types:
        if c.name.lower() == name.lower() and (apt is None or c.apt == apt):
            return c.pt
    return None


# --------------------------------------------------------------------------------------------
# The answer


@dataclass
class Answer:
    sdp: str
    # mid -> the source sent on that m-line (API.md source object, with "endpoint" when known)
    assignments: dict[str, dict]
    # sources that found no recvonly m-line of their kind
    unassigned: list[dict]


def _candidate_line(c: dict) -> str:
    return (
        f"candidate:{c.get('foundation', '1')} {c.get('component', 1)} {c.get('transport', 'udp')} "
        f"{c['priority']} {c['ip']} {c['port']} typ {c.get('type', 'host')}"
    )


def _ip_version(ip: str) -> str:
    return "IP6" if ":" in ip else "IP4"


def compose_answer(
    offer_sdp: str,
    endpoint: dict,
    sources: list[dict],
    codecs=None,
    cname: str = "bridge",
    session_id: int = 1,
) -> Answer:
    """The SDP answer to `offer_sdp` for one participant.

    endpoint: the bridge's POST .../endpoints response (ice ufrag/pwd/candidates, dtls).
    sources:  the other participants' sources (see `other_sources`), assigned in order to the
              offer's recvonly m-lines of their kind; a recvonly m-line left without a source is
              answered inactive.
    codecs:   optional codec names to keep (e.g. ("opus", "VP8")); RTX is kept with its apt.
    cname:    the a=ssrc cname of sources without an "endpoint" key (else the endpoint id).
              By default every payload type of the offer is answered.
    """
    sdp = parse_sdp(offer_sdp)
    names = _norm_codecs(codecs)
    ice = endpoint["ice"]
    candidates = ice.get("candidates") or []
    if not candidates:
        raise SdpError("the endpoint has no ICE candidates")
    fp = endpoint["dtls"]["fingerprint"]
    if fp.get("hash", "").lower() != "sha-256":
        raise SdpError(f"unexpected fingerprint hash {fp.get('hash')!r}")
    main = candidates[0]

    pending = {"audio": [s for s in sources if s["kind"] == "audio"],
               "video": [s for s in sources if s["kind"] == "video"]}
    assignments: dict[str, dict] = {}

    bundle: list[str] = []
    body: list[str] = []
    for m in sdp.media:
        mid = m.mid
        if mid is None:
            raise SdpError("every m-line of the offer needs a=mid (BUNDLE)")
        if m.kind not in ("audio", "video") or m.port == 0:
            # Rejected: data channels and anything else the bridge does not carry.
            body.append(f"m={m.kind} 0 {m.proto} {' '.join(m.fmts)}")
            body.append(f"c=IN {_ip_version(main['ip'])} {main['ip']}")
            body.append(f"a=mid:{mid}")
            body.append("a=inactive")
            continue

        all_codecs = _codecs(m)
        kept_pts = {c.pt for c in all_codecs if c.name.lower() != "rtx" and _keep_codec(c, names, set())}
        kept = [c for c in all_codecs if _keep_codec(c, names, kept_pts)]
        if not kept:
            raise SdpError(f"m-line {mid}: none of the offered codecs is kept ({codecs})")

        offered = m.direction
        source = None
        if offered in ("sendrecv", "sendonly"):
            direction = "recvonly"
        elif offered == "recvonly" and pending[m.kind]:
            source = pending[m.kind].pop(0)
            assignments[mid] = source
            direction = "sendonly"
        else:
            direction = "inactive"

        bundle.append(mid)
        ip = main["ip"]
        body.append(f"m={m.kind} {main['port']} {m.proto} {' '.join(str(c.pt) for c in kept)}")
        body.append(f"c=IN {_ip_version(ip)} {ip}")
        body.append(f"a=mid:{mid}")
        body.append(f"a={direction}")
        body.append("a=rtcp-mux")
        for c in kept:
            if c.channels is not None and c.channels != 1:
                body.append(f"a=rtpmap:{c.pt} {c.name}/{c.clock_rate}/{c.channels}")
            else:
                body.append(f"a=rtpmap:{c.pt} {c.name}/{c.clock_rate}")
            if c.fmtp:
                body.append(f"a=fmtp:{c.pt} {c.fmtp}")
            for fb in c.feedback:
                if fb in KEPT_FEEDBACK:
                    body.append(f"a=rtcp-fb:{c.pt} {fb}")
        for _, uri, value in _extmaps(m):
            if uri not in DROPPED_EXTENSIONS:
                body.append(f"a=extmap:{value}")
        if source is not None:
            msid = source.get("msid") or f"{cname}-{source['ssrc']} {cname}-{source['ssrc']}-track"
            body.append(f"a=msid:{msid}")
            # One CNAME per sending participant (its endpoint id when known).
            source_cname = source.get("endpoint") or cname
            rtx = source.get("rtx_ssrc")
            if rtx is not None:
                body.append(f"a=ssrc-group:FID {source['ssrc']} {rtx}")
            body.append(f"a=ssrc:{source['ssrc']} cname:{source_cname}")
            if rtx is not None:
                body.append(f"a=ssrc:{rtx} cname:{source_cname}")
        for c in candidates:
            body.append(f"a={_candidate_line(c)}")
        body.append("a=end-of-candidates")

    head = [
        "v=0",
        f"o=- {session_id} 2 IN {_ip_version(main['ip'])} {main['ip']}",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        f"a=group:BUNDLE {' '.join(bundle)}",
        "a=msid-semantic: WMS *",
        f"a=ice-ufrag:{ice['ufrag']}",
        f"a=ice-pwd:{ice['pwd']}",
        f"a=fingerprint:sha-256 {fp['value']}",
        "a=setup:passive",
    ]
    unassigned = pending["audio"] + pending["video"]
    return Answer(sdp="\r\n".join(head + body) + "\r\n", assignments=assignments, unassigned=unassigned)


@dataclass
class Seat:
    """One participant's place in a conference once every offer is signaled (see `seat`)."""

    endpoint: dict  # the bridge's POST .../endpoints response
    answer: Answer
    # mid -> label of the participant whose source that m-line receives
    receiving: dict[str, str]
    # SSRC (primary or RTX) of every source sent to this participant -> label of its sender
    owners: dict[int, str]


def seat(
    ctl: Control, conference: str, endpoints: dict[str, dict], offers: dict[str, str], codecs=None
) -> dict[str, Seat]:
    """Steps 4 and 5 of API.md's flow for a whole meeting, as a signaling daemon drives it: PATCH
    each participant's endpoint with what its offer says, then GET the conference and compose
    each participant's answer with the others' sources.

    endpoints and offers are keyed by the participants' labels; the result is too, and names
    the other participants by label. `codecs` is `compose_answer`'s (and `patch_body`'s)."""
    for label, offer in offers.items():
        body = patch_body(parse_offer(offer), codecs=codecs)
        ctl.patch_endpoint(conference, endpoints[label]["id"], body)
    state = ctl.conference(conference)
    label_of = {ep["id"]: label for label, ep in endpoints.items()}
    seats = {}
    for label, offer in offers.items():
        endpoint = endpoints[label]
        sources = other_sources(state, endpoint["id"])
        answer = compose_answer(offer, endpoint, sources, codecs=codecs)
        owners: dict[int, str] = {}
        for src in sources:
            for ssrc in (src["ssrc"], src.get("rtx_ssrc")):
                if ssrc is not None:
                    owners[ssrc] = label_of.get(src["endpoint"], src["endpoint"])
        receiving = {mid: label_of.get(src["endpoint"], src["endpoint"]) for mid, src in answer.assignments.items()}
        seats[label] = Seat(endpoint=endpoint, answer=answer, receiving=receiving, owners=owners)
    return seats


_FINGERPRINT_RE = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")


def is_sha256_fingerprint(value: str) -> bool:
    return bool(_FINGERPRINT_RE.match(value.upper()))
