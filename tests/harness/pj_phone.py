"""A real SIP phone for tests that SIPp cannot play: pjsua2 (pjproject's own stack, the media server's wheel) over
TLS, with SRTP (SDES) as a phone offers it. Debian's SIPp is built without TLS and has no SRTP.

The phone runs in a child process of its own (one pjsua2 endpoint per process), driven by JSON lines:

    phone = PjPhone.start(node.sip_tls, "alice", "tls.example", "secret", transport="tls", srtp="mandatory")
    phone.register()                         # the registrar's answer code (200, 403, ...)
    code = phone.call("sip:200@tls.example")  # the final answer code of a call it makes (200: answered)
    phone.stats()                            # {"rx": RTP packets in, "tx": out, "proto": "RTP/SAVP" | "RTP/AVP"}
    phone.hangup(); phone.close()

`python -m tests.harness.pj_phone ARGS` is the child; `PjPhone` the parent's handle.
"""

from __future__ import annotations

import argparse
import json
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRTP = {"off": 0, "optional": 1, "mandatory": 2}  # pjmedia_srtp_use: DISABLED, OPTIONAL, MANDATORY


# ---------------------------------------------------------------- the child: one pjsua2 phone


def _child(args) -> int:  # pragma: no cover - runs in its own process
    import pjsua2 as pj

    out_lock = threading.Lock()

    def say(**event) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.uaConfig.userAgent = "callmanager-test-phone"
    cfg.medConfig.noVad = True  # packets flow with the null device's silence
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.ecTailLen = 0
    cfg.logConfig.level = args.log_level
    cfg.logConfig.consoleLevel = args.log_level
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = args.address
    tcfg.publicAddress = args.address  # its Contact and Via name the address it listens on
    if args.cert:  # a server of its own (a provider's TLS trunk): its certificate
        tcfg.tlsConfig.certFile = args.cert
        tcfg.tlsConfig.privKeyFile = args.key
    if args.transport == "tls":
        tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        if args.ca:
            tcfg.tlsConfig.CaListFile = args.ca
            tcfg.tlsConfig.verifyServer = True
    ep.transportCreate(kinds[args.transport], tcfg)
    ep.libStart()
    for codec in ep.codecEnum2():  # PCMU only, as the tests' other phones and trunks
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)

    calls: dict[int, object] = {}

    class Call(pj.Call):
        def onCallState(self, prm):
            ci = self.getInfo()
            say(event="state", state=ci.stateText, code=ci.lastStatusCode, reason=ci.lastReason, call=ci.id)
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                calls.pop(ci.id, None)

        def onCallMediaState(self, prm):
            try:  # the (null) microphone into the call and the call to the (null) speaker: audio flows both ways
                audio = self.getAudioMedia(-1)
                ep.audDevManager().getCaptureDevMedia().startTransmit(audio)
                audio.startTransmit(ep.audDevManager().getPlaybackDevMedia())
            except pj.Error as exc:
                say(event="error", cmd="media", reason=exc.info())
            say(event="media", call=self.getInfo().id)

        def onDtmfDigit(self, prm):  # a key pressed by the far end, as it arrived (RFC 2833 in the RTP, or INFO)
            say(event="dtmf", digit=prm.digit, call=self.getInfo().id)

    class Account(pj.Account):
        def onRegState(self, prm):
            say(event="reg", code=prm.code, reason=prm.reason, expiration=prm.expiration)

        def onIncomingCall(self, prm):
            call = Call(self, prm.callId)
            ci = call.getInfo()
            calls[ci.id] = call
            say(event="incoming", call=ci.id, remote=ci.remoteUri)
            answer = pj.CallOpParam()
            answer.statusCode = 180
            call.answer(answer)

    scheme_params = f";transport={args.transport}" if args.transport != "udp" else ""
    server = f"sip:{args.server}{scheme_params}"
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.domain}"
    acfg.regConfig.registrarUri = f"sip:{args.domain}{scheme_params}" if args.register else ""
    acfg.regConfig.registerOnAdd = False
    acfg.sipConfig.proxies.append(server + ";lr")
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acfg.mediaConfig.srtpUse = SRTP[args.srtp]
    acfg.mediaConfig.srtpSecureSignaling = 0  # SDES keys over any transport (the node's policy judges)
    acfg.mediaConfig.transportConfig.boundAddress = args.address
    acfg.mediaConfig.transportConfig.publicAddress = args.address
    acfg.mediaConfig.transportConfig.port = 0
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sdpNatRewriteUse = 0
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    if args.port:  # a server on a known address: its Contact names it (pjsua would name the machine's first address)
        acfg.sipConfig.contactForced = f"<sip:{args.user}@{args.address}:{args.port};transport={args.transport}>"
    account = Account()
    account.create(acfg)
    say(event="ready")

    def handle(cmd: dict) -> None:
        what = cmd.get("cmd")
        if what == "register":
            account.setRegistration(True)
        elif what == "unregister":
            account.setRegistration(False)
        elif what == "call":
            call = Call(account)
            prm = pj.CallOpParam(True)
            call.makeCall(cmd["uri"], prm)
            calls[call.getInfo().id] = call
        elif what == "answer":
            for call in list(calls.values()):
                prm = pj.CallOpParam()
                prm.statusCode = 200
                call.answer(prm)
        elif what == "reject":  # an incoming call refused (486 busy, 603 decline ...)
            for call in list(calls.values()):
                prm = pj.CallOpParam()
                prm.statusCode = int(cmd.get("code", 486))
                call.hangup(prm)
        elif what == "hold":
            for call in list(calls.values()):
                call.setHold(pj.CallOpParam(True))
        elif what == "resume":
            for call in list(calls.values()):
                prm = pj.CallOpParam(True)
                prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                call.reinvite(prm)
        elif what == "hangup":
            for call in list(calls.values()):
                call.hangup(pj.CallOpParam())
        elif what == "stats":
            docs = []
            for call in list(calls.values()):
                try:
                    si = call.getStreamInfo(0)
                    st = call.getStreamStat(0)
                except pj.Error:
                    continue
                proto = {pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP", pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP"}.get(
                    si.proto, str(si.proto)
                )
                docs.append({"rx": st.rtcp.rxStat.pkt, "tx": st.rtcp.txStat.pkt, "proto": proto})
            say(event="stats", calls=docs)
        elif what == "dtmf":
            for call in list(calls.values()):
                call.dialDtmf(cmd["digits"])
        say(event="done", cmd=what)

    buf = b""
    running = True
    while running:
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if ready:
            chunk = sys.stdin.buffer.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = json.loads(line)
                if cmd.get("cmd") == "quit":
                    running = False
                    break
                try:
                    handle(cmd)
                except pj.Error as exc:
                    say(event="error", cmd=cmd.get("cmd"), reason=exc.info())
        ep.libHandleEvents(10)
    for call in list(calls.values()):
        try:
            call.hangup(pj.CallOpParam())
        except pj.Error:
            pass
    for _ in range(20):
        ep.libHandleEvents(10)
    ep.libDestroy()
    return 0


