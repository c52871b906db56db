"""`route.simulate` with events: the whole call dry-run through the transitions live calls take."""
from kemi.policy import timeline
from kemi.policy.timeline import Event
from tests.unit.test_forwarding import ring_bob, snap_with as fwd_snap
from tests.unit.test_group_routing import BUSY, MONDAY_NOON, Floor, dial, snap_with


def outcomes(steps):
    return [(s.event, s.outcome) for s in steps]


def test_busy_then_forwarded_then_no_answer_ends_the_call():
    snap = fwd_snap([{"kind": "busy", "target_user": 1}])
    steps = timeline.run(ring_bob(snap), [Event("busy"), Event("no_answer", after_s=20)], snap)
    assert outcomes(steps) == [
        ("call", "ring user 2 (1 address(es))"),
        ("busy (486 Busy Here)", "forward: ring user 1 (1 address(es))"),
        ("no answer (408 Request Timeout)", "the call ends: 408 Request Timeout"),
    ]
    assert steps[-1].ended and steps[-1].at_s == 20
    assert "486 Busy Here: busy, forwarding" in steps[1].trace


def test_a_group_call_steps_through_its_members_then_waits_then_a_member_answers():
    snap = snap_with(queue_s=60, rings=[{"members": [10, 11], "strategy": "top_down", "wait_s": 30, "member_s": 10}])
    steps = timeline.run(dial(snap, Floor()), [Event("no_answer", 10), Event("no_answer", 10), Event("member_free", 5),
                                               Event("answer", 3)], snap, Floor(), MONDAY_NOON)
    assert [s.outcome for s in steps] == [
        "offer group 7 to user(s) 10 for 10 s",
        "offer group 7 to user(s) 11 for 10 s",
        "wait in the queue of group 7, 40 s at most",
        "offer group 7 to user(s) 10 for 10 s",
        "answered: the call is connected",
    ]
    assert steps[-1].at_s == 28


def test_nobody_free_the_call_waits_then_overflows_when_its_time_is_up():
    snap = snap_with(queue_s=60, overflow={"target_user": 2})
    steps = timeline.run(dial(snap, Floor(BUSY)), [Event("no_answer", 60), Event("answer")], snap, Floor(BUSY), MONDAY_NOON)
    assert steps[0].outcome.startswith("wait in the queue of group 7")
    assert steps[1].outcome == "forward: ring user 2 (1 address(es))"
    assert any("waited 60 s, no member became free: overflow" in line for line in steps[1].trace)


def test_events_after_the_end_are_not_played():
    snap = fwd_snap([])
    steps = timeline.run(ring_bob(snap), [Event("busy"), Event("answer")], snap)
    assert len(steps) == 2 and steps[-1].ended and steps[-1].outcome == "the call ends: 486 Busy Here"


def test_the_caller_hanging_up_ends_a_forwarded_call():
    snap = fwd_snap([{"kind": "no_answer", "target_user": 1, "timeout_s": 15}])
    steps = timeline.run(ring_bob(snap), [Event("cancel", 5)], snap)
    assert steps[-1].event == "the caller hangs up" and steps[-1].outcome == "the call ends: 487 Request Terminated"
