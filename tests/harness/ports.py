"""Free loopback ports for test processes."""
from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict


def _slice() -> tuple[int, int]:
    """This process's part of 10000-32000 (below the kernel's ephemeral range, 32768-60999 here). Under pytest-xdist's
    workers (`make test`) each worker has its own part: two processes picking from one range could hand out one port
    twice before either daemon binds it."""
    low, high = 10000, 32000
    try:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    except ValueError:
        return low, high
    if workers <= 1 or not 0 <= worker < workers:
        return low, high
    size = (high - low) // workers // 2 * 2
    return low + worker * size, low + (worker + 1) * size


_lock = threading.Lock()  # benchmarks load two nodes from two threads at once
_LOW, _HIGH = _slice()
_handed_out: OrderedDict[int, None] = OrderedDict()  # oldest first
_next_block = [_LOW]  # where free_port_block looks first: blocks are handed out one after the other


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `ip` (not handed out before in this run — unless this process's part of the
    range ran out, see _free_port_block), below the kernel's ephemeral
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
    for _ in range(2):
        start = _search(n, ip)
        if start is not None:
            _handed_out.update(dict.fromkeys(range(start, start + n)))
            _next_block[0] = start + n + n % 2
            return start
        # every port of this process's part was handed out once: forget the oldest half (their tests are over — a
        # test's ports are bound or free again long after) and look again; the bind check below still applies
        for _ in range(len(_handed_out) // 2):
            _handed_out.popitem(last=False)
    raise RuntimeError("no free port block")


def _search(n: int, ip: str) -> int | None:
    after = _next_block[0]
    for start in [*range(after, _HIGH - n, 2), *range(_LOW, after, 2)]:
        if start in _handed_out or any(p in _handed_out for p in range(start, start + n)):
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
            return start
    return None
