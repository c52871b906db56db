"""Helpers shared by the feature modules: scoped lookups, paging, serialisation."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator
from sqlmodel import Session, SQLModel, func, select

from controlplane.api.errors import Conflict, NotFound
from controlplane.api.rpc import Params, Principal
from kemi.policy.sip_text import CONTROL

Id = Annotated[int, Field(ge=1)]


def _no_control(v: str) -> str:
    """Control characters and line separators never reach a SIP message (a display name, an emergency INVITE) or a log
    line: refused here, and escaped again where written (kemi/policy/sip_text.py, the same character class)."""
    if CONTROL.search(v):
        raise ValueError("control characters (line breaks, tabs, NUL, ...) are not allowed")
    return v


SipText = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_no_control)]
Name = Annotated[SipText, StringConstraints(min_length=1, max_length=200)]
DOMAIN_RE = re.compile(
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
SipDomain = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=253, pattern=DOMAIN_RE.pattern)
]


class ListParams(Params):
    tenant_id: Id | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class TimeRange(Params):
    since: AwareDatetime | None = Field(None, description="at or after this time (ISO 8601 with zone)")
    until: AwareDatetime | None = Field(None, description="before this time")

    @model_validator(mode="after")
    def _range(self):
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class IdParams(Params):
    id: Id


def dump(obj: SQLModel, exclude: set[str] | None = None) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude=exclude or set())


def get_scoped(s: Session, model, obj_id: int, principal: Principal, what: str):
    """Fetch by id; another tenant's object is reported exactly like a missing one."""
    obj = s.get(model, obj_id)
    if obj is None:
        raise NotFound(f"{what} {obj_id} does not exist", **{f"{what}_id": obj_id})
    tenant_id = obj.id if model.__tablename__ == "tenant" else obj.tenant_id
    if not principal.is_platform and tenant_id != principal.tenant_id:
        raise NotFound(f"{what} {obj_id} does not exist", **{f"{what}_id": obj_id})
    return obj


def check_unique_name(s: Session, model, tenant_id: int, name: str, what: str, exclude_id: int | None = None) -> None:
    """A tenant's sites, time plans, ... have unique names: conflict (nothing written) otherwise."""
    other = s.exec(select(model).where(model.tenant_id == tenant_id, model.name == name)).first()
    if other is not None and other.id != exclude_id:
        raise Conflict(f"this tenant has a {what} named {name!r} already", field="name", value=name)


def in_scope(stmt, tenant_column, principal: Principal, tenant_id: int | None):
    """Limit a list query to the caller's tenant (a platform token may name one, or see all)."""
    scope = principal.tenant_scope(tenant_id)
    return stmt if scope is None else stmt.where(tenant_column == scope)


def page(s: Session, stmt, limit: int, offset: int, serialise) -> dict[str, Any]:
    total = s.exec(select(func.count()).select_from(stmt.subquery())).one()
    rows = s.exec(stmt.limit(limit).offset(offset)).all()
    return {"items": [serialise(r) for r in rows], "total": total, "limit": limit, "offset": offset}
