"""VIP, priority override, block lists, anonymous callers, DND/away, boss-secretary, busy-on-busy (no Kamailio)."""
from hypothesis import given, settings, strategies as st

from kemi.policy.decision import Reject, RouteToTrunk, RouteToUser
from kemi.policy.forwarding import ForwardRule
from kemi.policy.live import Quiet
from kemi.policy.numbering import Plan
from kemi.policy.routing import decide_initial
from tests.unit.test_forwarding import call_facts, snap_with, with_user

ALICE, BOB, ALICE_NO = 1, 2, "+49301234501"


def alice_calls_bob(snap, live=None):
    return decide_initial(call_facts("202"), snap, 0.0, live or Quiet())


def outsider_calls_bob(snap, live=None, number="0891234567"):
    facts = call_facts("+49301234502", external=True)._replace(from_user=number)
    return decide_initial(facts, snap, 0.0, live or Quiet())


def test_dnd_rejects_with_486_and_a_reason_or_forwards_by_status_rule():
    d = alice_calls_bob(snap_with([]), Quiet({BOB: "dnd"}))
    assert isinstance(d.action, Reject) and d.action.code == 486 and "disturbed" in d.action.warning
    d = alice_calls_bob(snap_with([{"kind": "dnd", "target_number": "+4915112345678"}]), Quiet({BOB: "dnd"}))
    assert isinstance(d.action, RouteToTrunk)


def test_away_forwards_only_with_an_away_rule():
    assert isinstance(alice_calls_bob(snap_with([]), Quiet({BOB: "away"})).action, RouteToUser)
    d = alice_calls_bob(snap_with([{"kind": "away", "target_user": ALICE}]), Quiet({BOB: "away"}))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == ALICE


def test_unreachable_status_goes_to_backup_routing():
    d = alice_calls_bob(snap_with([{"kind": "unreachable", "target_number": "+4915112345678"}]), Quiet({BOB: "unreachable"}))
    assert isinstance(d.action, RouteToTrunk) and d.action.target == "+4915112345678"


def test_vip_rings_through_dnd_and_non_vip_forwarding():
    snap = with_user(snap_with([{"kind": "unconditional", "target_user": ALICE, "callers": "non_vip"}]), BOB, vip=frozenset({f"u{ALICE}"}))
    assert alice_calls_bob(snap, Quiet({BOB: "dnd"})).action.user_id == BOB
    d = alice_calls_bob(snap)
    assert d.action.user_id == BOB and any("VIP rings through" in t for t in d.trace)


def test_priority_override_rings_through_dnd_and_unconditional_forwarding():
    snap = with_user(snap_with([{"kind": "unconditional", "target_number": "+4915112345678"}]), ALICE, priority=True)
    d = alice_calls_bob(snap, Quiet({BOB: "dnd"}))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == BOB


def test_block_list_rejects_or_diverts():
    snap = with_user(snap_with([]), BOB, blocked={"+49891234567": None})
    d = outsider_calls_bob(snap)
    assert isinstance(d.action, Reject) and d.action.code == 603
    snap = with_user(snap_with([]), BOB, blocked={"+49891234567": ForwardRule(0, "block", target_user=ALICE)})
    assert outsider_calls_bob(snap).action.user_id == ALICE
    assert isinstance(outsider_calls_bob(snap, number="0301111111").action, RouteToUser)  # someone else rings Bob


def test_anonymous_callers_rejected_with_433_where_wanted():
    snap = with_user(snap_with([]), BOB, anonymous="reject")
    d = outsider_calls_bob(snap, number="anonymous")
    assert isinstance(d.action, Reject) and d.action.code == 433
    assert outsider_calls_bob(snap).action.user_id == BOB
    assert outsider_calls_bob(snap_with([]), number="anonymous").action.user_id == BOB


