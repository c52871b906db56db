"""The media server's SIP side: a pjsua2 endpoint on one UDP address, answering every INVITE the node sends it.

One thread does everything: pjsua2 runs with no worker threads of its own (`threadCnt` 0, `mainThreadOnly`), this
loop polls its events, so every callback runs here and may call pjsua2 back. The media clock runs in pjmedia's own
thread, which never calls into Python: a prompt's end is known from its length (read once per file), not from the
player's end-of-file callback.

An announcement (kemi.policy.announce): answer 183 with SDP, play the prompt after `lead_ms` of silence (AUD-09),
then answer the refusal the Request-URI names (with the node's Warning). A deposit (kemi.policy.voicemail, the
`Deposit` call in mediaserver/voicemail.py): answer 200, greet, record the message into the voicemail spool. Anything
else is refused at once. Every call is bounded: a call that is not over `MAX_CALL_S` (a deposit: its own bound)
after it came is ended.
"""

from __future__ import annotations

import logging
import signal
import time
import wave
from pathlib import Path

import pjsua2 as pj

from kemi.policy import ivr, voicemail
from kemi.policy import queue as policy_queue
from kemi.policy.announce import WARNING_HEADER, Target, parse_target

log = logging.getLogger("callmanager.mediaserver")

MAX_CALL_S = 120.0  # no call stays longer, whatever happens to it
MEDIA_WAIT_S = 5.0  # a call whose media is not up this long after it came (no SDP offer, a broken one) is ended


class Prompts:
    """The prompt files: <dir>/<language>/<prompt>.wav, with their lengths (read once)."""

    def __init__(self, root: Path, tenants: Path | None = None):
        self.root = root
        self.tenants = tenants  # tenants' own recordings: <tenants>/<tenant>/<language>/<prompt>.wav
        self._lengths: dict[tuple[Path, int], float] = {}

    def find(self, prompt: str, language: str, tenant_id: int | None = None) -> tuple[Path, float] | None:
        """The prompt to play: the tenant's own recording of it (AUD-07) if it has one, else the system's."""
        if tenant_id is not None and self.tenants is not None:
            own = self.tenants / str(tenant_id) / language / f"{prompt}.wav"
            if own.exists():
                found = self.file(own)
                if found is not None:
                    return found
        return self.file(self.root / language / f"{prompt}.wav")

    def file(self, path: Path) -> tuple[Path, float] | None:
        """A WAV file with its length in seconds (None: not a readable WAV file). Read again when it changed (a
        mailbox's greeting recorded anew)."""
        try:
            key = (path, path.stat().st_mtime_ns)
        except OSError:
            key = (path, 0)
        if key not in self._lengths:
            try:
                with wave.open(str(path), "rb") as w:
                    self._lengths[key] = w.getnframes() / float(w.getframerate())
            except (OSError, wave.Error, EOFError, ZeroDivisionError):
                log.error("prompt %s: not a readable WAV file", path)
                return None
        return path, self._lengths[key]


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
    """One call to the media server. This class plays an announcement; `mediaserver.voicemail.Deposit` records a
    message. The loop calls `tick` often, and `finish` once when the call is over."""

    bound_s = MAX_CALL_S  # no call of this kind stays longer
    default_status = 404  # the final answer of a call that named nothing this server plays

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
        self.finished = False
        self.status = 0  # the final answer when it is not the announcement's (500: something failed here)
        self.headers: list[tuple[str, str]] = []  # more headers on the final answer

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

    def play(self, path: Path) -> None:
        """Play a file to the caller (the one playing before is stopped)."""
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
        self.player.startTransmit(self.media)

    def tick(self, now: float) -> None:
        """Called by the loop: the call's next step; a call whose media never comes up, or that overstays, is ended."""
        if self.done:
            return
        self.step(now)
        stalled = self.media is None and self.ends_at is None and now - self.came > MEDIA_WAIT_S
        if stalled:  # each process takes only 4 calls at once: one that cannot play must not hold a place
            self.status = self.status or 488
        if stalled or (self.ends_at is not None and now >= self.ends_at) or now - self.came > self.bound_s:
            self.refuse()

    def step(self, now: float) -> None:
        """An announcement: start the prompt after the lead silence; the refusal when it has played."""
        if self.play_at is not None and now >= self.play_at and self.player is None and self.target is not None:
            found = self.server.prompts.find(self.target.prompt, self.target.language, self.target.tenant_id)
            if found is None:
                self.ends_at = now  # no prompt to play: the refusal at once
            else:
                path, seconds = found
                self.play(path)
                self.ends_at = now + seconds + 0.1  # the last frame leaves the bridge

    def finish(self) -> bool:
        """The call is over (called by the loop, outside every pjsua2 callback, until it returns True)."""
        self.player = None
        return True

    def refuse(self) -> None:
        """The call's final answer: the announcement's refusal, 500 when something failed here, 404 for a request
        that named no announcement (a call already answered: a BYE)."""
        if self.done:
            return
        self.done = True
        op = pj.CallOpParam()
        op.statusCode = self.status or (self.target.code if self.target is not None else self.default_status)
        for name, value in self.headers:
            h = pj.SipHeader()
            h.hName, h.hValue = name, value
            op.txOption.headers.append(h)
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

    def onInstantMessage(self, prm):
        """The node's queue timer: a waiting call's place or turn (kemi.policy.queue)."""
        try:
            self.server.notice(prm.rdata.wholeMsg, str(prm.msgBody))
        except Exception:  # noqa: BLE001 - must not escape into pjsua2
            log.exception("a message from the node could not be read")
            self.server.failures += 1


