"""Fraud controls: events, banned sources, accounts cooling down after failed authentications (SEC-06..08, SEC-10).

Events come from the Kamailio workers through the record spool (bans, cool-downs, refused
addresses) and from the control plane (what an admin lifted). Bans and cool-downs themselves
are live state in Kamailio's htables (`ban`, `authlock`, see kemi/shell/edge.py): listed and
lifted here over Kamailio's JSON-RPC. A source is not a tenant's: bans are for operators of
the platform; a tenant's admin sees and lifts the cool-downs of their own accounts.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, field_validator
from sqlmodel import select

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.api.errors import NotFound, component_down
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.services.cdr_ingest import FRAUD_KINDS
from controlplane.db.models import FraudEvent, SipAccount

from .common import SipText, IdParams, ListParams, TimeRange, get_scoped, page
from kemi import contract as shm

ADMIN_KINDS = frozenset(
    {"ban_lifted", "cooldown_lifted", "spend_warning", "anomaly", "lock"}
)  # written by the control plane
Kind = Literal[tuple(sorted(FRAUD_KINDS | ADMIN_KINDS))]  # type: ignore[valid-type]


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


class EventList(TimeRange, ListParams):
    kind: Kind | None = None  # type: ignore[valid-type]  # a Literal of the kinds, built from their sets
    source: str | None = Field(None, description="events about this IP address")
    account: str | None = Field(None, max_length=320, description="events about this SIP account (user@realm)")
    acknowledged: bool | None = Field(None, description="only acknowledged (true) or open (false) events")
    min_level: int = Field(1, ge=1, le=4)

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        return None if v is None else _ip(v)


def serialise(e: FraudEvent) -> dict:
    return e.model_dump(mode="json", exclude={"ingested_at"})


def _scoped(stmt, ctx, tenant_id: int | None):
    """Tenant tokens see their tenant's events; the node's edge events (no tenant) only platform tokens."""
    scope = ctx.principal.tenant_scope(tenant_id)
    return stmt if scope is None else stmt.where(FraudEvent.tenant_id == scope)


@method("fraud.events", EventList, perm=Perm.FRAUD)
def events(ctx, p: EventList):
    """Fraud events, newest first: bans, accounts cooling down, the right password from a refused address, lifts."""
    with ctx.app.read() as s:
        stmt = _scoped(select(FraudEvent).order_by(FraudEvent.time.desc(), FraudEvent.id), ctx, p.tenant_id)
        if p.kind:
            stmt = stmt.where(FraudEvent.kind == p.kind)
        if p.since:
            stmt = stmt.where(FraudEvent.time >= p.since.astimezone(timezone.utc))
        if p.until:
            stmt = stmt.where(FraudEvent.time < p.until.astimezone(timezone.utc))
        if p.source:
            stmt = stmt.where(FraudEvent.source == p.source)
        if p.account:
            stmt = stmt.where(FraudEvent.account == p.account)
        if p.acknowledged is not None:
            stmt = stmt.where(
                FraudEvent.acknowledged_at.is_not(None) if p.acknowledged else FraudEvent.acknowledged_at.is_(None)
            )
        if p.min_level > 1:
            stmt = stmt.where(FraudEvent.level >= p.min_level)
        return page(s, stmt, p.limit, p.offset, serialise)


class Acknowledge(Params):
    ids: list[str] = Field(min_length=1, max_length=1000, description="event ids")


@method("fraud.acknowledge", Acknowledge, errors=("invalid_params", "not_found"), perm=Perm.FRAUD)
def acknowledge(ctx, p: Acknowledge):
    """Mark events as seen (all of them or, if one is unknown or another tenant's, none)."""
    wanted = list(dict.fromkeys(p.ids))
    with ctx.app.write() as s:
        rows = _scoped(select(FraudEvent).where(FraudEvent.id.in_(wanted)), ctx, None)
        found = {e.id: e for e in s.exec(rows).all()}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"{len(missing)} event(s) do not exist", ids=missing[:20])
        now = datetime.now(timezone.utc)
        who = f"token {ctx.principal.token_id}" if ctx.principal.token_id else "platform"
        changed = 0
        for e in found.values():
            if e.acknowledged_at is None:
                e.acknowledged_at, e.acknowledged_by = now, who
                changed += 1
        return {"acknowledged": changed, "already": len(found) - changed}


# ---------------------------------------------------------------- bans (the node's edge)


def _htable(ctx, table: str) -> dict[str, object]:
    """Items of a Kamailio htable, {name: value}; Unavailable when Kamailio does not answer."""
    try:
        return ctx.app.kamailio.htable_items(table)
    except KamailioRpcError as exc:
        raise component_down("kamailio", exc) from None


def _delete(ctx, table: str, key: str) -> None:
    try:
        ctx.app.kamailio.call("htable.delete", table, key)
    except KamailioRpcError:
        pass  # not there (any more): nothing to lift