# ---------------------------------------------------------------- the parent's handle


class PjPhone:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        self.log: list[str] = []  # pjsip's own lines (log_level > 1): the SIP messages at 5
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.next("ready", timeout=15)

    @classmethod
    def start(
        cls,
        server: tuple[str, int],
        user: str,
        domain: str,
        password: str,
        transport: str = "tls",
        srtp: str = "off",
        ca: str = "",
        log_level: int = 1,
    ) -> "PjPhone":
        """`server`: the node's listener for `transport`; `ca`: verify the node's certificate against this file."""
        argv = [sys.executable, "-m", "tests.harness.pj_phone", "--server", f"{server[0]}:{server[1]}"]
        argv += ["--user", user, "--domain", domain, "--password", password, "--transport", transport]
        argv += ["--srtp", srtp, "--log-level", str(log_level), "--register"]
        argv += ["--ca", ca] if ca else []
        return cls._spawn(argv)

    @classmethod
    def provider(cls, address: str, port: int, cert: str, key: str, log_level: int = 1) -> "PjPhone":
        """A provider's SIP server on TLS (`address`:`port`, serving `cert`): takes the calls a TLS trunk sends
        (`incoming`, `answer`); registers nowhere."""
        argv = [sys.executable, "-m", "tests.harness.pj_phone", "--server", f"{address}:{port}", "--user", "carrier"]
        argv += ["--domain", address, "--transport", "tls", "--address", address, "--port", str(port)]
        argv += ["--cert", cert, "--key", key, "--log-level", str(log_level)]
        return cls._spawn(argv)

    @classmethod
    def _spawn(cls, argv: list[str]) -> "PjPhone":
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0
        )
        return cls(proc)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.log.append(line.decode(errors="replace"))  # pjsip's own lines on stdout

    def send(self, cmd: str, **args) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()

    def next(self, event: str, timeout: float = 10.0, where=lambda e: True) -> dict:
        """The next event of this kind (others are kept in `seen`); AssertionError after `timeout`."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event} event within {timeout} s; seen: {self.seen[-10:]}")
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(e)
            if e.get("event") == event and where(e):
                return e

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return

    def register(self, timeout: float = 10.0) -> int:
        self.send("register")
        return self.next("reg", timeout)["code"]

    def call(self, uri: str, timeout: float = 15.0) -> int:
        """Call `uri`; the final answer's code (200 once answered, else the refusal's)."""
        self.drain()  # an earlier call's last events are not this one's
        self.send("call", uri=uri)
        e = self.next("state", timeout, lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
        return e["code"]

    def incoming(self, timeout: float = 15.0) -> dict:
        return self.next("incoming", timeout)

    def answer(self) -> None:
        self.send("answer")
        self.next("state", 10, lambda e: e["state"] == "CONFIRMED")

    def stats(self) -> list[dict]:
        self.send("stats")
        return self.next("stats", 5)["calls"]

    def dtmf(self, digits: str) -> None:
        self.send("dtmf", digits=digits)

    def keys_heard(self, count: int, timeout: float = 10.0) -> str:
        """The next `count` keys the far end pressed, as this phone heard them."""
        return "".join(self.next("dtmf", timeout)["digit"] for _ in range(count))

    def reject(self, code: int = 486) -> None:
        self.send("reject", code=code)

    def hold(self) -> None:
        """A re-INVITE putting the call on hold (sendonly); `resume` takes it off hold (sendrecv)."""
        self.send("hold")

    def resume(self) -> None:
        self.send("resume")

    def hangup(self) -> None:
        self.send("hangup")

    def ended(self, timeout: float = 10.0) -> dict:
        return self.next("state", timeout, lambda e: e["state"] == "DISCONNECTED")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the child
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--password", default="")
    p.add_argument("--transport", choices=("udp", "tcp", "tls"), default="tls")
    p.add_argument("--srtp", choices=tuple(SRTP), default="off")
    p.add_argument("--ca", default="")
    p.add_argument("--register", action="store_true")
    p.add_argument("--log-level", type=int, default=1)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", default="")
    p.add_argument("--key", default="")
    return _child(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
