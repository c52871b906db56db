"""Mutated SIP requests for the fuzz tier (tests/scenario/test_fuzz.py): valid seed requests as phones send them,
and mutations (truncation, duplicated and reordered headers, oversize values, bytes that are not UTF-8, NUL bytes,
folded lines, unknown methods and schemes, missing CRLFs, bad numbers, missing headers). Pure: no sockets."""
from __future__ import annotations

import random
import re

DOMAIN = "fuzz.example"

SEEDS = {
    "REGISTER": ("REGISTER sip:{domain} SIP/2.0", ["Contact: <sip:u1@{src}:{port}>", "Expires: 600",
                                                    'Authorization: Digest username="u1", realm="{domain}", nonce="abc", uri="sip:{domain}", response="00"']),
    "INVITE": ("INVITE sip:201@{domain} SIP/2.0", ["Contact: <sip:u1@{src}:{port}>", "Content-Type: application/sdp", "Allow: INVITE, ACK, BYE",
                                                   "User-Agent: Yealink SIP-T46U 108.86.0.20"]),
    "OPTIONS": ("OPTIONS sip:{domain} SIP/2.0", ["Accept: application/sdp"]),
    "SUBSCRIBE": ("SUBSCRIBE sip:201@{domain} SIP/2.0", ["Event: presence", "Expires: 3600", "Contact: <sip:u1@{src}:{port}>"]),
    "MESSAGE": ("MESSAGE sip:201@{domain} SIP/2.0", ["Content-Type: text/plain"]),
}
SDP = "v=0\r\no=- 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
MUTATIONS = ("truncate", "duplicate", "reorder", "oversize", "bad_bytes", "nul", "fold", "method", "scheme", "crlf", "number",
             "remove", "space_in_value")
_REQUEST_LINE = re.compile(rb"^[A-Za-z0-9!%*_+`'~.-]+ [^ \r\n]+ SIP/2\.0$")


def seed_request(kind: str, src: str, port: int, call_id: str, proto: str = "UDP") -> tuple[bytes, list[bytes], bytes]:
    """(request line, header lines, body) of a valid request."""
    line, extra = SEEDS[kind]
    method = line.split(" ", 1)[0]
    fmt = {"domain": DOMAIN, "src": src, "port": port}
    body = SDP.format(**fmt).encode() if method in ("INVITE", "MESSAGE") else b""
    if method == "MESSAGE":
        body = b"hello"
    headers = [f"Via: SIP/2.0/{proto} {src}:{port};branch=z9hG4bK{call_id[:16]};rport", f"From: <sip:u1@{DOMAIN}>;tag={call_id[-8:]}",
               f"To: <sip:201@{DOMAIN}>", f"Call-ID: {call_id}", f"CSeq: 1 {method}", "Max-Forwards: 70",
               *[e.format(**fmt) for e in extra]]
    return line.format(**fmt).encode(), [h.encode() for h in headers], body


def mutate(line: bytes, headers: list[bytes], body: bytes, kinds: list[str], rnd: random.Random) -> bytes:
    """The request after the mutations, in order; Content-Length is written before any 'truncate' or 'crlf' (so those
    break it), after the others."""
    headers = list(headers)
    truncate_at = crlf = None
    for kind in kinds:
        i = rnd.randrange(len(headers)) if headers else 0
        if kind == "truncate":
            truncate_at = rnd.random()
        elif kind == "duplicate" and headers:
            headers.insert(rnd.randrange(len(headers) + 1), headers[i])
        elif kind == "reorder":
            rnd.shuffle(headers)
        elif kind == "oversize" and headers:
            headers[i] += b" " + bytes(rnd.choice(b"abcxyz0123") for _ in range(rnd.choice((900, 4000, 8300, 16000))))
        elif kind == "bad_bytes" and headers:
            blob = bytes(rnd.randrange(0x80, 0x100) for _ in range(rnd.randrange(1, 12)))
            headers[i] = headers[i][: len(headers[i]) // 2] + blob + headers[i][len(headers[i]) // 2:]
        elif kind == "nul" and headers:
            headers[i] = headers[i][:5] + b"\x00" + headers[i][5:]
        elif kind == "fold" and headers:
            cut = headers[i].find(b" ", headers[i].find(b":") + 2)
            if cut > 0:
                headers[i] = headers[i][:cut] + b"\r\n   " + headers[i][cut + 1:]
        elif kind == "method":
            method = rnd.choice([b"FROB", b"INVITEX", b"invite", b"BYE", b"ACK", b"CANCEL", b"PRACK", b"INFO", b"REFER", b"\xffX", b"A" * 300])
            line = method + b" " + line.split(b" ", 1)[1]
        elif kind == "scheme":
            parts = line.split(b" ")
            parts[1] = rnd.choice([b"http://x.example/", b"urn:service:sos", b"tel:+493012345", b"sips:201@" + DOMAIN.encode(),
                                   b"sip:", b"sip:@@@", b"<sip:201@x>", b"mailto:a@b", b"sip:201@[::1", b"sip:201@x:99999"])
            line = b" ".join(parts)
        elif kind == "crlf":
            crlf = rnd.choice(("lf", "no_blank", "cr"))
        elif kind == "number":
            name = rnd.choice([b"CSeq", b"Max-Forwards", b"Expires", b"Content-Length"])
            value = rnd.choice([b"-1", b"99999999999999999999", b"abc", b"", b"1.5", b"\xb2", b"0x10", b" 7 "])
            if name == b"CSeq":
                value += b" " + line.split(b" ", 1)[0]
            headers = [h for h in headers if not h.lower().startswith(name.lower() + b":")] + [name + b": " + value]
        elif kind == "remove" and headers:
            del headers[i]
        elif kind == "space_in_value" and headers:
            name, _, value = headers[i].partition(b":")
            headers[i] = name + b": " + value.strip().replace(b";", b" ; ", 1) + b" victim"
    if not any(h.lower().startswith(b"content-length:") for h in headers):
        headers.append(b"Content-Length: %d" % len(body))
    raw = line + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
    if crlf == "lf":
        raw = raw.replace(b"\r\n", b"\n")
    elif crlf == "no_blank":
        raw = raw.replace(b"\r\n\r\n", b"\r\n", 1)
    elif crlf == "cr":
        raw = raw.replace(b"\r\n", b"\r")
    if truncate_at is not None:
        raw = raw[: max(1, int(len(raw) * truncate_at))]
    return raw


def request_line_ok(raw: bytes) -> bool:
    """Kamailio's core parser drops, without a word and without a log line at normal levels, a message whose first
    line is not `METHOD URI SIP/2.0` (docs/security.md)."""
    return bool(_REQUEST_LINE.match(raw.split(b"\r\n", 1)[0]))


def method_of(raw: bytes) -> bytes:
    return raw.split(b" ", 1)[0]


def incomplete_on_a_stream(raw: bytes) -> bool:
    """Over TCP a message ends where its Content-Length says: a shorter body (or no blank line) is still arriving,
    and the node rightly waits."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return True
    m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", head)
    return bool(m) and int(m.group(1)) > len(body)
