"""Call detail records: every call attempt, with disposition and the routing trace (SPEC TEL-22 basis)."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Literal

from pydantic import Field
from sqlmodel import or_, select

from controlplane.api.permissions import Perm
from controlplane.api.rpc import method
from controlplane.db.models import Cdr
from controlplane.numbering import national
from kemi.policy.cdr import DISPOSITIONS

from .common import Id, ListParams, TimeRange, page

Disposition = Literal[DISPOSITIONS]  # type: ignore[valid-type]


class CdrList(TimeRange, ListParams):
    """since / until: the call's start time."""

    user_id: Id | None = Field(None, description="calls where this user was caller or callee")
    disposition: Disposition | None = None
    call_id: str | None = None
    max_mos: float | None = Field(
        None, ge=1.0, le=5.0, description="only calls whose media scored at most this MOS (the worst calls)"
    )
    emergency: bool | None = Field(None, description="true: only calls to emergency numbers (TRK-08)")
    order: Literal["newest", "worst_media"] = Field(
        "newest", description="worst_media: lowest MOS first (scored calls only)"
    )


def serialise(c: Cdr) -> dict:
    d = c.model_dump(mode="json")
    d["trace"] = json.loads(c.trace)
    d["caller_national"] = national(c.caller)  # '' for extensions and SIP users
    d["callee_national"] = national(c.callee)
    return d


@method("cdr.list", CdrList, perm=Perm.SELF, others=Perm.CALLS)
def list_(ctx, p: CdrList):
    """Finished and failed calls, newest first, filtered and paged."""
    pr = ctx.principal
    with ctx.app.read() as s:
        if p.order == "worst_media":
            stmt = select(Cdr).where(Cdr.mos.is_not(None)).order_by(Cdr.mos, Cdr.start_time.desc(), Cdr.id)
        else:
            stmt = select(Cdr).order_by(Cdr.start_time.desc(), Cdr.id)
        scope = pr.tenant_scope(p.tenant_id)
        if scope is not None:
            stmt = stmt.where(Cdr.tenant_id == scope)
        user_id = p.user_id
        if not pr.can(Perm.CALLS):
            user_id = pr.user_id if pr.user_id is not None else -1  # users see only their own calls
        if user_id is not None:
            stmt = stmt.where(or_(Cdr.caller_user_id == user_id, Cdr.callee_user_id == user_id))
        if p.since:
            stmt = stmt.where(Cdr.start_time >= p.since.astimezone(timezone.utc))
        if p.until:
            stmt = stmt.where(Cdr.start_time < p.until.astimezone(timezone.utc))
        if p.emergency is not None:
            stmt = stmt.where(Cdr.emergency == p.emergency)
        if p.disposition:
            stmt = stmt.where(Cdr.disposition == p.disposition)
        if p.call_id:
            stmt = stmt.where(Cdr.call_id == p.call_id)
        if p.max_mos is not None:
            stmt = stmt.where(Cdr.mos <= p.max_mos)
        return page(s, stmt, p.limit, p.offset, serialise)
