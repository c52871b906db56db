"""`queue.status`: the live view of hunt groups (issue 4, SUP-01 live view).

Per group: agents registered, logged in, available, in a call, in wrap-up; calls waiting (offered,
not answered yet) with their wait; the longest wait; today's calls offered, answered, abandoned
and overflowed. Live figures come from Kamailio (dialogs, registrations, htable `acd`), today's
from the CDRs.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlmodel import select

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.api.errors import component_down
from controlplane.api.permissions import Perm
from controlplane.api.rpc import method
from controlplane.db.models import (
    AgentLogin,
    Cdr,
    HuntGroup,
    PhoneNumber,
)

from kemi import contract as shm
from kemi.contract import DLG_AGENT

from .calls import _var, call_state
from .common import ListParams, in_scope
from controlplane.group_members import member_users, session_lookups
from controlplane.live_view import agent_end, htable_items, registered_agents  # noqa: F401  (htable_items: used by metrics)


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def group_status(
    app, s, g: HuntGroup, dialogs: list[dict], registered_users: set[int], now: float, acd: dict | None = None
) -> dict:
    """`registered_users`: agents with a registered device (Kamailio's htable acdreg, refreshed every 5 s)."""
    members = member_users(g, *session_lookups(s))
    out = {
        row.user_id
        for row in s.exec(select(AgentLogin).where(AgentLogin.group_id == g.id, AgentLogin.logged_in == False)).all()  # noqa: E712
    }
    dialled = {g.extension} | set(s.exec(select(PhoneNumber.e164).where(PhoneNumber.group_id == g.id)).all())
    waiting, in_call = [], set()
    for d in dialogs:
        if int(d.get("state", 0)) >= 5:
            continue
        agent = _var(d, DLG_AGENT)
        if agent and agent.split(":")[0] == str(g.id):
            in_call.add(int(agent.split(":")[2]))
        state = call_state(d)
        if (
            state is not None
            and state.record.callee in dialled
            and state.record.tenant_id == g.tenant_id
            and int(d.get("state", 0)) < 3
        ):
            queue = state.queue
            waiting.append(
                {
                    "call_id": d.get("call-id"),
                    "caller": state.record.caller,
                    "wait_s": round(now - state.record.start_ts, 1),
                    "priority": queue.priority if queue else 0,
                    "queued": bool(queue and queue.held),
                }
            )
    agents = []
    for uid in members:
        registered = uid in registered_users
        wrapup = agent_end((acd or {}).get(f"end:u{uid}"))[1] > now
        state = (
            "logged_out"
            if uid in out
            else "in_call"
            if uid in in_call
            else "wrap_up"
            if wrapup
            else "available"
            if registered
            else "unregistered"
        )
        agents.append({"user_id": uid, "registered": registered, "logged_in": uid not in out, "state": state})
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = s.exec(
        select(Cdr.disposition, Cdr.trace, Cdr.start_time, Cdr.answer_time).where(
            Cdr.tenant_id == g.tenant_id, Cdr.callee.in_(dialled), Cdr.start_time >= midnight
        )
    ).all()
    today = [(d, t) for d, t, _, _ in rows]
    overflowed = sum(1 for _, trace in today if "overflow" in trace)
    in_time = sum(
        1
        for d, _, start, answer in rows
        if d == "answered" and answer is not None and (answer - start).total_seconds() <= g.service_level_s
    )
    offered = len(today)
    answered = sum(1 for d, _ in today if d == "answered")
    count = {
        k: sum(1 for a in agents if a["state"] == k)
        for k in ("available", "in_call", "wrap_up", "logged_out", "unregistered")
    }
    return {
        "group_id": g.id,
        "name": g.name,
        "extension": g.extension,
        "agents": agents,
        "registered": sum(1 for a in agents if a["registered"]),
        "logged_in": sum(1 for a in agents if a["logged_in"]),
        **count,
        "waiting": sorted(waiting, key=lambda w: -w["wait_s"]),
        "longest_wait_s": max((w["wait_s"] for w in waiting), default=0.0),
        "today": {
            "offered": offered,
            "answered": answered,
            "answered_in_time": in_time,
            "abandoned": sum(1 for d, _ in today if d == "cancelled"),
            "overflowed": overflowed,
        },
        # service level: answered within service_level_s of all offered; answer rate: answered of all offered (None:
        # none offered)
        "service_level_s": g.service_level_s,
        "service_level": round(in_time / offered, 4) if offered else None,
        "answer_rate": round(answered / offered, 4) if offered else None,
    }


@method("queue.status", ListParams, errors=("unavailable",), perm=Perm.GROUPS)
def status(ctx, p: ListParams):
    """Live view of the hunt groups: agents by state, waiting calls, longest wait, today's figures."""
    ctx.principal.tenant_scope(p.tenant_id)  # another tenant's: refused before anything is read
    try:
        dialogs = ctx.app.kamailio.dialogs()
        registered = registered_agents(ctx.app)
    except KamailioRpcError as exc:
        raise component_down("kamailio", exc) from None
    now = time.time()
    with ctx.app.read() as s:
        stmt = select(HuntGroup).order_by(HuntGroup.id)
        stmt = in_scope(stmt, HuntGroup.tenant_id, ctx.principal, p.tenant_id)
        groups = s.exec(stmt.limit(p.limit).offset(p.offset)).all()
        acd = htable_items(ctx.app, shm.ACD.name) if groups else {}
        return {"items": [group_status(ctx.app, s, g, dialogs, registered, now, acd) for g in groups]}
