"""Learning the normal (kemi/policy/baseline.py): baselines by hour and class, thresholds, anomalies."""
from __future__ import annotations

from hypothesis import given, strategies as st

from kemi.policy.baseline import CallOut, Rule, Usual, anomalies, baselines, threshold
from kemi.policy.fraud import HARD_CAPS

TODAY = 20_000
RULE = Rule()


def history(user, tenant, cls, per_hour, hours=range(24), days=28, minutes=3.0):
    return [CallOut(user, tenant, h, TODAY - d, cls, minutes) for d in range(1, days + 1) for h in hours for _ in range(per_hour)]


def now(user, tenant, cls, n, hour=3, minutes=2.0):
    return [CallOut(user, tenant, hour, TODAY, cls, minutes) for _ in range(n)]


def test_a_change_of_behaviour_is_an_anomaly_while_the_same_volume_for_a_heavy_user_is_not():
    calls = history(1, 9, "national", 2) + history(2, 9, "international", 5)  # 1 never calls abroad; 2 does, every hour
    users, tenants, days = baselines(calls, RULE, TODAY)
    assert days == {1: 28, 2: 28} and users[2][(3, "international")] == Usual(5.0, 15.0)
    found = anomalies(now(1, 9, "international", 4) + now(2, 9, "international", 4), users, tenants, days, RULE)
    assert [(a.user_id, a.dest_class, a.calls) for a in found] == [(1, "international", 4)]
    assert "03:00" in found[0].reason and "usual" in found[0].reason


def test_the_odd_call_is_tolerated_and_unwatched_classes_are_not_judged():
    calls = history(1, 9, "national", 2)
    users, tenants, days = baselines(calls, RULE, TODAY)
    assert anomalies(now(1, 9, "international", 2, minutes=5), users, tenants, days, RULE) == []  # at the floor
    assert anomalies(now(1, 9, "national", 50), users, tenants, days, RULE) == []  # national is not watched


def test_long_calls_count_too():
    users, tenants, days = baselines(history(1, 9, "international", 1, minutes=2), RULE, TODAY)
    [a] = anomalies(now(1, 9, "international", 1, minutes=120), users, tenants, days, RULE)
    assert a.minutes == 120 and a.threshold.basis == "own"


def test_new_users_are_measured_against_the_tenants_usual_user():
    calls = history(1, 9, "international", 1) + history(2, 9, "international", 3) + history(3, 9, "national", 1, days=2)
    users, tenants, days = baselines(calls, RULE, TODAY)
    assert days[3] == 2 and tenants[9][(3, "international")].calls == 2.0  # the average of users 1 and 2
    assert anomalies(now(3, 9, "international", 6), users, tenants, days, RULE) == []  # 6 <= 3 x 2
    [a] = anomalies(now(3, 9, "international", 7), users, tenants, days, RULE)
    assert a.threshold.basis == "tenant" and "company" in a.reason


@given(st.floats(0, 1e9), st.floats(0, 1e9))
def test_thresholds_stay_between_the_floor_and_the_hard_cap(calls, minutes):
    t = threshold(Usual(calls, minutes), RULE, "own")
    assert RULE.floor_calls <= t.calls <= HARD_CAPS["user"]["attempts_per_hour"]
    assert t.minutes >= RULE.floor_minutes


def test_a_new_company_is_not_judged_until_something_was_learned():
    users, tenants, days = baselines(history(1, 9, "international", 1, days=3), RULE, TODAY)
    assert tenants == {} and anomalies(now(1, 9, "international", 20), users, tenants, days, RULE) == []


def test_history_counts_every_class_when_only_the_watched_ones_are_passed():
    """The control plane passes the watched classes' calls and each user's first call out of any class."""
    watched_only = history(2, 9, "international", 1)
    users, tenants, days = baselines(watched_only, RULE, TODAY, first_calls={1: (9, TODAY - 28), 2: (9, TODAY - 28)})
    assert days[1] == 28 and users[1] == {}  # a user who only calls at home has a history: no calls abroad
    [a] = anomalies(now(1, 9, "international", 3), users, tenants, days, RULE)
    assert a.threshold.basis == "own"
