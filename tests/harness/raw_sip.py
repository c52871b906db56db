"""Hand-made SIP requests over UDP, for what no well-behaved phone sends."""
from __future__ import annotations

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
