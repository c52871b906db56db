"""Hunt groups (issue 4, ACD-01..24): configuration, agents logging in and out, and a preview.

A group has an extension, rings (stages) of members (users, single SIP accounts, teams) with a
strategy each, a queue, screening, its own status and forwarding, and an overflow target; all
validated here and compiled into the routing snapshot. `group.preview` runs the policy core's
`hunting.plan` on the live state and shows which ring and member a call would reach, and why.
See docs/groups.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams, Unavailable
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import (
    IvrMenu,
    Mailbox,
    AgentLogin,
    Extension,
    HuntGroup,
    SipAccount,
    Tenant,
    TimePlan,
    User,
)
from controlplane.numbering import e164
from controlplane.services.audio import MAX_BYTES, AudioRefused, install
from kemi.policy import hunting

from .common import Id, IdParams, ListParams, Name, dump, get_scoped, in_scope, page
from controlplane.group_members import member_users, session_lookups

Strategy = Literal["broadcast", "top_down", "circular", "longest_idle"]


class MemberIn(BaseModel):
    """A ring member: a user (all their devices ring), one SIP account (only that device), or a team
    (another group: all its members, as they are when calls arrive)."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id | None = None
    sip_account_id: Id | None = None
    team_id: Id | None = None
    delay_s: int = Field(0, ge=0, le=120, description="offered only after this many seconds (delay of ring signalling)")


class RingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[MemberIn] = Field(min_length=1)
    strategy: Strategy = "broadcast"
    wait_s: int = Field(20, ge=1, le=600)
    member_s: int = Field(10, ge=1, le=120, description="sequential strategies: seconds per member")
    keep_previous: bool = False
    busy_members: Literal["skip", "ring"] = "skip"
    dnd_members: Literal["skip", "ring"] = Field(
        "skip", description="ring: the group's calls ring through a member's DND"
    )


class CallerIn(BaseModel):
    """A caller on a group's VIP or block list: an external number or a user of the tenant."""

    model_config = ConfigDict(extra="forbid")
    number: str | None = None
    user_id: Id | None = None
    divert_user_id: Id | None = Field(None, description="block list: divert to this user instead of rejecting ...")
    divert_number: str | None = Field(None, description="... or to this public number")


