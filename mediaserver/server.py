"""The media server's SIP side: a pjsua2 endpoint on one UDP address, answering every INVITE the node sends it.

One thread does everything: pjsua2 runs with no worker threads of its own (`threadCnt` 0, `mainThreadOnly`), this
loop polls its events, so every callback runs here and may call pjsua2 back. The media clock runs in pjmedia's own
thread, which never calls into Python: a prompt's end is known from its length (read once per file), not from the
player's end-of-file callback.

An announcement (kemi.policy.announce): answer 183 with SDP, play the prompt after `lead_ms` of silence (AUD-09),
then answer the refusal the Request-URI names (with the node's Warning); anything else is refused at once. Every
call is bounded: a call that is not over `MAX_CALL_S` after it came is ended.
"""

from __future__ import annotations

import logging
import signal
import time
import wave
from pathlib import Path

import pjsua2 as pj

from kemi.policy.announce import WARNING_HEADER, Target, parse_target

log = logging.getLogger("callmanager.mediaserver")

MAX_CALL_S = 120.0  # no call stays longer, whatever happens to it
MEDIA_WAIT_S = 5.0  # a call whose media is not up this long after it came (no SDP offer, a broken one) is ended


class Prompts:
    """The prompt files: <dir>/<language>/<prompt>.wav, with their lengths (read once)."""

    def __init__(self, root: Path):
        self.root = root
        self._lengths: dict[Path, float] = {}

    def find(self, prompt: str, language: str) -> tuple[Path, float] | None:
        path = self.root / language / f"{prompt}.wav"
        if path not in self._lengths:
            try:
                with wave.open(str(path), "rb") as w:
                    self._lengths[path] = w.getnframes() / float(w.getframerate())
            except (OSError, wave.Error, EOFError):
                log.error("prompt %s: not a readable WAV file", path)
                return None
        return path, self._lengths[path]


def request_user(whole_message: str) -> str:
    """The Request-URI's user part of a SIP request's text ('' when there is none)."""
    first = whole_message.split("\r\n", 1)[0].split("\n", 1)[0]
    parts = first.split(" ")
    if len(parts) != 3 or not parts[1].lower().startswith("sip:") or "@" not in parts[1]:
        return ""
    return parts[1][4:].split("@", 1)[0]


def header(whole_message: str, name: str) -> str:
    """The first value of a header in a SIP request's text ('' when absent)."""
    wanted = name.lower() + ":"
    for line in whole_message.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        if line.lower().startswith(wanted):
            return line.split(":", 1)[1].strip()
    return ""


def barrier(what: str):
    """pjsua2 calls these from C++: an exception must not escape into it. Logged once, then the call is ended with
    a 500 by the loop's next tick — never left hanging, never ended inside a callback."""

    def wrap(fn):
        def guarded(self, *args):
            try:
                return fn(self, *args)
            except Exception:  # noqa: BLE001 - the barrier itself
                log.exception("%s failed", what)
                server = getattr(self, "server", None)
                if server is not None:
                    server.failures += 1
                if isinstance(self, Session) and not self.done:  # ended by the loop's next tick, not in here
                    self.status = 500
                    self.ends_at = time.monotonic()

        return guarded

    return wrap