class MediaServer:
    def __init__(
        self,
        address: str,
        port: int,
        prompts: Path,
        lead_ms: int = 0,
        max_calls: int = 500,
        spool: Path | None = None,
        store: Path | None = None,
    ):
        self.address, self.port = address, port
        self.prompts = Prompts(prompts, store / "prompts" if store is not None else None)
        self.spool = (
            spool  # recorded messages: <spool>/tmp while recording, then <spool>/new (mediaserver/voicemail.py)
        )
        self.store = store  # the control plane's voicemail store (controlplane/services/voicemail.py Store)
        # mailboxes' own greetings: <store>/greetings/<mailbox>/<busy|unavailable>.wav
        self.greetings = store / "greetings" if store is not None else None
        from .ivr import MenuFile

        self.menu_file = MenuFile(store)
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
        user = request_user(text)
        deposit = voicemail.parse_target(user)
        if deposit is not None:
            from .listen import Listen
            from .voicemail import Deposit

            call = (
                Listen(self, acc, prm.callId, deposit)
                if deposit.greeting == voicemail.LISTEN
                else Deposit(self, acc, prm.callId, deposit, text)
            )
            self.take(call, prm.callId)
            return
        wait = policy_queue.parse_target(user)
        if wait is not None:
            from .queue import QueueWait

            self.take(QueueWait(self, acc, prm.callId, wait, header(text, "Call-ID") or header(text, "i")), prm.callId)
            return
        menu = ivr.parse_target(user)
        if menu is not None:
            from .ivr import Menus

            self.take(Menus(self, acc, prm.callId, menu), prm.callId)
            return
        target = parse_target(user)
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

    def notice(self, whole_message: str, body: str) -> None:
        """A MESSAGE from the node about a waiting call (its Call-ID in kemi.policy.queue.CALL_HEADER)."""
        from .queue import QueueWait

        call_id = header(whole_message, policy_queue.CALL_HEADER)
        for s in self.sessions:
            if isinstance(s, QueueWait) and s.sip_call_id == call_id and not s.done:
                s.notice(body.strip(), time.monotonic())
                return
        log.info("a notice for a call not waiting here (%s): %s", call_id[:60], body[:40])

    def take(self, call: Session, call_id: int) -> None:
        """A call of one of the answering kinds (a deposit, listening, menus): kept and answered."""
        self.sessions.append(call)
        try:
            call.answer_now()
        except Exception:  # noqa: BLE001 - this call ends with a 500 (on the next tick); the server goes on
            log.exception("call %s: could not answer it", call_id)
            self.failures += 1
            call.status, call.ends_at = 500, time.monotonic()

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
                except Exception:  # noqa: BLE001 - a bug costs this call, never the server
                    log.exception("call %s: its step failed", s.getId())
                    self.failures += 1
                    s.status, s.ends_at = 500, now
            over = [s for s in self.sessions if s.done and not s.finished and not s.isActive()]
            for s in over:
                self.close(s)
            if any(s.finished for s in over):
                self.sessions = [s for s in self.sessions if not s.finished]

    def close(self, s: Session) -> None:
        """A call is over: its own last step (a deposit stores its message), once; a failure there is logged."""
        if s.finished:
            return
        try:
            s.finished = s.finish() is not False  # False: not yet (asked again on the loop's next turn)
        except Exception:  # noqa: BLE001 - logged and counted; the server goes on
            log.exception("call %s: finishing it failed", s.getId())
            self.failures += 1
            s.finished = True

    def stop(self) -> None:
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + 2
        while any(s.isActive() for s in self.sessions) and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
        deadline = time.monotonic() + 6
        while any(not s.finished for s in self.sessions) and time.monotonic() < deadline:
            for s in self.sessions:  # a message recorded so far is kept; pjsua2 asserts at shutdown if a call,
                self.close(s)  # player or recorder object outlives the library
            self.ep.libHandleEvents(10)
        self.sessions = []
        self.account.shutdown()
        self.ep.libDestroy()
