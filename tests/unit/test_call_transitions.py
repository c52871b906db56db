"""The whole call after its first decision, as pure transitions (kemi.policy.call): what a failure, a queue turn or an
unanswered offer leads to, in the order a PBX tries its fallbacks. No Kamailio: the shell's effects are the output."""
import pytest

from kemi.policy import call
from kemi.policy.call import (AnswerChallenge, Divert, Failed, Finish, LeaveQueue, OfferNextStep, RelayTrunk, ReleaseClaims,
                              WaitAgain)
from kemi.policy.callstate import CallRecord, CallState, Forwarding, GroupOffer, QueuePlace, TrunkLeg
from kemi.policy.decision import Decision, CallParty, GroupStep, Reject, RouteToGroup, RouteToTrunk, RouteToUser, TrunkHop
from tests.unit.test_group_routing import BUSY, MONDAY_NOON, Floor, dial, snap_with
from tests.unit.test_routing_public import CARRIER_A, public_snapshot

NOW = MONDAY_NOON
BOB = RouteToUser(1, 2, ("sip:bob@acme.example",))
OUT = RouteToTrunk(1, "+4930999", (TrunkHop("carrier-a", "sip:+4930999@a"), TrunkHop("carrier-b", "sip:+4930999@b")), "+49301234501",
                   "acme.example", fraud=(1, "national", 0.1))
STEP = GroupStep(((11, ("sip:agent1@acme.example",)),), 10)


def fresh(**kw) -> CallState:
    return CallState(CallRecord("cdr", "c1", NOW - 30, 1, "201", 1, "202", 2), ("dialled 202",), **kw)


def snap():
    return public_snapshot()


# ---------------------------------------------------------------- forwarding after the user's devices failed

FORWARDING = Forwarding(busy=BOB, no_answer=OUT, unreachable=BOB)


@pytest.mark.parametrize("code, rang, expected", [
    (486, False, BOB),    # busy
    (600, False, BOB),    # busy everywhere
    (603, False, BOB),    # declined: the busy forwarding
    (408, True, OUT),     # rang, nobody answered: no answer
    (408, False, BOB),    # never rang: unreachable
    (480, False, BOB),    # temporarily unavailable: unreachable
    (503, False, BOB),    # a server error: unreachable
    (404, False, None),   # not found: no forwarding, the answer goes back
])
def test_forwarding_by_the_final_answer_of_the_devices(code, rang, expected):
    state, effects = call.on_failure(fresh(forwarding=FORWARDING), Failed(code, "x", rang=rang), snap())
    if expected is None:
        assert effects == (Finish(code, "x"),)
    else:
        assert effects == (Divert(expected),)
    assert state.forwarding is None  # one forwarding per call leg: a second failure ends the call


def test_a_cancelled_call_is_never_forwarded_and_its_record_says_so():
    state, effects = call.on_failure(fresh(forwarding=FORWARDING), Failed(487, "Request Terminated", cancelled=True), snap())
    assert effects == (Finish(487, "Request Terminated", cancelled=True),)
    assert state.trace[-1] == "final reply 487 Request Terminated (caller cancelled)"


def test_a_forwarding_that_could_not_be_done_ends_the_call_with_the_original_answer():
    state, _ = call.on_failure(fresh(forwarding=FORWARDING), Failed(486, "Busy Here"), snap())
    _, effects = call.on_failure(state, Failed(486, "Busy Here"), snap())
    assert effects == (Finish(486, "Busy Here"),)


# ---------------------------------------------------------------- trunks


def trunk_snap():
    return public_snapshot(trunks=[
        {"id": 1, "name": "carrier-a", "host": CARRIER_A, "port": 5060, "transport": "udp", "priority": 1,
         "auth": {"username": "pbx", "password": "pw", "realm": "a.example"}},
        {"id": 2, "name": "carrier-b", "host": "198.51.100.8", "port": 5060, "transport": "udp", "priority": 2}])


@pytest.mark.parametrize("code, effect", [
    (503, RelayTrunk(TrunkHop("carrier-b", "sip:b"))),
    (500, RelayTrunk(TrunkHop("carrier-b", "sip:b"))),
    (408, RelayTrunk(TrunkHop("carrier-b", "sip:b"))),
    (407, AnswerChallenge("pbx", "pw", "a.example")),
    (401, AnswerChallenge("pbx", "pw", "a.example")),
    (486, Finish(486, "x")),  # busy at the far end: no failover
    (404, Finish(404, "x")),
])
def test_a_trunk_failure_leads_to_the_challenge_the_next_trunk_or_the_end(code, effect):
    leg = TrunkLeg("carrier-a", (TrunkHop("carrier-b", "sip:b"),))
    state, effects = call.on_failure(fresh(trunk=leg), Failed(code, "x"), trunk_snap())
    assert effects == (effect,)
    if isinstance(effect, RelayTrunk):
        assert state.trunk == TrunkLeg("carrier-b", ())


