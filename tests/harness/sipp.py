"""Run SIPp scenarios (tests/scenario/sipp/) against a node: phones that register and call."""
from __future__ import annotations

import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from .ports import free_port, free_port_block

SCEN = Path(__file__).resolve().parents[1] / "scenario" / "sipp"
LOAD = Path(__file__).resolve().parents[1] / "bench"  # the benchmark's load scenarios (short calls, as fast as asked)


def _info_keys(keys: str, early: bool = False) -> str:
    """SIPp steps pressing `keys` as in-dialog INFO requests (application/dtmf-relay), 0.4 s apart, each answered.
    `early`: in the early dialog of a 183 whose Contact and Record-Route the scenario kept in $ct and $rr."""
    steps = ['  <pause milliseconds="1500"/>']
    target, routes = ("[$ct]", "Route: [$rr]") if early else ("[next_url]", "[routes]")
    for i, key in enumerate(keys):
        body = f"Signal={key}\n      Duration=160\n    "
        steps.append(f"""  <send retrans="500">
    <![CDATA[
      INFO {target} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field3]@[field1]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {10 + i} INFO
      {routes}
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      {body}]]>
  </send>
  <recv response="200"/>""")
        if i < len(keys) - 1:
            steps.append('  <pause milliseconds="400"/>')
    return "\n".join(steps)


def _read(name: str) -> str:
    return (SCEN / name).read_text()


def tone_file(path: Path, seconds: float = 2.0) -> Path:
    """A raw G.711 mu-law 440 Hz tone (what SIPp's rtp_stream sends, 160 bytes per 20 ms)."""
    import math

    def ulaw(s: int) -> int:
        sign = 0x80 if s < 0 else 0
        s = min(abs(s), 32635) + 0x84
        exp = next((e for e in range(7, -1, -1) if s & (1 << (e + 7))), 0)
        return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F)) & 0xFF

    if not path.exists():
        path.write_bytes(bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(int(8000 * seconds))))
    return path


@dataclass
class Phone:
    """One SIP device: a SIP account and the local port it uses."""

    user: str
    domain: str
    password: str
    port: int
    media_port: int
    transport: str = "udp"  # or "tcp"
    ip: str = "127.0.0.1"  # a carrier in tests sends from another loopback address

    def with_password(self, password: str) -> "Phone":
        return Phone(self.user, self.domain, password, self.port, self.media_port, self.transport, self.ip)

    def csv_line(self, last: str) -> str:
        return f"{self.user};{self.domain};[authentication username={self.user} password={self.password}];{last}"


