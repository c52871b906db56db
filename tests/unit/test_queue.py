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


# ---------------------------------------------------------------- waiting with music (the media server)

from kemi.policy import call  # noqa: E402
from kemi.policy.call import Failed, LeaveQueue, TakeTurn, WaitAgain  # noqa: E402
from kemi.policy.ivr import CHOICE_HEADER  # noqa: E402,F401 - the header the turn comes back in
from tests.unit.test_group_routing import BUSY, Floor, dial, snap_with  # noqa: E402


def waiting_call(snap, music=True, now=1000.0):
    d = dial(snap, Floor(BUSY), now=now)
    state = call.onto(call.begin(d, "c1", "r1", now), d.action, now)
    wait = call.waiting_music(state, snap, media_server=music, language="en", left=60.0)
    held = call.held(state, "", 60.0, music=wait is not None)
    attempt = call.media_attempt(held)
    return held._replace(queue=held.queue._replace(key=queue.music_key(7, attempt, "c1"))), wait


def test_a_caller_waits_with_music_where_the_node_has_a_media_server_and_the_group_wants_it():
    snap = snap_with(queue_s=60)
    state, wait = waiting_call(snap)
    assert wait == queue.Wait(7, "en", 1, 30, 60) and state.queue.music and state.media_legs == 1
    assert "with music" in state.trace[-1]
    assert waiting_call(snap, music=False)[1] is None  # no media server: ringing, as before
    assert waiting_call(snap_with(queue_s=60, queue_music=False))[1] is None
    assert queue.parse_target(queue.target_user(wait)) == wait
    assert queue.parse_target("queue.7.xx.t1.a30.60") is None and queue.parse_target("vm.1.busy.en.60") is None


def test_the_turn_comes_back_as_the_media_servers_302_and_is_offered():
    snap = snap_with(queue_s=60)
    state, _ = waiting_call(snap)
    state, effects = call.on_failure(state, Failed(302, "Moved Temporarily", choice=queue.TURN), snap, Floor(), 1010.0)
    assert effects == (LeaveQueue(state.queue.key, 7), TakeTurn()) and not state.queue.held


def test_a_media_server_that_cannot_keep_the_call_leaves_it_waiting_without_music_and_time_up_overflows():
    snap = snap_with(queue_s=60, overflow={"target_user": 2})
    state, _ = waiting_call(snap)
    later, effects = call.on_failure(state, Failed(503, "Service Unavailable"), snap, Floor(BUSY), 1010.0)
    assert isinstance(effects[-1], WaitAgain) and later.queue.silent and not later.queue.music
    assert call.waiting_music(later, snap, True, "en", 50.0) is None  # from then on: ringing
    _, effects = call.on_failure(state, Failed(408, "Request Timeout"), snap, Floor(BUSY), 1061.0)  # its time is up
    assert effects[-1].action.user_id == 2  # the overflow


def test_each_media_branch_of_a_call_goes_to_the_next_process():
    snap = snap_with(queue_s=60)
    state, _ = waiting_call(snap)
    first = call.media_attempt(state)
    again = call.held(state, "", 30.0, music=True)
    assert call.media_attempt(again) == first + 1


def test_the_media_server_is_told_places_on_change_and_one_turn_again_only_after_a_while():
    told: dict = {}
    assert queue.tell_position(told, "k", 2)
    told["k"] = (2, False)
    assert not queue.tell_position(told, "k", 2) and queue.tell_position(told, "k", 1)
    assert queue.tell_position(told, "k", 2, with_wait=True)  # the group's first average: told again, with the wait
    told["k"] = (2, True)
    assert not queue.tell_position(told, "k", 2, with_wait=True)
    turns: dict = {}
    assert queue.tell_turn(turns, "k", 100.0)
    turns["k"] = 100.0
    assert not queue.tell_turn(turns, "k", 101.0) and queue.tell_turn(turns, "k", 100.0 + queue.TURN_AGAIN_S)
    assert queue.parse_music_key(queue.music_key(7, 1, "a:b@c")) == (7, 1, "a:b@c")
    assert queue.parse_music_key("g7:12:34") is None


# ---------------------------------------------------------------- the expected wait, said with the place


def test_the_groups_average_wait_follows_the_calls_connected_from_its_queue():
    from kemi.policy.queue import AVERAGE_OVER, averaged, parse_average

    assert parse_average(None) == (None, 0) and parse_average("garbage") == (None, 0) and parse_average("nan:3")[0] is None
    value = None
    for waited in (30.0, 60.0, 90.0):  # a plain mean over the first calls
        value = averaged(value, waited)
    assert parse_average(value) == (60.0, 3)
    for _ in range(200):  # then it follows the recent waits, whatever came before
        value = averaged(value, 10.0)
    average, calls = parse_average(value)
    assert abs(average - 10.0) < 0.5 and calls == 203
    # one long wait moves it by at most 1/AVERAGE_OVER of the difference
    assert parse_average(averaged(value, 610.0))[0] <= average + 600.0 / AVERAGE_OVER + 0.1


def test_the_expected_wait_is_the_average_per_caller_ahead_less_the_time_waited():
    from kemi.policy.queue import expected_wait_s, parse_position, position_notice, wait_words

    assert expected_wait_s(None, 3, 0.0) is None  # nothing to go by: only the place is said
    assert expected_wait_s(40.0, 3, 30.0) == 90 and expected_wait_s(40.0, 1, 100.0) == 0
    assert position_notice(3, 90) == "position=3;wait=90" and position_notice(2, None) == "position=2"
    assert parse_position("position=3;wait=90") == (3, 90) and parse_position("position=2") == (2, None)
    for bad in ("position=x", "position=3;wait=x", "turn", ""):
        assert parse_position(bad) is None, bad
    assert wait_words(59) == ("queue_wait_short",)
    assert wait_words(60) == ("queue_wait_about", "n1", "queue_minutes")
    assert wait_words(61) == ("queue_wait_about", "n2", "queue_minutes")  # rounded up: never promise too little
    assert wait_words(3600) == ("queue_wait_about", "vm_more_than_twenty", "queue_minutes")
