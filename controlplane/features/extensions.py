"""Extensions: internal numbers of a tenant, each routed to a user (SPEC ACC-05)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Extension, User
from kemi.policy.numbering import emergency_numbers

from .common import Id, IdParams, ListParams, dump, get_scoped, in_scope, page

EMERGENCY_EVERYWHERE = frozenset({"112", "911"})


def emergency_in_tenant(s, tenant_id: int) -> frozenset[str]:
    """The numbers that are emergency numbers for some user of the tenant: those of its sites' countries (DE without a
    site), 112 and 911 everywhere. They are dialled as emergency calls, never as extensions."""
    from controlplane.db.models import Site

    regions = set(s.exec(select(Site.region).where(Site.tenant_id == tenant_id)).all()) or {"DE"}
    return EMERGENCY_EVERYWHERE.union(*(emergency_numbers(r) for r in regions))


Number = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{2,8}$")]


class ExtensionCreate(Params):
    number: Number
    user_id: Id


class ExtensionUpdate(Params):
    id: Id
    number: Number | None = None
    user_id: Id | None = None


class ExtensionList(ListParams):
    user_id: Id | None = None


def _check_free(s, tenant_id: int, number: str, exclude_id: int | None = None) -> None:
    if number in emergency_in_tenant(s, tenant_id):
        raise InvalidParams(f"{number} is an emergency number and cannot be an extension", field="number", value=number)
    from controlplane.db.models import HuntGroup

    if s.exec(select(HuntGroup).where(HuntGroup.tenant_id == tenant_id, HuntGroup.extension == number)).first():
        raise Conflict(f"extension {number} belongs to a hunt group", field="number", value=number)
    from controlplane.db.models import Mailbox

    if s.exec(select(Mailbox).where(Mailbox.tenant_id == tenant_id, Mailbox.extension == number)).first():
        raise Conflict(f"extension {number} belongs to a mailbox", field="number", value=number)
    from controlplane.db.models import IvrMenu

    if s.exec(select(IvrMenu).where(IvrMenu.tenant_id == tenant_id, IvrMenu.extension == number)).first():
        raise Conflict(f"extension {number} belongs to an IVR menu", field="number", value=number)
    other = s.exec(select(Extension).where(Extension.tenant_id == tenant_id, Extension.number == number)).first()
    if other and other.id != exclude_id:
        raise Conflict(
            f"extension {number} is taken in this tenant", field="number", value=number, extension_id=other.id
        )


@method("extension.create", ExtensionCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def create(ctx, p: ExtensionCreate):
    """Give a user an extension (2 to 8 digits, unique within the tenant)."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        _check_free(s, user.tenant_id, p.number)
        e = Extension(tenant_id=user.tenant_id, number=p.number, user_id=user.id)
        s.add(e)
        s.flush()
        return dump(e)


@method("extension.get", IdParams, errors=("not_found",), perm=Perm.DIRECTORY)
def get(ctx, p: IdParams):
    """Get one extension."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, Extension, p.id, ctx.principal, "extension"))


@method("extension.list", ExtensionList, perm=Perm.DIRECTORY)
def list_(ctx, p: ExtensionList):
    """List extensions, optionally of one user."""
    with ctx.app.read() as s:
        stmt = select(Extension).order_by(Extension.number)
        stmt = in_scope(stmt, Extension.tenant_id, ctx.principal, p.tenant_id)
        if p.user_id is not None:
            stmt = stmt.where(Extension.user_id == p.user_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("extension.update", ExtensionUpdate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def update(ctx, p: ExtensionUpdate):
    """Change an extension's number or route it to another user of the same tenant."""
    with ctx.app.write() as s:
        e = get_scoped(s, Extension, p.id, ctx.principal, "extension")
        if p.user_id is not None:
            user = get_scoped(s, User, p.user_id, ctx.principal, "user")
            if user.tenant_id != e.tenant_id:
                raise Conflict("an extension can only route to a user of its own tenant", user_id=p.user_id)
            e.user_id = user.id
        if p.number is not None:
            _check_free(s, e.tenant_id, p.number, exclude_id=e.id)
            e.number = p.number
        s.add(e)
        s.flush()
        return dump(e)


@method("extension.delete", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete an extension; calls to it get 404 from the next call on."""
    with ctx.app.write() as s:
        s.delete(get_scoped(s, Extension, p.id, ctx.principal, "extension"))
        return {"deleted": True, "id": p.id}
