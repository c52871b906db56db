"""Durable hand-off of CDRs to the control plane: append-only segment files, one per worker.

Each record is one JSON line written with a single `write()` to the worker's open segment in
`open/` (the kernel has it once the call returns, so a Kamailio or control-plane crash loses
nothing). A segment is closed — renamed into `new/` — once it holds `max_records` records or is
`max_age` seconds old, checked at the next write: a worker never appends to a segment older
than `max_age`. The control plane ingests complete lines from both folders idempotently (by
record id), deletes closed segments once stored, and adopts open segments nobody wrote to for
far longer than `max_age` (their worker is gone or idle and would rotate before writing again).
"""

from __future__ import annotations

import os
import time

from kemi.policy.callstate import compact_json

SEGMENT_MAX_AGE_S = 2.0
SEGMENT_MAX_RECORDS = 1000


class CdrSpool:
    def __init__(self, directory: str, max_age: float = SEGMENT_MAX_AGE_S, max_records: int = SEGMENT_MAX_RECORDS):
        self.directory = directory
        self.open_dir = os.path.join(directory, "open")
        self.new_dir = os.path.join(directory, "new")
        os.makedirs(self.open_dir, exist_ok=True)
        os.makedirs(self.new_dir, exist_ok=True)
        self.max_age = max_age
        self.max_records = max_records
        self._fd: int | None = None
        self._path = ""
        self._opened = 0.0
        self._count = 0
        self._seq = 0

    def put(self, record: dict) -> str:
        return self.put_line(compact_json(record))

    def put_line(self, line: str) -> str:
        """One record written as it is given: a JSON object on one line (no newline in it)."""
        now = time.time()
        if self._fd is not None and (now - self._opened > self.max_age or self._count >= self.max_records):
            self.close_segment()
        if self._fd is None:
            self._open(now)
        assert self._fd is not None
        os.write(self._fd, (line + "\n").encode())
        self._count += 1
        return self._path

    def _open(self, now: float) -> None:
        self._seq += 1
        name = f"{int(now * 1000)}-{os.getpid()}-{self._seq}.jsonl"
        self._path = os.path.join(self.open_dir, name)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # calls of people: owner only
        self._opened = now
        self._count = 0

    def close_segment(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        try:
            os.rename(self._path, os.path.join(self.new_dir, os.path.basename(self._path)))
        except FileNotFoundError:
            pass  # the control plane adopted it already
