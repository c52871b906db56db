"""A tenant's dial plan: automatic rewrites of dialled numbers before they are read (XADM).

Rules are tried by position; the first whose pattern matches the whole dialled string applies
its replacement (Python `re` syntax, groups as \\1). Example: strip an outside-line 0 from
old-style dialling with pattern `0(0\\d+)` and replacement `\\1`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator
from sqlmodel import select

from controlplane.api.errors import InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import DialplanRule, Tenant

from .common import Id, IdParams, ListParams, dump, get_scoped, in_scope, page

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Replacement = Annotated[str, StringConstraints(max_length=200)]
_SAFE = re.compile(
    r"^[0-9+*#\\d()\[\]{},.?|^$-]*$"
)  # digits, classes, groups, quantifiers: no backtracking traps like (a+)+


def _validate(pattern: str | None, replacement: str | None) -> None:
    if pattern is not None:
        if not _SAFE.match(pattern) or re.search(r"\)[*+{]", pattern):
            raise InvalidParams(
                "pattern may use digits, + * #, \\d, [...], (...), {m,n}, ?, |, and no quantified groups",
                field="pattern",
                value=pattern,
            )
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise InvalidParams(
                f"pattern is not a valid regular expression: {exc}", field="pattern", value=pattern
            ) from None
        if replacement is not None:
            try:
                compiled.sub(replacement, "")
                refs = [int(g) for g in re.findall(r"\\(\d)", replacement)]
                if refs and max(refs) > compiled.groups:
                    raise re.error(f"refers to group {max(refs)} of {compiled.groups}")
            except re.error as exc:
                raise InvalidParams(
                    f"replacement does not fit the pattern: {exc}", field="replacement", value=replacement
                ) from None


class RuleCreate(Params):
    tenant_id: Id | None = None
    pattern: Pattern
    replacement: Replacement
    position: int = Field(0, ge=0, le=10000)
    description: Annotated[str, StringConstraints(max_length=200)] = ""

    @model_validator(mode="after")
    def _ok(self):
        _validate(self.pattern, self.replacement)
        return self


class RuleUpdate(Params):
    id: Id
    pattern: Pattern | None = None
    replacement: Replacement | None = None
    position: int | None = Field(None, ge=0, le=10000)
    description: Annotated[str, StringConstraints(max_length=200)] | None = None


@method("dialplan.create", RuleCreate, errors=("invalid_params", "not_found"), perm=Perm.CONFIG)
def create(ctx, p: RuleCreate):
    """Add a dial-plan rule."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.write() as s:
        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        r = DialplanRule(tenant_id=tenant_id, **p.model_dump(exclude={"tenant_id"}))
        s.add(r)
        s.flush()
        return dump(r)


@method("dialplan.list", ListParams, perm=Perm.CONFIG)
def list_(ctx, p: ListParams):
    """List dial-plan rules in the order they are tried."""
    with ctx.app.read() as s:
        stmt = select(DialplanRule).order_by(DialplanRule.tenant_id, DialplanRule.position, DialplanRule.id)
        stmt = in_scope(stmt, DialplanRule.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("dialplan.update", RuleUpdate, errors=("invalid_params", "not_found"), perm=Perm.CONFIG)
def update(ctx, p: RuleUpdate):
    """Change a dial-plan rule."""
    with ctx.app.write() as s:
        r = get_scoped(s, DialplanRule, p.id, ctx.principal, "dialplan_rule")
        _validate(p.pattern or r.pattern, p.replacement if p.replacement is not None else r.replacement)
        for k, v in p.model_dump(exclude={"id"}, exclude_none=True).items():
            setattr(r, k, v)
        s.add(r)
        s.flush()
        return dump(r)


@method("dialplan.delete", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a dial-plan rule."""
    with ctx.app.write() as s:
        s.delete(get_scoped(s, DialplanRule, p.id, ctx.principal, "dialplan_rule"))
        return {"deleted": True, "id": p.id}
