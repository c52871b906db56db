"""Tenants (customer companies): each has a unique name and its own SIP domain (the digest realm)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from sqlmodel import select

from controlplane.api.errors import Conflict
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import SipAccount, Tenant, User

from .common import (
    IdParams,
    ListParams,
    Name,
    SipDomain,
    dump,
    get_scoped,
    in_scope,
    page,
)


Language = Literal["", "en", "de"]  # the prompt sets shipped (kemi.policy.announce.LANGUAGES; tested to match)
LANGUAGE_HELP = "the language its callers hear announcements in: en, de ('': the node's prompt_language)"
CALLER_LANGUAGES_HELP = (
    "callers from the public network by their number's prefix (ACD-21): {\"+49\": \"de\", \"+\": \"en\"} — the "
    "longest prefix wins; a number no prefix matches hears `language`"
)
REQUIRE_TLS_HELP = (
    "every SIP account of the tenant registers and calls over TLS only (others: 403 'TLS required'); emergency "
    "calls are never refused for it"
)
REQUIRE_SRTP_HELP = (
    "every call of the tenant's accounts offers SRTP (others: 488 'SRTP required'), and calls to its users are offered "
    "SRTP; trunks stay plain RTP (RTPengine bridges)"
)
CallerLanguages = dict[
    Annotated[str, StringConstraints(pattern=r"^\+[0-9]{0,8}$")], Literal["en", "de"]  # type: ignore[valid-type]
]


class TenantCreate(Params):
    name: Name
    sip_domain: SipDomain
    enabled: bool = True
    allow_directory: bool = Field(False, description="118xx directory services may be dialled")
    allow_clip_no_screening: bool = Field(False, description="users may present numbers that are not the tenant's own")
    anonymous: Literal["allow", "reject"] = Field(
        "allow", description="default for users: calls without a caller number"
    )
    language: Language = Field("", description=LANGUAGE_HELP)
    caller_languages: CallerLanguages = Field(default_factory=dict, max_length=200, description=CALLER_LANGUAGES_HELP)
    require_tls: bool = Field(False, description=REQUIRE_TLS_HELP)
    require_srtp: bool = Field(False, description=REQUIRE_SRTP_HELP)


class TenantUpdate(Params):
    id: int
    name: Name | None = None
    sip_domain: SipDomain | None = None
    enabled: bool | None = None
    allow_directory: bool | None = None
    allow_clip_no_screening: bool | None = None
    anonymous: Literal["allow", "reject"] | None = None
    language: Language | None = Field(None, description=LANGUAGE_HELP)
    caller_languages: CallerLanguages | None = Field(None, max_length=200, description=CALLER_LANGUAGES_HELP)
    require_tls: bool | None = Field(None, description=REQUIRE_TLS_HELP)
    require_srtp: bool | None = Field(None, description=REQUIRE_SRTP_HELP)


def _check_unique(s, name=None, domain=None, exclude_id=None):
    if name is not None:
        other = s.exec(select(Tenant).where(Tenant.name == name)).first()
        if other and other.id != exclude_id:
            raise Conflict(f"a tenant named {name!r} exists already", field="name", value=name)
    if domain is not None:
        other = s.exec(select(Tenant).where(Tenant.sip_domain == domain)).first()
        if other and other.id != exclude_id:
            raise Conflict(f"SIP domain {domain!r} belongs to another tenant", field="sip_domain", value=domain)


@method("tenant.create", TenantCreate, errors=("conflict",), perm=Perm.PLATFORM)
def create(ctx, p: TenantCreate):
    """Create a tenant (platform token only)."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        _check_unique(s, p.name, p.sip_domain)
        t = Tenant(**p.model_dump())
        s.add(t)
        s.flush()
        return dump(t)


@method("tenant.get", IdParams, errors=("not_found",), perm=Perm.SELF)
def get(ctx, p: IdParams):
    """Get one tenant."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, Tenant, p.id, ctx.principal, "tenant"))


@method("tenant.list", ListParams, perm=Perm.SELF)
def list_(ctx, p: ListParams):
    """List tenants (a tenant token sees only its own)."""
    with ctx.app.read() as s:
        stmt = select(Tenant).order_by(Tenant.id)
        stmt = in_scope(stmt, Tenant.id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("tenant.update", TenantUpdate, errors=("not_found", "conflict", "forbidden"), perm=Perm.CONFIG)
def update(ctx, p: TenantUpdate):
    """Rename a tenant, enable/disable it, set its callers' language, or change its SIP domain (only while it has no SIP
    accounts)."""
    with ctx.app.write() as s:
        t = get_scoped(s, Tenant, p.id, ctx.principal, "tenant")
        if not ctx.principal.can(Perm.PLATFORM) and (
            p.enabled is not None or p.allow_directory is not None or p.allow_clip_no_screening is not None
        ):
            ctx.principal.require_platform()  # service on/off and what the carrier allows are the platform's to set
        _check_unique(s, p.name, p.sip_domain, exclude_id=t.id)
        if p.sip_domain is not None and p.sip_domain != t.sip_domain:
            if s.exec(select(SipAccount).where(SipAccount.tenant_id == t.id)).first():
                raise Conflict(
                    "the SIP domain is the digest realm of existing SIP accounts; delete or re-create them first",
                    field="sip_domain",
                )
            t.sip_domain = p.sip_domain
        if p.name is not None:
            t.name = p.name
        for flag in (
            "enabled",
            "allow_directory",
            "allow_clip_no_screening",
            "anonymous",
            "language",
            "caller_languages",
            "require_tls",
            "require_srtp",
        ):
            if getattr(p, flag) is not None:
                setattr(t, flag, getattr(p, flag))
        s.add(t)
        s.flush()
        return dump(t)


@method("tenant.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.PLATFORM)
def delete(ctx, p: IdParams):
    """Delete an empty tenant (platform token only)."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        t = get_scoped(s, Tenant, p.id, ctx.principal, "tenant")
        if s.exec(select(User).where(User.tenant_id == t.id)).first():
            raise Conflict("the tenant still has users; delete them first", tenant_id=t.id)
        s.delete(t)
        return {"deleted": True, "id": p.id}
