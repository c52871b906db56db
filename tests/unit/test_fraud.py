"""Fraud controls on calls out: the pure core (kemi/policy/fraud.py) and its place in routing."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from kemi.policy import fraud
from kemi.policy.fraud import HARD_CAPS, Counters, FraudPolicy, Limits, Lock, RunningCall, Spend, check_limits, spend_response


def test_tariff_longest_prefix_wins():
    t = fraud.tariff({"+": 0.5, "+49": 0.015, "+4915": 0.06, "+49900": 3.0})
    assert t.rate_for("+4930123456") == ("+49", 0.015)
    assert t.rate_for("+491511234567") == ("+4915", 0.06)
    assert t.rate_for("+499001234") == ("+49900", 3.0)
    assert t.rate_for("+8821234") == ("+", 0.5)
    assert fraud.tariff({}).rate_for("+49301") == ("", 0.0)


@given(st.dictionaries(st.sampled_from(fraud.LIMITS), st.floats(0, 10**9)), st.sampled_from(["user", "tenant"]))
def test_limits_never_exceed_the_hard_caps(values, scope):
    capped = Limits(**{k: (int(v) if k not in fraud.SPEND_LIMITS else v) for k, v in values.items()}).capped(scope)
    for k in fraud.LIMITS:
        assert 0 < getattr(capped, k) <= HARD_CAPS[scope][k]


def test_check_limits_names_the_limit_reached():
    p = FraudPolicy(user=Limits(max_concurrent=2, attempts_per_minute=3, attempts_per_hour=10), tenant=Limits(max_concurrent=5))
    assert check_limits(p, Counters(1, 1, 1, 1, 1, 1)) == ""
    assert "2 external calls" in check_limits(p, Counters(2, 2, 1, 1, 1, 1))
    assert "company has 5" in check_limits(p, Counters(0, 5, 1, 1, 1, 1))
    assert "3 call attempts by the user in a minute" in check_limits(p, Counters(0, 0, 4, 4, 4, 4))


@given(st.tuples(st.integers(0, 6), st.integers(0, 80), st.integers(0, 400), st.integers(0, 400), st.integers(0, 10**6), st.integers(0, 10**6)))
def test_limits_kept_by_the_shell_give_the_same_verdict(counts):
    """The Kamailio shell keeps capped_limits per snapshot and passes them in: the verdict is the same."""
    p = FraudPolicy(user=Limits(max_concurrent=3, attempts_per_minute=40, attempts_per_hour=0), tenant=Limits(attempts_per_minute=10**7))
    c = Counters(*counts)
    assert check_limits(p, c, fraud.capped_limits(p)) == check_limits(p, c)


def test_locks_refuse_by_level():
    two = Lock(1, 7, 2, "international", "spent")
    three, four = Lock(2, 7, 3), Lock(3, 7, 4)
    assert fraud.lock_refusal((two,), "international") == two
    assert fraud.lock_refusal((two,), "national") is None
    assert fraud.lock_refusal((two,), None) is None  # internal calls go on
    assert fraud.lock_refusal((three,), "national") == three and fraud.lock_refusal((three,), None) is None
    assert fraud.lock_refusal((four,), None) == four


def test_high_risk_needs_the_tenants_permission():
    assert fraud.high_risk("+8821234567", FraudPolicy()) == "+882"
    assert fraud.high_risk("+8821234567", FraudPolicy(allow_high_risk=True)) == ""
    assert fraud.high_risk("+4930123", FraudPolicy()) == ""


def call(key, user=7, cls="international", rate=6.0, seconds=60.0, emergency=False, tenant=1):
    return RunningCall(key, tenant, user, cls, rate, seconds, emergency)


def test_spend_over_the_limit_locks_and_ends_the_calls_in_progress_but_never_emergency_calls():
    p = FraudPolicy(user=Limits(spend_day=10.0, spend_month=100.0))
    running = [call("1:1"), call("1:2", cls="mobile", rate=1.0), call("1:3", emergency=True), call("1:4", user=8)]
    [r] = spend_response(p, 1, 7, Spend(day=4.0, month=4.0), running)
    assert r.level == 3 and r.limit == "spend_day" and r.spent == 4.0 + 6.0 + 1.0
    assert r.end_calls == ("1:1", "1:2")  # not the emergency call, not another user's


def test_level_2_blocks_the_class_that_cost_the_most_and_ends_only_those_calls():
    p = FraudPolicy(user=Limits(spend_day=5.0, spend_month=100.0), spend_level=2)
    [r] = spend_response(p, 1, 7, Spend(), [call("1:1", cls="international", rate=6.0), call("1:2", cls="mobile", rate=0.5)])
    assert r.level == 2 and r.dest_class == "international" and r.end_calls == ("1:1",)


def test_warning_before_the_limit_and_nothing_below_it():
    p = FraudPolicy(user=Limits(spend_day=10.0, spend_month=1000.0), warn_ratio=0.8)
    [w] = spend_response(p, 1, 7, Spend(day=8.5, month=8.5), [])
    assert w.level == 1 and not w.end_calls
    assert spend_response(p, 1, 7, Spend(day=1.0, month=1.0), []) == []


def test_tenant_limit_ends_the_calls_of_all_its_users():
    p = FraudPolicy(tenant=Limits(spend_day=10.0, spend_month=100.0))
    [r] = spend_response(p, 1, None, Spend(day=9.0), [call("1:1", user=7), call("1:2", user=8), call("2:1", tenant=2)])
    assert r.user_id is None and r.end_calls == ("1:1", "1:2")


@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 3600), st.booleans()), max_size=8), st.floats(0, 100))
def test_emergency_calls_are_never_ended(calls, settled):
    p = FraudPolicy(user=Limits(spend_day=1.0, spend_month=2.0))
    running = [call(f"1:{i}", rate=rate, seconds=secs, emergency=em) for i, (rate, secs, em) in enumerate(calls)]
    emergency = {c.key for c in running if c.emergency}
    for r in spend_response(p, 1, 7, Spend(settled, settled), running):
        assert emergency.isdisjoint(r.end_calls)


# ---------------------------------------------------------------- in routing (decide_initial)

from kemi.policy.decision import Reject, RouteToTrunk  # noqa: E402
from tests.unit.test_routing_public import call as dial, public_snapshot  # noqa: E402

NUMBERS = ["0309876543", "015112345678", "004420791234", "0012125550123", "+8821234567", "09001234567", "0891234567"]


def test_calls_out_carry_payer_class_and_price():
    snap = public_snapshot(fraud={"tariff": {"rates": {"+": 0.5, "+49": 0.015, "+4915": 0.06}}})
    a = dial("015112345678", snap).action
    assert isinstance(a, RouteToTrunk) and a.fraud == (1, "mobile", 0.06)


@given(st.sampled_from(NUMBERS), st.sampled_from([3, 4]))
def test_a_locked_user_never_reaches_a_trunk_but_emergency_calls_do(number, level):
    snap = public_snapshot(fraud={"locks": [{"id": 9, "tenant_id": 1, "user_id": 1, "level": level, "reason": "spend"}]})
    d = dial(number, snap)
    assert not isinstance(d.action, RouteToTrunk)
    e = dial("112", snap)
    assert isinstance(e.action, RouteToTrunk) and e.action.emergency and e.action.fraud is None


def test_a_tenant_lock_and_a_class_block():
    snap = public_snapshot(fraud={"locks": [{"id": 1, "tenant_id": 1, "user_id": None, "level": 3, "reason": "tenant spend"}]})
    assert isinstance(dial("0309876543", snap).action, Reject)
    snap = public_snapshot(fraud={"locks": [{"id": 2, "tenant_id": 1, "user_id": 1, "level": 2, "dest_class": "international", "reason": "x"}]})
    assert isinstance(dial("0012125550123", snap).action, Reject)
    assert isinstance(dial("004420791234", snap).action, RouteToTrunk)  # Europe is another class
    assert isinstance(dial("0309876543", snap).action, RouteToTrunk)


def test_high_risk_countries_only_when_the_tenant_allows_them():
    assert dial("+8821234567", public_snapshot()).action.code == 403
    snap = public_snapshot(fraud={"policies": {"1": {"allow_high_risk": True}}})
    assert isinstance(dial("+8821234567", snap).action, RouteToTrunk)


def test_the_tenants_ceiling_of_destination_classes_applies_within_users_permissions():
    snap = public_snapshot(fraud={"policies": {"1": {"outbound": "mobile"}}})
    assert dial("015112345678", snap).action.__class__ is RouteToTrunk
    d = dial("004420791234", snap)
    assert d.action.code == 403 and "europe calls are not permitted for this company" in d.action.warning


def test_the_monitor_reads_kamailios_running_calls_out_and_skips_unreadable_ones():
    from controlplane.services.fraud_monitor import running_calls

    calls = running_calls({"123:456": "2:17:international:0.25:1000.000", "7:8": "garbage", "x:y": "2:17:mobile:0.1:990"}, now=1060.0)
    assert calls == [RunningCall("123:456", 2, 17, "international", 0.25, 60.0)]
    assert calls[0].cost == 0.25  # a minute at 0.25 per minute


# ---------------------------------------------------------------- the data center's shared counters (a cluster)


def test_shared_keys_follow_the_counters_order_and_the_minute_and_hour_of_the_attempt():
    now = 3600 * 500 + 61  # hour 500, minute 30001
    assert fraud.shared_keys(7, 42, now) == (
        "cm:f:u42:calls", "cm:f:t7:calls", "cm:f:u42:m30001", "cm:f:u42:h500", "cm:f:t7:m30001", "cm:f:t7:h500"
    )
    assert fraud.shared_call_keys("7:42:mobile:0.19") == ("cm:f:u42:calls", "cm:f:t7:calls")  # the same sets
    for bad in ("", "7", "x:42:mobile:0.1", "7:²:mobile:0.1", ":42:m:1"):
        assert fraud.shared_call_keys(bad) is None


@pytest.mark.parametrize("values, expected", [
    (["0", "1", "2", "3", "4", "5"], Counters(0, 1, 2, 3, 4, 5)),
    (None, None),  # the command failed
    (["0", "1", "2", "3", "4"], None),  # not the script's answer
    (["0", "1", "2", "3", "4", "-1"], None),
    (["0", "1", "2", "3", "4", "²"], None),
    (["0", "1", "2", "3", "4", ""], None),
])
def test_only_six_counts_from_redis_are_taken_as_the_data_centers(values, expected):
    assert fraud.shared_counters(values) == expected


@given(st.lists(st.text(max_size=4), min_size=6, max_size=6))
def test_whatever_redis_answers_the_counts_are_numbers_or_the_node_counts_instead(values):
    shared = fraud.shared_counters(values)
    local = Counters(1, 2, 3, 4, 5, 6)
    in_force = fraud.counters_in_force(shared, local)
    assert in_force == (local if shared is None else shared)
    assert all(isinstance(v, int) and v >= 0 for v in in_force)


def test_without_the_data_centers_counts_every_limit_still_holds_on_the_nodes_own():
    policy = FraudPolicy(user=Limits(max_concurrent=1, attempts_per_minute=5, attempts_per_hour=50))
    local = Counters(user_concurrent=1)  # this node has the user's one call in progress
    assert "external calls in progress" in check_limits(policy, fraud.counters_in_force(None, local))
    assert check_limits(policy, fraud.counters_in_force(Counters(), local)) == ""  # Redis answered: its counts decide


def test_a_nodes_calls_in_progress_renew_in_both_sets_and_nothing_else_does():
    running = [("123:456", "7:42:mobile:0.19:1700000000.5"), ("9:9", "garbage"), ("", "7:42:mobile:0.19:1"),
               ("1:2", "8:43:national:0.02:1700000001")]
    assert fraud.shared_renewals(running, "fra-sip1") == [
        ("cm:f:u42:calls", "cm:f:t7:calls", "fra-sip1:123:456"),
        ("cm:f:u43:calls", "cm:f:t8:calls", "fra-sip1:1:2"),
    ]
    assert fraud.SHARED_RENEW_S * 3 < fraud.SHARED_HOLD_S  # a renewal may be missed twice before a call stops counting


def test_kamailio_renews_as_often_as_the_policy_says():
    from pathlib import Path

    cfg = (Path(__file__).resolve().parents[2] / "kamailio" / "kamailio.cfg").read_text()
    assert f"name=cmshared;interval={fraud.SHARED_RENEW_S};mode=1;" in cfg
