"""The data center's shared counters (fraud limits in a cluster), in its Redis through Kamailio's `ndb_redis`.

Only when the node has a Redis (`redis_address`; docs/cluster.md). Each operation is one `EVAL` (atomic in Redis, one
round trip) and, for the attempt, one read of its six numbers. `ndb_redis` is the breaker (kamailio.cfg): a command
that gets no answer in 200 ms fails and disables Redis for this worker for 5 s, during which every command fails at
once — so a Redis that hangs costs a worker one wait, not one per request. Every failure returns None to the caller,
which then counts on the node's own htables (kemi.policy.fraud.counters_in_force), and is counted in htable
`cmshared` (`callmanager_shared_counters_failures_total`).
"""

from __future__ import annotations

import KSR

from kemi import contract as shm
from kemi.policy.fraud import HOUR_TTL_S, MINUTE_TTL_S, Counters, shared_counters, shared_keys

from . import wire

SERVER = "cm"  # ndb_redis' name for the data center's Redis (kamailio.cfg REDIS_SERVER)
REPLY = "cmf"  # the reply container, reused by every command of this worker
STATS = shm.SHARED.name

# KEYS: the user's and the tenant's calls in progress (sorted sets scored by when each is certainly over), then the
# user's minute and hour and the tenant's minute and hour attempt counters. ARGV: now, a minute's and an hour's TTL.
# Returns the six counts (calls in progress without this one; attempts with it).
ADMIT = (
    "local now = tonumber(ARGV[1]) local r = {} "
    "for i = 1, 2 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) r[i] = redis.call('ZCARD', KEYS[i]) end "
    "for i = 3, 6 do r[i] = redis.call('INCR', KEYS[i]) "
    "if r[i] == 1 then redis.call('EXPIRE', KEYS[i], (i % 2 == 1) and ARGV[2] or ARGV[3]) end end "
    "return r"
)
# KEYS: the user's and the tenant's calls in progress. ARGV: the call, until when it counts, the sets' TTL.
STARTED = (
    "for i = 1, 2 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) redis.call('EXPIRE', KEYS[i], ARGV[3]) end return 1"
)
# KEYS: pairs of sets (user's, tenant's), one pair per call. ARGV: until when they count, the sets' TTL, then the
# calls in the same order. Returns how many calls were renewed.
RENEW = (
    "local n = 0 for i = 3, #ARGV do for j = 0, 1 do local k = KEYS[2 * (i - 3) + 1 + j] "
    "redis.call('ZADD', k, ARGV[1], ARGV[i]) redis.call('EXPIRE', k, ARGV[2]) end n = n + 1 end "
    "return n"
)
RENEW_CHUNK = 200  # calls per command
# KEYS: the same. ARGV: the call.
ENDED = "for i = 1, 2 do redis.call('ZREM', KEYS[i], ARGV[1]) end return 1"

_COUNTS = wire.one_format([f"$redis({REPLY}=>value[{i}])" for i in range(len(Counters._fields))])


def admit(tenant_id: int, user_id: int, now: float) -> Counters | None:
    """Count this attempt in the data center; its counts, or None when Redis did not answer them."""
    keys = " ".join(shared_keys(tenant_id, user_id, now))
    counts = None
    if (
        KSR.ndb_redis.redis_cmd_p1(SERVER, f"EVAL %s 6 {keys} {int(now)} {MINUTE_TTL_S} {HOUR_TTL_S}", ADMIT, REPLY)
        >= 0
    ):
        counts = shared_counters(wire.split(KSR.pv.gete(_COUNTS), len(Counters._fields)))
    if counts is None:
        _failed()
    return counts


def started(keys: tuple[str, str], call: str, until: int, ttl_s: int) -> bool:
    """An answered call counts as in progress in the data center until it ends (or `until`, whichever is first)."""
    return _done(
        KSR.ndb_redis.redis_cmd_p2(SERVER, f"EVAL %s 2 {keys[0]} {keys[1]} %s {until} {ttl_s}", STARTED, call, REPLY)
    )


def renew(calls: list[tuple[str, str, str]], until: int, ttl_s: int) -> bool:
    """The node's calls in progress (user's set, tenant's set, call) count on until `until`."""
    for first in range(0, len(calls), RENEW_CHUNK):
        chunk = calls[first : first + RENEW_CHUNK]
        keys = " ".join(f"{u} {t}" for u, t, _ in chunk)
        members = " ".join(c for _, _, c in chunk)
        command = f"EVAL %s {2 * len(chunk)} {keys} {until} {ttl_s} {members}"
        if not _done(KSR.ndb_redis.redis_cmd_p1(SERVER, command, RENEW, REPLY)):
            return False
    return True


def ended(keys: tuple[str, str], call: str) -> bool:
    return _done(KSR.ndb_redis.redis_cmd_p2(SERVER, f"EVAL %s 2 {keys[0]} {keys[1]} %s", ENDED, call, REPLY))


def _done(code: int) -> bool:
    if code < 0:
        _failed()
    return code >= 0


def _failed() -> None:
    KSR.htable.sht_inc(STATS, shm.SHARED_FAILURES)
