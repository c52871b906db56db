"""controlplane/services/periodic.py: the control plane's background loops (CDR ingestion, live state, fraud monitor,
DMQ watch) outlive a failing step and stop when told."""
import logging
import threading
import time

from controlplane.services.periodic import Periodic


def test_a_failing_step_is_logged_and_the_next_one_runs(caplog):
    calls = []
    done = threading.Event()

    def step():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        if len(calls) >= 3:
            done.set()

    loop = Periodic("t", step, 0.01, logging.getLogger("t"), "step failed")
    with caplog.at_level(logging.ERROR, logger="t"):
        loop.start()
        assert done.wait(5)
        loop.stop()
    assert [r.getMessage() for r in caplog.records] == ["step failed"] and caplog.records[0].exc_info
    stopped_at = len(calls)
    time.sleep(0.05)
    assert len(calls) == stopped_at  # stopped: no step after


def test_wait_first_runs_the_first_step_after_one_interval_and_a_stop_meanwhile_runs_none():
    calls = []
    loop = Periodic("t", lambda: calls.append(1), 5.0, logging.getLogger("t"), "x", wait_first=True)
    loop.start()
    time.sleep(0.05)
    loop.stop()
    assert calls == []
