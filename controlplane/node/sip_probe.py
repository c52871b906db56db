"""Is this SIP node taking calls? One SIP OPTIONS to the node's own address over UDP; exit 0 on a 200 within the
timeout, 1 otherwise (no answer, a draining node's 503, anything else), with the reason on stderr.

keepalived runs it every second on each SIP node of a pair (role keepalived, `vrrp_script`): a node whose Kamailio
died, hangs or drains gives the data center's virtual address up to the other node. Standard library only, run as a
script (`python3 sip_probe.py ADDRESS PORT [TIMEOUT_S]`), so that it starts in milliseconds.
"""

from __future__ import annotations

import secrets
import socket
import sys


def options(address: str, port: int, local: tuple[str, int]) -> bytes:
    host = f"[{address}]" if ":" in address else address
    me = f"[{local[0]}]" if ":" in local[0] else local[0]
    tag, call_id, branch = secrets.token_hex(6), secrets.token_hex(12), secrets.token_hex(10)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {me}:{local[1]};branch=z9hG4bK{branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@{me}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}@probe\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"User-Agent: callmanager-probe\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def probe(address: str, port: int, timeout_s: float = 1.0) -> tuple[bool, str]:
    """(taking calls, the final answer's status line or what went wrong)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect((address, port))
            sock.send(options(address, port, sock.getsockname()[:2]))
            while True:
                status = sock.recv(65535).split(b"\r\n", 1)[0].decode("utf-8", "replace")
                parts = status.split(" ", 2)
                if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit() and int(parts[1]) >= 200:
                    return parts[1] == "200", status
        except socket.timeout:
            return False, f"no answer within {timeout_s:g} s"
        except OSError as exc:
            return False, str(exc)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: sip_probe.py ADDRESS PORT [TIMEOUT_S]", file=sys.stderr)
        return 2
    try:
        ok, said = probe(argv[0], int(argv[1]), float(argv[2]) if len(argv) == 3 else 1.0)
    except ValueError as exc:
        print(f"sip_probe: {exc}", file=sys.stderr)
        return 2
    if not ok:
        print(f"sip_probe {argv[0]}:{argv[1]}: {said}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
