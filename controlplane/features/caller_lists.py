"""VIP and block lists (TEAM-10, ACD-08, ACD-11), per user or for the whole tenant.

A VIP rings through the user's DND and through forwarding rules limited to `non_vip` callers;
a blocked caller is rejected (603) or diverted to a user or number. Entries name an external
caller by number (E.164) or an internal one by user.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sqlmodel import select

from controlplane.api.errors import InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import CallerListEntry, Tenant, User
from controlplane.numbering import e164

from .common import Id, IdParams, ListParams, dump, get_scoped, in_scope, page


class EntryCreate(Params):
    kind: Literal["vip", "block"]
    user_id: Id | None = Field(None, description="whose list; omitted: the tenant's list, for every user")
    tenant_id: Id | None = None
    number: str | None = Field(None, description="an external caller's number ...")
    member_user_id: Id | None = Field(None, description="... or an internal caller")
    divert_user_id: Id | None = Field(None, description="block: divert to this user instead of rejecting")
    divert_number: str | None = Field(None, description="block: divert to this number instead of rejecting")

    @model_validator(mode="after")
    def _shape(self):
        if (self.number is None) == (self.member_user_id is None):
            raise ValueError("give exactly one of number and member_user_id")
        if self.kind == "vip" and (self.divert_user_id or self.divert_number):
            raise ValueError("only block entries divert")
        if self.divert_user_id and self.divert_number:
            raise ValueError("give at most one of divert_user_id and divert_number")
        return self


class EntryList(ListParams):
    user_id: Id | None = None
    kind: Literal["vip", "block"] | None = None


@method(
    "caller_list.create",
    EntryCreate,
    errors=("invalid_params", "not_found", "forbidden"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def create(ctx, p: EntryCreate):
    """Add a caller to a user's (or the tenant's) VIP or block list."""
    with ctx.app.write() as s:
        if p.user_id is not None:
            owner = get_scoped(s, User, p.user_id, ctx.principal, "user")
            ctx.principal.require_self_or(Perm.CONFIG, owner.id)
            tenant_id = owner.tenant_id
        else:
            ctx.principal.require(Perm.CONFIG)
            tenant_id = ctx.principal.tenant_scope(p.tenant_id)
            if tenant_id is None:
                raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
            get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        entry = CallerListEntry(tenant_id=tenant_id, user_id=p.user_id, kind=p.kind)
        if p.number is not None:
            entry.number = e164(p.number, "number", region="DE")
        for field in ("member_user_id", "divert_user_id"):
            uid = getattr(p, field)
            if uid is not None:
                other = get_scoped(s, User, uid, ctx.principal, "user")
                if other.tenant_id != tenant_id:
                    raise InvalidParams(f"{field}: a user of another tenant", field=field, value=uid)
                setattr(entry, field, other.id)
        if p.divert_number is not None:
            entry.divert_number = e164(p.divert_number, "divert_number", region="DE")
        s.add(entry)
        s.flush()
        return dump(entry)


@method("caller_list.list", EntryList, perm=Perm.SELF, others=Perm.CONFIG)
def list_(ctx, p: EntryList):
    """List VIP and block entries (a plain User token: their own and the tenant's)."""
    with ctx.app.read() as s:
        stmt = select(CallerListEntry).order_by(CallerListEntry.id)
        stmt = in_scope(stmt, CallerListEntry.tenant_id, ctx.principal, p.tenant_id)
        if not ctx.principal.can(Perm.CONFIG):
            stmt = stmt.where((CallerListEntry.user_id == ctx.principal.user_id) | (CallerListEntry.user_id == None))  # noqa: E711
        elif p.user_id is not None:
            stmt = stmt.where(CallerListEntry.user_id == p.user_id)
        if p.kind is not None:
            stmt = stmt.where(CallerListEntry.kind == p.kind)
        return page(s, stmt, p.limit, p.offset, dump)


@method("caller_list.delete", IdParams, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Remove an entry."""
    with ctx.app.write() as s:
        entry = get_scoped(s, CallerListEntry, p.id, ctx.principal, "caller_list_entry")
        if entry.user_id is None:
            ctx.principal.require(Perm.CONFIG)
        else:
            ctx.principal.require_self_or(Perm.CONFIG, entry.user_id)
        s.delete(entry)
        return {"deleted": True, "id": p.id}
