"""The CDR hand-off: Kamailio workers append to segments, the control plane stores each record once."""
import json
import os
import time

import pytest
from sqlmodel import Session, func, select

from controlplane.services.cdr_ingest import CdrIngestor
from controlplane.db.models import Cdr
from controlplane.db.session import make_engine, migrate
from kemi.shell.cdr_spool import CdrSpool


def rec(i, **kw):
    r = {"id": f"00000000-0000-0000-0000-{i:012d}", "tenant_id": 1, "caller": "201", "callee": "202", "call_id": f"c{i}",
         "start_ts": 1000.0, "end_ts": 1010.0, "disposition": "busy", "sip_code": 486, "sip_reason": "Busy Here", "trace": []}
    r.update(kw)
    return r


@pytest.fixture
def setup(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    spool_dir = tmp_path / "spool"
    spool = CdrSpool(str(spool_dir), max_age=60, max_records=3)
    yield spool, CdrIngestor(engine, spool_dir), engine
    engine.dispose()


def count(engine):
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Cdr)).one()


def test_records_in_an_open_segment_are_stored_before_it_closes_and_never_twice(setup):
    spool, ing, engine = setup
    spool.put(rec(1))
    spool.put(rec(2))
    assert ing.run_once() == 2 and count(engine) == 2
    assert ing.run_once() == 0  # nothing new
    spool.put(rec(3))
    spool.put(rec(4))  # the 4th record rotates: the first segment (1, 2, 3) moves to new/
    assert ing.run_once() == 2  # 3 from the closed segment (1, 2 again: skipped), 4 from the new open one
    assert count(engine) == 4 and not os.listdir(spool.new_dir)


def test_a_half_written_line_waits_until_it_is_complete(setup):
    spool, ing, engine = setup
    path = spool.put(rec(1))
    with open(path, "a") as fh:
        fh.write(json.dumps(rec(2))[:20])
    assert ing.run_once() == 1
    with open(path, "a") as fh:
        fh.write(json.dumps(rec(2))[20:] + "\n")
    assert ing.run_once() == 1 and count(engine) == 2


def test_an_abandoned_open_segment_is_adopted(setup):
    spool, ing, engine = setup
    spool.max_age = 0.05  # as in production, far shorter than the adoption age
    path = spool.put(rec(1))
    ing.run_once()
    time.sleep(0.1)
    old = time.time() - 3600
    os.utime(path, (old, old))
    ing.run_once()  # moved to new/
    ing.run_once()  # ingested (already stored) and deleted
    assert not os.listdir(spool.open_dir) and not os.listdir(spool.new_dir) and count(engine) == 1
    spool.put(rec(2))  # the worker's segment is too old to append to: it starts another one
    assert ing.run_once() == 1 and count(engine) == 2


def test_bad_lines_are_quarantined_and_the_rest_is_stored(setup):
    spool, ing, engine = setup
    path = spool.put(rec(1))
    with open(path, "a") as fh:
        fh.write("not json\n" + json.dumps(rec(2, disposition="exploded")) + "\n" + json.dumps(rec(3)) + "\n")
    assert ing.run_once() == 2
    bad = (ing.bad_dir / os.path.basename(path)).read_text().splitlines()
    assert bad[0] == "not json" and "exploded" in bad[1]


def test_an_unreadable_measurement_is_left_out_and_the_call_is_still_recorded(setup):
    spool, ing, engine = setup
    spool.put({**rec(1), "mos": "n/a", "jitter_ms": float("nan"), "loss_pct": -3, "rtt_ms": 80.5, "pdd_s": "0.4"})
    assert ing.run_once() == 1
    with Session(engine) as s:
        c = s.exec(select(Cdr)).one()
    assert (c.mos, c.jitter_ms, c.loss_pct, c.rtt_ms, c.pdd_s) == (None, None, None, 80.5, 0.4)


def test_cut_corrupt_or_hostile_lines_are_set_aside_one_by_one_and_counted(tmp_path):
    from prometheus_client import CollectorRegistry

    from controlplane.metrics import Metrics

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    spool = CdrSpool(str(tmp_path / "spool"), max_age=60, max_records=100)
    metrics = Metrics(registry=CollectorRegistry())
    ing = CdrIngestor(engine, tmp_path / "spool", metrics=metrics)
    path = spool.put(rec(1))
    hostile = [b"[" * 100000 + b"]" * 100000,  # nested too deep for the JSON parser
               json.dumps(rec(2, end_ts=1e300)).encode(),  # a time no clock can hold
               b'{"id": "\xff\xfe", "disposition": "busy"}',  # not UTF-8
               json.dumps(rec(3, sip_code="486x")).encode(),
               b"\x00\x00\x00"]
    with open(path, "ab") as fh:
        fh.write(b"\n".join(hostile) + b"\n" + json.dumps(rec(4)).encode() + b"\n" + json.dumps(rec(5))[:40].encode())  # last: cut
    spool.close_segment()
    assert ing.run_once() == 2 and count(engine) == 2  # records 1 and 4
    bad = (ing.bad_dir / os.path.basename(path)).read_bytes().split(b"\n")
    assert len([line for line in bad if line]) == len(hostile) + 1  # the cut last line too
    assert metrics.registry.get_sample_value("callmanager_cdr_quarantined_total") == len(hostile) + 1
    assert ing.run_once() == 0  # nothing is read twice, nothing blocks the spool
    engine.dispose()


def test_spool_segments_are_the_owners_only_whatever_the_umask(setup):
    spool, _, _ = setup
    old = os.umask(0o022)
    try:
        path = spool.put(rec(1))
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o600  # who called whom, and when: not for other users of the machine


def test_an_emergency_call_is_marked_on_its_record(setup):
    spool, ingestor, engine = setup
    spool.put(rec(7, emergency=True, callee="112"))
    spool.put(rec(8))
    spool.close_segment()
    ingestor.run_once()
    with Session(engine) as s:
        marks = {c.call_id: c.emergency for c in s.exec(select(Cdr)).all()}
    assert marks == {"c7": True, "c8": False}