def test_a_carriers_challenge_is_answered_once_per_trunk_then_its_refusal_fails_over():
    leg = TrunkLeg("carrier-a", (TrunkHop("carrier-b", "sip:b"),))
    state, effects = call.on_failure(fresh(trunk=leg), Failed(407, "Proxy Authentication Required"), trunk_snap())
    assert isinstance(effects[0], AnswerChallenge) and "pw" not in state.to_json()  # credentials never in the call's state
    state, effects = call.on_failure(state, Failed(407, "Proxy Authentication Required"), trunk_snap())
    assert effects == (Finish(407, "Proxy Authentication Required"),)  # wrong credentials: not a loop
    state, effects = call.on_failure(state._replace(trunk=leg._replace(answered_challenge="carrier-a")), Failed(503, "x"), trunk_snap())
    assert effects == (RelayTrunk(TrunkHop("carrier-b", "sip:b")),)


def test_every_trunk_failed_then_the_users_forwarding_then_the_end():
    state = call.onto(fresh(forwarding=Forwarding(unreachable=BOB)), OUT, NOW, diverted=True)
    assert state.trunk == TrunkLeg("carrier-a", (TrunkHop("carrier-b", "sip:+4930999@b"),)) and state.fraud is not None
    state, effects = call.on_failure(state, Failed(503, "Service Unavailable"), snap())
    assert effects == (RelayTrunk(TrunkHop("carrier-b", "sip:+4930999@b")),)
    state, effects = call.on_failure(state, Failed(503, "Service Unavailable"), snap())
    assert effects == (Divert(BOB),)
    state, effects = call.on_failure(state, Failed(503, "Service Unavailable"), snap())
    assert effects == (Finish(503, "Service Unavailable"),)
    assert [line for line in state.trace if "trunk" in line] == [
        "trying trunk carrier-a", "503 Service Unavailable from the trunk: failing over to trunk carrier-b"]


# ---------------------------------------------------------------- hunt groups and their queue


def group_state(steps=(STEP,), claimed=(10,), queue=None):
    return fresh(group=GroupOffer(7, steps, ((10, ("sip:agent0@acme.example",)),), 5), claimed=claimed, queue=queue)


def test_an_unanswered_step_leads_to_the_next_step_keeping_the_claims_for_it():
    state, effects = call.on_failure(group_state(), Failed(408, "Request Timeout"), snap_with())
    assert effects == (OfferNextStep(7),) and state.claimed == (10,)


def test_the_last_step_unanswered_releases_the_claims_then_waits_again_while_the_caller_may():
    q = QueuePlace(7, 0, NOW - 10, NOW + 50)
    state, effects = call.on_failure(group_state(steps=(), queue=q), Failed(408, "Request Timeout"), snap_with(queue_s=60), now=NOW)
    assert effects == (ReleaseClaims((10,)), WaitAgain(50.0)) and state.claimed == () and state.group is None


def test_the_last_step_unanswered_without_a_queue_overflows_to_the_groups_target():
    snapshot = snap_with(overflow={"target_user": 2})
    state, effects = call.on_failure(group_state(steps=()), Failed(408, "Request Timeout"), snapshot, Floor(), NOW)
    assert effects[0] == ReleaseClaims((10,))
    assert isinstance(effects[1], Divert) and effects[1].action.user_id == 2
    assert state.overflows == 1 and "nobody in group 7 answered" in state.trace[-2]


def test_a_waiting_call_whose_time_is_up_leaves_the_queue_and_overflows():
    q = QueuePlace(7, 0, NOW - 60, NOW, holds=1, held=True, key="g7:1:2")
    state, effects = call.on_failure(fresh(queue=q), Failed(408, "Request Timeout"), snap_with(queue_s=60, overflow={"target_user": 2}),
                                     Floor(), NOW)
    assert effects[0] == LeaveQueue("g7:1:2", 7)
    assert isinstance(effects[1], Divert) and effects[1].action.user_id == 2
    assert state.queue is None and any(line.startswith("waited 60 s, no member became free: overflow") for line in state.trace)


