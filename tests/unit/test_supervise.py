"""The node runner's supervisor: a dead component is restarted alone, with back-off; repeated fast failures give up."""
import pytest

from controlplane.node.supervise import GiveUp, RestartPolicy, Supervisor


class Proc:
    def __init__(self, name, starts_ok=True):
        self.name, self.logfile, self.up, self.starts_ok = name, f"/var/log/{name}.log", True, starts_ok
        self.started = self.stopped = 0

    def alive(self):
        return self.up

    def start(self):
        self.started += 1
        if not self.starts_ok:
            raise RuntimeError(f"{self.name} did not listen on udp 127.0.0.1:5060 within 20s\nlog tail")
        self.up = True

    def stop(self):
        self.stopped += 1
        self.up = False


def test_backoff_grows_and_gives_up_after_too_many_failures_in_the_window():
    p = RestartPolicy(window_s=60, max_failures=3, backoff=(0, 1, 2))
    assert p.delay([100.0], 100.0) == 0
    assert p.delay([100.0, 101.0], 101.0) == 1
    assert p.delay([100.0, 101.0, 102.0], 102.0) == 2
    assert p.delay([100.0, 101.0, 102.0, 103.0], 103.0) is None
    assert p.delay([10.0, 20.0, 30.0, 103.0], 103.0) == 0  # the old failures are forgotten


def test_only_the_dead_component_is_restarted_the_others_keep_running():
    procs = {n: Proc(n) for n in ("rtpengine", "controlplane", "kamailio")}
    said = []
    sup = Supervisor(procs, say=said.append)
    sup.check(0.0)
    assert all(p.started == 0 for p in procs.values())
    procs["controlplane"].up = False
    sup.check(1.0)
    assert procs["controlplane"].stopped == 1 and procs["controlplane"].started == 1 and procs["controlplane"].up
    assert procs["kamailio"].stopped == procs["rtpengine"].stopped == 0
    assert sup.restarts("controlplane") == 1
    assert any("controlplane exited" in s and "the rest keeps running" in s for s in said)


def test_a_second_failure_waits_its_backoff():
    procs = {"kamailio": Proc("kamailio")}
    sup = Supervisor(procs, RestartPolicy(backoff=(0, 5)), say=lambda s: None)
    procs["kamailio"].up = False
    sup.check(0.0)
    procs["kamailio"].up = False
    sup.check(1.0)
    assert procs["kamailio"].started == 1  # waiting 5 s
    sup.check(5.9)
    assert procs["kamailio"].started == 1
    sup.check(6.0)
    assert procs["kamailio"].started == 2 and procs["kamailio"].up


def test_a_component_that_cannot_start_is_given_up_loudly():
    procs = {"rtpengine": Proc("rtpengine", starts_ok=False)}
    sup = Supervisor(procs, RestartPolicy(window_s=60, max_failures=3, backoff=(0,)), say=lambda s: None)
    procs["rtpengine"].up = False
    with pytest.raises(GiveUp, match="rtpengine .* 4 times within 60 s; giving up"):
        for t in range(10):
            sup.check(float(t))


def test_a_start_failing_without_a_message_is_still_reported_and_retried():
    class Silent(Proc):
        def start(self):
            self.started += 1
            raise OSError()

    procs = {"prometheus": Silent("prometheus")}
    said = []
    sup = Supervisor(procs, RestartPolicy(backoff=(0, 1)), say=said.append)
    procs["prometheus"].up = False
    sup.check(0.0)
    assert any("did not start again (OSError)" in s for s in said)
    sup.check(1.0)
    assert procs["prometheus"].started == 2
