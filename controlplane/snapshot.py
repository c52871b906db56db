"""Compile the configuration into the routing snapshot and publish it atomically.

The document is what `kemi.policy.snapshot.parse_snapshot` reads. Publishing = write a temp
file, fsync, rename over `current.json`: every Kamailio worker sees the new inode within its
check interval. The snapshot is validated with the policy core's own parser before it is
published, so a bad compile can never replace a good snapshot.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controlplane.db.models import ConfigState, Extension, SipAccount, Tenant, User
from kemi.policy.snapshot import SNAPSHOT_FORMAT, parse_snapshot

log = logging.getLogger("callmanager.snapshot")


def compile_snapshot(session: Session) -> dict:
    state = session.get(ConfigState, 1)
    tenants = session.exec(select(Tenant)).all()
    users = session.exec(select(User)).all()
    accounts = session.exec(select(SipAccount)).all()
    extensions = session.exec(select(Extension)).all()
    aors: dict[int, list[str]] = {}
    for a in sorted(accounts, key=lambda a: a.id):
        aors.setdefault(a.user_id, []).append(f"sip:{a.username}@{a.realm}")
    primary_ext: dict[int, str] = {}
    for e in sorted(extensions, key=lambda e: e.id):
        primary_ext.setdefault(e.user_id, e.number)
    return {
        "format": SNAPSHOT_FORMAT,
        "version": state.version if state else 0,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "tenants": [{"id": t.id, "name": t.name, "domain": t.sip_domain, "enabled": t.enabled} for t in tenants],
        "users": [
            {"id": u.id, "tenant_id": u.tenant_id, "name": u.name, "extension": primary_ext.get(u.id), "aors": aors.get(u.id, []), "enabled": u.enabled}
            for u in users
        ],
        "accounts": [
            {"username": a.username, "realm": a.realm, "ha1": a.ha1, "ha1b": a.ha1b, "user_id": a.user_id, "tenant_id": a.tenant_id, "enabled": a.enabled}
            for a in accounts
        ],
        "extensions": [{"tenant_id": e.tenant_id, "number": e.number, "user_id": e.user_id} for e in extensions],
        "trusted": [],
    }


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp.{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class SnapshotPublisher:
    """Publishes a new snapshot whenever the config version moves (kicked after each write)."""

    def __init__(self, engine: Engine, path: Path, metrics=None, poll_interval: float = 2.0):
        self.engine = engine
        self.path = Path(path)
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.published_version: int | None = None
        self.published_at: float | None = None
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def current_version(self) -> int:
        with Session(self.engine) as s:
            state = s.get(ConfigState, 1)
            return state.version if state else 0

    def publish(self, force: bool = False) -> int:
        with self._lock:
            if not force and self.current_version() == self.published_version and self.path.exists():
                return self.published_version  # nothing changed: do not compile (it reads every account)
            with Session(self.engine) as s:
                doc = compile_snapshot(s)
            parse_snapshot(doc)  # the routing side must accept it
            write_atomically(self.path, json.dumps(doc, separators=(",", ":")).encode())
            self.published_version = doc["version"]
            self.published_at = datetime.now(timezone.utc).timestamp()
            if self.metrics:
                self.metrics.snapshot_published(doc["version"], len(doc["accounts"]))
            log.info("published routing snapshot version %s (%d accounts)", doc["version"], len(doc["accounts"]))
            return doc["version"]

    def kick(self) -> None:
        self._kick.set()
        if self._thread is None:  # no background worker (tests, CLI): publish now
            self.publish()

    def start(self) -> None:
        self.publish(force=True)
        self._thread = threading.Thread(target=self._run, name="snapshot-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.poll_interval)
            self._kick.clear()
            if self._stop.is_set():
                break
            try:
                self.publish()
            except Exception:  # noqa: BLE001 - keep publishing on the next kick
                log.exception("snapshot publish failed; the previous snapshot stays in force")
