"""Several media server processes on consecutive ports, one parent watching them.

The pjsua2 wheel the media server runs on (PyPI pjsua2-python 2.15.1.post1) takes at most 4 calls at once per process
— its compile-time PJSUA_MAX_CALLS; a higher `maxCalls` is cut to it without a word (measured: the fifth concurrent
INVITE got 486 "too many calls"). So a node runs `workers` processes on ports port .. port+workers-1; Kamailio spreads
the calls over them by Call-ID (kemi.policy.announce.worker_port). This parent loads no pjsua2: it starts the
workers, starts again one that exits (after a pause that grows while it keeps failing), and stops them all on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger("callmanager.mediaserver")


def run(argv_for, workers: int) -> int:
    """`argv_for(i)`: the command line of worker i. Runs until SIGTERM/SIGINT."""
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    procs: list[subprocess.Popen | None] = [None] * workers
    pause = [0.5] * workers
    due = [0.0] * workers
    try:
        while not stop[0]:
            now = time.monotonic()
            for i in range(workers):
                p = procs[i]
                if p is not None and p.poll() is not None:
                    log.error(
                        "media server worker %d exited with %s; starting it again in %.1f s", i, p.returncode, pause[i]
                    )
                    procs[i], due[i] = None, now + pause[i]
                    pause[i] = min(pause[i] * 2, 30.0)
                if procs[i] is None and now >= due[i]:
                    procs[i] = subprocess.Popen(argv_for(i))
                elif p is not None and now - due[i] > 60:
                    pause[i] = 0.5  # up for a minute: its next failure is a fresh one
            time.sleep(0.2)
    finally:
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
