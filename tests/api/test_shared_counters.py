"""The data center's shared counters (kemi/shell/ksr_shared.py) as Redis runs them: the scripts Kamailio sends
through ndb_redis, run here by redis-cli against a real Redis on the redis role's configuration, as the SIP nodes
connect (without AUTH) — attempts counted with their expiry, calls in progress
counted until they end or are certainly over. The path through Kamailio: tests/scenario/test_cluster_counters.py."""
from __future__ import annotations

import time

import pytest

from kemi.policy.fraud import HOUR_TTL_S, MINUTE_TTL_S, shared_call_keys, shared_counters, shared_keys
from tests.harness.fake_ksr import shared as fake_ksr
from tests.harness.redis import RedisServer

fake_ksr()  # the shell's module imports KSR
from kemi.shell import ksr_shared as sc  # noqa: E402


@pytest.fixture(scope="module")
def redis():
    server = RedisServer().start()
    yield server
    server.stop()


def attempt(redis, tenant, user, now):
    keys = shared_keys(tenant, user, now)
    out = redis.cli("EVAL", sc.ADMIT, "6", *keys, str(int(now)), str(MINUTE_TTL_S), str(HOUR_TTL_S), operator=False)
    return shared_counters(out.split())


def test_attempts_count_per_user_and_tenant_per_minute_and_hour_and_expire(redis):
    now = time.time()
    assert attempt(redis, 1, 10, now) == (0, 0, 1, 1, 1, 1)
    assert attempt(redis, 1, 10, now) == (0, 0, 2, 2, 2, 2)
    assert attempt(redis, 1, 11, now) == (0, 0, 1, 1, 3, 3)  # another user of the same tenant
    assert attempt(redis, 1, 10, now + 60) == (0, 0, 1, 3, 1, 4)  # the next minute: a new minute counter
    user_minute, user_hour = shared_keys(1, 10, now)[2:4]
    assert 0 < int(redis.cli("TTL", user_minute)) <= MINUTE_TTL_S
    assert MINUTE_TTL_S < int(redis.cli("TTL", user_hour)) <= HOUR_TTL_S


def test_a_call_in_progress_counts_until_it_ends_or_stops_being_renewed(redis):
    now = int(time.time())
    keys = shared_call_keys("2:20:mobile:0.19")
    redis.cli("EVAL", sc.STARTED, "2", *keys, "fra-sip1:123:456", str(now + 3600), "3700", operator=False)
    redis.cli("EVAL", sc.STARTED, "2", *keys, "fra-sip2:77:88", str(now - 1), "3700")  # its node died long ago
    assert attempt(redis, 2, 20, now)[:2] == (1, 1)  # only the live one counts
    assert redis.cli("ZCARD", keys[0]) == "1"  # the dead one is gone
    assert 3600 < int(redis.cli("TTL", keys[1])) <= 3700
    redis.cli("EVAL", sc.STARTED, "2", *shared_call_keys("2:21:mobile:0.19"), "fra-sip1:5:6", str(now + 3600), "3700")
    assert attempt(redis, 2, 20, now)[:2] == (1, 2)  # the tenant counts its other user's call too
    redis.cli("EVAL", sc.ENDED, "2", *keys, "fra-sip1:123:456", operator=False)
    redis.cli("EVAL", sc.ENDED, "2", *keys, "fra-sip1:123:456", operator=False)  # an end counted twice changes nothing
    assert attempt(redis, 2, 20, now)[:2] == (0, 1)


@pytest.mark.parametrize("command", [("GET", "x"), ("SET", "cm:f:x", "1"), ("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*"),
                                     ("EVAL", "return redis.call('GET', KEYS[1])", "1", "other:key"),
                                     ("EVAL", "return redis.call('FLUSHALL')", "0")])
def test_without_the_operators_password_nothing_but_the_counters_scripts_runs(redis, command):
    redis.cli("SET", "other:key", "kept")
    with pytest.raises(RuntimeError, match="NOPERM|no permissions|can't run this command"):
        redis.cli(*command, operator=False)
    assert redis.cli("GET", "other:key") == "kept"  # the operator's user may do anything


def test_renewed_calls_count_on_and_a_call_no_longer_renewed_stops_counting(redis):
    now = int(time.time())
    calls = [(*shared_call_keys(f"3:{30 + i}:mobile:0.19"), f"fra-sip1:{i}:1") for i in range(450)]  # three commands
    for first in range(0, len(calls), sc.RENEW_CHUNK):
        chunk = calls[first:first + sc.RENEW_CHUNK]
        keys = [k for u, t, _ in chunk for k in (u, t)]
        assert redis.cli("EVAL", sc.RENEW, str(len(keys)), *keys, str(now + 60), "120", *[c for *_, c in chunk],
                         operator=False) == str(len(chunk))
    assert attempt(redis, 3, 30, now)[:2] == (1, 450)
    assert attempt(redis, 3, 30, now + 61)[:2] == (0, 0)  # not renewed for longer than it was held: gone
