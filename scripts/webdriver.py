"""Headless Chromium for the real-client tests: find the browser, run chromedriver in its own
process group, and speak W3C WebDriver to it with the standard library only.

Shared by bridge/tests/clients/chromium_meeting.py, appliance/tests/browser/meeting.py and
signaling/tests/browser_e2ee/driver.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

def chromium_flags(fps: int | None = None) -> list[str]:
    """DESIGN.md's flags ("Real clients for tests") for a headless Chromium with a fake camera
    (at `fps` frames a second; Chromium's default when None) and microphone."""
    fake_device = "--use-fake-device-for-media-stream" + (f"=fps={fps}" if fps else "")
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        fake_device,
        "--use-fake-ui-for-media-stream",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        # Without it Chromium leaves loopback out of ICE, and loopback is all a namespace has.
        "--allow-loopback-in-peer-connection",
        # Containers often have a small /dev/shm.
        "--disable-dev-shm-usage",
        # Headless tabs must not be throttled while they encode and decode.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--autoplay-policy=no-user-gesture-required",
    ]


def chromium_binary() -> str:
    # Debian's /usr/bin/chromium is a shell wrapper that adds flags; chromedriver wants the binary.
    for candidate in (os.environ.get("CHROMIUM_BIN"), "/usr/lib/chromium/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        raise RuntimeError("no Chromium found (scripts/install-test-deps.sh installs the Debian package)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(Exception):
    pass


class ChromeDriver:
    """A chromedriver process (its own process group) and a minimal W3C WebDriver client."""

    def __init__(self, log_path: str):
        exe = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        if not os.access(exe, os.X_OK):
            raise RuntimeError("chromedriver not found (Debian package chromium-driver)")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [exe, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if self.request("GET", "/status", timeout=2).get("ready"):
                    return
            except (WebDriverError, OSError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromedriver exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromedriver did not become ready in 15 s")
            time.sleep(0.1)

    def request(self, method: str, path: str, body: object | None = None, timeout: float = 60) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                value = json.loads(raw).get("value", {})
                msg = f"{value.get('error')}: {value.get('message', '')[:2000]}"
            except ValueError:
                msg = raw[:2000].decode(errors="replace")
            raise WebDriverError(f"{method} {path} -> {e.code} {msg}") from None
        except urllib.error.URLError as e:
            raise WebDriverError(f"{method} {path}: {e.reason}") from None
        return json.loads(raw).get("value") or {}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.log.close()


class PageSession:
    """One Chromium (one WebDriver session) showing a test page whose async functions the test
    calls by name (`window[name](...args)`). `script_ms` bounds one call in the browser,
    `call_timeout` the HTTP request that waits for it."""

    def __init__(self, driver: "ChromeDriver", url: str, args: list[str], script_ms: int, call_timeout: float,
                 label: str = "page"):
        self.driver = driver
        self.label = label
        self.call_timeout = call_timeout
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": chromium_binary(), "args": args}}}}
        value = driver.request("POST", "/session", caps, timeout=60)
        self.session = value["sessionId"]
        self.version = value.get("capabilities", {}).get("browserVersion")
        self.post("/timeouts", {"script": script_ms, "pageLoad": 30000})
        self.post("/url", {"url": url})

    def post(self, path: str, body: dict, timeout: float = 60) -> dict:
        return self.driver.request("POST", f"/session/{self.session}{path}", body, timeout=timeout)

    def call(self, function: str, *args: object) -> object:
        """Awaits window[function](...args) in the page; a rejection becomes WebDriverError."""
        script = (
            "const done = arguments[arguments.length - 1];"
            "const name = arguments[0], args = arguments[1];"
            "Promise.resolve().then(() => window[name](...args)).then("
            "  (r) => done({ok: r === undefined ? null : r}),"
            "  (e) => done({error: String((e && e.stack) || e)}));"
        )
        value = self.post("/execute/async", {"script": script, "args": [function, list(args)]},
                          timeout=self.call_timeout)
        if not isinstance(value, dict) or "ok" not in value:
            raise WebDriverError(f"{self.label}: {function}() failed: {value}")
        return value["ok"]

    def quit(self) -> None:
        try:
            self.driver.request("DELETE", f"/session/{self.session}", timeout=15)
        except Exception:  # noqa: BLE001 - best effort
            pass
