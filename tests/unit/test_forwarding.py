"""Forwarding, backup routing and time plans in the policy core (no Kamailio)."""
import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from kemi.policy.callstate import action_from_doc, action_to_doc
from kemi.policy.decision import Reject, RouteToTrunk, RouteToUser
from kemi.policy.facts import AuthResult
from kemi.policy.forwarding import ForwardRule, fallback_case
from kemi.policy.routing import decide_initial
from tests.unit.test_routing_public import CARRIER_A, public_snapshot

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {"id": 1, "name": "office", "tz": "Europe/Berlin", "ranges": [{"days": [0, 1, 2, 3, 4], "start": 8 * 60, "end": 18 * 60}],
          "closed_dates": ["2026-12-25", "2026-12-24"]}


def at(*args) -> float:
    return datetime(*args, tzinfo=BERLIN).timestamp()


def with_user(snap, user_id, **changes):
    """The snapshot with one user changed (rules given as dicts become ForwardRules)."""
    if "forwarding" in changes:
        changes["forwarding"] = tuple(r if isinstance(r, ForwardRule) else ForwardRule(i + 1, **r) for i, r in enumerate(changes["forwarding"]))
    users = dict(snap.users)
    users[user_id] = users[user_id]._replace(**changes)
    return dataclasses.replace(snap, users=users)


def snap_with(bob_rules, **kw):
    return with_user(public_snapshot(time_plans=[OFFICE], **kw), 2, forwarding=bob_rules)


def ring_bob(snap, now=0.0, external=False):
    """Alice (internal) dials Bob's extension, or an outside caller dials Bob's number through carrier A."""
    return decide_initial(call_facts("+49301234502" if external else "202", external), snap, now)


def call_facts(dialled, external=False):
    from kemi.policy.facts import RequestFacts

    if external:
        return RequestFacts("INVITE", dialled, "acme.example", "0891234567", "acme.example", dialled, "acme.example", CARRIER_A, 5060, "c1")
    return RequestFacts("INVITE", dialled, "acme.example", "alice", "acme.example", dialled, "acme.example", "192.0.2.10", 5060, "c1",
                        "alice", "acme.example", AuthResult.OK)


def test_no_rules_rings_the_user():
    d = ring_bob(snap_with([]))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2 and d.action.on_busy is None


def test_unconditional_to_another_user_and_to_a_mobile():
    d = ring_bob(snap_with([{"kind": "unconditional", "target_user": 1}]))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 1
    d = ring_bob(snap_with([{"kind": "unconditional", "target_number": "+4915112345678"}]))
    assert isinstance(d.action, RouteToTrunk) and d.action.target == "+4915112345678"
    assert d.callee.user_id == 2  # the CDR shows whom the caller called


def test_busy_no_answer_and_unreachable_are_decided_up_front():
    d = ring_bob(snap_with([
        {"kind": "busy", "target_user": 1},
        {"kind": "no_answer", "target_number": "+4915112345678", "timeout_s": 7},
        {"kind": "unreachable", "target_number": "+4915199999999"},
    ]))
    a = d.action
    assert isinstance(a, RouteToUser) and a.user_id == 2
    assert a.on_busy.user_id == 1 and a.no_answer_s == 7
    assert a.on_no_answer.target == "+4915112345678" and a.on_unreachable.target == "+4915199999999"


def test_user_without_device_goes_straight_to_backup_routing():
    snap = with_user(snap_with([{"kind": "unreachable", "target_number": "+4915112345678"}]), 2, aors=())
    d = ring_bob(snap)
    assert isinstance(d.action, RouteToTrunk) and d.action.target == "+4915112345678"


def test_internal_only_rule_never_fires_for_external_callers():
    rules = [{"kind": "unconditional", "target_user": 1, "callers": "internal"}]
    assert ring_bob(snap_with(rules)).action.user_id == 1
    ext = ring_bob(snap_with(rules), now=at(2026, 11, 26, 10, 0), external=True)
    assert ext.action.user_id == 2 and any("internal callers only" in t for t in ext.trace)