def test_a_waiting_caller_who_hangs_up_leaves_the_queue_and_nothing_else_happens():
    q = QueuePlace(7, 0, NOW - 20, NOW + 40, holds=1, held=True, key="g7:1:2")
    _, effects = call.on_failure(fresh(queue=q, claimed=(10,)), Failed(487, "Request Terminated", cancelled=True),
                                 snap_with(overflow={"target_user": 2}), Floor(), NOW)
    assert effects == (ReleaseClaims((10,)), LeaveQueue("g7:1:2", 7), Finish(487, "Request Terminated", cancelled=True))


def test_overflows_are_bounded_per_call():
    snapshot = snap_with(overflow={"target_user": 2})
    state = group_state(steps=(), claimed=())._replace(overflows=5)
    state, effects = call.on_failure(state, Failed(408, "Request Timeout"), snapshot, Floor(), NOW)
    assert effects == (Finish(408, "Request Timeout"),) and any("overflowed 5 times" in line for line in state.trace)


@pytest.mark.parametrize("queue_left, first, had_steps, contested, expected", [
    (50, True, False, 0, WaitAgain),     # nobody free: wait
    (None, True, False, 0, Divert),      # no queue: the overflow
    (0.5, True, False, 0, Divert),       # too little time left to wait: the overflow
    (50, True, True, 0, Divert),         # members planned but none has a registered device: the overflow at once
    (50, True, True, 1, WaitAgain),      # the planned members were taken by simultaneous calls: wait
    (50, False, False, 0, WaitAgain),    # from the queue: someone was quicker, wait on
    (0.5, False, False, 0, Divert),      # from the queue, time up: the overflow
])
def test_when_nobody_can_be_offered_the_call(queue_left, first, had_steps, contested, expected):
    q = QueuePlace(7, 0, NOW - 10, NOW + queue_left) if queue_left is not None else None
    _, effects = call.when_unplaced(fresh(queue=q, contested=contested), 7, first, snap_with(overflow={"target_user": 2}),
                                    Floor(), NOW, had_steps)
    assert isinstance(effects[-1], expected)


def test_when_nobody_can_be_offered_and_there_is_no_overflow_480():
    _, effects = call.when_unplaced(fresh(), 7, True, snap_with(), Floor(), NOW)
    assert effects == (Finish(480, "Temporarily Unavailable", local=True, warning="no member of the group can be reached"),)


def test_a_queue_turn_offers_what_the_timer_planned_else_plans_now():
    q = QueuePlace(7, 0, NOW - 10, NOW + 50, 1, True, "g7:1:2")
    planned = RouteToGroup(1, 7, (STEP,))
    state, action = call.on_queue_turn(fresh(queue=q), (planned, ("planned by the timer",)), snap_with(), Floor(), NOW)
    assert action == planned and state.trace[-1] == "planned by the timer" and not state.queue.held
    _, action = call.on_queue_turn(fresh(queue=q), None, snap_with(), Floor(), NOW)
    assert isinstance(action, RouteToGroup) and action.steps[0].members[0][0] == 10
    _, action = call.on_queue_turn(fresh(queue=q), None, snap_with(), Floor(BUSY), NOW)
    assert action is None  # someone was quicker: nobody free


def test_contested_offers_are_planned_again_at_most_twice():
    action = RouteToGroup(1, 7, (STEP,), wrapup_s=5)
    state = fresh(contested=1)
    again_state, again = call.replan(state, action, 0, 0, snap_with(), Floor())
    assert again is not None and again.wrapup_s == 5 and "planned again" in again_state.trace[-1]
    assert call.replan(state, action, 1, 0, snap_with(), Floor())[1] is None  # nothing contested: no new plan
    assert call.replan(state, action, 0, call.REPLANS, snap_with(), Floor())[1] is None


# ---------------------------------------------------------------- the first decision's state


def test_the_first_decision_makes_the_record_and_the_forwarding():
    d = Decision(RouteToUser(1, 2, ("sip:bob@acme.example",), on_busy=OUT, no_answer_s=20), ("dialled 202",),
                 CallParty(1, 1, "201"), CallParty(1, 2, "202"))
    state = call.onto(call.begin(d, "c1", "cdr", NOW), d.action, NOW)
    assert state.record == CallRecord("cdr", "c1", NOW, 1, "201", 1, "202", 2)
    assert state.forwarding == Forwarding(busy=OUT) and call.ringing_ms(d.action) == 20000
    assert call.ringing_ms(BOB) is None  # no forwarding: the node's own timers
    assert call.onto(state, d.action, NOW, diverted=True) == state  # a forwarding target's own forwarding is not followed


def test_a_group_call_gets_its_queue_place_from_the_first_decision():
    d = dial(snap_with(queue_s=60), Floor(BUSY))
    state = call.onto(call.begin(d, "c1", "cdr", NOW), d.action, NOW)
    assert state.queue == QueuePlace(7, d.action.priority, NOW, NOW + 60)
    assert call.wait_left(state, NOW + 10) == 50


