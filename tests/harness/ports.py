"""Free loopback ports for test processes."""
from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `ip` (not handed out before in this run)."""
    for _ in range(200):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((ip, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((ip, port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        if port not in _handed_out and port < 60000:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def free_port_block(n: int, ip: str = "127.0.0.1") -> int:
    """Start of n consecutive ports nobody is bound to (for media ranges), below the kernel's ephemeral range;
    the first such block from a random point on, so that a long run's many nodes all find one."""
    import random

    low, high = 20000, 32000
    first = random.randrange(low, high - n, 2)
    for start in [*range(first, high - n, 2), *range(low, first, 2)]:
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
            return start
    raise RuntimeError("no free port block")
