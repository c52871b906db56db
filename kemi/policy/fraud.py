"""Fraud controls on outgoing calls (SEC-06..08): what a call may cost, how many a user and a
tenant may make, and the graded response when they go too far.

Pure functions. The snapshot carries each tenant's `FraudPolicy`, the tariff and the locks in
force; the shell counts call attempts and calls in progress in shared memory and asks
`check_limits`; the control plane's monitor adds up the spend of finished and running calls
and asks `spend_response` what to do (warn, block a destination class, lock, end calls).

Levels of the graded response:
1. warning: an event (and the tenant's admin is notified);
2. the destination class that caused it is blocked for the user;
3. the user's outgoing calls are locked;
4. the user is locked entirely (no calls from or to them).
Every lock names who set it and why, and only an admin lifts it. Emergency calls (110/112)
pass every control and are never ended.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

# The hard caps: no tenant policy, learned threshold or admin setting goes above these.
HARD_CAPS = {
    "user": {
        "max_concurrent": 50,
        "attempts_per_minute": 120,
        "attempts_per_hour": 2_000,
        "spend_day": 10_000.0,
        "spend_month": 100_000.0,
    },
    "tenant": {
        "max_concurrent": 5_000,
        "attempts_per_minute": 60_000,
        "attempts_per_hour": 1_000_000,
        "spend_day": 1_000_000.0,
        "spend_month": 10_000_000.0,
    },
}
LIMITS = tuple(HARD_CAPS["user"])
SPEND_LIMITS = ("spend_day", "spend_month")

# Countries where fraudulent traffic usually terminates (calling codes; premium and satellite ranges
# among them). Calls there need the tenant's explicit permission (`allow_high_risk`).
HIGH_RISK_DEFAULT = (
    "+216",
    "+222",
    "+223",
    "+225",
    "+232",
    "+235",
    "+236",
    "+237",
    "+239",
    "+241",
    "+243",
    "+252",
    "+255",
    "+257",
    "+269",
    "+375",
    "+381",
    "+670",
    "+672",
    "+674",
    "+675",
    "+676",
    "+677",
    "+678",
    "+679",
    "+682",
    "+683",
    "+685",
    "+686",
    "+687",
    "+688",
    "+690",
    "+691",
    "+692",
    "+881",
    "+882",
    "+883",
    "+960",
    "+963",
    "+967",
)


class Limits(NamedTuple):
    """0 means: no limit of this kind (the hard cap still applies)."""

    max_concurrent: int = 0  # external calls in progress at once
    attempts_per_minute: int = 0
    attempts_per_hour: int = 0
    spend_day: float = 0.0  # currency units (the tariff's), since midnight UTC
    spend_month: float = 0.0  # since the first of the month (UTC)

    def capped(self, scope: str = "user") -> "Limits":
        """Each limit within its hard cap (scope: user or tenant); 'no limit' becomes the cap."""
        caps = HARD_CAPS[scope]
        return Limits._make(min(v, caps[k]) if v else caps[k] for k, v in zip(LIMITS, self))


class FraudPolicy(NamedTuple):
    user: Limits = Limits(
        max_concurrent=4, attempts_per_minute=20, attempts_per_hour=200, spend_day=50.0, spend_month=500.0
    )
    tenant: Limits = Limits(
        max_concurrent=60, attempts_per_minute=300, attempts_per_hour=3000, spend_day=500.0, spend_month=5000.0
    )
    warn_ratio: float = 0.8  # level 1 when a spend reaches this share of its limit
    spend_level: int = 3  # the response when a spend limit is reached (2, 3 or 4)
    allow_high_risk: bool = False
    high_risk: tuple[str, ...] = HIGH_RISK_DEFAULT
    anomaly_level: int = (
        2  # calls out far beyond the user's usual (kemi.policy.baseline): 1 warn, 2 block the class, 3, 4
    )
    outbound: str = "special"  # the tenant's ceiling of destination classes (a user's own permission applies within it)


DEFAULT_POLICY = FraudPolicy()


class Lock(NamedTuple):
    id: int
    user_id: int
    level: int  # 2 (dest_class blocked), 3 (outgoing locked), 4 (locked entirely)
    dest_class: str = ""  # level 2: the class blocked
    reason: str = ""


class Tariff(NamedTuple):
    """Price per minute by E.164 prefix, longest prefix wins."""

    rates: Mapping[str, float]
    currency: str = "EUR"
    longest: int = 0

    def rate_for(self, e164: str) -> tuple[str, float]:
        """(the matching prefix, price per minute); ('', 0.0) when no prefix matches."""
        for n in range(min(self.longest, len(e164)), 0, -1):
            rate = self.rates.get(e164[:n])
            if rate is not None:
                return e164[:n], rate
        return "", 0.0


def tariff(rates: Mapping[str, float], currency: str = "EUR") -> Tariff:
    return Tariff(dict(rates), currency, max((len(p) for p in rates), default=0))


def high_risk(e164: str, policy: FraudPolicy) -> str:
    """The high-risk country code this number belongs to ('' if none, or allowed for the tenant)."""
    if policy.allow_high_risk:
        return ""
    return next((cc for cc in policy.high_risk if e164.startswith(cc)), "")


def lock_refusal(locks: tuple[Lock, ...], dest_class: str | None) -> Lock | None:
    """The lock that refuses a call of this user (to dest_class; None: an internal call), if any."""
    for lock in locks:
        if lock.level >= 4:
            return lock
        if dest_class is not None and (lock.level == 3 or (lock.level == 2 and lock.dest_class == dest_class)):
            return lock
    return None


class Counters(NamedTuple):
    """What the shell counted for this call attempt (this attempt included)."""

    user_concurrent: int = 0  # external calls of the user in progress (this one not yet)
    tenant_concurrent: int = 0
    user_minute: int = 0
    user_hour: int = 0
    tenant_minute: int = 0
    tenant_hour: int = 0


# In a cluster the attempts and the calls in progress are counted for the whole data center in its Redis
# (docs/cluster.md), keyed as below. A call in progress is a member of its user's and its tenant's set, scored with
# the time until which it counts: SHARED_HOLD_S from its answer, renewed every SHARED_RENEW_S by its node while it
# lasts. So a call whose end never reached Redis (its node died, Redis hung as it ended — commands it had queued
# may even run after it answers again) stops counting within SHARED_HOLD_S instead of blocking its user.
SHARED_PREFIX = "cm:f:"
MINUTE_TTL_S, HOUR_TTL_S = 120, 7200  # a minute's and an hour's attempt counters outlive their minute/hour
SHARED_HOLD_S, SHARED_RENEW_S = 60, 15


def shared_keys(tenant_id: int, user_id: int, now: float) -> tuple[str, ...]:
    """The data center's counters of one attempt, in Counters' order: the user's and the tenant's calls in progress,
    then the attempts of the user's minute and hour and the tenant's minute and hour."""
    m, h = int(now) // 60, int(now) // 3600
    u, t = f"{SHARED_PREFIX}u{user_id}", f"{SHARED_PREFIX}t{tenant_id}"
    return (f"{u}:calls", f"{t}:calls", f"{u}:m{m}", f"{u}:h{h}", f"{t}:m{m}", f"{t}:h{h}")


def shared_call_keys(mark: str) -> tuple[str, str] | None:
    """The user's and the tenant's sets of calls in progress for a call's mark (`tenant:user:class:rate`)."""
    tenant, _, rest = mark.partition(":")
    user = rest.partition(":")[0]
    if not (tenant.isascii() and tenant.isdigit() and user.isascii() and user.isdigit()):
        return None
    return f"{SHARED_PREFIX}u{user}:calls", f"{SHARED_PREFIX}t{tenant}:calls"


