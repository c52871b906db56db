"""Profiles (TEL-28): named sets of a user's settings, switched all at once.

A profile may set the status, CLIR and outbound permission; forwarding rules can be bound to
a profile (`forwarding.create profile_id=`) and then apply only while it is active. Activating
a profile (API, or `*30<code>` from a phone) switches all of it for the next call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Profile, User
from kemi.policy.numbering import DestClass, permits

from .common import Id, IdParams, ListParams, Name, dump, get_scoped, in_scope, page

Status = Literal["online", "away", "dnd", "unreachable"]


class ProfileFields(Params):
    status: Status | None = Field(None, description="status set when the profile is activated")
    clir: bool | None = None
    outbound: DestClass | None = None
    code: int | None = Field(None, ge=1, le=9, description="selects the profile from a phone: *30<code>")


class ProfileCreate(ProfileFields):
    user_id: Id
    name: Name


class ProfileUpdate(ProfileFields):
    id: Id
    name: Name | None = None


class ProfileList(ListParams):
    user_id: Id | None = None


class Activate(Params):
    user_id: Id
    profile_id: int = Field(ge=0, description="0: no profile (the user's own settings)")


def _apply(p: ProfileFields, prof: Profile, user: User) -> None:
    for name in ("status", "clir", "code"):
        if getattr(p, name) is not None:
            setattr(prof, name, getattr(p, name))
    if p.outbound is not None:
        if not permits(
            DestClass(user.outbound), p.outbound
        ):  # ACC-03: a profile narrows what the admin allowed, never widens it
            raise InvalidParams(
                f"outbound: a profile can only narrow the user's outbound permission ({user.outbound}), not widen it "
                "to "
                f"{p.outbound.value}",
                field="outbound",
                value=p.outbound.value,
                allowed=user.outbound,
            )
        prof.outbound = p.outbound.value


def _check(s, prof: Profile) -> None:
    for other in s.exec(select(Profile).where(Profile.user_id == prof.user_id)).all():
        if other.id != prof.id and (other.name == prof.name or other.code == prof.code):
            raise Conflict(
                f"this user has a profile with this name or code already (profile {other.id})", profile_id=other.id
            )


@method(
    "profile.create",
    ProfileCreate,
    errors=("invalid_params", "not_found", "conflict", "forbidden"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def create(ctx, p: ProfileCreate):
    """Create a profile for a user (a plain User token: for themselves)."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        used = {c for c in s.exec(select(Profile.code).where(Profile.user_id == user.id)).all()}
        prof = Profile(
            tenant_id=user.tenant_id,
            user_id=user.id,
            name=p.name,
            code=p.code or next(c for c in range(1, 11) if c not in used),
        )
        _apply(p, prof, user)
        _check(s, prof)
        s.add(prof)
        s.flush()
        return dump(prof)


@method("profile.list", ProfileList, perm=Perm.SELF, others=Perm.CONFIG)
def list_(ctx, p: ProfileList):
    """List profiles (a plain User token: their own)."""
    with ctx.app.read() as s:
        stmt = select(Profile).order_by(Profile.user_id, Profile.code)
        stmt = in_scope(stmt, Profile.tenant_id, ctx.principal, p.tenant_id)
        if not ctx.principal.can(Perm.CONFIG):
            stmt = stmt.where(Profile.user_id == ctx.principal.user_id)
        elif p.user_id is not None:
            stmt = stmt.where(Profile.user_id == p.user_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method(
    "profile.update",
    ProfileUpdate,
    errors=("invalid_params", "not_found", "conflict", "forbidden"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def update(ctx, p: ProfileUpdate):
    """Change a profile."""
    with ctx.app.write() as s:
        prof = get_scoped(s, Profile, p.id, ctx.principal, "profile")
        ctx.principal.require_self_or(Perm.CONFIG, prof.user_id)
        if p.name is not None:
            prof.name = p.name
        _apply(p, prof, s.get(User, prof.user_id))
        _check(s, prof)
        s.add(prof)
        s.flush()
        return dump(prof)


@method("profile.delete", IdParams, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a profile and the forwarding rules bound to it."""
    with ctx.app.write() as s:
        prof = get_scoped(s, Profile, p.id, ctx.principal, "profile")
        ctx.principal.require_self_or(Perm.CONFIG, prof.user_id)
        user = s.get(User, prof.user_id)
        if user.active_profile_id == prof.id:
            user.active_profile_id = None
            s.add(user)
        s.delete(prof)
        return {"deleted": True, "id": p.id}


def activate_profile(app, s, user: User, profile_id: int) -> dict:
    """Switch the user's active profile (0: none); sets the profile's status, live at once."""
    from controlplane.services.live_state import push_status

    prof = None
    if profile_id:
        prof = s.get(Profile, profile_id)
        if prof is None or prof.user_id != user.id:
            from controlplane.api.errors import NotFound

            raise NotFound(f"profile {profile_id} is not a profile of user {user.id}", profile_id=profile_id)
    user.active_profile_id = prof.id if prof else None
    if prof is not None and prof.status:
        user.status = prof.status
    s.add(user)
    user_id, status = user.id, user.status  # read now: the object expires with the commit
    return {
        "user_id": user_id,
        "active_profile_id": user.active_profile_id,
        "status": status,
        "push": (lambda: push_status(app.kamailio, user_id, status)),
    }


@method("profile.activate", Activate, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.CONFIG)
def activate(ctx, p: Activate):
    """Make a profile the user's active one (0: none): status, CLIR, outbound and bound forwarding switch together."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        out = activate_profile(ctx.app, s, user, p.profile_id)
    push = out.pop("push")
    out["live"] = push()
    return out