def _lifted(ctx, kind: str, reason: str, **fields) -> None:
    with ctx.app.write() as s:
        s.add(
            FraudEvent(
                id=str(uuid.uuid4()),
                time=datetime.now(timezone.utc),
                kind=kind,
                level=1,
                reason=reason[:300],
                detail={"by": f"token {ctx.principal.token_id}" if ctx.principal.token_id else "platform"},
                **fields,
            )
        )


@method("fraud.bans", Params, errors=("forbidden", "unavailable"), perm=Perm.PLATFORM)
def bans(ctx, p: Params):
    """Sources banned now at this node's edge (platform tokens only): address, cause, seconds left."""
    ctx.principal.require_platform()
    out = [{"source": ip, "cause": cause, "seconds_left": left} for ip, (cause, left) in sorted(_banned(ctx).items())]
    return {"items": out, "total": len(out)}


def _banned(ctx) -> dict[str, tuple[str, int]]:
    """Banned sources now: {ip: (cause, seconds left)} (Kamailio removes expired items only every few seconds)."""
    now = time.time()
    out = {}
    for ip, item in _htable(ctx, shm.BAN.name).items():
        cause, _, end = str(item).partition(":")
        if end.isdigit() and int(end) > now:
            out[ip] = (cause, round(int(end) - now))
    return out


class BanLift(Params):
    source: str = Field(description="the banned IP address")
    reason: SipText = Field("", max_length=200)

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        return _ip(v)


@method(
    "fraud.lift_ban", BanLift, errors=("invalid_params", "forbidden", "not_found", "unavailable"), perm=Perm.PLATFORM
)
def lift_ban(ctx, p: BanLift):
    """Lift a source's ban now (its failed-authentication count starts again from zero)."""
    ctx.principal.require_platform()
    if p.source not in _banned(ctx):
        raise NotFound(f"{p.source} is not banned", source=p.source)
    _delete(ctx, shm.BAN.name, p.source)
    _delete(ctx, shm.AUTHFAIL.name, f"src:{p.source}")
    _lifted(ctx, "ban_lifted", f"ban of {p.source} lifted" + (f": {p.reason}" if p.reason else ""), source=p.source)
    return {"source": p.source, "lifted": True}


# ---------------------------------------------------------------- accounts cooling down


def _cooling(ctx) -> dict[str, float]:
    now = time.time()
    out = {}
    for key, item in _htable(ctx, shm.AUTHLOCK.name).items():
        if key.startswith("until:"):
            try:
                until = float(item)
            except (TypeError, ValueError):
                continue
            if until > now:
                out[key[len("until:") :]] = until
    return out


@method("fraud.cooldowns", ListParams, errors=("unavailable",), perm=Perm.FRAUD)
def cooldowns(ctx, p: ListParams):
    """SIP accounts refused now after repeated failed authentications, with the seconds left."""
    scope = ctx.principal.tenant_scope(p.tenant_id)  # another tenant's: refused before anything is read
    cooling = _cooling(ctx)
    with ctx.app.read() as s:
        accounts = {f"{a.username}@{a.realm}": a for a in s.exec(select(SipAccount)).all()}
    now = time.time()
    out = []
    for name, until in sorted(cooling.items()):
        acc = accounts.get(name)
        if scope is not None and (acc is None or acc.tenant_id != scope):
            continue  # unknown names (guessed ones) are the platform's business
        out.append(
            {
                "account": name,
                "sip_account_id": acc.id if acc else None,
                "tenant_id": acc.tenant_id if acc else None,
                "seconds_left": round(until - now),
            }
        )
    return {"items": out[p.offset : p.offset + p.limit], "total": len(out), "limit": p.limit, "offset": p.offset}


class CooldownLift(IdParams):
    reason: SipText = Field("", max_length=200)


@method("fraud.lift_cooldown", CooldownLift, errors=("not_found", "unavailable"), perm=Perm.FRAUD)
def lift_cooldown(ctx, p: CooldownLift):
    """Let a SIP account (by id) authenticate again now; its count of failures starts from zero."""
    with ctx.app.read() as s:
        acc = get_scoped(s, SipAccount, p.id, ctx.principal, "sip_account")
        name, tenant_id, user_id = f"{acc.username}@{acc.realm}", acc.tenant_id, acc.user_id
    if name not in _cooling(ctx):
        raise NotFound(f"SIP account {name} is not cooling down", sip_account_id=p.id)
    _delete(ctx, shm.AUTHLOCK.name, f"until:{name}")
    _delete(ctx, shm.AUTHFAIL.name, f"acct:{name}")
    _lifted(
        ctx,
        "cooldown_lifted",
        f"cool-down of {name} lifted" + (f": {p.reason}" if p.reason else ""),
        account=name,
        tenant_id=tenant_id,
        user_id=user_id,
    )
    return {"account": name, "lifted": True}
