"""API tokens: each has a role and a tenant (or none: a platform token). Shown once, stored hashed."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from pydantic import AwareDatetime, Field

from sqlmodel import select

from controlplane.api.errors import Forbidden, InvalidParams, NotFound
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.sealed import hash_token
from controlplane.api.permissions import may_grant
from controlplane.db.models import ApiToken, Role, Tenant, User

from .common import Id, IdParams, ListParams, Name, dump, get_scoped, in_scope, page


class TokenCreate(Params):
    name: Name
    role: Role
    tenant_id: Id | None = None  # platform tokens may create tokens for any tenant (or a platform token)
    user_id: Id | None = None  # binds the token to a user (their own calls and CDRs; never more than the user's role)
    expires_at: AwareDatetime | None = Field(
        None, description="when the token stops working (ISO 8601 with zone); none: until revoked"
    )


def _within(pr, role: Role) -> None:
    """A token can only hand out, or take away, what it has itself."""
    if not may_grant(pr.role, pr.perms, role):
        raise Forbidden(
            f"a {pr.role.value} token cannot create or revoke a {role.value} token (it has permissions this one has "
            "not)",
            role=role.value,
        )


@method("token.create", TokenCreate, errors=("invalid_params", "forbidden", "not_found"), perm=Perm.TOKENS)
def create(ctx, p: TokenCreate):
    """Create an API token; the secret is in this response only."""
    pr = ctx.principal
    _within(pr, p.role)
    tenant_id = pr.tenant_scope(p.tenant_id)
    if p.role is Role.PLATFORM and tenant_id is not None:
        raise InvalidParams("the platform operator's role is for tokens without a tenant", field="role")
    if tenant_id is None and p.user_id is not None:
        raise InvalidParams("a token bound to a user needs that user's tenant_id", field="tenant_id")
    if p.expires_at is not None and p.expires_at <= datetime.now(timezone.utc):
        raise InvalidParams("expires_at is in the past", field="expires_at")
    token = "cm_" + secrets.token_urlsafe(32)
    with ctx.app.write(changes_routing=False) as s:
        if tenant_id is not None:
            get_scoped(s, Tenant, tenant_id, pr, "tenant")
        if p.user_id is not None:
            u = get_scoped(s, User, p.user_id, pr, "user")
            if u.tenant_id != tenant_id:
                raise InvalidParams("the user belongs to another tenant", field="user_id")
        expires = p.expires_at.astimezone(timezone.utc) if p.expires_at else None
        t = ApiToken(
            name=p.name,
            token_hash=hash_token(token),
            role=p.role.value,
            tenant_id=tenant_id,
            user_id=p.user_id,
            expires_at=expires,
        )
        s.add(t)
        s.flush()
        out = dump(t, {"token_hash"})
    out["token"] = token
    return out


@method("token.list", ListParams, perm=Perm.TOKENS)
def list_(ctx, p: ListParams):
    """List API tokens (never their secrets)."""
    with ctx.app.read() as s:
        stmt = select(ApiToken).order_by(ApiToken.id)
        stmt = in_scope(stmt, ApiToken.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, lambda t: dump(t, {"token_hash"}))


@method("token.delete", IdParams, errors=("not_found", "forbidden"), perm=Perm.TOKENS)
def delete(ctx, p: IdParams):
    """Revoke an API token (one whose permissions the calling token has too)."""
    with ctx.app.write(changes_routing=False) as s:
        t = s.get(ApiToken, p.id)
        if t is None or (not ctx.principal.is_platform and t.tenant_id != ctx.principal.tenant_id):
            raise NotFound(f"token {p.id} does not exist", token_id=p.id)
        _within(ctx.principal, Role(t.role))
        s.delete(t)
        return {"deleted": True, "id": p.id}


@method("token.whoami", perm=Perm.SELF)
def whoami(ctx, p):
    """What the calling token may do: role, tenant, user — and, for a user's token, that user's name and status (what
    the web phone shows: DND on or off)."""
    pr = ctx.principal
    me = None
    if pr.user_id is not None:
        from controlplane.db.models import User

        with ctx.app.read() as s:
            u = s.get(User, pr.user_id)
            if u is not None:
                me = {"id": u.id, "name": u.name, "status": u.status, "status_message": u.status_message}
    return {
        "role": pr.role.value,
        "tenant_id": pr.tenant_id,
        "user_id": pr.user_id,
        "platform": pr.is_platform,
        "token_id": pr.token_id,
        "user": me,
    }
