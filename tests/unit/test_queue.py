"""The queue of a hunt group on the pure core: who goes next, who may wait again."""
from hypothesis import given, strategies as st

from kemi.policy import queue
from kemi.policy.queue import Waiting, in_turn, may_wait, parse_entry


def test_a_vip_who_came_later_goes_before_older_normal_calls_then_arrival_order():
    calls = [Waiting(0, 100.0, 200.0, "g1:1:1"), Waiting(10, 150.0, 250.0, "g1:2:2"), Waiting(0, 90.0, 200.0, "g1:3:3"),
             Waiting(3, 120.0, 220.0, "g1:4:4")]
    live, stale = in_turn(calls, now=160.0)
    assert [c.key for c in live] == ["g1:2:2", "g1:4:4", "g1:3:3", "g1:1:1"] and stale == []


@given(st.lists(st.tuples(st.integers(0, 19), st.floats(0, 1000)), min_size=1, max_size=30))
def test_nobody_waits_behind_a_lower_priority_or_a_later_call_of_the_same_priority(raw):
    calls = [Waiting(p, since, since + 60, f"g1:{i}:0") for i, (p, since) in enumerate(raw)]
    live, _ = in_turn(calls, now=0.0)
    for a, b in zip(live, live[1:]):
        assert a.priority > b.priority or (a.priority == b.priority and a.since <= b.since)


def test_entries_long_past_their_end_are_stale_and_counts_are_not_calls():
    live, stale = in_turn([Waiting(0, 0.0, 100.0, "g1:1:1"), Waiting(0, 50.0, 200.0, "g1:2:2")], now=100.0 + queue.STALE_S + 1)
    assert [c.key for c in live] == ["g1:2:2"] and [c.key for c in stale] == ["g1:1:1"]
    assert parse_entry("g7:12:34", queue.entry_value(10, 1.5, 61.5)) == (7, Waiting(10, 1.5, 61.5, "g7:12:34"))
    assert parse_entry("n:g7", 3) is None and parse_entry("g7:1:1", "garbage") is None


def test_a_call_waits_again_only_with_time_left_and_holds_to_spare():
    assert may_wait(until=100.0, holds=0, now=50.0) == (True, 50.0)
    assert not may_wait(until=100.0, holds=0, now=99.5)[0]  # less than a second left: overflow now
    assert not may_wait(until=100.0, holds=queue.MAX_HOLDS, now=50.0)[0]  # every hold is a branch of the transaction
