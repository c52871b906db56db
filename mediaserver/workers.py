"""Several media server processes on consecutive ports, one parent watching them.

The pjsua2 wheel the media server runs on (PyPI pjsua2-python 2.15.1.post1) takes at most 4 calls at once per process
— its compile-time PJSUA_MAX_CALLS; a higher `maxCalls` is cut to it without a word (measured: the fifth concurrent
INVITE got 486 "too many calls"). So a node runs `workers` processes on ports port .. port+workers-1; Kamailio spreads
the calls over them by Call-ID (kemi.policy.announce.worker_port) and tries the next one when a process does not
answer. This parent loads no pjsua2: it starts the workers, starts again one that exits (after a pause that grows
while it keeps failing), and stops them all on SIGTERM.

It also asks each worker every PROBE_S whether it still answers SIP: an OPTIONS over UDP, which pjsua answers by
itself in the worker's one loop. A worker that answered none for HANG_S (a hung loop, a stopped process) is ended and
started again — so a process that stops working is out of the way within seconds, not just passed over call by call.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
import uuid

log = logging.getLogger("callmanager.mediaserver")


PROBE_S = 1.0  # each worker is asked this often
HANG_S = 5.0  # ... and ended when it answered nothing for this long (a call's two tries take 2 x 2 s: they end first)
START_GRACE_S = 15.0  # a worker just started has this long to answer its first probe


def hung(last_answer: float, started: float, now: float) -> bool:
    """Is a running worker hung? Silent for HANG_S since its last answer (or since its start, after START_GRACE_S)."""
    if last_answer >= started:
        return now - last_answer > HANG_S
    return now - started > START_GRACE_S


class Prober:
    """OPTIONS to each worker's port from one UDP socket of the parent; answers matched by their Call-ID."""

    def __init__(self, address: str, ports: list[int]):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)
        self.address, self.ports = address, ports
        self.tag = uuid.uuid4().hex[:12]
        self.answered = [0.0] * len(ports)

    def probe(self) -> None:
        host = f"[{self.address}]" if ":" in self.address else self.address
        local = self.sock.getsockname()[1]
        for i, port in enumerate(self.ports):
            branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
            text = (
                f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{local};branch={branch};rport\r\n"
                f"From: <sip:probe@{host}>;tag={self.tag}\r\nTo: <sip:probe@{host}:{port}>\r\n"
                f"Call-ID: probe-{i}-{self.tag}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 1\r\nContent-Length: 0\r\n\r\n"
            )
            try:
                self.sock.sendto(text.encode(), (self.address, port))
            except OSError as exc:
                log.warning("probing media server worker %d: %s", i, exc)

    def collect(self, now: float) -> None:
        """Every answer waiting on the socket: the worker it names answered now."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. a port unreachable from a worker that is down: nothing to note
                continue
            index = answered_worker(data, self.tag)
            if index is not None and 0 <= index < len(self.answered):
                self.answered[index] = now


def answered_worker(data: bytes, tag: str) -> int | None:
    """The worker a probe's answer comes from (its Call-ID `probe-<i>-<tag>`); None for anything else."""
    text = data[:4096].decode("utf-8", "replace")
    if not text.startswith("SIP/2.0 "):
        return None
    for line in text.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("call-id", "i"):
            parts = value.strip().split("-")
            if len(parts) == 3 and parts[0] == "probe" and parts[2] == tag and parts[1].isdigit():
                return int(parts[1])
            return None
    return None


def run(argv_for, workers: int, address: str | None = None, base_port: int | None = None) -> int:
    """`argv_for(i)`: the command line of worker i. Runs until SIGTERM/SIGINT. With `address` and `base_port`, the
    workers are probed (PROBE_S) and a hung one is ended and started again."""
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    procs: list[subprocess.Popen | None] = [None] * workers
    pause = [0.5] * workers
    due = [0.0] * workers
    started = [0.0] * workers
    prober = Prober(address, [base_port + i for i in range(workers)]) if address and base_port else None
    next_probe = 0.0
    try:
        while not stop[0]:
            now = time.monotonic()
            if prober is not None:
                prober.collect(now)
                for i, p in enumerate(procs):
                    if p is not None and p.poll() is None and hung(prober.answered[i], started[i], now):
                        log.error("media server worker %d answered no probe for %.0f s: hung; ending it", i, HANG_S)
                        p.kill()
                        p.wait(5)
                if now >= next_probe:
                    next_probe = now + PROBE_S
                    prober.probe()
            for i in range(workers):
                p = procs[i]
                if p is not None and p.poll() is not None:
                    log.error(
                        "media server worker %d exited with %s; starting it again in %.1f s", i, p.returncode, pause[i]
                    )
                    procs[i], due[i] = None, now + pause[i]
                    pause[i] = min(pause[i] * 2, 30.0)
                if procs[i] is None and now >= due[i]:
                    procs[i], started[i] = subprocess.Popen(argv_for(i)), now
                elif p is not None and now - due[i] > 60:
                    pause[i] = 0.5  # up for a minute: its next failure is a fresh one
            time.sleep(0.2)
    finally:
        if prober is not None:
            prober.sock.close()
        for p in procs:
            if p is not None and p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            if p is not None:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


def worker_argv(base: list[str], port: int) -> list[str]:
    return [sys.executable, "-m", "mediaserver", *base, "--port", str(port), "--workers", "1"]
