"""Ingest the CDRs Kamailio spooled (see kemi/shell/cdr_spool.py) into the database, exactly once.

Records are inserted if their id is not stored yet, so reading a line twice (an open segment
read again after it was closed, a restart between commit and delete) never duplicates it, and a
segment is deleted only after its records are committed, so nothing is lost. Lines that are not
valid records, or that the database refuses, go to `bad/` with a log line; they never hold up
the others.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from controlplane.db.models import Cdr, FraudEvent
from controlplane.db.session import database_away
from controlplane.services.periodic import Periodic
from kemi.policy.cdr import DISPOSITIONS, END_TYPE, ended_record
from kemi.shell.cdr_spool import SEGMENT_MAX_AGE_S

log = logging.getLogger("callmanager.cdr")


class DatabaseAway(Exception):
    """The database cannot take the records now (unreachable, or a replica not promoted yet): they stay in the spool,
    untouched, and the same records are offered again on a later pass."""


ADOPT_AFTER_S = 15 * SEGMENT_MAX_AGE_S  # an open segment idle this long will never be appended to again


def _ts(value) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(float(value), timezone.utc)


def _text(value, limit: int) -> str:
    """SIP-supplied text (From user, Call-ID) fits its column: a long value is cut, never refused."""
    return str(value if value is not None else "")[:limit]


def _opt_int(value) -> int | None:
    return None if value is None else int(value)


def _measured(value) -> float | None:
    """A measurement on a call (post-dial delay, media scores): an unreadable or non-finite one is left out —
    the call is still recorded (a record is never refused for a figure that is only informative)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) and f >= 0 else None


FRAUD_KINDS = frozenset({"ban", "account_cooldown", "address_refused"})


def fraud_row(rec: dict) -> dict:
    """A spooled fraud event (kemi/shell/edge.py) as a `fraud_event` row."""
    if rec.get("kind") not in FRAUD_KINDS:
        raise ValueError(f"unknown fraud event kind {rec.get('kind')!r}")
    if not rec.get("id") or len(str(rec["id"])) > 36:
        raise ValueError("record id missing or longer than a UUID")
    level = int(rec.get("level", 1))
    if not 1 <= level <= 4:
        raise ValueError(f"fraud level {level} is not 1..4")
    return {
        "_table": "fraud_event",
        "id": str(rec["id"]),
        "tenant_id": _opt_int(rec.get("tenant_id")),
        "time": _ts(rec["ts"]),
        "kind": rec["kind"],
        "level": level,
        "source": _text(rec.get("source"), 64),
        "account": _text(rec.get("account"), 320),
        "user_id": _opt_int(rec.get("user_id")),
        "reason": _text(rec.get("reason"), 300),
        "detail": rec.get("detail") if isinstance(rec.get("detail"), dict) else {},
        "ingested_at": datetime.now(timezone.utc),
    }


def row_from_record(rec: dict) -> dict:
    """Validate one spooled record and turn it into a `cdr` row (or a `fraud_event` row, marked
    `_table`); ValueError/KeyError/TypeError if invalid."""
    if not isinstance(rec, dict):
        raise TypeError("a record must be a JSON object")
    if rec.get("type") == "fraud_event":
        return fraud_row(rec)
    if rec.get("type") == END_TYPE:  # an answered call's end: its record made here, off Kamailio's workers
        rec = ended_record(rec)
    if rec.get("disposition") not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {rec.get('disposition')!r}")
    if not rec.get("id") or len(str(rec["id"])) > 36:
        raise ValueError("record id missing or longer than a UUID")
    return {
        "id": str(rec["id"]),
        "tenant_id": _opt_int(rec.get("tenant_id")),
        "caller": _text(rec.get("caller"), 128),
        "caller_user_id": _opt_int(rec.get("caller_user_id")),
        "callee": _text(rec.get("callee"), 128),
        "callee_user_id": _opt_int(rec.get("callee_user_id")),
        "call_id": _text(rec.get("call_id"), 255),
        "start_time": _ts(rec["start_ts"]),
        "answer_time": _ts(rec.get("answer_ts")),
        "end_time": _ts(rec["end_ts"]),
        "duration_s": float(rec.get("duration_s", 0.0)),
        "disposition": rec["disposition"],
        "sip_code": int(rec["sip_code"]),
        "sip_reason": _text(rec.get("sip_reason"), 128),
        "trace": json.dumps(rec.get("trace", [])),
        "payer_user_id": _opt_int(rec.get("payer_user_id")),
        "dest_class": _text(rec.get("dest_class"), 16),
        "cost": float(rec.get("cost", 0.0)),
        "emergency": rec.get("emergency") is True,
        **{key: _measured(rec.get(key)) for key in ("pdd_s", "mos", "jitter_ms", "loss_pct", "rtt_ms")},
        "ingested_at": datetime.now(timezone.utc),
        **({"feature": rec["feature"]} if isinstance(rec.get("feature"), dict) else {}),
    }


