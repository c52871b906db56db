"""Learning the normal (SEC-07, the dynamic security system): each user's usual calls out by hour
of day and destination class, and when the present departs from it.

Pure functions. The control plane feeds them the calls out of the last `window_days` days
(from the CDRs) and of the current hour; they answer each user's baseline (calls and minutes per
hour of day and class, averaged over the days), the thresholds derived from it (k x baseline,
never below a floor that tolerates the odd call, never above the hard caps), and the anomalies
of the current hour. A user with too little history is measured against their tenant's usual
user (the tenant's default), so a new account is not a blank cheque either; a tenant with no
user of enough history is not judged yet (its limits still apply).
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

from .fraud import HARD_CAPS


class CallOut(NamedTuple):
    user_id: int
    tenant_id: int
    hour: int  # 0..23 (UTC) of the start
    day: int  # days since the epoch (UTC)
    dest_class: str
    minutes: float


class Rule(NamedTuple):
    window_days: int = 28
    min_days: int = 7  # less history than this: the tenant's usual user is the baseline
    k: float = 3.0  # a threshold is k times the baseline ...
    floor_calls: float = 2.0  # ... but at least this many calls in an hour ...
    floor_minutes: float = 30.0  # ... and minutes
    watched: tuple[str, ...] = ("europe", "international", "special")  # the classes where abuse costs money


class Usual(NamedTuple):
    calls: float  # per hour, averaged over the days of the window
    minutes: float


Baseline = Mapping[tuple[int, str], Usual]  # (hour, class) -> usual


def baselines(
    calls: Iterable[CallOut], rule: Rule, today: int, first_calls: Mapping[int, tuple[int, int]] | None = None
) -> tuple[dict[int, dict], dict[int, dict], dict[int, int]]:
    """({user: baseline}, {tenant: its usual user's baseline}, {user: days of history}) from the window's calls.

    `first_calls` ({user: (tenant, day of their first call out in the window)}, any class) lets the caller
    pass only the watched classes' calls and still count every user's history."""
    first_day: dict[int, int] = {u: max(d, today - rule.window_days) for u, (_t, d) in (first_calls or {}).items()}
    per_user: dict[int, dict[tuple[int, str], list[float]]] = {u: {} for u in first_day}
    tenant_of: dict[int, int] = {u: t for u, (t, _d) in (first_calls or {}).items()}
    for c in calls:
        if c.day < today - rule.window_days or c.day >= today:
            continue
        tenant_of[c.user_id] = c.tenant_id
        first_day[c.user_id] = min(first_day.get(c.user_id, c.day), c.day)
        cell = per_user.setdefault(c.user_id, {}).setdefault((c.hour, c.dest_class), [0.0, 0.0])
        cell[0] += 1
        cell[1] += c.minutes
    days = {u: min(today - d, rule.window_days) for u, d in first_day.items()}
    users = {
        u: {key: Usual(n / max(days[u], 1), m / max(days[u], 1)) for key, (n, m) in cells.items()}
        for u, cells in per_user.items()
    }
    tenants: dict[int, dict] = {}
    members: dict[int, list[int]] = {}
    for u, t in tenant_of.items():
        if days[u] >= rule.min_days:
            members.setdefault(t, []).append(u)
    for t, us in members.items():
        sums: dict[tuple[int, str], list[float]] = {}
        for u in us:
            for key, usual in users[u].items():
                s = sums.setdefault(key, [0.0, 0.0])
                s[0] += usual.calls
                s[1] += usual.minutes
        tenants[t] = {key: Usual(n / len(us), m / len(us)) for key, (n, m) in sums.items()}
    return users, tenants, days


class Threshold(NamedTuple):
    calls: float
    minutes: float
    basis: str  # "own" | "tenant" (too little history of their own)


def threshold(usual: Usual | None, rule: Rule, basis: str) -> Threshold:
    """k x usual, at least the floors, at most the hard caps (a user's attempts an hour; a day's spend as minutes is
    not capped here)."""
    calls = max(rule.k * (usual.calls if usual else 0.0), rule.floor_calls)
    minutes = max(rule.k * (usual.minutes if usual else 0.0), rule.floor_minutes)
    return Threshold(min(calls, HARD_CAPS["user"]["attempts_per_hour"]), minutes, basis)


class Anomaly(NamedTuple):
    user_id: int
    tenant_id: int
    dest_class: str
    hour: int
    calls: int
    minutes: float
    threshold: Threshold

    @property
    def reason(self) -> str:
        what = (
            "their usual" if self.threshold.basis == "own" else "the company's usual user (little history of their own)"
        )
        return (
            f"{self.calls} {self.dest_class} call(s), {self.minutes:.0f} min between {self.hour:02d}:00 and "
            f"{self.hour:02d}:59 UTC; "
            f"the threshold from {what} is {self.threshold.calls:.1f} calls / {self.threshold.minutes:.0f} min"
        )


def anomalies(
    current: Iterable[CallOut],
    users: Mapping[int, Baseline],
    tenants: Mapping[int, Baseline],
    days: Mapping[int, int],
    rule: Rule,
) -> list[Anomaly]:
    """The current hour's calls out per user and watched class, against each user's thresholds."""
    now: dict[tuple[int, int, str, int], list[float]] = {}
    for c in current:
        if c.dest_class in rule.watched:
            cell = now.setdefault((c.user_id, c.tenant_id, c.dest_class, c.hour), [0, 0.0])
            cell[0] += 1
            cell[1] += c.minutes
    out = []
    for (user, tenant, cls, hour), (n, minutes) in sorted(now.items()):
        own = days.get(user, 0) >= rule.min_days
        if not own and tenant not in tenants:
            continue  # a new company: nothing learned yet, its limits still apply
        base = users.get(user, {}) if own else tenants[tenant]
        th = threshold(base.get((hour, cls)), rule, "own" if own else "tenant")
        if n > th.calls or minutes > th.minutes:
            out.append(Anomaly(user, tenant, cls, hour, int(n), minutes, th))
    return out