def test_boss_secretary():
    snap = with_user(snap_with([]), BOB, secretary=ALICE)
    # an outside call to the boss rings the secretary; the secretary's own call puts it through to the boss
    assert outsider_calls_bob(snap).action.user_id == ALICE
    assert alice_calls_bob(snap).action.user_id == BOB


def test_busy_on_busy_is_486_or_busy_forwarding_and_tracked():
    snap = with_user(snap_with([]), BOB, call_waiting=False)
    free = alice_calls_bob(snap)
    assert isinstance(free.action, RouteToUser) and free.action.track == (BOB,)
    d = alice_calls_bob(snap, Quiet(busy={BOB}))
    assert isinstance(d.action, Reject) and d.action.code == 486
    snap = with_user(snap_with([{"kind": "busy", "target_user": ALICE}]), BOB, call_waiting=False)
    assert alice_calls_bob(snap, Quiet(busy={BOB})).action.user_id == ALICE
    assert alice_calls_bob(snap_with([]), Quiet(busy={BOB})).action.user_id == BOB  # call waiting: rings anyway


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["online", "away", "dnd", "unreachable"]), st.booleans(),
       st.lists(st.sampled_from(["unconditional", "busy", "dnd", "away"]), max_size=3))
def test_a_vip_or_priority_caller_is_never_diverted_by_dnd(status, via_priority, kinds):
    rules = [{"kind": k, "target_number": "+4915112345678"} for k in kinds]
    snap = snap_with(rules)
    snap = with_user(snap, ALICE, priority=True) if via_priority else with_user(snap, BOB, vip=frozenset({f"u{ALICE}"}))
    d = alice_calls_bob(snap, Quiet({BOB: status}))
    if status == "dnd":
        assert not any("dnd ->" in t and "applies" in t for t in d.trace)  # no DND rule fired
        if via_priority or "unconditional" not in kinds:
            assert isinstance(d.action, RouteToUser) and d.action.user_id == BOB


def test_feature_codes_are_parsed_and_only_for_authenticated_users():
    from kemi.policy import features

    assert features.parse("*78") == ("dnd_on", "") and features.parse("*79") == ("dnd_off", "")
    assert features.parse("*210171123456") == ("forward_on", "0171123456") and features.parse("*21+49171") == ("forward_on", "+49171")
    assert features.parse("*22") == ("forward_off", "") and features.parse("*302") == ("profile", "2")
    assert features.parse("*21") is None and features.parse("*99") is None and features.parse("%2A78") == ("dnd_on", "")
    d = decide_initial(call_facts("*78"), snap_with([]), 0.0)
    assert d.action.kind == "dnd_on" and d.action.user_id == ALICE
    assert decide_initial(call_facts("*99"), snap_with([]), 0.0).action.code == 404
    clir = decide_initial(call_facts("*310309876543"), snap_with([]), 0.0)
    assert isinstance(clir.action, RouteToTrunk) and clir.action.privacy  # *31 is the CLIR prefix, not a feature code


def test_feature_codes_that_cannot_work_are_refused_at_the_phone():
    snap = snap_with([])
    bad = decide_initial(call_facts("*210900123456"), snap, 0.0)
    assert bad.action.code == 403 and "0900" in bad.action.warning  # barred: never set as a forwarding target
    assert decide_initial(call_facts("*2112"), with_user(snap, ALICE, plan=Plan("DE", "")), 0.0).action.code == 484
    assert decide_initial(call_facts("*21201"), snap, 0.0).action.code == 403  # own extension
    assert decide_initial(call_facts("*21202"), snap, 0.0).action.kind == "forward_on"
    assert decide_initial(call_facts("*302"), snap, 0.0).action.code == 404  # no such profile
    assert decide_initial(call_facts("*302"), with_user(snap, ALICE, profile_codes=(2,)), 0.0).action.kind == "profile"
    assert decide_initial(call_facts("*300"), snap, 0.0).action.kind == "profile"  # 0: back to no profile