def test_time_plan_rules_follow_office_hours_and_holidays():
    rules = [{"kind": "unconditional", "target_number": "+4915112345678", "time_plan": 1, "when": "outside"}]
    snap = snap_with(rules)
    assert isinstance(ring_bob(snap, at(2026, 11, 26, 10, 0)).action, RouteToUser)  # Thursday 10:00: office open
    assert isinstance(ring_bob(snap, at(2026, 11, 26, 19, 0)).action, RouteToTrunk)  # 19:00: closed
    assert isinstance(ring_bob(snap, at(2026, 11, 28, 10, 0)).action, RouteToTrunk)  # Saturday
    d = ring_bob(snap, at(2026, 12, 24, 10, 0))  # Thursday, but a closed date
    assert isinstance(d.action, RouteToTrunk) and any("holiday or closed date" in t for t in d.trace)


def test_forwarding_loops_are_cut_with_a_clear_trace():
    snap = with_user(snap_with([{"kind": "unconditional", "target_user": 1}]), 1, forwarding=[ForwardRule(9, "unconditional", target_user=2)])
    d = decide_initial(call_facts("202"), snap)
    assert isinstance(d.action, RouteToUser)
    assert any("forwarding loop" in t for t in d.trace)


def test_forwarding_out_respects_the_users_permission_and_barring():
    d = ring_bob(snap_with([{"kind": "unconditional", "target_number": "+499001234567"}]))
    assert isinstance(d.action, RouteToUser) and any("may not call" in t for t in d.trace)


def test_presented_number_on_forwarded_calls_a_or_b():
    a = ring_bob(snap_with([{"kind": "unconditional", "target_number": "+4915112345678", "present": "caller"}]))
    b = ring_bob(snap_with([{"kind": "unconditional", "target_number": "+4915112345678", "present": "forwarder"}]))
    assert a.action.caller_number == "+49301234501"  # Alice, who called
    assert b.action.caller_number == "+49301234502"  # Bob, who forwards


def test_fallback_documents_round_trip():
    d = ring_bob(snap_with([{"kind": "busy", "target_number": "+4915112345678"}, {"kind": "no_answer", "target_user": 1}]))
    for alt in (d.action.on_busy, d.action.on_no_answer):
        assert action_from_doc(action_to_doc(alt)) == alt
    assert action_from_doc(action_to_doc(Reject(480, "x"))) == Reject(480, "x")  # a refusal as a target too
    assert action_to_doc(None) is None


@given(st.sampled_from([486, 600, 603, 408, 480, 500, 503, 404, 487]), st.booleans(), st.booleans())
def test_fallback_case_never_forwards_a_cancelled_call(code, cancelled, rang):
    case = fallback_case(code, cancelled, rang)
    if cancelled:
        assert case is None
    elif code == 408:
        assert case == ("no_answer" if rang else "unreachable")
    elif code in (404, 487):
        assert case is None


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=23))
def test_time_plan_matches_its_definition(day_offset, hour):
    from kemi.policy.timeplan import TimePlan, TimeRange

    plan = TimePlan(1, "office", "Europe/Berlin", (TimeRange(frozenset({0, 1, 2, 3, 4}), 480, 1080),), frozenset({"2026-11-25"}))
    moment = at(2026, 11, 23 + day_offset, hour, 30)  # Monday 23 Nov 2026 + offset
    weekday = (0 + day_offset) % 7
    expected = weekday < 5 and 8 <= hour < 18 and (23 + day_offset) != 25
    assert plan.active(moment) == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["unconditional", "busy", "no_answer", "unreachable"]), st.booleans())
def test_internal_only_rules_never_fire_for_external_callers(kind, to_number):
    target = {"target_number": "+4915112345678"} if to_number else {"target_user": 1}
    d = ring_bob(snap_with([{"kind": kind, "callers": "internal", **target}]), now=at(2026, 11, 26, 10, 0), external=True)
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2
    assert d.action.on_busy is None and d.action.on_no_answer is None and isinstance(d.action.on_unreachable, Reject)
