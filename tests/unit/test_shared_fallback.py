"""The shell's side of the data center's counters (kemi/shell/ksr_fraud.py + ksr_shared.py) on the fake KSR: Redis'
counts decide when it answers; when it does not (ndb_redis' breaker: -2, or an answer that is not the script's) the
node's own counts decide, the failure is counted, and the call's verdict never waits for Redis again in that step."""
from __future__ import annotations

import dataclasses

import pytest

from kemi import contract as shm
from kemi.policy.fraud import FraudPolicy, Limits
from tests.harness.fake_ksr import shared

KSR = shared()
from kemi.shell import ksr_fraud  # noqa: E402


class Snap:
    version = 1

    def fraud_policy(self, tenant_id):
        return FraudPolicy(user=Limits(max_concurrent=1, attempts_per_minute=2, attempts_per_hour=100))


@pytest.fixture
def ksr(monkeypatch):
    k = shared()
    monkeypatch.setattr(ksr_fraud, "SETTINGS", dataclasses.replace(ksr_fraud.SETTINGS, shared_counters=True,
                                                                   node_name="fra-sip1"))
    ksr_fraud._limits_version[0] = -1
    return k


def redis_answers(ksr, *counts):
    for i, v in enumerate(counts):
        ksr.pv_values[f"$redis(cmf=>value[{i}])"] = str(v)


def test_redis_counts_decide_when_it_answers(ksr):
    redis_answers(ksr, 0, 0, 3, 3, 3, 3)  # three attempts in the data center this minute
    assert "more than 2 call attempts by the user in a minute" in ksr_fraud.admit(Snap(), 7, 42)
    assert ksr.htables.get(shm.FRAUD.name, {}) == {}  # the node's own counters untouched
    assert shm.SHARED_FAILURES not in ksr.htables.get(shm.SHARED.name, {})


@pytest.mark.parametrize("code, answer", [(-2, None), (-1, None), (1, ("1", "2", "3", "x", "5", "6")), (1, ("1", "2"))])
def test_without_redis_counts_the_nodes_own_decide_and_the_failure_is_counted(ksr, code, answer):
    ksr.returns["ndb_redis.redis_cmd_p1"] = code
    if answer:
        redis_answers(ksr, *answer)
    assert ksr_fraud.admit(Snap(), 7, 42) == ""  # first attempt on this node
    assert ksr_fraud.admit(Snap(), 7, 42) == ""
    assert "more than 2 call attempts" in ksr_fraud.admit(Snap(), 7, 42)  # the limit holds on the node's own counts
    assert ksr.htables[shm.SHARED.name][shm.SHARED_FAILURES] == 3


def test_a_call_in_progress_counts_on_the_node_always_and_in_the_data_center_by_its_dialog(ksr):
    ksr.pv_values["$_s($dlg(h_entry):$dlg(h_id))"] = "12:34"
    ksr.pv_values["$dlg(h_entry)"], ksr.pv_values["$dlg(h_id)"] = 12, 34
    ksr_fraud.answered("7:42:mobile:0.19")
    assert ksr.htables[shm.FRAUD_CALLS.name] == {"u42": 1, "t7": 1}
    started = [args for name, args in ksr.calls if name == "ndb_redis.redis_cmd_p2"]
    assert len(started) == 1 and started[0][3] == "fra-sip1:12:34" and "cm:f:u42:calls cm:f:t7:calls" in started[0][1]
    ksr.returns["ndb_redis.redis_cmd_p2"] = -2  # Redis away at the end: the node's count still comes off
    ksr_fraud.ended("7:42:mobile:0.19")
    assert ksr.htables[shm.FRAUD_CALLS.name] == {"u42": 0, "t7": 0}
    assert ksr.htables[shm.SHARED.name][shm.SHARED_FAILURES] == 1