class CdrIngestor:
    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        metrics=None,
        interval: float = 0.5,
        adopt_after: float = ADOPT_AFTER_S,
        on_feature=None,
        on_stored=None,
    ):
        self.on_feature = on_feature  # called with {"user_id", "kind", "value"} of a feature code dialled from a phone
        self.on_stored = (
            on_stored  # called with the CDR rows just stored (new ones only), e.g. the fraud monitor's running totals
        )
        if adopt_after <= 5 * SEGMENT_MAX_AGE_S:
            raise ValueError(
                "adopt_after must be far longer than the spool's segment age, or a live segment could be taken"
            )
        spool = Path(spool_dir)
        self.engine = engine
        self.open_dir, self.new_dir, self.bad_dir = spool / "open", spool / "new", spool / "bad"
        self.metrics = metrics
        self.interval = interval
        self.adopt_after = adopt_after
        self.ingested = 0
        self.last_lag_s = 0.0
        self._offsets: dict[str, int] = {}  # open segment name -> bytes already ingested
        self.database_away = False  # the last pass found the database unable to take writes (logged once per outage)
        self._loop = Periodic("cdr-ingestor", self.run_once, interval, log, "CDR ingestion failed; will retry")

    # ------------------------------------------------------------------ spool reading

    @staticmethod
    def _names(folder: Path) -> list[str]:
        try:
            return sorted(n for n in os.listdir(folder) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def pending(self) -> int:
        """Segments with records not ingested yet."""
        waiting = len(self._names(self.new_dir))
        for name in self._names(self.open_dir):
            try:
                if os.stat(self.open_dir / name).st_size > self._offsets.get(name, 0):
                    waiting += 1
            except FileNotFoundError:
                pass
        return waiting

    def _parse(self, data: bytes, origin: str) -> list[dict]:
        rows, bad = [], []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                rows.append(row_from_record(json.loads(line)))
            except Exception as exc:  # noqa: BLE001 - any line (cut, corrupt, nested too deep, a time out of range) is set aside alone
                log.error(
                    "CDR line in %s is malformed (%s: %s); kept in %s",
                    origin,
                    type(exc).__name__,
                    str(exc)[:200],
                    self.bad_dir,
                )
                bad.append(line)
        if bad:
            self._quarantine(origin, bad)
        return rows

    def _quarantine(self, origin: str, lines: list[bytes]) -> None:
        if self.metrics:
            self.metrics.cdr_quarantined.inc(len(lines))
        self.bad_dir.mkdir(parents=True, exist_ok=True)
        with open(self.bad_dir / origin, "ab") as fh:
            fh.write(b"\n".join(lines) + b"\n")

    # ------------------------------------------------------------------ storing

    def _store(self, rows: list[dict]) -> int:
        """Insert the rows not stored yet, in one transaction; returns how many were new."""
        if not rows:
            return 0
        new: list = []
        events: list = []
        with self.engine.begin() as conn:  # SQLAlchemy Core: no ORM bookkeeping per row
            for table, out in ((Cdr.__table__, new), (FraudEvent.__table__, events)):
                unique = {r["id"]: r for r in rows if r.get("_table", "cdr") == table.name}
                if not unique:
                    continue
                existing = {row[0] for row in conn.execute(select(table.c.id).where(table.c.id.in_(list(unique))))}
                out += [r for i, r in unique.items() if i not in existing]
                if out:
                    conn.execute(
                        insert(table), [{k: v for k, v in r.items() if k not in ("feature", "_table")} for r in out]
                    )
        if new and self.metrics:
            self.metrics.calls_stored(new)
        if events and self.metrics:
            for e in events:
                self.metrics.fraud_event(e["kind"], e["level"], e["detail"].get("cause", ""))
        if new and self.on_stored is not None:
            try:
                self.on_stored(new)
            except Exception:  # noqa: BLE001 - a listener must not hold up CDRs
                log.exception("a listener of stored CDRs failed")
        for r in new:  # feature codes dialled from phones: applied once, with their call's first storing
            if r.get("feature") and self.on_feature is not None:
                try:
                    self.on_feature(r["feature"])
                except Exception:  # noqa: BLE001 - a feature that cannot be applied must not hold up CDRs
                    log.exception("feature code %s of CDR %s not applied", r["feature"], r["id"])
        return len(new) + len(events)

    def store_records(self, records: list[dict]) -> int:
        """Records made by the control plane itself (validated like spooled ones); duplicates by id are skipped."""
        return self._store([row_from_record(r) for r in records])

    def _store_all(self, rows: list[dict], origin: str) -> int:
        try:
            return self._store(rows)
        except (SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
            if database_away(exc):
                raise DatabaseAway(str(exc)) from exc
            # one row the database refuses must not hold up the others: store one by one
            stored = 0
            for row in rows:
                try:
                    stored += self._store([row])
                except (SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
                    if database_away(exc):
                        raise DatabaseAway(str(exc)) from exc
                    log.error("CDR %s refused by the database (%s); kept in %s", row["id"], exc, self.bad_dir)
                    self._quarantine(origin, [json.dumps({k: str(v) for k, v in row.items()}).encode()])
            return stored

    def run_once(self) -> int:
        """One pass over the spool. With the database away, the pass stops where it is: nothing is deleted, no offset
        moves, nothing is set aside; the next pass offers the same records again (those stored before are skipped)."""
        try:
            stored = self._pass()
        except DatabaseAway as exc:
            if not self.database_away:
                log.warning("CDRs wait in the spool: the database cannot take them now (%s)", str(exc).strip()[:200])
            self.database_away = True
            return 0
        if self.database_away:
            log.warning("CDRs are stored again: the database takes writes")
        self.database_away = False
        return stored

    def _pass(self) -> int:
        stored, rows_seen = 0, []
        for name in self._names(self.new_dir):  # closed segments: ingest all, then delete
            path = self.new_dir / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            rows = self._parse(data, name)
            stored += self._store_all(rows, name)
            rows_seen += rows
            path.unlink(missing_ok=True)
            self._offsets.pop(name, None)
        now = time.time()
        for name in self._names(self.open_dir):  # open segments: complete lines only, keep the file
            path = self.open_dir / name
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if st.st_mtime < now - self.adopt_after:
                os.replace(path, self.new_dir / name)  # abandoned (or long idle): close it on the worker's behalf
                continue
            offset = self._offsets.get(name, 0)
            if st.st_size <= offset:
                continue
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(st.st_size - offset)
            complete = data[: data.rfind(b"\n") + 1]
            if not complete:
                continue
            rows = self._parse(complete, name)
            stored += self._store_all(rows, name)
            rows_seen += rows
            self._offsets[name] = offset + len(complete)
        present = set(self._names(self.open_dir))
        self._offsets = {k: v for k, v in self._offsets.items() if k in present}
        if rows_seen:
            ends = [r["end_time"].timestamp() for r in rows_seen if "end_time" in r]
            if ends:
                self.last_lag_s = max(0.0, now - max(ends))
        self.ingested += stored
        if self.metrics:
            self.metrics.ingest_ran(now)
        if self.metrics and stored:
            self.metrics.cdrs_ingested(stored, self.last_lag_s)
        return stored

    # ------------------------------------------------------------------ background thread

    def start(self) -> None:
        self._loop.start()  # a failed pass is retried on the next: the spool keeps the records

    def stop(self) -> None:
        self._loop.stop()
