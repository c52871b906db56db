"""Fraud controls on calls out: each tenant's policy (limits, graded response), the tariff, the
locks in force and the spend so far (SEC-06..08).

The policy's figures never exceed the hard caps (kemi.policy.fraud.HARD_CAPS): a higher value is
an error, not silently lowered. The tariff is imported as CSV (`prefix,rate_per_min,currency,
description`; docs/security.md), every line checked before anything is written. Locks are set by
the spend monitor (controlplane/services/fraud_monitor.py) or by an admin, and lifted only by an admin.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func
from sqlmodel import delete, select

from controlplane.services.notify import TargetRefused, check_webhook
from controlplane.api.errors import Forbidden, Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Cdr, FraudLock, FraudPolicyRow, TariffRate, Tenant, User
from kemi.policy.fraud import DEFAULT_POLICY, HARD_CAPS, LIMITS, Limits
from kemi.policy.numbering import DestClass

from .common import SipText, Id, ListParams, get_scoped, page

SAMPLE_TARIFF = Path(__file__).resolve().parents[1] / "data" / "sample_tariff.csv"
Level = Literal[2, 3, 4]


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrent: int | None = Field(None, ge=0)
    attempts_per_minute: int | None = Field(None, ge=0)
    attempts_per_hour: int | None = Field(None, ge=0)
    spend_day: float | None = Field(None, ge=0)
    spend_month: float | None = Field(None, ge=0)

    def over_caps(self, scope: str) -> list[str]:
        caps = HARD_CAPS[scope]
        return [
            f"{scope}.{k} {getattr(self, k)} > {caps[k]}"
            for k in LIMITS
            if getattr(self, k) is not None and getattr(self, k) > caps[k]
        ]


class PolicySet(Params):
    tenant_id: Id
    user: LimitsIn | None = Field(None, description="limits per user (0: only the hard cap)")
    tenant: LimitsIn | None = Field(None, description="limits for the whole tenant")

    @model_validator(mode="after")
    def _caps(self):
        over = (self.user.over_caps("user") if self.user else []) + (
            self.tenant.over_caps("tenant") if self.tenant else []
        )
        if over:
            raise ValueError("above the hard caps: " + ", ".join(over))
        return self

    warn_ratio: float | None = Field(None, gt=0, lt=1, description="level 1 warning at this share of a spend limit")
    spend_level: Level | None = Field(
        None, description="response when a spend limit is reached: 2 block the class, 3 lock outgoing, 4 lock entirely"
    )
    anomaly_level: Literal[1, 2, 3, 4] | None = Field(
        None, description="response to calls out far beyond a user's usual: 1 warn only, 2..4 as above"
    )
    allow_high_risk: bool | None = None
    outbound: Literal[tuple(c.value for c in DestClass)] | None = Field(  # type: ignore[valid-type]
        None, description="the tenant's ceiling of destination classes; users' own permissions apply within it"
    )
    notify_email: str | None = Field(None, max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")
    notify_webhook: str | None = Field(None, max_length=500, pattern=r"^$|^https?://\S+$")


class TenantParams(Params):
    tenant_id: Id


def _limits(stored: dict, default: Limits) -> dict:
    return {k: stored.get(k, getattr(default, k)) for k in LIMITS}


def policy_doc(row: FraudPolicyRow | None, tenant_id: int) -> dict:
    d = DEFAULT_POLICY
    return {
        "tenant_id": tenant_id,
        "user": _limits(row.user_limits if row else {}, d.user),
        "tenant": _limits(row.tenant_limits if row else {}, d.tenant),
        "warn_ratio": row.warn_ratio if row else d.warn_ratio,
        "spend_level": row.spend_level if row else d.spend_level,
        "anomaly_level": row.anomaly_level if row else d.anomaly_level,
        "allow_high_risk": row.allow_high_risk if row else d.allow_high_risk,
        "outbound": row.outbound if row else d.outbound,
        "notify_email": row.notify_email if row else "",
        "notify_webhook": row.notify_webhook if row else "",
        "hard_caps": HARD_CAPS,
        "high_risk": list(d.high_risk),
    }


@method("fraud.policy_get", TenantParams, errors=("not_found",), perm=Perm.FRAUD)
def policy_get(ctx, p: TenantParams):
    """A tenant's fraud policy in force (the defaults where it sets nothing), with the hard caps."""
    with ctx.app.read() as s:
        get_scoped(s, Tenant, p.tenant_id, ctx.principal, "tenant")
        return policy_doc(s.get(FraudPolicyRow, p.tenant_id), p.tenant_id)


