"""Debian's Chromium driven by Playwright for Python (no browser download: `executable_path`), for the web phone's
tests (tests/browser). Loopback only: every page request to another host is aborted, WebRTC gathers loopback
candidates, the browser's own background traffic is off; the microphone is Chromium's fake device (a beep).

    with Chromium() as chromium:
        phone = chromium.phone(node.settings.api_base)   # a page on /phone/, one browser context each
        phone.login(token); phone.call("203"); phone.wait_state("In call")
        phone.stats()   # {"dtls": "connected", "sent": RTP packets out, "received": in}
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--use-fake-ui-for-media-stream",  # the microphone is granted without a prompt ...
    "--use-fake-device-for-media-stream",  # ... and is Chromium's fake one
    "--allow-loopback-in-peer-connection",  # ICE candidates on 127.0.0.1 (RTPengine listens there)
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real addresses, not .local names, in the candidates
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
]
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$")

STATS_JS = """async () => {
  const s = window.callmanagerPhone.session;
  if (!s || !s.connection) return null;
  const out = {dtls: null, sent: 0, received: 0, codec: null};
  (await s.connection.getStats()).forEach((r) => {
    if (r.type === "transport") out.dtls = r.dtlsState;
    if (r.type === "outbound-rtp" && r.kind === "audio") out.sent += r.packetsSent;
    if (r.type === "inbound-rtp" && r.kind === "audio") out.received += r.packetsReceived;
  });
  return out;
}"""


def available() -> str | None:
    """Why the browser tier cannot run here (None: it can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian package chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


class Chromium:
    def __init__(self, artifacts: Path):
        self.artifacts = artifacts
        self.phones: list[WebPhone] = []

    def __enter__(self) -> "Chromium":
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception:
            self._pw.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for p in self.phones:
            p.close()
        self.browser.close()
        self._pw.stop()

    def phone(self, base_url: str, name: str, viewport=(1280, 900), trust_any_certificate: bool = False) -> "WebPhone":
        """`trust_any_certificate`: the page and its WSS on a node's self-signed certificate (as a user who accepted
        it once)."""
        context = self.browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, ignore_https_errors=trust_any_certificate
        )

        def loopback_only(route):
            host = urlsplit(route.request.url).hostname or ""
            if LOOPBACK.match(host) or route.request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", loopback_only)
        page = context.new_page()
        phone = WebPhone(name, context, page, base_url)
        page.on("console", lambda m: phone.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: phone.console.append(f"pageerror: {e}"))
        page.goto(f"{base_url}/phone/")
        self.phones.append(phone)
        return phone

    def keep_screenshots(self, test_name: str) -> list[Path]:
        """Each open page's screenshot and console log, kept under `artifacts` (a failed test's evidence)."""
        kept = []
        self.artifacts.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        for p in self.phones:
            if p.closed:
                continue
            shot = self.artifacts / f"{safe}-{p.name}.png"
            try:
                p.page.screenshot(path=str(shot), full_page=True)
                (self.artifacts / f"{safe}-{p.name}.console.txt").write_text("\n".join(p.console))
                kept.append(shot)
            except Exception:  # noqa: BLE001 - the evidence is best effort; the failure itself is reported
                pass
        return kept


class WebPhone:
    """One user's web phone page, driven as a user would (labels, buttons, keys) and read as a user would (texts)."""

    def __init__(self, name: str, context, page, base_url: str):
        self.name, self.context, self.page, self.base_url = name, context, page, base_url
        self.console: list[str] = []
        self.closed = False

    def text(self, element_id: str) -> str:
        return self.page.locator(f"#{element_id}").inner_text()

    def wait_text(self, element_id: str, pattern: str, timeout: float = 15.0) -> str:
        """The element's text once it matches the regular expression `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(element_id)
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: #{element_id} says {text!r}, not /{pattern}/ after {timeout} s")
            self.page.wait_for_timeout(100)

    def wait_state(self, pattern: str, timeout: float = 15.0) -> str:
        return self.wait_text("call-state", pattern, timeout)

    def login(self, token: str, by_keyboard: bool = True) -> None:
        field = self.page.get_by_label("Your API token")
        field.fill(token)
        if by_keyboard:
            field.press("Enter")
        else:
            self.page.get_by_role("button", name="Log in").click()
        self.wait_text("registration", r"^Registered")

    def call(self, number: str) -> None:
        field = self.page.get_by_label("Number or extension")
        field.fill(number)
        field.press("Enter")

    def click(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()

    def press_keys(self, keys: str) -> None:
        for k in keys:
            self.page.locator(f'#keypad [data-tone="{k}"]').click()
            self.page.wait_for_timeout(300)

    def stats(self) -> dict:
        return self.page.evaluate(STATS_JS) or {}

    def media_flows(self, timeout: float = 10.0) -> dict:
        """The call's WebRTC statistics once DTLS is connected and more than 20 packets went each way (ICE and DTLS
        take their round trips after the answer); AssertionError with the last statistics after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st.get("dtls") == "connected" and st["sent"] > 20 and st["received"] > 20:
                return st
            if time.monotonic() > deadline:
                raise AssertionError((self.name, st))
            self.page.wait_for_timeout(250)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.context.close()
            except Exception:  # noqa: BLE001 - the browser may be gone already
                pass
