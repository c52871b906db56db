"""`cm fraud`: events, banned sources, accounts cooling down, the tenant's policy, the tariff, locks, spend.

Everything else the API takes is reachable with `cm rpc fraud.<method> key=value key:=json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import _area, rpc, show

fraud = _area("fraud", "fraud controls: events, bans, cool-downs, policy, tariff, locks, spend")

E_COLS = ["time", "kind", "level", "tenant_id", "user_id", "source", "account", "reason", "acknowledged_at"]
L_COLS = [
    "id",
    "tenant_id",
    "user_id",
    "level",
    "dest_class",
    "reason",
    "set_by",
    "created_at",
    "lifted_at",
    "lifted_by",
]


@fraud.command("events")
def events(
    tenant_id: Optional[int] = None,
    kind: Optional[str] = None,
    source: Optional[str] = None,
    account: Optional[str] = None,
    open_only: bool = typer.Option(False, "--open", help="only events nobody acknowledged"),
    min_level: int = 1,
    limit: int = 50,
):
    """Fraud events, newest first."""
    show(
        rpc(
            "fraud.events",
            tenant_id=tenant_id,
            kind=kind,
            source=source,
            account=account,
            acknowledged=False if open_only else None,
            min_level=min_level,
            limit=limit,
        ),
        E_COLS,
    )


@fraud.command("ack")
def ack(ids: list[str]):
    """Acknowledge events by id."""
    show(rpc("fraud.acknowledge", ids=ids))


@fraud.command("bans")
def bans():
    """Sources banned now at this node's edge."""
    show(rpc("fraud.bans"), ["source", "cause", "seconds_left"])


@fraud.command("lift-ban")
def lift_ban(source: str, reason: str = ""):
    show(rpc("fraud.lift_ban", source=source, reason=reason))


@fraud.command("cooldowns")
def cooldowns(tenant_id: Optional[int] = None):
    """SIP accounts refused now after failed authentications."""
    show(rpc("fraud.cooldowns", tenant_id=tenant_id), ["account", "sip_account_id", "tenant_id", "seconds_left"])


@fraud.command("lift-cooldown")
def lift_cooldown(sip_account_id: int, reason: str = ""):
    show(rpc("fraud.lift_cooldown", id=sip_account_id, reason=reason))


@fraud.command("policy")
def policy(tenant_id: int):
    """A tenant's fraud policy in force
    (set it with `cm rpc fraud.policy_set tenant_id=1 user:='{"spend_day": 20}'`)."""
    show(rpc("fraud.policy_get", tenant_id=tenant_id))


@fraud.command("tariff-import")
def tariff_import(
    csv_file: Path, add: bool = typer.Option(False, help="add/update prefixes instead of replacing the tariff")
):
    """Import the platform tariff from a CSV file (prefix,rate_per_min,currency,description);
    all lines checked first."""
    show(rpc("fraud.tariff_import", csv=csv_file.read_text(encoding="utf-8"), replace=not add))


@fraud.command("tariff")
def tariff(prefix: Optional[str] = None, limit: int = 100):
    show(rpc("fraud.tariff_list", prefix=prefix, limit=limit), ["prefix", "rate_per_min", "currency", "description"])


@fraud.command("locks")
def locks(
    tenant_id: Optional[int] = None,
    user_id: Optional[int] = None,
    all_: bool = typer.Option(False, "--all", help="lifted ones too"),
):
    show(rpc("fraud.locks", tenant_id=tenant_id, user_id=user_id, active=None if all_ else True), L_COLS)


@fraud.command("lock")
def lock(user_id: int, level: int, reason: str, dest_class: Optional[str] = None):
    """Lock a user by hand: 2 (with --dest-class) blocks a class, 3 outgoing calls, 4 everything."""
    show(rpc("fraud.lock", user_id=user_id, level=level, dest_class=dest_class, reason=reason), L_COLS)


@fraud.command("lift-lock")
def lift_lock(id: int, reason: str):
    show(rpc("fraud.lift_lock", id=id, reason=reason), L_COLS)


@fraud.command("spend")
def spend(tenant_id: int):
    """Spend on finished calls out today and this month, tenant and users."""
    show(rpc("fraud.spend", tenant_id=tenant_id))