class GroupRuleIn(BaseModel):
    """The group's own forwarding: unconditional (e.g. outside a time plan: night service) or while the group is away
    / dnd."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["unconditional", "away", "dnd"]
    target_user_id: Id | None = None
    target_number: str | None = None
    target_group_id: Id | None = None
    callers: Literal["all", "internal", "external", "vip", "non_vip"] = "all"
    time_plan_id: Id | None = None
    when: Literal["in", "outside"] = "in"


MAX_RINGS = 10  # stages per group (each ring's circular pointer is read on every call, kemi/shell/ksr_read.py)


class GroupFields(Params):
    rings: list[RingIn] | None = Field(None, min_length=1, max_length=MAX_RINGS)
    overflow_user_id: int | None = Field(None, ge=0, description="0 clears")
    overflow_number: str | None = Field(None, description="'' clears")
    overflow_group_id: int | None = Field(None, ge=0, description="0 clears")
    overflow_mailbox_id: int | None = Field(None, ge=0, description="the group's mailbox (ACD-22); 0 clears")
    max_waiting: int | None = Field(None, ge=0, le=1000)
    presentation: Literal["caller", "group", "clir"] | None = None
    wrapup_s: int | None = Field(None, ge=0, le=3600)
    callback_window_s: int | None = Field(None, ge=0, le=7 * 86400)
    service_level_s: int | None = Field(
        None, ge=1, le=600, description="service level: answered within this many seconds (default 20)"
    )
    skills: dict[str, int] | None = Field(None, description="required skill -> minimum level (1-10)")
    skills_fallback: bool | None = None
    queue_s: int | None = Field(
        None, ge=0, le=3600, description="nobody free: callers wait up to this long, then overflow (0: at once)"
    )
    queue_music: bool | None = Field(
        None, description="with a media server: waiting callers hear the greeting, music and their place (not ringing)"
    )
    queue_announce_s: int | None = Field(
        None, ge=0, le=600, description="waiting callers hear their place this often (0: never)"
    )
    anonymous: Literal["allow", "reject"] | None = None
    status: Literal["online", "away", "dnd"] | None = Field(
        None, description="the group's own status: away/dnd follow its forwarding"
    )
    vip: list[CallerIn] | None = Field(None, max_length=1000, description="callers who wait ahead of all others")
    blocked: list[CallerIn] | None = Field(None, max_length=1000, description="callers rejected (603) or diverted")
    forwarding: list[GroupRuleIn] | None = Field(
        None, max_length=50, description="replaces the group's forwarding rules"
    )


class GroupCreate(GroupFields):
    tenant_id: Id | None = None
    name: Name
    extension: str = Field(pattern=r"^[0-9]{2,8}$")
    rings: list[RingIn] = Field(min_length=1, max_length=MAX_RINGS)


class GroupUpdate(GroupFields):
    id: Id
    name: Name | None = None
    extension: str | None = Field(None, pattern=r"^[0-9]{2,8}$")


class LoginParams(Params):
    group_id: Id
    user_id: Id


def _apply(s, ctx, g: HuntGroup, p: GroupFields) -> None:
    if p.rings is not None:
        rings = []
        for i, ring in enumerate(p.rings, 1):
            seen, members = set(), []
            for m in ring.members:
                members.append(_member(s, g, m, i))
                key = tuple(sorted((k, v) for k, v in members[-1].items() if k != "delay_s"))
                if key in seen:
                    raise InvalidParams(f"ring {i}: member {dict(key)} is listed twice", field="rings")
                seen.add(key)
            rings.append({**ring.model_dump(exclude={"members"}), "members": members})
        g.rings = rings
    if p.skills is not None:
        if any(not (1 <= v <= 10) or not k.strip() for k, v in p.skills.items()):
            raise InvalidParams("skills: names non-empty, levels 1 to 10", field="skills")
        g.skills = dict(p.skills)
    if p.vip is not None:
        g.vip = [_caller_key(s, g, c, "vip", divert=False)["key"] for c in p.vip]
    if p.blocked is not None:
        g.blocked = [_caller_key(s, g, c, "blocked", divert=True) for c in p.blocked]
    if p.forwarding is not None:
        g.forwarding = [_group_rule(s, g, r, i) for i, r in enumerate(p.forwarding)]
    for name in (
        "max_waiting",
        "presentation",
        "wrapup_s",
        "callback_window_s",
        "skills_fallback",
        "queue_s",
        "queue_music",
        "queue_announce_s",
        "anonymous",
        "status",
        "service_level_s",
    ):
        if getattr(p, name) is not None:
            setattr(g, name, getattr(p, name))
    if p.overflow_user_id is not None:
        if p.overflow_user_id and (
            s.get(User, p.overflow_user_id) is None or s.get(User, p.overflow_user_id).tenant_id != g.tenant_id
        ):
            raise InvalidParams("overflow_user_id: not a user of this tenant", field="overflow_user_id")
        g.overflow_user_id = p.overflow_user_id or None
    if p.overflow_number is not None:
        g.overflow_number = e164(p.overflow_number, "overflow_number") if p.overflow_number else None
    if p.overflow_group_id is not None:
        target = s.get(HuntGroup, p.overflow_group_id) if p.overflow_group_id else None
        if p.overflow_group_id and (target is None or target.tenant_id != g.tenant_id):
            raise InvalidParams("overflow_group_id: not a group of this tenant", field="overflow_group_id")
        g.overflow_group_id = target.id if target else None
    if p.overflow_mailbox_id is not None:
        box = s.get(Mailbox, p.overflow_mailbox_id) if p.overflow_mailbox_id else None
        if p.overflow_mailbox_id and (box is None or box.tenant_id != g.tenant_id):
            raise InvalidParams("overflow_mailbox_id: not a mailbox of this tenant", field="overflow_mailbox_id")
        g.overflow_mailbox_id = box.id if box else None
    targets = (g.overflow_user_id, g.overflow_number, g.overflow_group_id, g.overflow_mailbox_id)
    if sum(x is not None for x in targets) > 1:
        raise InvalidParams("give at most one overflow target (user, number, group or mailbox)")


def _member(s, g: HuntGroup, m: MemberIn, i: int) -> dict:
    given = [k for k in ("user_id", "sip_account_id", "team_id") if getattr(m, k) is not None]
    if len(given) != 1:
        raise InvalidParams(
            f"ring {i}: give exactly one of user_id, sip_account_id and team_id per member", field="rings"
        )
    if m.user_id is not None:
        user = s.get(User, m.user_id)
        if user is None or user.tenant_id != g.tenant_id:
            raise InvalidParams(
                f"ring {i}: user {m.user_id} is not a user of this tenant", field="rings", user_id=m.user_id
            )
        return {"user_id": user.id, "delay_s": m.delay_s}
    if m.sip_account_id is not None:
        acc = s.get(SipAccount, m.sip_account_id)
        if acc is None or acc.tenant_id != g.tenant_id:
            raise InvalidParams(
                f"ring {i}: SIP account {m.sip_account_id} is not an account of this tenant", field="rings"
            )
        return {"sip_account_id": acc.id, "user_id": acc.user_id, "delay_s": m.delay_s}
    team = s.get(HuntGroup, m.team_id)
    if team is None or team.tenant_id != g.tenant_id or team.id == g.id:
        raise InvalidParams(f"ring {i}: team {m.team_id} is not another group of this tenant", field="rings")
    return {"team_id": team.id, "delay_s": m.delay_s}


def _user_of_tenant(s, g: HuntGroup, user_id: int, field: str) -> int:
    user = s.get(User, user_id)
    if user is None or user.tenant_id != g.tenant_id:
        raise InvalidParams(f"{field}: user {user_id} is not a user of this tenant", field=field, user_id=user_id)
    return user.id


def _caller_key(s, g: HuntGroup, c: CallerIn, field: str, divert: bool) -> dict:
    if (c.number is None) == (c.user_id is None):
        raise InvalidParams(f"{field}: give exactly one of number and user_id per entry", field=field)
    key = e164(c.number, field) if c.number is not None else f"u{_user_of_tenant(s, g, c.user_id, field)}"
    entry: dict = {"key": key}
    if not divert and (c.divert_user_id or c.divert_number):
        raise InvalidParams(f"{field}: a VIP entry has no divert target", field=field)
    if c.divert_user_id and c.divert_number:
        raise InvalidParams(f"{field}: give at most one divert target", field=field)
    if c.divert_user_id:
        entry["divert_user_id"] = _user_of_tenant(s, g, c.divert_user_id, field)
    if c.divert_number:
        entry["divert_number"] = e164(c.divert_number, field)
    return entry


def _group_rule(s, g: HuntGroup, r: GroupRuleIn, i: int) -> dict:
    field = f"forwarding[{i}]"
    if sum(x is not None for x in (r.target_user_id, r.target_number, r.target_group_id)) != 1:
        raise InvalidParams(
            f"{field}: give exactly one of target_user_id, target_number and target_group_id", field=field
        )
    rule = r.model_dump(exclude_none=True)
    if r.target_user_id is not None:
        _user_of_tenant(s, g, r.target_user_id, field)
    if r.target_number is not None:
        rule["target_number"] = e164(r.target_number, field)
    if r.target_group_id is not None:
        target = s.get(HuntGroup, r.target_group_id)
        if target is None or target.tenant_id != g.tenant_id or target.id == g.id:
            raise InvalidParams(f"{field}: target_group_id is not another group of this tenant", field=field)
    if r.time_plan_id is not None:
        plan = s.get(TimePlan, r.time_plan_id)
        if plan is None or plan.tenant_id != g.tenant_id:
            raise InvalidParams(f"{field}: time plan {r.time_plan_id} is not a time plan of this tenant", field=field)
    return rule


def _check_unique_and_acyclic(s, g: HuntGroup) -> None:
    from .extensions import emergency_in_tenant

    if g.extension in emergency_in_tenant(s, g.tenant_id):
        raise InvalidParams(
            f"{g.extension} is an emergency number and cannot be an extension", field="extension", value=g.extension
        )
    for other in s.exec(select(HuntGroup).where(HuntGroup.tenant_id == g.tenant_id)).all():
        if other.id != g.id and (other.name == g.name or other.extension == g.extension):
            raise Conflict(f"group {other.id} has this name or extension", group_id=other.id)
    if s.exec(select(Extension).where(Extension.tenant_id == g.tenant_id, Extension.number == g.extension)).first():
        raise Conflict(f"extension {g.extension} belongs to a user", field="extension", value=g.extension)
    if s.exec(select(Mailbox).where(Mailbox.tenant_id == g.tenant_id, Mailbox.extension == g.extension)).first():
        raise Conflict(f"extension {g.extension} belongs to a mailbox", field="extension", value=g.extension)
    if s.exec(select(IvrMenu).where(IvrMenu.tenant_id == g.tenant_id, IvrMenu.extension == g.extension)).first():
        raise Conflict(f"extension {g.extension} belongs to an IVR menu", field="extension", value=g.extension)
    seen, cur = {g.id}, g.overflow_group_id
    while cur is not None:
        if cur in seen:
            raise InvalidParams(
                "overflow targets form a cycle", field="overflow_group_id", cycle=sorted(x for x in seen if x)
            )
        seen.add(cur)
        nxt = s.get(HuntGroup, cur)
        cur = nxt.overflow_group_id if nxt is not None else None


@method("group.create", GroupCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def create(ctx, p: GroupCreate):
    """Create a hunt group with its rings (validated: members of this tenant, no overflow cycle)."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.write() as s:
        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        g = HuntGroup(tenant_id=tenant_id, name=p.name, extension=p.extension)
        _apply(s, ctx, g, p)
        _check_unique_and_acyclic(s, g)
        s.add(g)
        s.flush()
        out = dump(g)
    return _pushed(ctx, out, p)