class Session(pj.Call):
    """One call to the media server."""

    def __init__(self, server: "MediaServer", acc: pj.Account, call_id: int, target: Target | None, warning: str):
        super().__init__(acc, call_id)
        self.server = server
        self.target = target
        self.warning = warning
        self.came = time.monotonic()
        self.player: pj.AudioMediaPlayer | None = None
        self.play_at: float | None = None  # when the prompt starts (after the lead silence)
        self.ends_at: float | None = None  # when the refusal is sent
        self.media: pj.AudioMedia | None = None
        self.done = False
        self.status = 0  # the final answer when it is not the announcement's (500: something failed here)

    @barrier("a call's media state")
    def onCallMediaState(self, prm):
        info = self.getInfo()
        for i, m in enumerate(info.media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.media is None:
                self.media = self.getAudioMedia(i)
                self.play_at = time.monotonic() + self.server.lead_ms / 1000.0

    @barrier("a call's state")
    def onCallState(self, prm):
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.done = True

    def tick(self, now: float) -> None:
        """Called by the loop: start the prompt, send the refusal when it has played, end a call that overstays."""
        if self.done:
            return
        if self.play_at is not None and now >= self.play_at and self.player is None and self.target is not None:
            found = self.server.prompts.find(self.target.prompt, self.target.language)
            if found is None:
                self.ends_at = now  # no prompt to play: the refusal at once
            else:
                path, seconds = found
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(self.media)
                self.ends_at = now + seconds + 0.1  # the last frame leaves the bridge
        stalled = self.media is None and self.ends_at is None and now - self.came > MEDIA_WAIT_S
        if stalled:  # each process takes only 4 calls at once: one that cannot play must not hold a place
            self.status = self.status or 488
        if stalled or (self.ends_at is not None and now >= self.ends_at) or now - self.came > MAX_CALL_S:
            self.refuse()

    def refuse(self) -> None:
        """The call's final answer: the announcement's refusal, 500 when something failed here, 404 for a request
        that named no announcement."""
        if self.done:
            return
        self.done = True
        op = pj.CallOpParam()
        op.statusCode = self.status or (self.target.code if self.target is not None else 404)
        if self.warning:
            h = pj.SipHeader()
            h.hName = "Warning"
            text = self.warning if self.warning.startswith('"') else '"' + self.warning.replace('"', "'") + '"'
            h.hValue = f"399 callmanager {text}"  # the node sends it as a quoted-string (kemi/policy/sip_text.py)
            op.txOption.headers.append(h)
        try:
            self.hangup(op)
        except pj.Error as exc:  # the caller left meanwhile
            log.info("call %s: ending it: %s", self.getId(), exc.info())


class Account(pj.Account):
    def __init__(self, server: "MediaServer"):
        super().__init__()
        self.server = server

    def onIncomingCall(self, prm):
        try:
            self.server.incoming(self, prm)
        except Exception:  # noqa: BLE001 - must not escape into pjsua2; the call is refused by pjsua2's default
            log.exception("an incoming call could not be taken")
            self.server.failures += 1


class MediaServer:
    def __init__(self, address: str, port: int, prompts: Path, lead_ms: int = 0, max_calls: int = 500):
        self.address, self.port = address, port
        self.prompts = Prompts(prompts)
        self.lead_ms = lead_ms
        self.max_calls = max_calls
        self.sessions: list[Session] = []
        self.running = True
        self.handled = 0
        self.failures = 0  # calls that raised in this server's code (each logged)
        self.ep = pj.Endpoint()

    def start(self) -> None:
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = self.max_calls
        cfg.uaConfig.userAgent = "callmanager-mediaserver"
        cfg.medConfig.threadCnt = 1
        cfg.medConfig.maxMediaPorts = self.max_calls * 2 + 4
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = 8000  # telephony: the bridge at the prompts' and PCMU's rate, nothing resampled
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.ecTailLen = 0  # no echo canceller: nothing here is a loudspeaker
        cfg.logConfig.level = 2
        cfg.logConfig.consoleLevel = 2
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()  # a server: no sound card, the bridge runs on its own clock
        tcfg = pj.TransportConfig()
        tcfg.port = self.port
        tcfg.boundAddress = self.address
        tcfg.publicAddress = self.address
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:media@{self.address}:{self.port}"
        acfg.mediaConfig.transportConfig.boundAddress = self.address
        acfg.mediaConfig.transportConfig.publicAddress = self.address
        acfg.mediaConfig.transportConfig.port = 0  # any free port: several servers and nodes share the machine
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        self.account = Account(self)
        self.account.create(acfg)
        log.info("media server listening on udp %s:%s (prompts %s)", self.address, self.port, self.prompts.root)

    def incoming(self, acc: Account, prm) -> None:
        """A new INVITE: an announcement the node named, or anything else refused with 404."""
        self.handled += 1
        text = prm.rdata.wholeMsg
        target = parse_target(request_user(text))
        session = Session(self, acc, prm.callId, target, header(text, WARNING_HEADER))
        self.sessions.append(session)
        op = pj.CallOpParam()
        # Never end a call inside this callback (pjsua2 asserts and the process dies — measured: a hangup here freed
        # the INVITE's cloned rdata before pjsua was done with it): the loop's next tick ends it.
        if target is None:
            log.warning("INVITE for %r: not something this server plays; refused", request_user(text)[:60])
            session.ends_at = time.monotonic()
            return
        op.statusCode = 183
        try:
            session.answer(op)
        except Exception:  # noqa: BLE001 - this call ends with a 500 (on the next tick); the server goes on
            log.exception("call %s: could not answer it", prm.callId)
            self.failures += 1
            session.status = 500
            session.ends_at = time.monotonic()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "running", False))
        while self.running:
            self.ep.libHandleEvents(10)
            now = time.monotonic()
            for s in self.sessions:
                try:
                    s.tick(now)
                except pj.Error as exc:  # one call's trouble is that call's: logged, ended
                    log.error("call %s: %s", s.getId(), exc.info())
                    s.done = True
            if any(s.done and not s.isActive() for s in self.sessions):
                self.sessions = [s for s in self.sessions if not (s.done and not s.isActive())]

    def stop(self) -> None:
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + 2
        while any(s.isActive() for s in self.sessions) and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
        for s in self.sessions:  # pjsua2 asserts at shutdown if a call or player object outlives the library
            s.player = None
        self.sessions = []
        self.account.shutdown()
        self.ep.libDestroy()
