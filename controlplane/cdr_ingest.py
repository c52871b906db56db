"""Ingest CDRs that Kamailio spooled (one JSON file each) into the database, exactly once.

Insert-if-absent by record id, commit, then delete the file: a crash between commit and delete
leaves a file whose id is already stored, so it is dropped on the next pass (no duplicate);
a crash before commit leaves the file (no loss). Malformed files move to `bad/`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from controlplane.db.models import Cdr
from kemi.policy.cdr import DISPOSITIONS

log = logging.getLogger("callmanager.cdr")


def _ts(value) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(float(value), timezone.utc)


def cdr_from_record(rec: dict) -> Cdr:
    if rec.get("disposition") not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {rec.get('disposition')!r}")
    return Cdr(
        id=str(rec["id"]),
        tenant_id=rec.get("tenant_id"),
        caller=str(rec.get("caller", "")),
        caller_user_id=rec.get("caller_user_id"),
        callee=str(rec.get("callee", "")),
        callee_user_id=rec.get("callee_user_id"),
        call_id=str(rec.get("call_id", "")),
        start_time=_ts(rec["start_ts"]),
        answer_time=_ts(rec.get("answer_ts")),
        end_time=_ts(rec["end_ts"]),
        duration_s=float(rec.get("duration_s", 0.0)),
        disposition=rec["disposition"],
        sip_code=int(rec["sip_code"]),
        sip_reason=str(rec.get("sip_reason", "")),
        trace=json.dumps(rec.get("trace", [])),
    )


class CdrIngestor:
    def __init__(self, engine: Engine, spool_dir: Path, metrics=None, interval: float = 0.5):
        self.engine = engine
        self.new = Path(spool_dir) / "new"
        self.bad = Path(spool_dir) / "bad"
        self.metrics = metrics
        self.interval = interval
        self.ingested = 0
        self.last_lag_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> int:
        try:
            return sum(1 for n in os.listdir(self.new) if n.endswith(".json"))
        except FileNotFoundError:
            return 0

    def run_once(self, batch: int = 500) -> int:
        try:
            names = sorted(n for n in os.listdir(self.new) if n.endswith(".json"))[:batch]
        except FileNotFoundError:
            return 0
        if not names:
            return 0
        records: list[tuple[Path, Cdr]] = []
        for name in names:
            path = self.new / name
            try:
                records.append((path, cdr_from_record(json.loads(path.read_text()))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("CDR file %s is malformed (%s); moved to %s", path, exc, self.bad)
                self.bad.mkdir(parents=True, exist_ok=True)
                os.replace(path, self.bad / name)
        stored = 0
        with Session(self.engine) as s:
            for _, cdr in records:
                if s.get(Cdr, cdr.id) is None:
                    s.add(cdr)
                    stored += 1
            s.commit()
        now = time.time()
        for path, cdr in records:
            self.last_lag_s = max(0.0, now - cdr.end_time.timestamp())
            path.unlink(missing_ok=True)
        self.ingested += stored
        if self.metrics:
            self.metrics.cdrs_ingested(stored, self.last_lag_s)
        return stored

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cdr-ingestor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.run_once():
                    pass
            except Exception:  # noqa: BLE001 - retry on the next pass; files stay in the spool
                log.exception("CDR ingestion failed; will retry")
            self._stop.wait(self.interval)