@pytest.mark.parametrize("expires, emergency, keepalive, plan", [
    ("", False, True, call.DialogPlan(None, True, False)),          # the node's call limit, keep-alives on
    ("1800", False, True, call.DialogPlan(1832, True, False)),      # RFC 4028: its Session-Expires plus the grace
    ("1800", False, False, call.DialogPlan(1832, False, False)),    # keep-alives off for the node
    ("99999999", False, True, call.DialogPlan(43200, True, False)),  # never past the call limit
    ("", True, True, call.DialogPlan(7 * 86400, False, True)),      # emergency: no keep-alive, no limit of the node
])
def test_the_dialog_of_a_new_call(expires, emergency, keepalive, plan):
    assert call.dialog_plan(expires, emergency, 43200, keepalive) == plan


def test_a_queue_no_longer_than_the_shortest_wait_never_holds_a_call():
    """queue_s = MIN_WAIT_S: by the time the node knows nobody is free, less than that is left — the overflow at once
    (a hold would end before a member could be offered the call)."""
    from kemi.policy.queue import MIN_WAIT_S

    d = dial(snap_with(queue_s=int(MIN_WAIT_S), overflow={"target_user": 2}), Floor(BUSY))
    state = call.onto(call.begin(d, "c1", "cdr", NOW), d.action, NOW)
    _, effects = call.when_unplaced(state, 7, True, snap_with(overflow={"target_user": 2}), Floor(BUSY), NOW + 0.0001)
    assert isinstance(effects[-1], Divert) and state.queue.until - state.queue.since == MIN_WAIT_S


def test_a_target_that_refuses_the_call_is_no_target_after_a_failure_and_the_nodes_answer_from_its_own_routing():
    blocked = Reject(603, "Decline", "this group does not take calls from this number")
    state, effects = call.on_failure(fresh(forwarding=Forwarding(busy=blocked)), Failed(486, "Busy Here"), snap())
    assert effects == (Finish(486, "Busy Here"),) and "the target refuses the call (603 Decline)" in state.trace
    _, effects = call._overflow_or_480(fresh(), blocked)
    assert effects == (Finish(603, "Decline", local=True, warning="this group does not take calls from this number"),)


@pytest.mark.parametrize("queue_s, steps, expected", [
    (0, (STEP,), OfferNextStep(7)),   # members free: offered
    (60, (), WaitAgain(60.0)),        # nobody free: waits in the target group's queue
    (1, (), None),                    # a queue no longer than the shortest wait: cannot wait, the forwarding fails
    (0, (), None),                    # no queue
])
def test_a_group_as_forwarding_or_overflow_target(queue_s, steps, expected):
    state, effect = call.into_group(fresh(), RouteToGroup(1, 7, steps, queue_s=queue_s), NOW)
    assert effect == expected
    assert (state.group is not None) == bool(steps)


def test_what_a_reply_leads_to():
    assert call.on_reply(180, False, "", False) == call.ReplyPlan(False, True, False)
    assert call.on_reply(180, False, "", True) == call.ReplyPlan(False, False, False)  # rang already
    assert call.on_reply(183, True, "", False) == call.ReplyPlan(False, True, True)  # early media
    assert call.on_reply(200, True, "7:5:10", True) == call.ReplyPlan(True, False, True)  # a group call answered
    assert call.on_reply(486, False, "7:5:10", True) == call.ReplyPlan(False, False, False)
    assert call.on_reply(100, True, "", False) == call.ReplyPlan(False, False, False)


def test_trunk_timers_and_relay_failures():
    out = RouteToTrunk(1, "112", (TrunkHop("a", "sip:112@a"),), None, "acme.example", emergency=True, ring_s=600)
    assert call.trunk_timers(out, 3000) == (600_000, 3000, 630_000)
    assert call.trunk_timers(OUT, 3000) == (0, 3000, 0)
    assert call.trunk_timers(out, 3000, diverted=True) == (0, 3000, 0)
    assert call.relay_failed(Failed(408, "Request Timeout", rang=True)) == Failed(503, "relay failed", rang=True)


def test_a_hold_that_fails_overflows_with_the_reason():
    q = QueuePlace(7, 0, NOW - 10, NOW + 50)
    state, effects = call.stop_waiting(fresh(queue=q), 7, True, snap_with(overflow={"target_user": 2}), Floor(), NOW)
    assert isinstance(effects[-1], Divert) and "the call cannot wait" in state.trace
    state, effects = call.nowhere(fresh())
    assert effects[-1].code == 480 and effects[-1].local

