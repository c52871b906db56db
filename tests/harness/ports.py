"""Free loopback ports for test processes."""
from __future__ import annotations

import socket
import threading

_lock = threading.Lock()  # benchmarks load two nodes from two threads at once
_handed_out: set[int] = set()
_next_block = [10000]  # where free_port_block looks first: blocks are handed out one after the other


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `ip` (not handed out before in this run), below the kernel's ephemeral
    range (32768-60999 here): a port the kernel picked for `bind(0)` could be picked again for someone's outgoing
    connection between this answer and the daemon's own bind."""
    with _lock:
        return _free_port(ip)


def _free_port(ip: str) -> int:
    for _ in range(200):
        port = _free_port_block(1, ip)  # free for UDP; now TCP too
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((ip, port))
        except OSError:
            continue
        finally:
            t.close()
        return port
    raise RuntimeError("no free port")


def free_port_block(n: int, ip: str = "127.0.0.1") -> int:
    """Start of n consecutive ports nobody is bound to (for media ranges), below the kernel's ephemeral range.
    Blocks are handed out once per run, packed from the bottom (first fit): small blocks scattered at random
    had fragmented the range until a node's 400-port block found no room late in a long run."""
    with _lock:
        return _free_port_block(n, ip)


def _free_port_block(n: int, ip: str) -> int:
    low, high = 10000, 32000
    after = _next_block[0]
    for start in [*range(after, high - n, 2), *range(low, after, 2)]:
        if _handed_out & {start, start + n - 1} or any(p in _handed_out for p in range(start, start + n)):
            continue
        ok = True
        for p in range(start, start + n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((ip, p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            _handed_out.update(range(start, start + n))
            _next_block[0] = start + n + n % 2
            return start
    raise RuntimeError("no free port block")