# What a carrier decides for a tenant, not the tenant itself: high-risk destinations, the tenant's ceiling of
# destination
# classes, and where notifications are posted (a URL the control plane calls: SSRF in a tenant's hands).
PLATFORM_ONLY = ("allow_high_risk", "outbound", "notify_webhook")


@method("fraud.policy_set", PolicySet, errors=("invalid_params", "not_found", "forbidden"), perm=Perm.FRAUD)
def policy_set(ctx, p: PolicySet):
    """Change a tenant's fraud policy (only what is given); limits above the hard caps are refused."""
    carrier_level = [n for n in PLATFORM_ONLY if getattr(p, n) is not None]
    if carrier_level and not ctx.principal.can(Perm.PLATFORM):
        raise Forbidden(
            f"{', '.join(carrier_level)}: set by the platform operator, not by a tenant",
            required="platform token",
            fields=carrier_level,
        )
    if p.notify_webhook:
        try:
            check_webhook(p.notify_webhook, ctx.app.settings.webhook_private_ok, unresolved_ok=True)
        except TargetRefused as exc:
            raise InvalidParams(f"notify_webhook: {exc}", field="notify_webhook", value=p.notify_webhook) from None
    with ctx.app.write() as s:
        get_scoped(s, Tenant, p.tenant_id, ctx.principal, "tenant")
        row = s.get(FraudPolicyRow, p.tenant_id) or FraudPolicyRow(tenant_id=p.tenant_id)
        if p.user is not None:
            row.user_limits = {**_limits(row.user_limits, DEFAULT_POLICY.user), **p.user.model_dump(exclude_none=True)}
        if p.tenant is not None:
            row.tenant_limits = {
                **_limits(row.tenant_limits, DEFAULT_POLICY.tenant),
                **p.tenant.model_dump(exclude_none=True),
            }
        for name in (
            "warn_ratio",
            "spend_level",
            "anomaly_level",
            "allow_high_risk",
            "outbound",
            "notify_email",
            "notify_webhook",
        ):
            if getattr(p, name) is not None:
                setattr(row, name, getattr(p, name))
        row.updated_at = datetime.now(timezone.utc)
        s.add(row)
        s.flush()
        return policy_doc(row, p.tenant_id)


# ---------------------------------------------------------------- tariff


def parse_tariff(text: str) -> list[dict]:
    """Every line of a tariff CSV checked; InvalidParams listing the bad lines (nothing is written then)."""
    rows, errors, seen = [], [], set()
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"prefix", "rate_per_min"} <= set(reader.fieldnames):
        raise InvalidParams("the CSV needs a header with at least prefix,rate_per_min", field="csv")
    for n, line in enumerate(reader, start=2):
        prefix = (line.get("prefix") or "").strip()
        try:
            rate = float(line.get("rate_per_min") or "")
        except ValueError:
            rate = -1.0
        currency = (line.get("currency") or "EUR").strip().upper()
        problem = (
            "prefix must be + and up to 15 digits"
            if not (prefix.startswith("+") and prefix[1:].isdigit() or prefix == "+") or len(prefix) > 16
            else "rate_per_min must be a number >= 0"
            if rate < 0
            else "currency must be 3 letters"
            if not (len(currency) == 3 and currency.isalpha())
            else f"prefix {prefix} twice"
            if prefix in seen
            else ""
        )
        if problem:
            errors.append({"line": n, "error": problem})
            continue
        seen.add(prefix)
        rows.append(
            {
                "prefix": prefix,
                "rate_per_min": rate,
                "currency": currency,
                "description": (line.get("description") or "").strip()[:200],
            }
        )
    if not errors and len({r["currency"] for r in rows}) > 1:
        errors.append({"line": 0, "error": "one tariff, one currency"})
    if errors:
        raise InvalidParams(
            f"{len(errors)} line(s) of the tariff are invalid; nothing was imported", errors=errors[:50]
        )
    if not rows:
        raise InvalidParams("the tariff has no lines", field="csv")
    return rows


class TariffImport(Params):
    csv: str = Field(min_length=1, max_length=5_000_000)
    replace: bool = Field(True, description="replace the whole tariff (else: add and update prefixes)")


