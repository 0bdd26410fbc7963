#!/usr/bin/env python3
"""Real Chromiums on the appliance's meeting page, driven through window.meetingTest.

    meeting.py BASE_URL SCENARIO [SCENARIO ...]

BASE_URL is the appliance's page (https://127.0.0.1:8443, self-signed certificate). Scenarios:

    topology   two talk P2P, a third moves everyone to the bridge, and back to P2P when it leaves
    lobby      password, lobby, admit/deny and chat history
    fresh      a room emptied of its members starts over: no password, no chat, a new moderator
    e2ee       end-to-end encryption: three with one passphrase decode each other in P2P, through
               the bridge and back; a fourth with another passphrase decodes none of them and
               sees "cannot decrypt"; the bridge's test tap holds only SFrame ciphertext; a
               passphrase change rotates keys

Starts nothing but Chromium sessions (one chromedriver, at most three Chromiums, 320x240), all
driven through chromedriver's W3C WebDriver HTTP API with the stdlib. The appliance (and its
bridge metrics on http://127.0.0.1:9464/metrics) must already run: run.sh starts it. Prints one
JSON line per run ({"ok": true|false, ...}); exit 0 on success, 1 on failure. A hard timeout
(--timeout, default 150 s) bounds the whole run. With MEETING_SCREENSHOTS=DIR the e2ee scenario
saves A's and D's pages there (e2ee-A.png, e2ee-D.png) for a person to look at the tiles.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts"))
from webdriver import ChromeDriver, WebDriverError, chromium_binary, chromium_flags, free_port  # noqa: E402

METRICS_URL = "http://127.0.0.1:9464/metrics"

# chromium_meeting.py's flags (DESIGN.md "Real clients for tests"), plus the self-signed
# certificate of the appliance.
CHROMIUM_FLAGS = chromium_flags(fps=15) + ["--ignore-certificate-errors", "--window-size=320,240"]


class HardTimeout(Exception):
    pass


class Failure(Exception):
    pass


def cipher_is_aes_gcm(reported: str | None) -> bool:
    # Chromium 156 reports "SRTP_AEAD_AES_128_GCM"; older libwebrtc "AEAD_AES_128_GCM".
    return reported is not None and reported.upper().removeprefix("SRTP_") == "AEAD_AES_128_GCM"


class Page:
    """One participant: a tab of a Chromium (one WebDriver session per Chromium; a second tab of
    the same Chromium via `tab()`, so that four participants need only three browsers)."""

    def __init__(self, driver: ChromeDriver, name: str, workdir: str, session: str | None = None):
        self.driver = driver
        self.name = name
        self.owner = session is None
        if session is None:
            profile = tempfile.mkdtemp(prefix=f"chromium-{name}-", dir=workdir)
            args = CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]
            caps = {
                "capabilities": {
                    "alwaysMatch": {
                        "acceptInsecureCerts": True,
                        "goog:chromeOptions": {"binary": chromium_binary(), "args": args},
                    }
                }
            }
            session = driver.request("POST", "/session", caps, timeout=60)["sessionId"]
            self.sid = session
            self.handle = driver.request("GET", f"/session/{session}/window", timeout=15)
            self.post("/timeouts", {"script": 30000, "pageLoad": 30000})
        else:
            self.sid = session
            self.handle = driver.request("POST", f"/session/{session}/window/new", {"type": "tab"}, timeout=15)[
                "handle"
            ]

    def tab(self, name: str) -> "Page":
        return Page(self.driver, name, "", session=self.sid)

    def post(self, path: str, body: dict, timeout: float = 60) -> dict:
        return self.driver.request("POST", f"/session/{self.sid}{path}", body, timeout=timeout)

    def focus(self) -> None:
        self.post("/window", {"handle": self.handle}, timeout=15)

    def go(self, url: str) -> None:
        self.focus()
        self.post("/url", {"url": url})

    def js(self, body: str, *args: object) -> object:
        """The value of an async function body run in the page (`args` is its argument list)."""
        self.focus()
        script = (
            "const done = arguments[arguments.length - 1]; const args = arguments[0];"
            f"Promise.resolve().then(async () => {{ {body} }})"
            ".then(r => done({ok: r === undefined ? null : r}), e => done({error: String(e && e.stack || e)}));"
        )
        v = self.post("/execute/async", {"script": script, "args": [list(args)]}, timeout=45)
        if "error" in v:
            raise Failure(f"{self.name}: script failed: {v['error']}")
        return v["ok"]

    def state(self) -> dict:
        return self.js("return window.meetingTest.state()")

    def stats(self) -> dict:
        return self.js("return await window.meetingTest.stats()")

    def act(self, call: str, *args: object) -> object:
        return self.js(f"return await window.meetingTest.act.{call}", *args)

    def start(self, call: str, *args: object) -> None:
        """Starts an action without waiting for its outcome (joins wait for the server)."""
        self.js(f"window.meetingTest.act.{call}.catch(() => {{}}); return null", *args)

    def trace(self) -> list:
        try:
            return self.js("return window.meetingTest.trace()")[-20:]
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return [f"no trace: {e}"]

    def screenshot(self, path: str) -> None:
        """A PNG of the page (the window is 320x240 unless a test resizes it)."""
        self.focus()
        data = self.driver.request("GET", f"/session/{self.sid}/screenshot", timeout=15)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def quit(self) -> None:
        try:
            if self.owner:
                self.driver.request("DELETE", f"/session/{self.sid}", timeout=15)
        except Exception:  # noqa: BLE001 - best effort
            pass


def wait_for(fn, what: str, timeout: float = 20, interval: float = 0.3):
    end = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= end:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def metric(name: str) -> float | None:
    with urllib.request.urlopen(METRICS_URL, timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


class Run:
    def __init__(self, base: str, workdir: str):
        self.base = base.rstrip("/")
        self.workdir = workdir
        self.driver = ChromeDriver(os.path.join(workdir, "chromedriver.log"))
        self.pages: list[Page] = []
        self.log: list[str] = []
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f}s {text}"
        self.log.append(line)
        print(line, file=sys.stderr, flush=True)

    def browser(self, name: str) -> Page:
        page = Page(self.driver, name, self.workdir)
        self.pages.append(page)
        return page

    def tab(self, of: Page, name: str) -> Page:
        page = of.tab(name)
        self.pages.append(page)
        return page

    def url(self, room: str, name: str, join: bool = True) -> str:
        return f"{self.base}/{room}?name={name}" + ("&join=1" if join else "")

    def join(self, page: Page, room: str, screen: str = "meeting") -> dict:
        page.go(self.url(room, page.name))
        return wait_for(
            lambda: (s := page.state())["screen"] == screen and s,
            f"{page.name} on the {screen} screen of {room}",
            timeout=20,
        )

    def diagnostics(self) -> dict:
        out = {}
        for page in self.pages:
            try:
                out[page.name] = {"state": page.state(), "stats": page.stats(), "trace": page.trace()}
                worker = page.js("return await window.meetingTest.e2eeStats()")
                for t in worker.get("transforms", {}).values():
                    t.pop("recent", None)
                out[page.name]["e2ee_worker"] = worker
            except Exception as e:  # noqa: BLE001 - diagnostics only
                out[page.name] = {"error": str(e)}
        try:
            out["metrics"] = {"bridge_endpoints": metric("bridge_endpoints"),
                              "bridge_conferences": metric("bridge_conferences")}
        except Exception as e:  # noqa: BLE001
            out["metrics"] = str(e)
        return out

    def close(self) -> None:
        for page in self.pages:
            page.quit()
        self.driver.close()


# ------------------------------------------------------------------------------ scenarios


def decodes(page: Page, others: list[Page], mode: str, ids: dict) -> dict | None:
    s = page.stats()
    if s["mode"] != mode:
        return None
    if not all(s["remoteVideo"].get(ids[o.name], 0) > 0 for o in others):
        return None
    return s


def speaking_total(page: Page) -> tuple[str | None, int, str | None]:
    s = page.state()
    return s["mode"], sum(x["ms"] for x in s["speakers"]), s["dominant"]


def bridge_speaking_time(run: Run, group: list[Page], ids: dict) -> dict:
    """In bridge mode speaking time comes from the bridge's dominant speaker, which it picks
    from the audio levels in the packets it forwards (Chromium's fake microphone beeps). The
    pages stop their own `speaking` reports in bridge mode, so time that accrues now is the
    bridge's: the total must grow, a member must be dominant, and every page must see it."""
    a = group[0]
    time.sleep(3)  # a P2P report still in flight when the mode changed has arrived by now
    mode, before, _ = speaking_total(a)
    if mode != "bridge":
        raise Failure(f"A left bridge mode before the speaker check: {mode}")

    def grown():
        mode, total, dominant = speaking_total(a)
        if mode != "bridge":
            raise Failure(f"A left bridge mode during the speaker check: {mode}")
        return (total, dominant) if total >= before + 2000 and dominant in ids.values() else None

    total, dominant = wait_for(grown, "speaking time from the bridge's dominant speaker", timeout=20, interval=0.5)
    time.sleep(2.5)  # one more `speakers` round reaches every page
    views = {p.name: speaking_total(p) for p in group}
    if any(t < before + 2000 or d not in ids.values() for _, t, d in views.values()):
        raise Failure(f"not every page sees the bridge's speaking time (before {before} ms): {views}")
    run.step(f"speaking time through the bridge: {before} -> {total} ms, dominant {dominant}; pages {views}")
    return {"before_ms": before, "after_ms": total, "dominant": dominant}


def topology(run: Run) -> dict:
    room = "topology-room"
    a, b, c = run.browser("A"), run.browser("B"), run.browser("C")
    ids = {}
    result = {}

    run.join(a, room)
    run.join(b, room)
    for p in (a, b):
        ids[p.name] = p.state()["id"]
    run.step(f"A and B joined {room}: {ids}")
    for p, o in ((a, b), (b, a)):
        s = wait_for(lambda: decodes(p, [o], "p2p", ids), f"{p.name} decoding {o.name} in p2p mode", timeout=25, interval=1)
        run.step(f"{p.name} decodes {o.name} in p2p: {s['remoteVideo']}")
    endpoints = metric("bridge_endpoints")
    if endpoints != 0:
        raise Failure(f"two members in p2p mode, but the bridge reports bridge_endpoints {endpoints}")
    result["p2p"] = {"bridge_endpoints": endpoints}

    run.join(c, room)
    ids["C"] = c.state()["id"]
    run.step(f"C joined: {ids['C']}")
    group = [a, b, c]
    for p in group:
        others = [o for o in group if o is not p]
        s = wait_for(lambda: decodes(p, others, "bridge", ids), f"{p.name} decoding {[o.name for o in others]} in bridge mode",
                     timeout=30, interval=1)
        if not cipher_is_aes_gcm(s["srtpCipher"]):
            raise Failure(f"{p.name}: srtpCipher {s['srtpCipher']!r}, wanted AEAD_AES_128_GCM")
        run.step(f"{p.name} decodes {[o.name for o in others]} through the bridge: {s['remoteVideo']} {s['srtpCipher']}")
        result[f"bridge_{p.name}"] = {"remoteVideo": s["remoteVideo"], "srtpCipher": s["srtpCipher"]}
    endpoints = metric("bridge_endpoints")
    result["bridge_endpoints_with_three"] = endpoints
    result["bridge_speakers"] = bridge_speaking_time(run, group, ids)

    c.act("leave()")
    run.step("C left")
    wait_for(lambda: a.state()["mode"] == "p2p" and b.state()["mode"] == "p2p", "A and B back in p2p mode", timeout=15)
    time.sleep(2)
    for p, o in ((a, b), (b, a)):
        first = wait_for(lambda: decodes(p, [o], "p2p", ids), f"{p.name} decoding {o.name} again in p2p mode",
                         timeout=25, interval=1)["remoteVideo"][ids[o.name]]
        time.sleep(1.5)
        s = p.stats()
        second = s["remoteVideo"].get(ids[o.name], 0)
        if s["mode"] != "p2p" or second <= first:
            raise Failure(f"{p.name}: framesDecoded from {o.name} not increasing in p2p mode after C left: {first} -> {second} ({s})")
        run.step(f"{p.name} decodes {o.name} in p2p again: {first} -> {second}")
        result[f"p2p_again_{p.name}"] = [first, second]
    endpoints = wait_for(lambda: (m := metric("bridge_endpoints")) == 0 and "0", "bridge_endpoints 0 after C left", timeout=10)
    result["bridge_endpoints_after"] = int(endpoints)
    return result


def lobby(run: Run) -> dict:
    room = "lobby-room"
    a, b, c = run.browser("A"), run.browser("B"), run.browser("C")
    result = {}

    sa = run.join(a, room)
    if not sa["isModerator"]:
        raise Failure(f"A, first in the room, is not moderator: {sa}")
    r = a.act("sendChat('hello')")
    if not r.get("ok"):
        raise Failure(f"A cannot send a chat: {r}")
    wait_for(lambda: any(m["text"] == "hello" for m in a.state()["chat"]), "A's own chat 'hello' echoed")
    r = a.act("setPassword('tea')")
    if not r.get("ok"):
        raise Failure(f"A cannot set a password: {r}")
    wait_for(lambda: a.state()["password"], "A seeing the password set")
    run.step("A joined, chatted, set a password")

    b.go(run.url(room, "B", join=False))
    wait_for(lambda: b.state()["screen"] == "prejoin", "B on the prejoin screen")
    b.start("join(args[0])", {"name": "B", "password": "coffee"})
    sb = wait_for(lambda: (s := b.state())["screen"] == "password" and s, "B on the password screen after a wrong password")
    run.step(f"B, wrong password: screen password, lastError {sb['lastError']}")
    b.start("retryPassword('tea')")
    wait_for(lambda: b.state()["screen"] == "meeting", "B in the meeting with the right password")
    run.step("B, right password: meeting")

    a.act("setLobby(true)")
    a.act("setPassword(null)")
    wait_for(lambda: (s := a.state())["lobby"] and not s["password"], "A seeing lobby on, password off")
    wait_for(lambda: (s := b.state())["lobby"] and not s["password"], "B seeing lobby on, password off")
    run.step("lobby on, password cleared")

    run.join(c, room, screen="lobby")
    knock = wait_for(lambda: a.state()["knocking"], "C knocking at A")
    c_id = knock[0]["id"]
    r = a.act("deny(args[0])", c_id)
    if not r.get("ok"):
        raise Failure(f"A cannot deny: {r}")
    wait_for(lambda: c.state()["screen"] == "denied", "C on the denied screen")
    wait_for(lambda: a.state()["knocking"] == [] and "empty", "A's knock list empty after denying C")
    run.step("C knocked and was denied")

    d = run.tab(c, "D")  # a second tab of C's Chromium: three browsers at most
    run.join(d, room, screen="lobby")
    knock = wait_for(lambda: a.state()["knocking"], "D knocking at A")
    r = a.act("admit(args[0])", knock[0]["id"])
    if not r.get("ok"):
        raise Failure(f"A cannot admit: {r}")
    sd = wait_for(lambda: (s := d.state())["screen"] == "meeting" and s, "D in the meeting after admission")
    run.step("D knocked and was admitted")
    history = [m["text"] for m in sd["chat"]]
    if "hello" not in history:
        late = wait_for(lambda: d.state()["chat"], "D's chat history", timeout=5)
        history = [m["text"] for m in late]
    if "hello" not in history:
        raise Failure(f"D (late joiner) did not get the chat history: {history}")
    result["d_history"] = history

    r = b.act("sendChat('from b')")
    if not r.get("ok"):
        raise Failure(f"B cannot send a chat: {r}")
    for p in (a, d):
        wait_for(lambda: any(m["text"] == "from b" for m in p.state()["chat"]), f"B's chat at {p.name}")
    time.sleep(1)
    sc = c.state()
    if any(m["text"] == "from b" for m in sc["chat"]) or sc["screen"] != "denied":
        raise Failure(f"C (denied) got B's chat or left the denied screen: {sc}")
    run.step("B's chat reached A and D, not C")
    result["a_chat"] = [m["text"] for m in a.state()["chat"]]
    return result


def fresh(run: Run) -> dict:
    room = "fresh-room"
    a, b = run.browser("A"), run.browser("B")
    sa = run.join(a, room)
    if not sa["isModerator"]:
        raise Failure(f"A, first in the room, is not moderator: {sa}")
    for call in ("setPassword('tea')", "sendChat('before')"):
        r = a.act(call)
        if not r.get("ok"):
            raise Failure(f"A: {call} -> {r}")
    wait_for(lambda: (s := a.state())["password"] and any(m["text"] == "before" for m in s["chat"]),
             "A seeing the password and its chat")
    run.step("A joined, set a password, chatted")
    a.act("leave()")
    wait_for(lambda: a.state()["screen"] != "meeting", "A out of the meeting")
    run.step(f"A left: screen {a.state()['screen']}")

    b.go(run.url(room, "B"))
    sb = wait_for(lambda: (s := b.state())["screen"] in ("meeting", "password", "lobby", "error", "denied") and s,
                  "B out of the connecting screen")
    if sb["screen"] != "meeting":
        raise Failure(f"B joining the emptied room without a password got screen {sb['screen']!r}: {sb}")
    time.sleep(1)
    sb = b.state()
    problems = []
    if sb["chat"]:
        problems.append(f"chat not empty: {sb['chat']}")
    if sb["password"]:
        problems.append("password still set")
    if not sb["isModerator"] or sb["moderator"] != sb["id"]:
        problems.append(f"B is not moderator (moderator {sb['moderator']}, B {sb['id']})")
    if problems:
        raise Failure("the emptied room did not start fresh: " + "; ".join(problems))
    run.step("B joined a fresh room: no chat, no password, moderator")
    return {"b": {"screen": sb["screen"], "chat": sb["chat"], "password": sb["password"], "isModerator": sb["isModerator"]}}


# ------------------------------------------------------------------------------ e2ee

PASSPHRASE = "correct horse battery staple"
OTHER_PASSPHRASE = "a different passphrase entirely"
NEW_PASSPHRASE = "the passphrase after rotation"


def control_api() -> tuple[str, str]:
    """The appliance's bridge control URL and secret (run.sh has it write them: a test build)."""
    path = os.environ.get("APPLIANCE_TEST_CONTROL_FILE")
    if not path:
        raise Failure("APPLIANCE_TEST_CONTROL_FILE is not set (run me through run.sh)")
    try:
        with open(path) as f:
            c = json.load(f)
    except OSError as e:
        raise Failure(f"no control file at {path} ({e}): is the appliance built with --features test-tap?") from None
    return c["url"], c["secret"]


def tap_records() -> dict:
    url, secret = control_api()
    request = urllib.request.Request(f"{url}/v1/test/tap", headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def e2ee_view(page: Page) -> dict:
    """participant id -> {on, state}, as the page shows it."""
    return page.state()["e2ee"]["participants"]


def worker_stats(page: Page) -> dict:
    return page.js("return await window.meetingTest.e2eeStats()")


def decoded_frames(page: Page, ids: dict, names: list[str]) -> dict:
    s = page.stats()
    return {n: s["remoteVideo"].get(ids[n], 0) for n in names}, s


def decoding_grows(run: Run, page: Page, ids: dict, names: list[str], mode: str, window: float = 2.0) -> dict:
    """Waits until `page` decodes video of every member in `names` in `mode`, then checks the
    count still grows over `window` seconds: frames that decrypt, not a decoder that stalled."""
    first = wait_for(lambda: (d := decoded_frames(page, ids, names))[1]["mode"] == mode
                     and all(v > 0 for v in d[0].values()) and d[0],
                     f"{page.name} decoding {names} in {mode} mode", timeout=40, interval=1)
    # A decoder that lost frames (dropped while keys were derived) waits for a keyframe, which
    # the worker asks for: allow for it, then the count must keep growing.
    grown = wait_for(lambda: (d := decoded_frames(page, ids, names))[1]["mode"] == mode
                     and all(d[0][n] >= first[n] + 5 for n in names) and d[0],
                     f"{page.name}'s video from {names} growing in {mode} mode (from {first})", timeout=20, interval=1)
    time.sleep(window)
    second, s = decoded_frames(page, ids, names)
    if s["mode"] != mode or any(second[n] <= grown[n] for n in names):
        raise Failure(f"{page.name}: video from {names} stopped in {mode} mode: {first} -> {grown} -> {second}")
    return {n: [first[n], second[n]] for n in names}


def states_are(page: Page, ids: dict, expected: dict, timeout: float = 20) -> dict:
    """Waits until `page` shows each member in `expected` (name -> e2ee state)."""
    def check():
        view = e2ee_view(page)
        got = {n: view.get(ids[n], {}).get("state") for n in expected}
        return got == expected and got

    return wait_for(check, f"{page.name} showing {expected}", timeout=timeout, interval=0.5)


def encrypt_kids(stats: dict) -> dict:
    """kind -> KIDs the page's encrypt transforms used."""
    out: dict = {"audio": set(), "video": set()}
    for t in stats["transforms"].values():
        if t.get("role") == "encrypt":
            out[t["kind"]].update(int(k, 16) for k in t.get("kids", []))
    return out


def frame_hashes(stats: dict, role: str, kind: str, owner: str | None = None) -> dict:
    """RTP timestamp -> plaintext hash over the page's transforms of `role` and `kind` (and
    the receivers carrying `owner`)."""
    out = {}
    for tid, t in stats["transforms"].items():
        if t.get("role") != role or t.get("kind") != kind:
            continue
        if owner is not None and stats.get("owners", {}).get(tid) != owner:
            continue
        for r in t.get("recent", []):
            out[r["timestamp"]] = r["hash"]
    return out


def sframe_header(data: bytes) -> tuple[int, int, int] | None:
    """(kid, ctr, header length) of an SFrame header (RFC 9605 section 4.3), or None."""
    if not data:
        return None
    config = data[0]
    x, k, y, c = config >> 7, (config >> 4) & 7, (config >> 3) & 1, config & 7
    at = 1
    if x:
        n = k + 1
        if len(data) < at + n:
            return None
        kid, at = int.from_bytes(data[at:at + n], "big"), at + n
    else:
        kid = k
    if y:
        n = c + 1
        if len(data) < at + n:
            return None
        ctr, at = int.from_bytes(data[at:at + n], "big"), at + n
    else:
        ctr = c
    return kid, ctr, at


def vp8_frame_start(payload: bytes) -> bytes | None:
    """The frame bytes after the VP8 payload descriptor (RFC 7741) when the packet starts a
    frame (S = 1, partition 0), else None."""
    if len(payload) < 1:
        return None
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x07):
        return None
    at = 1
    if b0 & 0x80:
        if len(payload) < 2:
            return None
        x = payload[1]
        at = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            at += 2 if len(payload) > at and payload[at] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            at += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            at += 1
    return payload[at:]


def check_tap(run: Run, kids: dict, heads: dict) -> dict:
    """The bridge's tap (what it had after SRTP, DESIGN.md invariant 9): every audio payload
    is an SFrame frame of a known audio key id; every video packet that starts a frame holds the
    VP8 frame tag in clear (3 or 10 bytes) and then an SFrame frame of a known video key id; the
    sender's plaintext after the clear bytes appears nowhere in what the bridge forwarded."""
    tap = tap_records()
    records = tap["records"]
    if len(records) < 200:
        raise Failure(f"the tap recorded only {len(records)} packets: {({k: v for k, v in tap.items() if k != 'records'})}")
    audio = video_starts = continuation = empty = compared = 0
    problems = []
    for r in records:
        payload = bytes.fromhex(r["payload_prefix"])
        if r["payload_len"] == 0:
            empty += 1  # padding only (bandwidth probes)
            continue
        header = sframe_header(payload)
        if header and header[0] in kids["audio"] and r["payload_len"] >= header[2] + 16:
            audio += 1
            continue
        frame = vp8_frame_start(payload)
        if frame is not None:
            clear = 10 if frame and frame[0] & 1 == 0 else 3
            header = sframe_header(frame[clear:])
            if not header or header[0] not in kids["video"]:
                problems.append(f"video frame start without an SFrame header of a known key id: {r}")
                continue
            plain = bytes.fromhex(heads.get(r["timestamp"], ""))
            if len(plain) >= clear + 16:
                compared += 1
                if plain[:clear] != frame[:clear]:
                    problems.append(f"frame {r['timestamp']}: the clear bytes differ from the sender's: {r}")
                if plain[clear:clear + 16] in payload:
                    problems.append(f"plaintext of frame {r['timestamp']} in the forwarded payload: {r}")
            video_starts += 1
            continue
        if payload and payload[0] & 0x10 == 0:
            continuation += 1  # the middle of a frame: ciphertext, no header to check
            continue
        problems.append(f"neither SFrame audio nor a VP8 frame: {r}")
    if problems:
        raise Failure(f"{len(problems)} tapped packets are not SFrame: {problems[:3]}")
    if audio < 50 or video_starts < 20 or compared < 5:
        raise Failure(f"too few encrypted packets recognised in the tap: audio {audio}, video frames "
                      f"{video_starts}, compared with the sender's plaintext {compared}")
    result = {"records": len(records), "audio": audio, "video_frame_starts": video_starts,
              "compared_with_plaintext": compared, "video_continuations": continuation, "padding_only": empty}
    run.step(f"tap: {result}")
    return result


def decrypted_match_encoded(run: Run, pages: list, ids: dict, stats: dict) -> dict:
    """Each receiver's decrypted frames equal what their sender encoded (same RTP timestamp,
    same hash): the encryption is transparent end to end."""
    out = {}
    for receiver in pages:
        for sender in pages:
            if sender is receiver:
                continue
            sent = frame_hashes(stats[sender.name], "encrypt", "video")
            got = frame_hashes(stats[receiver.name], "decrypt", "video", owner=ids[sender.name])
            common = [ts for ts in got if ts in sent]
            bad = [ts for ts in common if got[ts] != sent[ts]]
            if len(common) < 5 or bad:
                raise Failure(f"{receiver.name} <- {sender.name}: {len(common)} frames in common, {len(bad)} differ")
            out[f"{sender.name}->{receiver.name}"] = len(common)
    run.step(f"decrypted frames equal the encoded ones: {out}")
    return out


def join_encrypted(run: Run, page: Page, room: str, passphrase: str) -> str:
    """Turns encryption on from the pre-join screen, then joins: no frame leaves in clear.
    Returns the member's id."""
    page.go(run.url(room, page.name, join=False))
    wait_for(lambda: page.state()["screen"] == "prejoin", f"{page.name} on the pre-join screen")
    r = page.act(f"setE2ee({json.dumps(passphrase)})")
    if not r.get("ok"):
        raise Failure(f"{page.name}: setE2ee before joining -> {r}")
    page.start(f"join({{name: {json.dumps(page.name)}}})")
    wait_for(lambda: page.state()["screen"] == "meeting", f"{page.name} in the meeting")
    return page.state()["id"]


def e2ee(run: Run) -> dict:
    room = "e2ee-room"
    a, b, c = run.browser("A"), run.browser("B"), run.browser("C")
    d = run.tab(c, "D")
    ids: dict = {}
    result: dict = {}

    # A and B: P2P, then both turn encryption on in the meeting.
    for p in (a, b):
        run.join(p, room)
        ids[p.name] = p.state()["id"]
    for p in (a, b):
        r = p.act(f"setE2ee({json.dumps(PASSPHRASE)})")
        if not r.get("ok"):
            raise Failure(f"{p.name}: setE2ee -> {r}")
    for p, o in ((a, b), (b, a)):
        states_are(p, ids, {o.name: "decrypting"})
        result[f"p2p_{p.name}"] = decoding_grows(run, p, ids, [o.name], "p2p")
    run.step(f"A and B decrypt each other in P2P: {result['p2p_A']} {result['p2p_B']}")

    # C sets the passphrase before joining: encrypted from its first frame. Bridge mode.
    ids["C"] = join_encrypted(run, c, room, PASSPHRASE)
    group = [a, b, c]
    for p in group:
        others = [o.name for o in group if o is not p]
        states_are(p, ids, {n: "decrypting" for n in others}, timeout=40)
        result[f"bridge_{p.name}"] = decoding_grows(run, p, ids, others, "bridge")
        audio = p.stats()["remoteAudio"]
        if not all(audio.get(ids[n], 0) > 0 for n in others):
            raise Failure(f"{p.name}: no decoded audio from {others}: {audio}")
    run.step(f"A, B, C decrypt each other through the bridge: {[result[f'bridge_{p.name}'] for p in group]}")

    # What the bridge forwarded (its tap holds the first packets of the bridge meeting, which
    # the senders' recent frames still cover now), and what the receivers decrypted.
    stats = {p.name: worker_stats(p) for p in group}
    kids: dict = {"audio": set(), "video": set()}
    heads = {}
    for st in stats.values():
        for kind, values in encrypt_kids(st).items():
            kids[kind] |= values
        for t in st["transforms"].values():
            if t.get("role") == "encrypt" and t.get("kind") == "video":
                heads.update({r["timestamp"]: r["head"] for r in t.get("recent", []) if r.get("head")})
    if len(kids["audio"]) < 3 or len(kids["video"]) < 3:
        raise Failure(f"expected three senders' key ids per kind: {kids}")
    result["tap"] = check_tap(run, kids, heads)
    result["hashes"] = decrypted_match_encoded(run, group, ids, stats)

    # D: another passphrase. Decodes nobody; everyone sees D as "cannot decrypt", D sees them so.
    ids["D"] = join_encrypted(run, d, room, OTHER_PASSPHRASE)
    states_are(d, ids, {n: "cannot-decrypt" for n in ("A", "B", "C")}, timeout=40)
    for p in group:
        states_are(p, ids, {"D": "cannot-decrypt"}, timeout=30)
    before, s = decoded_frames(d, ids, ["A", "B", "C"])
    time.sleep(3)
    after, s = decoded_frames(d, ids, ["A", "B", "C"])
    if s["mode"] != "bridge" or any(after.values()):
        raise Failure(f"D decoded frames of members with another passphrase: {before} -> {after} ({s})")
    d_stats = worker_stats(d)
    failed = sum(t.get("failed", 0) for t in d_stats["transforms"].values() if t.get("role") == "decrypt")
    decrypted = sum(t.get("decrypted", 0) for t in d_stats["transforms"].values() if t.get("role") == "decrypt")
    if failed == 0 or decrypted != 0:
        raise Failure(f"D's worker: failed {failed}, decrypted {decrypted} (wanted failures and no decryption)")
    result["d"] = {"framesDecoded": after, "failed": failed, "decrypted": decrypted}
    if os.environ.get("MEETING_SCREENSHOTS"):  # for a person checking the tiles by eye
        for p in (a, d):
            p.post("/window/rect", {"width": 1000, "height": 700})
            time.sleep(1)
            p.screenshot(os.path.join(os.environ["MEETING_SCREENSHOTS"], f"e2ee-{p.name}.png"))
    run.step(f"D (another passphrase) decodes nothing: {result['d']}")
    # The others still decode each other with D in the room.
    for p in group:
        decoding_grows(run, p, ids, [o.name for o in group if o is not p], "bridge", window=1.5)

    # Back to P2P: D and C leave; A and B still decrypt each other.
    d.act("leave()")
    c.act("leave()")
    run.step("C and D left")
    wait_for(lambda: a.state()["mode"] == "p2p" and b.state()["mode"] == "p2p", "A and B back in P2P", timeout=20)
    for p, o in ((a, b), (b, a)):
        states_are(p, ids, {o.name: "decrypting"}, timeout=30)
        result[f"p2p_again_{p.name}"] = decoding_grows(run, p, ids, [o.name], "p2p")
    run.step(f"A and B decrypt each other in P2P again: {result['p2p_again_A']} {result['p2p_again_B']}")

    # Rotation: A changes the passphrase. B cannot decrypt A until B changes it too.
    r = a.act(f"setE2ee({json.dumps(NEW_PASSPHRASE)})")
    if not r.get("ok"):
        raise Failure(f"A: passphrase change -> {r}")
    states_are(b, ids, {"A": "cannot-decrypt"}, timeout=20)
    r = b.act(f"setE2ee({json.dumps(NEW_PASSPHRASE)})")
    if not r.get("ok"):
        raise Failure(f"B: passphrase change -> {r}")
    for p, o in ((a, b), (b, a)):
        states_are(p, ids, {o.name: "decrypting"}, timeout=20)
        result[f"rotated_{p.name}"] = decoding_grows(run, p, ids, [o.name], "p2p")
    run.step(f"after the passphrase change both decrypt again: {result['rotated_A']} {result['rotated_B']}")
    return result


SCENARIOS = {"topology": topology, "lobby": lobby, "fresh": fresh, "e2ee": e2ee}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the page's base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("scenarios", nargs="+", choices=sorted(SCENARIOS))
    parser.add_argument("--timeout", type=float, default=150, help="hard limit of the whole run (s)")
    args = parser.parse_args()

    def hard_timeout(_sig, _frame) -> None:
        raise HardTimeout(f"hard timeout of {args.timeout:.0f} s")

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)

    workdir = tempfile.mkdtemp(prefix="appliance-browsers-")
    report: dict = {"ok": False, "scenarios": {}}
    run = None
    status = 1
    try:
        for name in args.scenarios:
            run = Run(args.base, workdir)
            t0 = time.monotonic()
            try:
                detail = SCENARIOS[name](run)
            except (Failure, HardTimeout, WebDriverError, RuntimeError, OSError, KeyError, TypeError) as e:
                report["scenarios"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "steps": run.log}
                try:
                    signal.setitimer(signal.ITIMER_REAL, 20)  # room for the diagnostics
                    report["scenarios"][name]["diagnostics"] = run.diagnostics()
                except Exception as d:  # noqa: BLE001
                    report["scenarios"][name]["diagnostics"] = f"unavailable: {d}"
                raise Failure(f"scenario {name} failed: {e}") from None
            finally:
                run.close()
                run = None
            report["scenarios"][name] = {"ok": True, "seconds": round(time.monotonic() - t0, 1), **detail}
        report["ok"] = True
        status = 0
    except (Failure, HardTimeout) as e:
        report["error"] = str(e)
        print(f"meeting.py: FAILED: {e}", file=sys.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if run is not None:
            run.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
