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
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controlplane.db.models import Cdr
from kemi.policy.cdr import DISPOSITIONS

log = logging.getLogger("callmanager.cdr")


def _ts(value) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(float(value), timezone.utc)


def _text(value, limit: int) -> str:
    """SIP-supplied text (From user, Call-ID) fits its column: a long value is cut, never refused."""
    return str(value if value is not None else "")[:limit]


def _opt_int(value) -> int | None:
    return None if value is None else int(value)


def cdr_from_record(rec: dict) -> Cdr:
    if rec.get("disposition") not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {rec.get('disposition')!r}")
    if len(str(rec["id"])) > 36:
        raise ValueError("record id longer than a UUID")
    return Cdr(
        id=str(rec["id"]),
        tenant_id=_opt_int(rec.get("tenant_id")),
        caller=_text(rec.get("caller"), 128),
        caller_user_id=_opt_int(rec.get("caller_user_id")),
        callee=_text(rec.get("callee"), 128),
        callee_user_id=_opt_int(rec.get("callee_user_id")),
        call_id=_text(rec.get("call_id"), 255),
        start_time=_ts(rec["start_ts"]),
        answer_time=_ts(rec.get("answer_ts")),
        end_time=_ts(rec["end_ts"]),
        duration_s=float(rec.get("duration_s", 0.0)),
        disposition=rec["disposition"],
        sip_code=int(rec["sip_code"]),
        sip_reason=_text(rec.get("sip_reason"), 128),
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
                self._quarantine(path)
        try:
            stored = self._store(records)
        except SQLAlchemyError:
            # one record the database refuses must not hold up the others: store one by one
            stored = 0
            for path, cdr in list(records):
                try:
                    stored += self._store([(path, cdr)])
                except SQLAlchemyError as exc:
                    log.error("CDR %s refused by the database (%s); moved to %s", cdr.id, exc, self.bad)
                    self._quarantine(path)
                    records.remove((path, cdr))
        now = time.time()
        for path, cdr in records:
            self.last_lag_s = max(0.0, now - cdr.end_time.timestamp())
            path.unlink(missing_ok=True)
        self.ingested += stored
        if self.metrics:
            self.metrics.cdrs_ingested(stored, self.last_lag_s)
        return stored

    def _store(self, records: list[tuple[Path, Cdr]]) -> int:
        """Insert the records not stored yet, in one transaction; returns how many were new."""
        stored = 0
        with Session(self.engine) as s:
            for _, cdr in records:
                if s.get(Cdr, cdr.id) is None:
                    s.add(Cdr.model_validate(cdr.model_dump()))
                    stored += 1
            s.commit()
        return stored

    def _quarantine(self, path: Path) -> None:
        self.bad.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.bad / path.name)

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