@method("fraud.tariff_import", TariffImport, errors=("invalid_params", "forbidden"), perm=Perm.PLATFORM)
def tariff_import(ctx, p: TariffImport):
    """Import the platform's tariff from CSV: every line is checked first; one bad line, nothing written."""
    ctx.principal.require_platform()
    rows = parse_tariff(p.csv)
    with ctx.app.write() as s:
        if p.replace:
            s.exec(delete(TariffRate))
        elif (
            other := s.exec(select(TariffRate.currency).where(TariffRate.currency != rows[0]["currency"])).first()
        ) is not None:
            raise Conflict(f"the tariff is in {other}; these lines are in {rows[0]['currency']}", field="csv")
        for r in rows:
            s.merge(TariffRate(**r))
    return {"imported": len(rows), "replaced": p.replace}


class TariffList(ListParams):
    prefix: str | None = Field(None, max_length=16, description="rates whose prefix starts with this")


@method("fraud.tariff_list", TariffList, perm=Perm.FRAUD)
def tariff_list(ctx, p: TariffList):
    """The tariff, by prefix."""
    with ctx.app.read() as s:
        stmt = select(TariffRate).order_by(TariffRate.prefix)
        if p.prefix:
            stmt = stmt.where(TariffRate.prefix.startswith(p.prefix))
        return page(s, stmt, p.limit, p.offset, lambda r: r.model_dump(mode="json"))


def ensure_sample_tariff(engine) -> None:
    """A node starts with the sample tariff (so spend limits mean something) until an operator imports one. Control
    planes of a new cluster starting at once on one database: one writes it, the others' inserts lose (one
    transaction: all rows or none), which is fine — they failed to start on it before."""
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session

    with Session(engine) as s:
        if s.exec(select(TariffRate)).first() is None:
            for r in parse_tariff(SAMPLE_TARIFF.read_text()):
                s.add(TariffRate(**r))
            try:
                s.commit()
            except IntegrityError:
                s.rollback()


# ---------------------------------------------------------------- locks


def lock_doc(lk: FraudLock) -> dict:
    return lk.model_dump(mode="json") | {"active": lk.lifted_at is None}


class LockList(ListParams):
    user_id: Id | None = None
    active: bool | None = Field(True, description="only locks in force (true), only lifted ones (false), all (null)")


@method("fraud.locks", LockList, perm=Perm.FRAUD)
def locks(ctx, p: LockList):
    """Fraud locks, newest first: level 2 a destination class blocked, 3 outgoing calls locked, 4 locked entirely."""
    with ctx.app.read() as s:
        stmt = select(FraudLock).order_by(FraudLock.id.desc())
        scope = ctx.principal.tenant_scope(p.tenant_id)
        if scope is not None:
            stmt = stmt.where(FraudLock.tenant_id == scope)
        if p.user_id is not None:
            stmt = stmt.where(FraudLock.user_id == p.user_id)
        if p.active is not None:
            stmt = stmt.where(FraudLock.lifted_at.is_(None) if p.active else FraudLock.lifted_at.is_not(None))
        return page(s, stmt, p.limit, p.offset, lock_doc)


class LockSet(Params):
    user_id: Id
    level: Level
    dest_class: Literal[tuple(c.value for c in DestClass if c is not DestClass.INTERNAL)] | None = None  # type: ignore[valid-type]
    reason: SipText = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _class(self):
        if (self.level == 2) != (self.dest_class is not None):
            raise ValueError("a level 2 lock names the destination class it blocks; other levels none")
        return self


def _who(ctx) -> str:
    return f"admin (token {ctx.principal.token_id})" if ctx.principal.token_id else "admin (platform)"


