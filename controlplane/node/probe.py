"""Is this node's service answering? keepalived runs it every second on each node of a pair (role keepalived,
`vrrp_script`): a node whose service died, hangs or drains gives the pair's virtual address up to the other node.

- `sip ADDRESS PORT`: one SIP OPTIONS to Kamailio over UDP; answering means a 200 (not a draining node's 503).
- `rtpengine ADDRESS PORT`: `list numsessions` to RTPengine's CLI (TCP); answering means its session counts.

Exit 0 when it answers within the timeout (third argument, seconds; default 1), 1 otherwise with the reason on stderr.
Standard library only, run as a script (`python3 probe.py sip ADDRESS PORT [TIMEOUT_S]`): it starts in milliseconds.
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
                if (
                    len(parts) >= 2
                    and parts[0] == "SIP/2.0"
                    and parts[1].isascii()
                    and parts[1].isdigit()
                    and int(parts[1]) >= 200
                ):
                    return parts[1] == "200", status
        except socket.timeout:
            return False, f"no answer within {timeout_s:g} s"
        except OSError as exc:
            return False, str(exc)


def rtpengine_cli(address: str, port: int, timeout_s: float = 1.0) -> tuple[bool, str]:
    """(RTPengine's CLI answered `list numsessions`, what it said or what went wrong). The CLI listens on the node's own
    address (its control port is on the pair's address, which a packet from a node not holding it would leave for)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"list numsessions\n")
            said = b""
            while len(said) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                said += chunk
    except socket.timeout:
        return False, f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return False, str(exc)
    text = said.decode("utf-8", "replace")
    return text.startswith("Current sessions"), text[:200] or "an empty answer"


CHECKS = {"sip": probe, "rtpengine": rtpengine_cli}


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] not in CHECKS:
        print("usage: probe.py sip|rtpengine ADDRESS PORT [TIMEOUT_S]", file=sys.stderr)
        return 2
    kind, address = argv[0], argv[1]
    try:
        ok, said = CHECKS[kind](address, int(argv[2]), float(argv[3]) if len(argv) == 4 else 1.0)
    except ValueError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    if not ok:
        print(f"probe {kind} {address}:{argv[2]}: {said}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
