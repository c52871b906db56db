"""Each worker's copy of the routing snapshot, brought up to date when the file is replaced.

The control plane replaces the file atomically (write + rename) and, before it, the file of its recent changes
(`<snapshot>.changes.json`: kemi.policy.snapshot_delta). Every worker notices the new inode/mtime within
`check_interval`; when the changes lead from the document it holds to the published one it applies them (a one-user
change costs a worker about a millisecond), otherwise it parses the whole document. A malformed or missing file keeps
the last good snapshot in force, so Kamailio routes on while the control plane is down.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time

from kemi.policy import snapshot_delta
from kemi.policy.snapshot_delta import changes_path, digest
from kemi.policy.snapshot import EMPTY, Snapshot, SnapshotError, loads_snapshot

_HEAD = re.compile(rb'^\{"version":(\d+),')  # the publisher writes the version first: a worker reads 40 bytes for it


def head_version(head: bytes) -> int | None:
    m = _HEAD.match(head)
    return int(m.group(1)) if m else None


class SnapshotHolder:
    def __init__(self, path: str, check_interval: float = 0.25, log=None):
        self.path = path
        self.changes = changes_path(path)
        self.check_interval = check_interval
        self._log = log or (lambda msg: None)
        self._snapshot: Snapshot = EMPTY
        self._digest = ""
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self.last_load = ("", 0.0)  # how the last new version came ("whole" or "changes") and its cost in seconds

    def get(self) -> Snapshot:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            self._maybe_reload()
        return self._snapshot

    def _maybe_reload(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        started = time.perf_counter()
        gc.disable()  # tens of thousands of new objects: no collection passes while they are built (~2x faster)
        try:
            if self._snapshot is not EMPTY and self._by_changes():
                self._stamp = stamp
                self._loaded("changes", started)
                return
            with open(self.path, "rb") as fh:
                data = fh.read()
            snap = loads_snapshot(data)
        except (OSError, SnapshotError) as exc:
            self._log(f"snapshot {self.path} not loaded, keeping version {self._snapshot.version}: {exc}")
            self._stamp = stamp
            return
        finally:
            gc.enable()
        self._stamp = stamp
        self._snapshot, self._digest = snap, digest(data)
        self._loaded("whole", started)

    def _by_changes(self) -> bool:
        """Bring the snapshot up to date with the published changes; False: they do not lead from this snapshot to
        the published version (read the whole document)."""
        try:
            with open(self.path, "rb") as fh:
                published = head_version(fh.read(40))
            if published is None:
                return False
            with open(self.changes, "rb") as fh:
                doc = json.loads(fh.read())
            chain, current = doc["changes"], doc["current"]
            targets = [current["digest"]] if current["version"] == published else []
            targets += [c["digest"] for c in chain if c["version"] == published]
            by_base = {c["base"]: c for c in chain}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._log(f"snapshot changes {self.changes} not usable, reading the whole snapshot: {exc!r}")
            return False
        if not targets:
            return False
        snap, at = self._snapshot, self._digest
        while at != targets[-1] and at in by_base:  # the published document is the newest of that version
            change = by_base.pop(at)
            try:
                snap = snapshot_delta.apply(snap, change)
            except SnapshotError as exc:
                self._log(f"snapshot change to version {change.get('version')} not applied, reading the whole: {exc}")
                return False
            at = change["digest"]
        if at != targets[-1]:
            return False
        self._snapshot, self._digest = snap, at
        return True

    def _loaded(self, how: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.last_load = (how, seconds)
        if how == "whole":
            gc.freeze()  # the snapshot lives long: keep its objects out of every later GC pass
        self._log(f"snapshot version {self._snapshot.version} loaded ({how}, {seconds * 1000:.1f} ms)")