@method("fraud.lock", LockSet, errors=("invalid_params", "not_found"), perm=Perm.FRAUD)
def lock(ctx, p: LockSet):
    """Lock a user by hand (the same levels as the automatic response)."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        lk = FraudLock(
            tenant_id=user.tenant_id,
            user_id=user.id,
            level=p.level,
            dest_class=p.dest_class or "",
            reason=p.reason,
            set_by=_who(ctx),
        )
        s.add(lk)
        s.flush()
        return lock_doc(lk)


class LockLift(Params):
    id: Id
    reason: SipText = Field(min_length=1, max_length=200, description="why it is lifted (kept with the lock)")


@method("fraud.lift_lock", LockLift, errors=("invalid_params", "not_found", "conflict"), perm=Perm.FRAUD)
def lift_lock(ctx, p: LockLift):
    """Lift a fraud lock (only an admin can); who and why are kept with it."""
    with ctx.app.write() as s:
        lk = get_scoped(s, FraudLock, p.id, ctx.principal, "lock")
        if lk.lifted_at is not None:
            raise Conflict(f"lock {lk.id} was lifted already", lifted_at=lk.lifted_at.isoformat())
        lk.lifted_at, lk.lifted_by, lk.lift_reason = datetime.now(timezone.utc), _who(ctx), p.reason
        s.add(lk)
        s.flush()
        return lock_doc(lk)


# ---------------------------------------------------------------- spend


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def settled_spend(s, since_month: datetime, since_day: datetime, tenant_id: int | None = None) -> tuple[dict, dict]:
    """Spend of finished calls out this month and today: ({user: (day, month)}, {tenant: (day, month)})."""
    day_part = func.sum(Cdr.cost).filter(Cdr.start_time >= since_day)
    stmt = (
        select(Cdr.tenant_id, Cdr.payer_user_id, func.coalesce(day_part, 0.0), func.sum(Cdr.cost))
        .where(Cdr.payer_user_id.is_not(None), Cdr.start_time >= since_month, Cdr.cost > 0)
        .group_by(Cdr.tenant_id, Cdr.payer_user_id)
    )
    if tenant_id is not None:
        stmt = stmt.where(Cdr.tenant_id == tenant_id)
    users: dict[int, tuple[float, float]] = {}
    tenants: dict[int, tuple[float, float]] = {}
    for tid, uid, day, month in s.exec(stmt).all():
        if uid is not None:
            users[uid] = (float(day), float(month))
        t_day, t_month = tenants.get(tid, (0.0, 0.0))
        tenants[tid] = (t_day + float(day), t_month + float(month))
    return users, tenants


@method("fraud.spend", TenantParams, errors=("not_found",), perm=Perm.FRAUD)
def spend(ctx, p: TenantParams):
    """What the tenant and each of its users spent on finished calls out today and this month (UTC), against the
    limits."""
    now = datetime.now(timezone.utc)
    day, month = period_starts(now)
    with ctx.app.read() as s:
        get_scoped(s, Tenant, p.tenant_id, ctx.principal, "tenant")
        users, tenants = settled_spend(s, month, day, p.tenant_id)
        pol = policy_doc(s.get(FraudPolicyRow, p.tenant_id), p.tenant_id)
    t_day, t_month = tenants.get(p.tenant_id, (0.0, 0.0))
    return {
        "tenant": {"day": round(t_day, 4), "month": round(t_month, 4), "limits": pol["tenant"]},
        "users": [{"user_id": u, "day": round(d, 4), "month": round(m, 4)} for u, (d, m) in sorted(users.items())],
        "user_limits": pol["user"],
    }


# ---------------------------------------------------------------- learned baselines


class BaselineParams(Params):
    user_id: Id
    refresh: bool = Field(False, description="learn again from the CDRs now")


@method("fraud.baseline", BaselineParams, errors=("not_found",), perm=Perm.FRAUD)
def baseline(ctx, p: BaselineParams):
    """A user's usual calls out and the thresholds in force, by hour of day (UTC) for the watched classes:
    what the anomaly detection compares the current hour with, and why."""
    import time as _time

    from kemi.policy.baseline import threshold

    with ctx.app.read() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        tenant_id = user.tenant_id
    mon = ctx.app.fraud
    if p.refresh or mon.baselines is None:
        mon.refresh_baselines(_time.time())
    users, tenants, days, at = mon.baselines
    rule = mon.rule
    own = days.get(p.user_id, 0) >= rule.min_days
    base = users.get(p.user_id, {}) if own else tenants.get(tenant_id, {})
    hours = []
    for h in range(24):
        for cls in rule.watched:
            usual = base.get((h, cls))
            th = threshold(usual, rule, "own" if own else "tenant")
            hours.append(
                {
                    "hour": h,
                    "dest_class": cls,
                    "usual_calls": round(usual.calls, 3) if usual else 0.0,
                    "usual_minutes": round(usual.minutes, 2) if usual else 0.0,
                    "threshold_calls": round(th.calls, 2),
                    "threshold_minutes": round(th.minutes, 1),
                }
            )
    return {
        "user_id": p.user_id,
        "days_of_history": days.get(p.user_id, 0),
        "basis": "own" if own else "tenant",
        "learned_at": datetime.fromtimestamp(at, timezone.utc).isoformat(),
        "rule": rule._asdict(),
        "hours": hours,
    }
