"""Hand-made SIP requests over UDP, for what no well-behaved phone sends."""
from __future__ import annotations

import hashlib
import re
import socket
import uuid


def request(method: str, ruri: str, *, max_forwards: str = "70", cseq: str | None = None, extra: str = "") -> str:
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{{port}};branch={branch};rport\r\n"
        f"From: <sip:tester@test.example>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: {uuid.uuid4()}\r\n"
        f"CSeq: {cseq or '1 ' + method}\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )


def send(server: tuple[str, int], text: str, timeout: float = 2.0) -> str | None:
    """Send one datagram, return the first reply's text (None when the node stays silent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(text.replace("{port}", str(s.getsockname()[1])).encode(), server)
        try:
            return s.recv(65535).decode(errors="replace")
        except socket.timeout:
            return None


class Reply:
    def __init__(self, text: str):
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        self.code = int(head[0].split()[1])
        self.reason = head[0].split(" ", 2)[2] if len(head[0].split(" ", 2)) > 2 else ""
        self.headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def challenge(self) -> dict[str, str]:
        raw = self.headers.get("www-authenticate") or self.headers.get("proxy-authenticate") or ""
        return dict(re.findall(r'(\w+)="?([^",]*)"?', raw.split(" ", 1)[1] if " " in raw else ""))


class DigestClient:
    """A minimal SIP client over UDP from a chosen loopback address: REGISTER or INVITE answered
    to its challenge with digest credentials (MD5, qop=auth). For edge-protection tests."""

    def __init__(self, server: tuple[str, int], src_ip: str = "127.0.0.1", timeout: float = 1.0, user_agent: str = "callmanager-test"):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((src_ip, 0))
        self.sock.settimeout(timeout)
        self.ip, self.port = self.sock.getsockname()
        self.user_agent = user_agent
        self.extra_headers = ""  # added to every request ("Name: value\r\n" lines)
        self._branch = ""

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> Reply | None:
        self.sock.sendto(text.encode(), self.server)
        while True:
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except socket.timeout:
                return None
            reply = Reply(data)
            if reply.code >= 200:
                return reply

    def _request(self, method: str, ruri: str, user: str, domain: str, call_id: str, cseq: int, auth: str = "", to_user: str | None = None) -> str:
        branch = self._branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        body = ""
        extra = ""
        if method == "INVITE":
            body = f"v=0\r\no=- 1 1 IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            extra = "Content-Type: application/sdp\r\n"
        return (f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport\r\n"
                f"From: <sip:{user}@{domain}>;tag={call_id[:8]}\r\n"
                f"To: <sip:{to_user or user}@{domain}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:{user}@{self.ip}:{self.port}>\r\nMax-Forwards: 70\r\nExpires: 60\r\n"
                f"User-Agent: {self.user_agent}\r\n{self.extra_headers}{auth}{extra}Content-Length: {len(body)}\r\n\r\n{body}")

    def attempt(self, user: str, domain: str, password: str, method: str = "REGISTER", dial: str | None = None,
                ruri: str | None = None) -> tuple[Reply | None, Reply | None]:
        """(the reply to the request without credentials, the reply to the one with them); None: no answer.
        `ruri`: a Request-URI of one's own (e.g. urn:service:sos) instead of sip:<dial>@<domain>."""
        call_id = str(uuid.uuid4())
        ruri = ruri or (f"sip:{domain}" if method == "REGISTER" else f"sip:{dial}@{domain}")
        first = self._send(self._request(method, ruri, user, domain, call_id, 1, to_user=dial if method != "REGISTER" else None))
        if first is None or first.code not in (401, 407):
            return first, None
        header = "Authorization" if first.code == 401 else "Proxy-Authorization"
        auth = digest(header, first.challenge(), user, password, method, ruri, domain)
        second = self._send(self._request(method, ruri, user, domain, call_id, 2, auth, to_user=dial if method != "REGISTER" else None))
        if second is not None and method == "INVITE" and second.code >= 200:
            self._ack(ruri, user, domain, call_id, second)
        return first, second

    def _ack(self, ruri: str, user: str, domain: str, call_id: str, reply: Reply) -> None:
        if reply.code < 300:
            return  # an answered call is the test's business (none of the edge tests answers one)
        to = reply.headers.get("to", f"<{ruri}>")
        via = f"SIP/2.0/UDP {self.ip}:{self.port};branch={self._branch};rport"  # the INVITE's: it acknowledges that transaction"
        self.sock.sendto((f"ACK {ruri} SIP/2.0\r\nVia: {via}\r\nFrom: <sip:{user}@{domain}>;tag={call_id[:8]}\r\nTo: {to}\r\n"
                          f"Call-ID: {call_id}\r\nCSeq: 2 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), self.server)

    def send_raw(self, text: str) -> Reply | None:
        return self._send(text.replace("{ip}", self.ip).replace("{port}", str(self.port)))


class EagerPhone:
    """A phone (UAS) that answers the first INVITE with its 200 OK sent twice at once — what a phone
    does when it retransmits its answer before the ACK arrives — then answers the BYE. Runs in a thread
    on the port the phone registered from; `received` lists the methods it got, in order."""

    def __init__(self, port: int, media_port: int, timeout: float = 20.0, answers: int = 2, forget: bool = False):
        """`answers`: how many times the 200 is sent; `forget`: the phone loses the call at once (a reboot, a lost BYE):
        every later request in the dialog is answered 481, as RFC 3261 has it."""
        import threading

        self.answers, self.forget = answers, forget
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.5)
        self.port, self.media_port, self.timeout = port, media_port, timeout
        self.received: list[str] = []
        self.invite = ""  # the first INVITE as it arrived
        self.answers_sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _reply_to(text: str, code: str, to_tag: str, extra: str = "", body: str = "") -> str:
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        keep = [h for h in head if h.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f", "call-id", "i", "cseq", "record-route")]
        to = next(h for h in head if h.split(":", 1)[0].strip().lower() in ("to", "t"))
        if ";tag=" not in to:
            to += f";tag={to_tag}"
        return f"SIP/2.0 {code}\r\n" + "\r\n".join(keep + [to]) + f"\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"

    def _run(self) -> None:
        import time

        deadline, tag, answered = time.monotonic() + self.timeout, uuid.uuid4().hex[:8], False
        while time.monotonic() < deadline:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            method = text.split(" ", 1)[0]
            self.received.append(method)
            if method == "INVITE" and not answered:
                answered, self.invite = True, text
                sdp = (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       f"m=audio {self.media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
                ok = self._reply_to(text, "200 OK", tag, f"Contact: <sip:127.0.0.1:{self.port}>\r\nContent-Type: application/sdp\r\n", sdp)
                for _ in range(self.answers):
                    self.sock.sendto(ok.encode(), peer)
                    self.answers_sent += 1
            elif self.forget and method not in ("ACK", "INVITE"):
                self.sock.sendto(self._reply_to(text, "481 Call/Transaction Does Not Exist", tag).encode(), peer)
                if method == "BYE":
                    return
            elif method == "BYE":
                self.sock.sendto(self._reply_to(text, "200 OK", tag).encode(), peer)
                return

    def wait(self, timeout: float = 25.0) -> bool:
        """True when the call was answered and ended with a BYE."""
        self.thread.join(timeout)
        self.sock.close()
        return "BYE" in self.received


def digest(header: str, challenge: dict[str, str], user: str, password: str, method: str, ruri: str, domain: str) -> str:
    """The credentials header line answering a challenge (MD5, qop=auth when offered)."""
    realm = challenge.get("realm", domain)
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{ruri}".encode()).hexdigest()
    cnonce, nc = uuid.uuid4().hex[:8], "00000001"
    if "auth" in challenge.get("qop", ""):
        response = hashlib.md5(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        qop = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = hashlib.md5(f"{ha1}:{challenge['nonce']}:{ha2}".encode()).hexdigest()
        qop = ""
    return (f'{header}: Digest username="{user}", realm="{realm}", nonce="{challenge["nonce"]}", uri="{ruri}", '
            f'response="{response}", algorithm=MD5{qop}\r\n')


class TcpPhone:
    """A phone on one TCP connection, as a phone behind a NAT keeps one: it registers through a node with a Contact
    nobody can reach (a loopback port nobody listens on), so a request reaches it only over this connection — only
    through the node holding it. In a thread it answers an INVITE with 200 (SDP), in-dialog OPTIONS with 200, and a
    BYE with 200; `received` lists the methods it got, in order."""

    def __init__(self, server: tuple[str, int], user: str, domain: str, password: str, extra: str = ""):
        import threading

        from tests.harness.ports import free_port

        self.user, self.domain, self.password, self.extra = user, domain, password, extra
        self.sock = socket.create_connection(server, timeout=5)
        self.ip, self.port = self.sock.getsockname()
        self.unreachable = free_port()  # nobody listens there
        self.received: list[str] = []
        self.messages: list[str] = []
        self._buf = b""
        self._lock = threading.Lock()
        self._replies: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop = True
        self.thread.join(3)
        self.sock.close()

    def _read(self) -> str | None:
        while b"\r\n\r\n" not in self._buf:
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                return None
            if not data:
                return None
            self._buf += data
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head).group(1)) if re.search(
            rb"(?im)^(?:content-length|l)\s*:", head) else 0
        while len(rest) < length:
            rest += self.sock.recv(65535)
        self._buf = rest[length:]
        return (head + b"\r\n\r\n" + rest[:length]).decode(errors="replace")

    def _run(self) -> None:
        self.sock.settimeout(0.3)
        tag = uuid.uuid4().hex[:8]
        while not self._stop:
            text = self._read()
            if text is None:
                continue
            if text.startswith("SIP/2.0"):
                with self._lock:
                    self._replies.append(text)
                continue
            method = text.split(" ", 1)[0]
            self.received.append(method)
            self.messages.append(text)
            if method == "INVITE":
                sdp = ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       "m=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
                contact = f"Contact: <sip:{self.user}@127.0.0.1:{self.unreachable};transport=tcp>\r\n"
                self.sock.sendall(EagerPhone._reply_to(text, "200 OK", tag, contact + "Content-Type: application/sdp\r\n",
                                                        sdp).encode())
            elif method in ("BYE", "OPTIONS"):
                self.sock.sendall(EagerPhone._reply_to(text, "200 OK", tag).encode())

    def _final(self, timeout: float = 5.0) -> Reply | None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                while self._replies:
                    reply = Reply(self._replies.pop(0))
                    if reply.code >= 200:
                        return reply
            time.sleep(0.02)
        return None

    def _register(self, call_id: str, cseq: int, auth: str, expires: int) -> str:
        branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        return (f"REGISTER sip:{self.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{self.unreachable};branch={branch}\r\n"
                f"From: <sip:{self.user}@{self.domain}>;tag={call_id[:8]}\r\nTo: <sip:{self.user}@{self.domain}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{self.unreachable};transport=tcp>\r\nMax-Forwards: 70\r\n"
                f"Expires: {expires}\r\nUser-Agent: callmanager-test-tcp\r\n{self.extra}{auth}Content-Length: 0\r\n\r\n")

    def register(self, expires: int = 600) -> int:
        """The final reply's code to a REGISTER answered to its challenge (0: none)."""
        call_id = str(uuid.uuid4())
        self.sock.sendall(self._register(call_id, 1, "", expires).encode())
        first = self._final()
        if first is None or first.code != 401:
            return first.code if first is not None else 0
        auth = digest("Authorization", first.challenge(), self.user, self.password, "REGISTER", f"sip:{self.domain}",
                      self.domain)
        self.sock.sendall(self._register(call_id, 2, auth, expires).encode())
        second = self._final()
        return second.code if second is not None else 0
