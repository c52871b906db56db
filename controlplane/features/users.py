"""Users of a tenant, each with a role (SPEC ACC-01..04)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from sqlmodel import select

from controlplane.api.errors import Conflict, Forbidden, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.api.permissions import may_grant
from controlplane.db.models import Mailbox, Role, Site, Tenant, User
from controlplane.numbering import e164
from kemi.policy.numbering import DestClass

from controlplane.group_members import groups_referring_to

from .personal_ivr import follow_mobile
from .common import SipText, Id, IdParams, ListParams, Name, dump, get_scoped, in_scope, page

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]


class Telephony(Params):
    """A user's telephony settings (routing policy)."""

    site_id: Id | None = None
    outbound: DestClass | None = Field(
        None, description="outbound permission: internal, local, national, mobile, europe, international, special"
    )
    clir: bool | None = Field(None, description="suppress the own number on outgoing calls")
    locked: bool | None = Field(None, description="refuse outgoing calls (emergency calls excepted)")
    presented_number: str | None = Field(
        None, description="CLIP no screening: number presented instead of the own ('' clears)"
    )
    call_waiting: bool | None = Field(None, description="false: busy-on-busy (a second call finds the user busy)")
    priority_override: bool | None = Field(None, description="this user's calls ring through DND and forwarding")
    secretary_id: int | None = Field(None, ge=0, description="boss-secretary: calls go to this user first (0 clears)")
    anonymous: Literal["allow", "reject"] | None = Field(None, description="calls without a caller number")
    mobile: str | None = Field(
        None,
        description="the user's mobile phone, E.164 ('' clears): calls it forwards to the central voicemail leave a "
        "message in this user's mailbox, and from it the user listens there (VM-08)",
    )
    skills: dict[str, int] | None = Field(None, description="ACD skills: name -> level 1-10 (replaces all)")


class UserCreate(Telephony):
    tenant_id: Id | None = None  # a tenant token creates in its own tenant
    name: Name
    email: Email | None = None
    role: Role = Role.USER
    enabled: bool = True


class UserUpdate(Telephony):
    id: Id
    name: Name | None = None
    email: Email | None = None
    role: Role | None = None
    enabled: bool | None = None


class UserList(ListParams):
    role: Role | None = None


def _check_role_grant(principal, role: Role) -> None:
    if role is Role.PLATFORM:
        raise Forbidden(
            "the platform operator's role belongs to tokens without a tenant, not to users", role=role.value
        )
    if not may_grant(principal.role, principal.perms, role):
        raise Forbidden(
            f"a {principal.role.value} token cannot grant the role {role.value} (it has permissions the token has not)",
            role=role.value,
        )


def _apply_telephony(s, ctx, u: User, p: Telephony) -> None:
    if p.site_id is not None:
        site = get_scoped(s, Site, p.site_id, ctx.principal, "site")
        if site.tenant_id != u.tenant_id:
            raise InvalidParams("the site belongs to another tenant", field="site_id", value=p.site_id)
        u.site_id = site.id
    if p.outbound is not None:
        u.outbound = p.outbound.value
    if p.clir is not None:
        u.clir = p.clir
    if p.locked is not None:
        u.locked = p.locked
    if p.skills is not None:
        if any(not (1 <= v <= 10) or not k.strip() for k, v in p.skills.items()):
            raise InvalidParams("skills: names non-empty, levels 1 to 10", field="skills")
        u.skills = dict(p.skills)
    for flag in ("call_waiting", "priority_override", "anonymous"):
        if getattr(p, flag) is not None:
            setattr(u, flag, getattr(p, flag))
    if p.secretary_id is not None:
        if p.secretary_id == 0:
            u.secretary_id = None
        else:
            sec = get_scoped(s, User, p.secretary_id, ctx.principal, "user")
            if sec.tenant_id != u.tenant_id or sec.id == u.id:
                raise InvalidParams(
                    "the secretary is another user of the same tenant", field="secretary_id", value=p.secretary_id
                )
            u.secretary_id = sec.id
    if p.presented_number is not None:
        if p.presented_number == "":
            u.presented_number = None
        else:
            tenant = s.get(Tenant, u.tenant_id)
            if not tenant.allow_clip_no_screening:
                raise Forbidden(
                    "this tenant may only present its own numbers (CLIP no screening is not enabled)",
                    field="presented_number",
                )
            u.presented_number = e164(p.presented_number, "presented_number")
    _apply_mobile(s, u, p.mobile)


