"""Call forwarding rules of a user (FWD-01..03, MOB-04, MOB-06).

Per user, rules of four kinds, tried in `position` order within a kind: `unconditional`,
`busy`, `no_answer` (after `timeout_s` of ringing), `unreachable` (no device registered, or
all fail or never ring: backup routing). Each may be limited to internal or external callers
and to the inside or outside of a time plan. The target is another user of the tenant or a
public number (the user's outbound permission applies to it), a mailbox, or an IVR menu (a personal IVR).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sqlmodel import select

from controlplane.api.errors import InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import ForwardingRule, IvrMenu, Mailbox, Profile, TimePlan, User
from controlplane.numbering import e164
from kemi.policy.forwarding import CALLERS, KINDS

from .common import Id, IdParams, ListParams, dump, get_scoped, in_scope, page

Kind = Literal[KINDS]  # type: ignore[valid-type]
Callers = Literal[CALLERS]  # type: ignore[valid-type]


class RuleFields(Params):
    target_user_id: Id | None = Field(None, description="forward to this user ...")
    target_number: str | None = Field(
        None, description="... or to this public number ('+49 171 1234567', '0171 1234567')"
    )
    target_mailbox_id: Id | None = Field(None, description="... or to this mailbox (voicemail.box_create)")
    target_ivr_id: Id | None = Field(None, description="... or into this IVR menu (a personal IVR: ivr.personal_set)")
    callers: Callers | None = Field(None, description="all, internal or external callers")
    time_plan_id: Id | None = Field(None, description="only inside/outside this time plan (0 clears)")
    when: Literal["in", "outside"] | None = None
    timeout_s: int | None = Field(None, ge=1, le=300, description="no_answer: seconds of ringing first")
    present: Literal["caller", "forwarder"] | None = Field(
        None, description="forwarded out: present the caller (A) or the user (B)"
    )
    position: int | None = Field(None, ge=0, le=10000)
    enabled: bool | None = None
    profile_id: int | None = Field(None, ge=0, description="only while this profile of the user is active (0 clears)")


class RuleCreate(RuleFields):
    user_id: Id
    kind: Kind

    @model_validator(mode="after")
    def _one_target(self):
        if _targets(self) != 1:
            raise ValueError(f"give exactly one of {TARGETS_TEXT}")
        return self


TARGETS = ("target_user_id", "target_number", "target_mailbox_id", "target_ivr_id")
TARGETS_TEXT = "target_user_id, target_number, target_mailbox_id and target_ivr_id"


def _targets(p: RuleFields) -> int:
    return sum(getattr(p, t) is not None for t in TARGETS)


def _target(rule: ForwardingRule, name: str, value) -> None:
    """The rule's one target: this one, the others cleared."""
    for t in TARGETS:
        setattr(rule, t, value if t == name else None)


class RuleUpdate(RuleFields):
    id: Id


class RuleList(ListParams):
    user_id: Id | None = None


def _apply(s, ctx, rule: ForwardingRule, p: RuleFields) -> None:
    if p.target_user_id is not None:
        target = get_scoped(s, User, p.target_user_id, ctx.principal, "user")
        if target.tenant_id != rule.tenant_id:
            raise InvalidParams("the target user belongs to another tenant", field="target_user_id")
        if target.id == rule.user_id:
            raise InvalidParams("a user cannot forward to themselves", field="target_user_id")
        _target(rule, "target_user_id", target.id)
    if p.target_number is not None:
        _target(rule, "target_number", e164(p.target_number, "target_number", region=_region_of(s, rule.user_id)))
    if p.target_mailbox_id is not None:
        box = get_scoped(s, Mailbox, p.target_mailbox_id, ctx.principal, "mailbox")
        if box.tenant_id != rule.tenant_id:
            raise InvalidParams("the mailbox belongs to another tenant", field="target_mailbox_id")
        _target(rule, "target_mailbox_id", box.id)
    if p.target_ivr_id is not None:
        menu = get_scoped(s, IvrMenu, p.target_ivr_id, ctx.principal, "menu")
        if menu.tenant_id != rule.tenant_id:
            raise InvalidParams("the menu belongs to another tenant", field="target_ivr_id")
        _target(rule, "target_ivr_id", menu.id)
    if p.time_plan_id is not None:
        plan = get_scoped(s, TimePlan, p.time_plan_id, ctx.principal, "time_plan")
        if plan.tenant_id != rule.tenant_id:
            raise InvalidParams("the time plan belongs to another tenant", field="time_plan_id")
        rule.time_plan_id = plan.id
    if p.profile_id is not None:
        if p.profile_id == 0:
            rule.profile_id = None
        else:
            prof = get_scoped(s, Profile, p.profile_id, ctx.principal, "profile")
            if prof.user_id != rule.user_id:
                raise InvalidParams("the profile belongs to another user", field="profile_id")
            rule.profile_id = prof.id
    for name in ("callers", "when", "timeout_s", "present", "position", "enabled"):
        value = getattr(p, name)
        if value is not None:
            setattr(rule, name, value)


def _region_of(s, user_id: int) -> str:
    from controlplane.db.models import Site

    user = s.get(User, user_id)
    site = (
        s.get(Site, user.site_id)
        if user and user.site_id
        else s.exec(select(Site).where(Site.tenant_id == user.tenant_id).order_by(Site.id)).first()
    )
    return site.region if site else "DE"


@method(
    "forwarding.create",
    RuleCreate,
    errors=("invalid_params", "not_found", "forbidden"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def create(ctx, p: RuleCreate):
    """Add a forwarding rule to a user (a plain User token: only to themselves)."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        rule = ForwardingRule(tenant_id=user.tenant_id, user_id=user.id, kind=p.kind)
        _apply(s, ctx, rule, p)
        s.add(rule)
        s.flush()
        return dump(rule)


@method("forwarding.list", RuleList, perm=Perm.SELF, others=Perm.CONFIG)
def list_(ctx, p: RuleList):
    """List forwarding rules (a plain User token sees its own)."""
    with ctx.app.read() as s:
        stmt = select(ForwardingRule).order_by(
            ForwardingRule.user_id, ForwardingRule.kind, ForwardingRule.position, ForwardingRule.id
        )
        stmt = in_scope(stmt, ForwardingRule.tenant_id, ctx.principal, p.tenant_id)
        if not ctx.principal.can(Perm.CONFIG):
            stmt = stmt.where(ForwardingRule.user_id == ctx.principal.user_id)
        elif p.user_id is not None:
            stmt = stmt.where(ForwardingRule.user_id == p.user_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method(
    "forwarding.update",
    RuleUpdate,
    errors=("invalid_params", "not_found", "forbidden"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def update(ctx, p: RuleUpdate):
    """Change a forwarding rule (enable/disable, target, conditions)."""
    with ctx.app.write() as s:
        rule = get_scoped(s, ForwardingRule, p.id, ctx.principal, "forwarding_rule")
        ctx.principal.require_self_or(Perm.CONFIG, rule.user_id)
        if _targets(p) > 1:
            raise InvalidParams(f"give at most one of {TARGETS_TEXT}")
        _apply(s, ctx, rule, p)
        s.add(rule)
        s.flush()
        return dump(rule)


@method("forwarding.delete", IdParams, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a forwarding rule."""
    with ctx.app.write() as s:
        rule = get_scoped(s, ForwardingRule, p.id, ctx.principal, "forwarding_rule")
        ctx.principal.require_self_or(Perm.CONFIG, rule.user_id)
        s.delete(rule)
        return {"deleted": True, "id": p.id}