class Sipp:
    def __init__(self, server: tuple[str, int], workdir: Path):
        self.server = server
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tone = tone_file(self.workdir / "tone.ulaw")

    def phone(self, user: str, domain: str, password: str, transport: str = "udp", ip: str = "127.0.0.1") -> Phone:
        return Phone(user, domain, password, free_port(ip), free_port_block(4, ip), transport, ip)

    def carrier(self, ip: str = "127.0.0.2") -> Phone:
        """A carrier's SIP server (UAS for outgoing calls, UAC for incoming ones) on its own loopback address."""
        return self.phone("carrier", ip, "", ip=ip)

    def _write(self, name: str, text: str) -> Path:
        f = tempfile.NamedTemporaryFile("w", dir=self.workdir, prefix=name, suffix=".xml", delete=False)
        f.write(text)
        f.close()
        return Path(f.name)

    def _inf(self, phone: Phone, last: str) -> Path:
        f = tempfile.NamedTemporaryFile("w", dir=self.workdir, prefix="inf", suffix=".csv", delete=False)
        f.write("SEQUENTIAL\n" + phone.csv_line(last) + "\n")
        f.close()
        return Path(f.name)

    def _argv(self, scenario: Path, phone: Phone, extra: list[str], timeout_s: int) -> list[str]:
        return [
            "sipp", f"{self.server[0]}:{self.server[1]}", "-sf", str(scenario), "-m", "1",
            "-i", phone.ip, "-p", str(phone.port), "-mi", phone.ip, "-mp", str(phone.media_port),
            "-timeout", f"{timeout_s}s", "-timeout_error", "-recv_timeout", f"{timeout_s}s", "-nostdin", "-trace_err",
            "-buff_size", "1048576", "-t", "t1" if phone.transport == "tcp" else "u1", *extra,
        ]

    def run(self, argv: list[str], timeout_s: int) -> "SippResult":
        proc = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True, timeout=timeout_s + 10)
        return SippResult(proc.returncode, proc.stdout + proc.stderr)

    def start(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def register(self, phone: Phone, wrong: bool = False, expires: int = 600, timeout_s: int = 10, nat: bool = False) -> "SippResult":
        scen = SCEN / ("register_wrong.xml" if wrong else "register_nat.xml" if nat else "register.xml")
        return self.run(self._argv(scen, phone, ["-inf", str(self._inf(phone, str(expires)))], timeout_s), timeout_s)

    def callee(self, phone: Phone, mode: str = "answer", timeout_s: int = 30, contact: str = "[local_ip]:[local_port]", sdp_ip: str = "[media_ip]",
               sdp_port: str = "[media_port]", calls: int = 1, auto_answer: bool = False, echo: bool | None = None) -> subprocess.Popen:
        body = _read(f"uas_{mode}.inc").replace("@CONTACT_HOSTPORT@", contact).replace("@SDP_IP@", sdp_ip).replace("@SDP_PORT@", sdp_port)
        actions = _read("uas_ring_actions.inc") if mode == "ring" else ""
        scen = self._write(f"uas_{mode}", _read("uas.xml").replace("@INVITE_ACTIONS@", actions).replace("@BODY@", body))
        echo = mode == "answer" if echo is None else echo  # SIPp sends back the RTP it gets
        extra = (["-rtp_echo"] if echo else []) + (["-aa"] if auto_answer else [])  # -aa: keep-alives answered 200
        argv = self._argv(scen, phone, extra + ["-trace_msg", "-message_file", str(scen.with_suffix(".messages"))], timeout_s)
        argv[argv.index("-m") + 1] = str(calls)  # answer this many calls, one after the other
        proc = self.start(argv)
        proc.messages = scen.with_suffix(".messages")  # what the callee received and sent
        time.sleep(0.3)  # let it bind its port
        return proc

    def caller(self, phone: Phone, dial: str, expect: int | str = 200, hold_ms: int = 2500, ring_ms: int = 1000, timeout_s: int = 30,
               bye_within_ms: int = 20000, auto_answer: bool = False, held_ms: int = 2000, resumed_ms: int = 1000,
               listen_rtp: int | None = None, refer_to: str = "", info_keys: str = "") -> "SippResult":
        """`expect="ended"`: answered, then a BYE from the network within `bye_within_ms`. `expect="refer"`: answered,
        then a REFER whose Refer-To matches the regular expression `refer_to` (answered 202), then a BYE.
        `expect="info_keys"`: answered, the keys `info_keys` pressed as SIP INFO (RFC 2976 with
        application/dtmf-relay, as many phones send them), then a BYE from the network within `bye_within_ms`. `auto_answer`: in-dialog
        OPTIONS (keep-alives), INFO, NOTIFY and UPDATE are answered 200 (SIPp -aa). `listen_rtp`: the caller's SDP
        offers this port (an RtpReceiver hears what the caller would) and SIPp sends no audio."""
        if expect == 200:
            final = _read("uac_final_200.inc").replace("@RTP_FILE@", str(self.tone))
            pause = hold_ms
        elif expect == "reinvite":
            final = _read("uac_final_reinvite.inc")
            pause = hold_ms
        elif expect == "hold":  # answered, on hold for held_ms, resumed for resumed_ms, then BYE
            final = _read("uac_final_hold.inc").replace("@HELD_MS@", str(held_ms)).replace("@RESUMED_MS@", str(resumed_ms))
            pause = hold_ms
        elif expect == "ended":  # answered, then ended by the network (a BYE to us)
            final = _read("uac_final_ended.inc").replace("@RTP_FILE@", str(self.tone)).replace("@BYE_WITHIN_MS@", str(bye_within_ms))
            pause = 0
        elif expect == "info_keys":  # answered, keys pressed as SIP INFO (application/dtmf-relay), then a BYE to us
            final = (_read("uac_final_ended.inc").replace("@RTP_FILE@", str(self.tone))
                     .replace("@BYE_WITHIN_MS@", str(bye_within_ms)).replace("<!-- @KEYS@ -->", _info_keys(info_keys)))
            pause = 0
        elif expect == "early_info_keys":  # early media (183), the keys as INFO in that early dialog, then answered
            final = _read("uac_final_early_info.inc").replace("<!-- @KEYS@ -->", _info_keys(info_keys, early=True))
            pause = hold_ms
        elif expect == "refer":
            final = (_read("uac_final_refer.inc").replace("@RTP_FILE@", str(self.tone))
                     .replace("@BYE_WITHIN_MS@", str(bye_within_ms)).replace("@REFER_TO@", xml_escape(refer_to)))
            pause = 0
        elif expect in ("cancel", "cancel_early"):  # cancelled after 180 ringing / after 183 early media
            final = _read("uac_final_cancel.inc" if expect == "cancel" else "uac_final_cancel_early.inc")
            pause = ring_ms
        else:
            final = _read("uac_final_error.inc").replace("@CODE@", str(expect))
            pause = 0
        text = _read("uac_call.xml").replace("@RECV_FINAL@", final)
        if listen_rtp is not None:  # with RFC 2833 events offered: the RtpReceiver may send keys (send_dtmf)
            text = text.replace("m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000",
                                "m=audio [media_port] RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000\n"
                                "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15")
            text = text.replace("m=audio [media_port]", f"m=audio {listen_rtp}").replace(f'<nop><action><exec rtp_stream="{self.tone},1,0"/></action></nop>', "")
        scen = self._write("uac", text)
        argv = self._argv(scen, phone, ["-inf", str(self._inf(phone, dial)), "-d", str(pause)] + (["-aa"] if auto_answer else []), timeout_s)
        return self.run(argv, timeout_s)

    def announced_caller(self, phone: Phone, dial: str, code: int, rtp_port: int, timeout_s: int = 30) -> "SippResult":
        """A call refused with an announcement (issue 23): 183 with SDP, then `code`; the caller's SDP offers
        `rtp_port` for the prompt (an RtpReceiver listens there, not SIPp)."""
        final = _read("uac_final_announced.inc").replace("@CODE@", str(code))
        text = _read("uac_call.xml").replace("@RECV_FINAL@", final).replace("m=audio [media_port]", f"m=audio {rtp_port}")
        scen = self._write("uac_announced", text)
        return self.run(self._argv(scen, phone, ["-inf", str(self._inf(phone, dial))], timeout_s), timeout_s)

    def mwi_subscriber(self, phone: Phone, changes: int, timeout_s: int = 40) -> subprocess.Popen:
        """A phone subscribed to its message waiting: the first NOTIFY, then `changes` more, then it unsubscribes.
        `.notifies()` on the returned process: the NOTIFY bodies received, in order (read its messages file)."""
        loop = _read("notify_answer.inc") * (1 + changes)
        scen = self._write("subscribe_mwi", _read("subscribe_mwi.xml").replace("@NOTIFY_LOOP@", loop))
        messages = scen.with_suffix(".messages")
        argv = self._argv(scen, phone, ["-inf", str(self._inf(phone, "")), "-trace_msg", "-message_file", str(messages)], timeout_s)
        proc = self.start(argv)

        def notifies() -> list[str]:
            text = messages.read_text(errors="replace") if messages.exists() else ""
            out = []
            for chunk in text.split("NOTIFY sip:")[1:]:
                body = chunk.split("\n\n", 1)[1] if "\n\n" in chunk else ""
                out.append(body.split("\n----", 1)[0].strip())
            return out

        proc.notifies = notifies
        return proc

    def carrier_with_auth(self, carrier: Phone, user: str, password: str, timeout_s: int = 30) -> subprocess.Popen:
        """A carrier UAS that challenges the INVITE and answers 200 only to the right credentials."""
        scen = self._write("uas_carrier_auth", _read("uas_carrier_auth.xml").replace("@USER@", user).replace("@PASSWORD@", password))
        proc = self.start(self._argv(scen, carrier, ["-trace_msg", "-message_file", str(scen.with_suffix(".messages"))], timeout_s))
        proc.messages = scen.with_suffix(".messages")
        time.sleep(0.3)
        return proc

    def carrier_call(self, carrier: Phone, caller: str, did: str, expect: int = 200, hold_ms: int = 1500, timeout_s: int = 30,
                     headers: tuple[str, ...] = ()) -> "SippResult":
        """An incoming call from the public network: no authentication, From the caller's number, R-URI the DID;
        `headers`: more header lines ("Diversion: <sip:...>;reason=no-answer")."""
        final = _read("uac_final_200.inc").replace("@RTP_FILE@", str(self.tone)) if expect == 200 else _read("uac_final_error.inc").replace("@CODE@", str(expect))
        extra = "".join("\n      " + h for h in headers)  # inside CDATA: as they are
        scen = self._write("uac_carrier", _read("uac_carrier.xml").replace("@RECV_FINAL@", final).replace("@EXTRA_HEADERS@", extra))
        inf = tempfile.NamedTemporaryFile("w", dir=self.workdir, prefix="inf", suffix=".csv", delete=False)
        inf.write(f"SEQUENTIAL\n{caller};{self.server[0]};;{did}\n")
        inf.close()
        return self.run(self._argv(scen, carrier, ["-inf", inf.name, "-d", str(hold_ms if expect == 200 else 0)], timeout_s), timeout_s)

    def caller_in_background(self, phone: Phone, dial: str, **kw) -> Future:
        """Start a call that runs while the test looks at the node; `.result()` is its SippResult."""
        pool = ThreadPoolExecutor(max_workers=1)
        fut = pool.submit(self.caller, phone, dial, **kw)
        pool.shutdown(wait=False)
        return fut

    def load(self, phones: list[Phone], dial: str, calls: int, rate: int, timeout_s: int = 60) -> "SippResult":
        """`calls` short calls (answered, ACK and BYE at once) at `rate` per second from these phones in turn (sent
        from the first one's address), as the benchmark's load."""
        f = tempfile.NamedTemporaryFile("w", dir=self.workdir, prefix="inf", suffix=".csv", delete=False)
        f.write("SEQUENTIAL\n" + "".join(p.csv_line(dial) + "\n" for p in phones))
        f.close()
        argv = self._argv(LOAD / "uac_call_load.xml", phones[0], ["-inf", f.name, "-r", str(rate), "-l", str(rate * 5)], timeout_s)
        argv[argv.index("-m") + 1] = str(calls)
        return self.run(argv, timeout_s)

    def answering_server(self, phone: Phone, timeout_s: int = 60) -> subprocess.Popen:
        """A callee (a carrier) answering every call at once until stopped."""
        argv = self._argv(LOAD / "uas_answer_load.xml", phone, [], timeout_s)
        del argv[argv.index("-m"):argv.index("-m") + 2]
        proc = self.start(argv)
        time.sleep(0.3)
        return proc

    @staticmethod
    def wait(proc: subprocess.Popen, timeout_s: int = 30) -> "SippResult":
        out, _ = proc.communicate(timeout=timeout_s)
        return SippResult(proc.returncode, out)


@dataclass
class SippResult:
    rc: int
    output: str

    @property
    def ok(self) -> bool:
        return self.rc == 0