def shared_renewals(running: list[tuple[str, str]], node: str) -> list[tuple[str, str, str]]:
    """The node's calls out in progress (htable fraudrun: dialog -> `tenant:user:class:rate:answered at`) as what
    renews them in the data center: (user's set, tenant's set, the call's member). Items that are not such a call are
    left out."""
    out = []
    for dialog, value in running:
        keys = shared_call_keys(value) if isinstance(value, str) else None
        if keys is not None and dialog:
            out.append((keys[0], keys[1], f"{node}:{dialog}"))
    return out


def shared_counters(values: list[str] | tuple[str, ...] | None) -> Counters | None:
    """The data center's counts as Redis answered them (six integers), or None when the answer is not that — then
    the node's own counts decide (`counters_in_force`)."""
    if values is None or len(values) != len(Counters._fields):
        return None
    counts = []
    for v in values:
        if not (v.isascii() and v.isdigit()):
            return None
        counts.append(int(v))
    return Counters(*counts)


def counters_in_force(shared: Counters | None, local: Counters) -> Counters:
    """What the limits are checked against. The data center's counts when its Redis answered; when it did not
    (unreachable, slow, disabled by the breaker) the node's own: every limit stays in force, per node — a user can
    reach it once on each node of the data center until Redis is back — and no call is refused for Redis' sake."""
    return shared if shared is not None else local


def capped_limits(policy: FraudPolicy) -> tuple[Limits, Limits]:
    """The user's and the tenant's limits in force (each within its hard cap): what check_limits compares with."""
    return policy.user.capped("user"), policy.tenant.capped("tenant")