def _pushed(ctx, out: dict, p: GroupFields) -> dict:
    """After the write: the group's status goes live in Kamailio at once (the periodic sync repeats it)."""
    if p.status is not None:
        from controlplane.services.live_state import push_group_status

        out["live"] = push_group_status(ctx.app.kamailio, out["id"], out["status"])
    return out


@method("group.get", IdParams, errors=("not_found",), perm=Perm.GROUPS)
def get(ctx, p: IdParams):
    """Get one group."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, HuntGroup, p.id, ctx.principal, "group"))


@method("group.list", ListParams, perm=Perm.GROUPS)
def list_(ctx, p: ListParams):
    """List groups."""
    with ctx.app.read() as s:
        stmt = select(HuntGroup).order_by(HuntGroup.id)
        stmt = in_scope(stmt, HuntGroup.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("group.update", GroupUpdate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def update(ctx, p: GroupUpdate):
    """Change a group (rings are replaced as a whole)."""
    with ctx.app.write() as s:
        g = get_scoped(s, HuntGroup, p.id, ctx.principal, "group")
        if p.name is not None:
            g.name = p.name
        if p.extension is not None:
            g.extension = p.extension
        _apply(s, ctx, g, p)
        _check_unique_and_acyclic(s, g)
        s.add(g)
        s.flush()
        out = dump(g)
    return _pushed(ctx, out, p)


@method("group.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a group no other group overflows to."""
    with ctx.app.write() as s:
        g = get_scoped(s, HuntGroup, p.id, ctx.principal, "group")
        users = s.exec(select(HuntGroup.id).where(HuntGroup.overflow_group_id == g.id)).all()
        users += [
            o.id
            for o in s.exec(select(HuntGroup).where(HuntGroup.tenant_id == g.tenant_id)).all()
            if o.id != g.id
            and (
                any(r.get("target_group_id") == g.id for r in o.forwarding)
                or any(m.get("team_id") == g.id for ring in o.rings for m in ring["members"])
            )
        ]
        if users:
            raise Conflict(
                f"groups {list(users)} overflow or forward to this group or have it as a team", group_ids=list(users)
            )
        s.delete(g)
        return {"deleted": True, "id": p.id}


