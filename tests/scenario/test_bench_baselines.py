"""The benchmark's baselines do the SIP work they stand for (docs/benchmarks.md §11): tests/bench/native.cfg in
Kamailio's own language, and the same routes as KEMI Python (tests/bench/native_kemi.py, the profile's floor) — each
registers users with digest auth, completes calls through RTPengine and writes one CDR line per call, without a
script error. A baseline that failed its work would make every ratio measured against it meaningless."""

from __future__ import annotations

import pytest

from tests.bench.run import call_step, native_node, registration_storm

USERS = 40
CALLS_PER_S, SECONDS = 5, 2


@pytest.mark.parametrize("kemi", [False, True], ids=["native", "kemi-floor"])
def test_the_baseline_registers_calls_and_writes_a_record_per_call(tmp_path, kemi):
    comps, port = native_node(tmp_path, USERS, kemi=kemi)
    try:
        storm = registration_storm(port, USERS, 200, tmp_path)
        calls_dir = tmp_path / "calls"
        calls_dir.mkdir()
        calls = call_step(port, CALLS_PER_S, SECONDS, calls_dir)
    finally:
        for c in comps:
            c.stop()
    assert (storm["ok"], storm["failed"]) == (USERS, 0)
    assert (calls["ok"], calls["failed"]) == (CALLS_PER_S * SECONDS, 0)
    log = (tmp_path / ("native-kemi.log" if kemi else "native.log")).read_text(errors="replace")
    records = [line for line in log.splitlines() if " CDR " in line]
    assert len(records) == CALLS_PER_S * SECONDS
    errors = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    assert not errors, "\n".join(errors[:10])
