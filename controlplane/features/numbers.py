"""Public numbers: blocks assigned to a tenant, and single numbers routed to users (TRK-10, TRK-11).

Blocks hold 10, 100, 500 or 1000 numbers starting at a multiple of their size (as regulators
allocate them); a ported-in number is a block of 1 marked `ported`. Blocks never overlap, across
all tenants. A number can only be routed if it lies in a block of the user's tenant.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import (
    HuntGroup,
    IvrMenu,
    NumberBlock,
    PhoneNumber,
    Site,
    Tenant,
    User,
)
from controlplane.numbering import e164, national

from .common import SipText, Id, IdParams, ListParams, dump, get_scoped, in_scope, page

BLOCK_SIZES = (10, 100, 500, 1000)


def _span(first: str, size: int) -> tuple[int, int, int]:
    """(digit count, first, last) of a block, for overlap checks between numbers of equal length."""
    return len(first), int(first[1:]), int(first[1:]) + size - 1


def _block_of(s, tenant_id: int | None, number: str) -> NumberBlock | None:
    n = int(number[1:])
    stmt = select(NumberBlock)
    if tenant_id is not None:
        stmt = stmt.where(NumberBlock.tenant_id == tenant_id)
    for b in s.exec(stmt).all():
        length, lo, hi = _span(b.first, b.size)
        if length == len(number) and lo <= n <= hi:
            return b
    return None


def _dump_block(b: NumberBlock) -> dict:
    last = "+" + str(int(b.first[1:]) + b.size - 1)
    return {**dump(b), "last": last, "first_national": national(b.first), "last_national": national(last)}


def _dump_number(n: PhoneNumber) -> dict:
    return {**dump(n), "national": national(n.e164)}


class BlockCreate(Params):
    tenant_id: Id
    first: str = Field(description="first number of the block, E.164 ('+49 30 1234500')")
    size: Literal[1, 10, 100, 500, 1000]
    ported: bool = False
    site_id: Id | None = None


class BlockList(ListParams):
    pass


@method("number_block.create", BlockCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.PLATFORM)
def block_create(ctx, p: BlockCreate):
    """Assign a block of public numbers to a tenant (platform token): no overlap with any other block."""
    ctx.principal.require_platform()
    first = e164(p.first, "first")
    if p.size == 1 and not p.ported:
        raise InvalidParams("single numbers are only assigned when ported in (ported: true)", field="size")
    if p.size > 1 and int(first[1:]) % p.size:
        raise InvalidParams(
            f"a block of {p.size} starts at a multiple of {p.size} (e.g. ...{'0' * len(str(p.size - 1))})",
            field="first",
            value=first,
        )
    with ctx.app.write() as s:
        get_scoped(s, Tenant, p.tenant_id, ctx.principal, "tenant")
        if p.site_id is not None:
            site = get_scoped(s, Site, p.site_id, ctx.principal, "site")
            if site.tenant_id != p.tenant_id:
                raise InvalidParams("the site belongs to another tenant", field="site_id", value=p.site_id)
        length, lo, hi = _span(first, p.size)
        for b in s.exec(select(NumberBlock)).all():
            blen, blo, bhi = _span(b.first, b.size)
            if blen == length and lo <= bhi and blo <= hi:
                raise Conflict(
                    f"overlaps block {b.id} ({b.first}, {b.size} numbers)", block_id=b.id, first=b.first, size=b.size
                )
        block = NumberBlock(tenant_id=p.tenant_id, site_id=p.site_id, first=first, size=p.size, ported=p.ported)
        s.add(block)
        s.flush()
        return _dump_block(block)


@method("number_block.get", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def block_get(ctx, p: IdParams):
    """Get one number block."""
    with ctx.app.read() as s:
        return _dump_block(get_scoped(s, NumberBlock, p.id, ctx.principal, "number_block"))


@method("number_block.list", BlockList, perm=Perm.CONFIG)
def block_list(ctx, p: BlockList):
    """List number blocks."""
    with ctx.app.read() as s:
        stmt = select(NumberBlock).order_by(NumberBlock.first)
        stmt = in_scope(stmt, NumberBlock.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, _dump_block)


@method("number_block.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.PLATFORM)
def block_delete(ctx, p: IdParams):
    """Take a block back from a tenant (platform token); refused while numbers of it are in use."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        block = get_scoped(s, NumberBlock, p.id, ctx.principal, "number_block")
        used = s.exec(select(PhoneNumber.e164).where(PhoneNumber.block_id == block.id)).all()
        if used:
            raise Conflict(
                f"{len(used)} number(s) of this block are in use; release them first", numbers=list(used)[:20]
            )
        s.delete(block)
        return {"deleted": True, "id": p.id}