def _apply_mobile(s, u: User, mobile: str | None) -> None:
    """A mobile names one user of its tenant (the central voicemail finds the user by it)."""
    if mobile is None:
        return
    if mobile == "":
        u.mobile = None
        follow_mobile(s, u)
        return
    number = e164(mobile, "mobile")
    other = s.exec(select(User).where(User.tenant_id == u.tenant_id, User.mobile == number)).first()
    if other is not None and other.id != u.id:
        raise Conflict(f"user {other.id} of this tenant has the mobile {number}", field="mobile", value=number)
    u.mobile = number
    follow_mobile(s, u)


def _check_email(s, tenant_id, email, exclude_id=None):
    if email is None:
        return
    other = s.exec(select(User).where(User.tenant_id == tenant_id, User.email == email)).first()
    if other and other.id != exclude_id:
        raise Conflict(f"another user of this tenant has the e-mail {email}", field="email", value=email)


@method("user.create", UserCreate, errors=("invalid_params", "not_found", "conflict", "forbidden"), perm=Perm.CONFIG)
def create(ctx, p: UserCreate):
    """Create a user in a tenant."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    _check_role_grant(ctx.principal, p.role)
    with ctx.app.write() as s:
        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        _check_email(s, tenant_id, p.email)
        u = User(tenant_id=tenant_id, name=p.name, email=p.email, role=p.role.value, enabled=p.enabled)
        _apply_telephony(s, ctx, u, p)
        s.add(u)
        s.flush()
        return dump(u)


@method("user.get", IdParams, errors=("not_found",), perm=Perm.DIRECTORY)
def get(ctx, p: IdParams):
    """Get one user."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, User, p.id, ctx.principal, "user"))


@method("user.list", UserList, perm=Perm.DIRECTORY)
def list_(ctx, p: UserList):
    """List users, optionally by tenant (platform token) and role."""
    with ctx.app.read() as s:
        stmt = select(User).order_by(User.id)
        stmt = in_scope(stmt, User.tenant_id, ctx.principal, p.tenant_id)
        if p.role is not None:
            stmt = stmt.where(User.role == p.role.value)
        return page(s, stmt, p.limit, p.offset, dump)


@method("user.update", UserUpdate, errors=("not_found", "conflict", "forbidden"), perm=Perm.CONFIG)
def update(ctx, p: UserUpdate):
    """Change a user's name, e-mail, role, enabled state or telephony settings."""
    with ctx.app.write() as s:
        u = get_scoped(s, User, p.id, ctx.principal, "user")
        if p.role is not None:
            _check_role_grant(ctx.principal, p.role)
            u.role = p.role.value
        if p.email is not None:
            _check_email(s, u.tenant_id, p.email, exclude_id=u.id)
            u.email = p.email
        if p.name is not None:
            u.name = p.name
        if p.enabled is not None:
            u.enabled = p.enabled
        _apply_telephony(s, ctx, u, p)
        s.add(u)
        s.flush()
        return dump(u)


@method("user.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a user together with their SIP accounts, extensions and mailbox (its messages too)."""
    with ctx.app.write() as s:
        u = get_scoped(s, User, p.id, ctx.principal, "user")
        used = groups_referring_to(s, u.tenant_id, user_id=u.id)
        if used:
            raise Conflict(
                f"user {u.id} is a member or target of hunt group(s) {used}: take them out there first", group_ids=used
            )
        boxes = s.exec(select(Mailbox.id).where(Mailbox.user_id == u.id)).all()
        tenant_id = u.tenant_id
        s.delete(u)  # their mailbox and its messages with them (GDPR) ...
    for box_id in boxes:  # ... and the recordings
        ctx.app.voicemail_store.remove_mailbox(tenant_id, box_id)
        ctx.app.voicemail_changed(box_id)
    return {"deleted": True, "id": p.id}


class StatusParams(Params):
    id: Id
    status: Literal["online", "away", "dnd", "unreachable"]
    message: SipText = Field("", max_length=200, description="status message shown to colleagues")


@method("user.set_status", StatusParams, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.PRESENCE)
def set_status(ctx, p: StatusParams):
    """Set a user's status (TEL-13..15): the next call sees it (DND, away, unreachable; status-based forwarding)."""
    from controlplane.services.live_state import push_status

    with ctx.app.write(changes_routing=False) as s:
        u = get_scoped(s, User, p.id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.PRESENCE, u.id)
        u.status, u.status_message = p.status, p.message
        s.add(u)
    pushed = push_status(ctx.app.kamailio, p.id, p.status)
    return {"id": p.id, "status": p.status, "message": p.message, "live": pushed}