def _login(ctx, p: LoginParams, logged_in: bool) -> dict:
    with ctx.app.write() as s:
        g = get_scoped(s, HuntGroup, p.group_id, ctx.principal, "group")
        ctx.principal.require(Perm.AGENT if p.user_id == ctx.principal.user_id else Perm.AGENTS)
        if p.user_id not in member_users(g, *session_lookups(s)):
            raise InvalidParams(f"user {p.user_id} is not a member of group {g.id}", field="user_id")
        row = s.get(AgentLogin, (g.id, p.user_id))
        if logged_in and row is not None:
            s.delete(row)
        elif not logged_in:
            s.merge(AgentLogin(group_id=g.id, user_id=p.user_id, logged_in=False))
    from controlplane.services.live_state import push_login

    live = push_login(ctx.app.kamailio, p.group_id, p.user_id, logged_in)
    return {"group_id": p.group_id, "user_id": p.user_id, "logged_in": logged_in, "live": live}


@method(
    "agent.login", LoginParams, errors=("invalid_params", "not_found", "forbidden"), perm=Perm.AGENT, others=Perm.AGENTS
)
def login(ctx, p: LoginParams):
    """Log an agent into a group (they are offered its calls again)."""
    return _login(ctx, p, True)


@method(
    "agent.logout",
    LoginParams,
    errors=("invalid_params", "not_found", "forbidden"),
    perm=Perm.AGENT,
    others=Perm.AGENTS,
)
def logout(ctx, p: LoginParams):
    """Log an agent out of a group: never offered its calls until they log in."""
    return _login(ctx, p, False)