def check_limits(policy: FraudPolicy, c: Counters, limits: tuple[Limits, Limits] | None = None) -> str:
    """Why this external call is refused now ('' when it may go): concurrency and attempt rates.
    `limits`: capped_limits(policy), when the caller keeps them (they change only with the policy)."""
    u, t = limits or capped_limits(policy)
    if c.user_concurrent >= u.max_concurrent:
        return f"the user has {c.user_concurrent} external calls in progress (limit {u.max_concurrent})"
    if c.tenant_concurrent >= t.max_concurrent:
        return f"the company has {c.tenant_concurrent} external calls in progress (limit {t.max_concurrent})"
    if c.user_minute > u.attempts_per_minute:
        return f"more than {u.attempts_per_minute} call attempts by the user in a minute"
    if c.user_hour > u.attempts_per_hour:
        return f"more than {u.attempts_per_hour} call attempts by the user in an hour"
    if c.tenant_minute > t.attempts_per_minute:
        return f"more than {t.attempts_per_minute} call attempts by the company in a minute"
    if c.tenant_hour > t.attempts_per_hour:
        return f"more than {t.attempts_per_hour} call attempts by the company in an hour"
    return ""


# ---------------------------------------------------------------- spend, during the call


class RunningCall(NamedTuple):
    key: str  # how the shell/monitor finds the call again (dialog id)
    tenant_id: int
    user_id: int
    dest_class: str
    rate: float  # per minute
    seconds: float  # answered this long ago
    emergency: bool = False

    @property
    def cost(self) -> float:
        return 0.0 if self.emergency else self.rate * self.seconds / 60.0


class Spend(NamedTuple):
    day: float = 0.0
    month: float = 0.0


class Response(NamedTuple):
    level: int
    tenant_id: int
    user_id: int | None  # None: the tenant's limit (its users' calls in progress are ended, nobody is locked)
    limit: str  # spend_day | spend_month
    spent: float
    allowed: float
    dest_class: str = ""  # level 2: the class blocked (the one the most was spent on)
    end_calls: tuple[str, ...] = ()  # calls in progress to end now
    why: str = ""  # the reason, when it is not a spend (an anomaly)

    @property
    def reason(self) -> str:
        if self.why:
            return self.why
        who = f"user {self.user_id}" if self.user_id is not None else f"tenant {self.tenant_id}"
        return f"{self.limit.replace('_', ' per ')} of {who}: {self.spent:.2f} of {self.allowed:.2f}" + (
            " (warning)" if self.level == 1 else ""
        )


def spend_response(
    policy: FraudPolicy, tenant_id: int, user_id: int | None, settled: Spend, running: list[RunningCall]
) -> list[Response]:
    """What to do about one user's (or, with user_id None, one tenant's) spend: settled (finished calls) plus
    the running cost of its calls in progress. A limit reached: the tenant's response level, and the calls in
    progress that count against it are ended (never emergency calls). A warning at warn_ratio."""
    limits = policy.user.capped("user") if user_id is not None else policy.tenant.capped("tenant")
    mine = [
        c for c in running if c.tenant_id == tenant_id and (user_id is None or c.user_id == user_id) and not c.emergency
    ]
    now_running = sum(c.cost for c in mine)
    out = []
    for name, spent in (("spend_day", settled.day + now_running), ("spend_month", settled.month + now_running)):
        allowed = getattr(limits, name)
        if spent >= allowed:
            level = policy.spend_level if user_id is not None else 3
            by_class: dict[str, float] = {}
            for c in mine:
                by_class[c.dest_class] = by_class.get(c.dest_class, 0.0) + c.cost
            worst = max(by_class, key=lambda k: by_class[k]) if by_class else ""
            ended = tuple(c.key for c in mine if level != 2 or c.dest_class == worst)
            out.append(Response(level, tenant_id, user_id, name, spent, allowed, worst if level == 2 else "", ended))
            break  # the day's limit is reached first; one response is enough
        if spent >= allowed * policy.warn_ratio:
            out.append(Response(1, tenant_id, user_id, name, spent, allowed))
    return out


def anomaly_response(policy: FraudPolicy, anomaly, running: list[RunningCall]) -> Response:
    """The graded response to an anomaly (kemi.policy.baseline): the tenant's anomaly_level; level 2 blocks the class
    and ends the user's calls of that class in progress, 3 and 4 all the user's calls out in progress."""
    level = policy.anomaly_level
    mine = [c for c in running if c.user_id == anomaly.user_id and c.tenant_id == anomaly.tenant_id and not c.emergency]
    ended = () if level == 1 else tuple(c.key for c in mine if level > 2 or c.dest_class == anomaly.dest_class)
    return Response(
        level,
        anomaly.tenant_id,
        anomaly.user_id,
        f"anomaly {anomaly.dest_class}",
        float(anomaly.calls),
        anomaly.threshold.calls,
        anomaly.dest_class if level == 2 else "",
        ended,
        why=f"unusual for this user: {anomaly.reason}",
    )
