"""Time plans: weekly ranges in a time zone, minus public holidays and custom dates (TEL, ACD time control).

A plan is "active" inside one of its ranges on a day that is neither a public holiday of its
`holidays_country`/`holidays_subdiv` (library `holidays`) nor one of its `closed_dates`.
Forwarding rules fire inside or outside a plan.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import ForwardingRule, HuntGroup, Tenant, TimePlan
from kemi.policy.timeplan import parse_minutes

from .common import check_unique_name, Id, IdParams, ListParams, Name, dump, get_scoped, in_scope, page

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: list[Day] = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, inclusive")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", description="HH:MM, exclusive (24:00 = midnight)")

    @model_validator(mode="after")
    def _order(self):
        if parse_minutes(self.end) <= parse_minutes(self.start):
            raise ValueError(
                f"range {self.start}-{self.end} is empty (end must be after start; split ranges over midnight)"
            )
        return self


def _check_overlaps(ranges: list[Range]) -> None:
    seen: dict[str, list[tuple[int, int]]] = {}
    for r in ranges:
        span = (parse_minutes(r.start), parse_minutes(r.end))
        for d in r.days:
            for other in seen.get(d, []):
                if span[0] < other[1] and other[0] < span[1]:
                    raise InvalidParams(f"ranges overlap on {d}: {r.start}-{r.end}", field="ranges", day=d)
            seen.setdefault(d, []).append(span)


def _tz(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{v!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return v


def _holidays(country: str | None, subdiv: str | None) -> None:
    if country is None:
        if subdiv is not None:
            raise InvalidParams("holidays_subdiv needs holidays_country", field="holidays_subdiv")
        return
    import holidays

    try:
        holidays.country_holidays(country, subdiv=subdiv, years=date.today().year)
    except (NotImplementedError, KeyError) as exc:
        raise InvalidParams(f"no holiday calendar for {country}/{subdiv}: {exc}", field="holidays_country") from None


class PlanFields(Params):
    tz: str | None = None
    ranges: list[Range] | None = None
    holidays_country: str | None = Field(None, description="ISO country whose public holidays close the plan, e.g. DE")
    holidays_subdiv: str | None = Field(None, description="state/region for regional holidays, e.g. BY")
    closed_dates: list[date] | None = Field(None, description="further dates the plan is closed")

    _v_tz = field_validator("tz")(classmethod(lambda cls, v: _tz(v)))


class PlanCreate(PlanFields):
    tenant_id: Id | None = None
    name: Name
    ranges: list[Range] = Field(min_length=1)


class PlanUpdate(PlanFields):
    id: Id
    name: Name | None = None


def _apply(plan: TimePlan, p: PlanFields) -> None:
    if p.ranges is not None:
        _check_overlaps(p.ranges)
        plan.ranges = [r.model_dump() for r in p.ranges]
    if p.tz is not None:
        plan.tz = p.tz
    if p.holidays_country is not None or p.holidays_subdiv is not None:
        country = (p.holidays_country or plan.holidays_country or "").upper() or None
        subdiv = (p.holidays_subdiv or "").upper() or None
        _holidays(country, subdiv)
        plan.holidays_country, plan.holidays_subdiv = country, subdiv
    if p.closed_dates is not None:
        plan.closed_dates = sorted({d.isoformat() for d in p.closed_dates})


def _check_name(s, tenant_id: int, name: str, exclude_id: int | None = None) -> None:
    check_unique_name(s, TimePlan, tenant_id, name, "time plan", exclude_id)


@method("time_plan.create", PlanCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def create(ctx, p: PlanCreate):
    """Create a time plan (ranges must not be empty or overlap)."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.write() as s:
        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        _check_name(s, tenant_id, p.name)
        plan = TimePlan(tenant_id=tenant_id, name=p.name)
        _apply(plan, p)
        s.add(plan)
        s.flush()
        return dump(plan)


@method("time_plan.get", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def get(ctx, p: IdParams):
    """Get one time plan."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, TimePlan, p.id, ctx.principal, "time_plan"))


@method("time_plan.list", ListParams, perm=Perm.CONFIG)
def list_(ctx, p: ListParams):
    """List time plans."""
    with ctx.app.read() as s:
        stmt = select(TimePlan).order_by(TimePlan.id)
        stmt = in_scope(stmt, TimePlan.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("time_plan.update", PlanUpdate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def update(ctx, p: PlanUpdate):
    """Change a time plan; rules using it follow from the next call on."""
    with ctx.app.write() as s:
        plan = get_scoped(s, TimePlan, p.id, ctx.principal, "time_plan")
        if p.name is not None:
            _check_name(s, plan.tenant_id, p.name, exclude_id=plan.id)
            plan.name = p.name
        _apply(plan, p)
        s.add(plan)
        s.flush()
        return dump(plan)


@method("time_plan.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a time plan no rule uses."""
    with ctx.app.write() as s:
        plan = get_scoped(s, TimePlan, p.id, ctx.principal, "time_plan")
        used = s.exec(select(ForwardingRule.id).where(ForwardingRule.time_plan_id == plan.id)).all()
        if used:
            raise Conflict(
                f"time plan {plan.id} is used by forwarding rule(s) {list(used)[:20]}", rule_ids=list(used)[:20]
            )
        groups = [
            g.id
            for g in s.exec(select(HuntGroup).where(HuntGroup.tenant_id == plan.tenant_id)).all()
            if any(r.get("time_plan_id") == plan.id for r in g.forwarding)
        ]
        if groups:
            raise Conflict(
                f"time plan {plan.id} is used by the forwarding of group(s) {groups[:20]}", group_ids=groups[:20]
            )
        s.delete(plan)
        return {"deleted": True, "id": p.id}
