import json

import pytest

from controlplane.adapters import bencode
from kemi.policy.callstate import CallRecord, CallState
from kemi.policy import cdr
from kemi.policy.snapshot import SnapshotError, loads_snapshot
from kemi.shell.snapshot_holder import SnapshotHolder


def doc(version=1):
    return {"format": 1, "version": version, "tenants": [], "accounts": [], "users": [], "extensions": []}


@pytest.mark.parametrize("bad", ["not json", "[]", json.dumps({"format": 99}), json.dumps({"format": 1, "version": "x"})])
def test_malformed_snapshots_are_refused(bad):
    with pytest.raises(SnapshotError):
        loads_snapshot(bad)


def test_holder_keeps_the_last_good_snapshot_when_the_file_breaks_or_vanishes(tmp_path):
    path = tmp_path / "current.json"
    path.write_text(json.dumps(doc(1)))
    h = SnapshotHolder(str(path), check_interval=0)
    assert h.get().version == 1
    tmp = tmp_path / "new.json"
    tmp.write_text(json.dumps(doc(2)))
    tmp.replace(path)
    assert h.get().version == 2
    tmp.write_text("{broken")
    tmp.replace(path)
    assert h.get().version == 2
    path.unlink()
    assert h.get().version == 2


@pytest.mark.parametrize(
    "code,cancelled,expected",
    [(200, False, "answered"), (486, False, "busy"), (600, False, "busy"), (408, False, "no_answer"), (487, False, "cancelled"),
     (180, True, "cancelled"), (404, False, "rejected"), (603, False, "rejected"), (480, False, "unavailable"), (500, False, "failed"), (503, False, "failed")],
)
def test_dispositions(code, cancelled, expected):
    assert cdr.disposition(code, cancelled) == expected


def test_cdr_record_duration_counts_from_answer():
    ctx = CallState(CallRecord("x", "c1", 100.0), ("t",))
    r = cdr.record(ctx, code=200, reason="OK", end_ts=130.0, answer_ts=110.0)
    assert r["duration_s"] == 20.0 and r["disposition"] == "answered"
    assert cdr.record(ctx, code=486, reason="Busy", end_ts=101.0)["duration_s"] == 0.0


def test_bencode_round_trip_and_errors():
    value = {"command": "query", "call-id": "abc", "list": [1, "two", {"x": b"\xff"}]}
    assert bencode.decode(bencode.encode(value)) == {"command": "query", "call-id": "abc", "list": [1, "two", {"x": b"\xff"}]}
    for bad in (b"i12", b"5:abc", b"x", b"d1:ai1e"):
        with pytest.raises(bencode.BencodeError):
            bencode.decode(bad)


def test_holder_leaves_garbage_collection_on_after_good_and_bad_loads(tmp_path):
    import gc

    path = tmp_path / "current.json"
    holder = SnapshotHolder(str(path), check_interval=0)
    path.write_text("not json")
    holder.get()
    assert gc.isenabled()
    path.write_text('{"format": 1, "version": 5, "tenants": [], "accounts": [], "users": [], "extensions": []}')
    assert holder.get().version == 5 and gc.isenabled()


def test_requests_to_end_a_call_are_read_only_in_their_one_shape():
    assert cdr.end_request('["c1", "ft", "tt", "spend limit"]') == ("c1", "ft", "tt", "spend limit")
    for bad in ("not json", "[1, 2]", '{"a": 1, "b": 2, "c": 3, "d": 4}', '[1, "ft", "tt", "x"]', "null", "\xff"):
        assert cdr.end_request(bad) is None