@method("group.preview", IdParams, errors=("not_found", "unavailable"), perm=Perm.GROUPS)
def preview(ctx, p: IdParams):
    """Which rings and members a call to this group would reach now (the live state), and why."""
    from controlplane.live_view import StoredLiveView

    with ctx.app.read() as s:
        g = get_scoped(s, HuntGroup, p.id, ctx.principal, "group")
        live = StoredLiveView.load(s, ctx.app)
        names = dict(s.exec(select(User.id, User.name).where(User.tenant_id == g.tenant_id)).all())
    snap = ctx.app.current_snapshot()
    group = snap.groups.get(g.id)
    if group is None:
        raise Unavailable("the group is not in the routing snapshot yet; try again in a moment", component="snapshot")
    glive = live.agents(group.id, group.all_members, len(group.rings))
    result = hunting.plan(group, glive.states, snap.skills, glive.pointers)
    return {
        "steps": [
            {
                "ring": st.ring + 1,
                "seconds": st.seconds,
                "members": [{"user_id": m, "name": names.get(m)} for m in st.members],
            }
            for st in result.steps
        ],
        "overflow_now": result.overflow,
        "trace": list(result.trace),
    }


class GreetingUpload(Params):
    id: Id
    data_base64: str = Field(
        max_length=MAX_BYTES * 4 // 3 + 8,
        description="a PCM WAV file (any rate 8-96 kHz, mono or stereo), base64; converted to 8 kHz mono",
    )


@method("group.greeting_upload", GreetingUpload, errors=("invalid_params", "not_found"), perm=Perm.CONFIG)
def greeting_upload(ctx, p: GreetingUpload):
    """What callers waiting in the group's queue hear first (ACD-17/18), instead of the system's "please hold":
    checked (0.5-120 s, audible, not distorted) and converted; a file that cannot be used changes nothing."""
    with ctx.app.read() as s:
        g = get_scoped(s, HuntGroup, p.id, ctx.principal, "group")
    try:
        seconds = install(p.data_base64, ctx.app.voicemail_store.group_greeting(g.id), ctx.app.voicemail_store)
    except AudioRefused as exc:
        raise InvalidParams(f"the recording cannot be used: {exc}", field="data_base64") from None
    return {"id": g.id, "duration_s": seconds, "own": True}


@method("group.greeting_delete", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def greeting_delete(ctx, p: IdParams):
    """Remove the group's own greeting: waiting callers hear the system's again."""
    with ctx.app.read() as s:
        g = get_scoped(s, HuntGroup, p.id, ctx.principal, "group")
    path = ctx.app.voicemail_store.group_greeting(g.id)
    existed = ctx.app.voicemail_store.remove(path)
    return {"id": g.id, "deleted": existed, "own": False}
