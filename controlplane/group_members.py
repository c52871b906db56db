"""A hunt group's ring members as users: users, single SIP accounts (only that device rings) and
teams (another group's members, as they are when the snapshot is compiled)."""

from __future__ import annotations

from typing import Callable

from controlplane.db.models import HuntGroup, SipAccount


def resolved_rings(
    g: HuntGroup, group_of: Callable[[int], HuntGroup | None], account_of: Callable[[int], SipAccount | None]
) -> list[list[dict]]:
    """Per ring, its members as {"user_id", "delay_s"[, "aor"]}, each user once per ring."""
    out = []
    for ring in g.rings:
        members, seen = [], set()
        for m in ring["members"]:
            for x in _expand(m, group_of, account_of, {g.id}):
                if x["user_id"] not in seen:
                    seen.add(x["user_id"])
                    members.append(x)
        out.append(members)
    return out


def member_users(g: HuntGroup, group_of, account_of) -> list[int]:
    return list(dict.fromkeys(m["user_id"] for ring in resolved_rings(g, group_of, account_of) for m in ring))


def groups_referring_to(s, tenant_id: int, user_id: int | None = None, sip_account_id: int | None = None) -> list[int]:
    """The groups of a tenant whose rings, VIP/block lists or forwarding name this user or SIP account."""
    from sqlmodel import select

    out = []
    for g in s.exec(select(HuntGroup).where(HuntGroup.tenant_id == tenant_id)).all():
        members = [m for ring in g.rings for m in ring["members"]]
        if sip_account_id is not None and any(m.get("sip_account_id") == sip_account_id for m in members):
            out.append(g.id)
        elif user_id is not None and (
            any(m.get("user_id") == user_id and m.get("sip_account_id") is None for m in members)
            or f"u{user_id}" in g.vip
            or any(b.get("key") == f"u{user_id}" or b.get("divert_user_id") == user_id for b in g.blocked)
            or any(r.get("target_user_id") == user_id for r in g.forwarding)
        ):
            out.append(g.id)
    return out


def session_lookups(s):
    return (lambda gid: s.get(HuntGroup, gid)), (lambda aid: s.get(SipAccount, aid))


def _expand(m: dict, group_of, account_of, visiting: set[int]) -> list[dict]:
    delay = m.get("delay_s", 0)
    if m.get("team_id") is not None:
        team = group_of(m["team_id"])
        if team is None or team.id in visiting:
            return []
        return [
            {**x, "delay_s": delay or x["delay_s"]}
            for ring in team.rings
            for mm in ring["members"]
            for x in _expand(mm, group_of, account_of, visiting | {team.id})
        ]
    if m.get("sip_account_id") is not None:
        acc = account_of(m["sip_account_id"])
        if acc is None:
            return []
        return [{"user_id": acc.user_id, "delay_s": delay, "aor": f"sip:{acc.username}@{acc.realm}"}]
    return [{"user_id": m["user_id"], "delay_s": delay}]