class NumberAssign(Params):
    e164: str = Field(description="the public number, E.164 ('+49 30 1234501')")
    user_id: Id | None = Field(None, description="the user it rings; null: assigned but not routed")
    group_id: Id | None = Field(None, description="... or the hunt group it rings")
    ivr_id: Id | None = Field(None, description="... or the IVR menu it leads into")
    voicemail: bool = Field(
        False,
        description="... or the tenant's central voicemail (VM-08): a call a user's mobile forwards to it leaves a "
        "message in that user's mailbox; a user calling it from their mobile listens; anyone else names a mailbox",
    )
    emergency_address: SipText | None = Field(
        None, max_length=300, description="nomadic use: the address sent with emergency calls"
    )
    priority: int | None = Field(
        None, ge=0, le=9, description="a group's number: its callers wait ahead of lower priorities"
    )
    tenant_id: Id | None = None


class NumberList(ListParams):
    user_id: Id | None = None


@method("number.assign", NumberAssign, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def assign(ctx, p: NumberAssign):
    """Route a number of one of the tenant's blocks to a user (creates it, or changes its target)."""
    number = e164(p.e164, "e164")
    with ctx.app.write() as s:
        if sum(x is not None for x in (p.user_id, p.group_id, p.ivr_id)) + p.voicemail > 1:
            raise InvalidParams("give at most one of user_id, group_id, ivr_id and voicemail")
        user = get_scoped(s, User, p.user_id, ctx.principal, "user") if p.user_id is not None else None
        group = get_scoped(s, HuntGroup, p.group_id, ctx.principal, "group") if p.group_id is not None else None
        menu = get_scoped(s, IvrMenu, p.ivr_id, ctx.principal, "menu") if p.ivr_id is not None else None
        target = user or group or menu
        tenant_id = target.tenant_id if target is not None else ctx.principal.tenant_scope(p.tenant_id)
        if tenant_id is None:
            raise InvalidParams("tenant_id is required with a platform token when no user is given", field="tenant_id")
        block = _block_of(s, tenant_id, number)
        if block is None:
            raise InvalidParams(f"{number} is not in a number block of this tenant", field="e164", value=number)
        row = s.exec(select(PhoneNumber).where(PhoneNumber.e164 == number)).first()
        if row is None:
            row = PhoneNumber(tenant_id=tenant_id, block_id=block.id, e164=number)
        row.user_id = user.id if user is not None else None
        row.group_id = group.id if group is not None else None
        row.ivr_id = menu.id if menu is not None else None
        row.voicemail = p.voicemail
        if p.emergency_address is not None:
            row.emergency_address = p.emergency_address.strip() or None
        if p.priority is not None:
            row.priority = p.priority
        s.add(row)
        s.flush()
        return _dump_number(row)


@method("number.get", IdParams, errors=("not_found",), perm=Perm.DIRECTORY)
def get(ctx, p: IdParams):
    """Get one number."""
    with ctx.app.read() as s:
        return _dump_number(get_scoped(s, PhoneNumber, p.id, ctx.principal, "number"))


@method("number.list", NumberList, perm=Perm.DIRECTORY)
def list_(ctx, p: NumberList):
    """List the numbers in use, optionally of one user."""
    with ctx.app.read() as s:
        stmt = select(PhoneNumber).order_by(PhoneNumber.e164)
        stmt = in_scope(stmt, PhoneNumber.tenant_id, ctx.principal, p.tenant_id)
        if p.user_id is not None:
            stmt = stmt.where(PhoneNumber.user_id == p.user_id)
        return page(s, stmt, p.limit, p.offset, _dump_number)


@method("number.release", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def release(ctx, p: IdParams):
    """Stop routing a number (it stays in its block); calls to it get 404 from the next call on."""
    with ctx.app.write() as s:
        s.delete(get_scoped(s, PhoneNumber, p.id, ctx.principal, "number"))
        return {"deleted": True, "id": p.id}
