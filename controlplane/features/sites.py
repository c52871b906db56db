"""Sites of a tenant: country and area code (how short numbers are read) and the address sent with emergency calls."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Site, Tenant, User
from controlplane.db.models import Trunk
from kemi.policy.numbering import site_regions

from .common import check_unique_name, Id, IdParams, ListParams, Name, SipText, dump, get_scoped, in_scope, page

AreaCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[1-9][0-9]{0,6}$")]
Text = Annotated[SipText, StringConstraints(max_length=200)]  # goes into emergency INVITEs: no control characters
HouseNumber = Annotated[SipText, StringConstraints(max_length=16)]


def _region(v: str | None) -> str | None:
    if v is None:
        return v
    if not isinstance(v, str) or v.upper() not in site_regions():
        raise ValueError(
            f"{v!r} is not a country a site can be in (an ISO 3166 code whose emergency numbers are known)"
        )
    return v.upper()


class SiteCreate(Params):
    tenant_id: Id | None = None
    name: Name
    region: str = "DE"
    area_code: AreaCode | None = None
    street: Text = ""
    house_number: HouseNumber = ""
    postal_code: Text = ""
    city: Text = ""
    emergency_trunk_id: Id | None = None

    _check_region = field_validator("region")(classmethod(lambda cls, v: _region(v)))


class SiteUpdate(Params):
    id: Id
    name: Name | None = None
    region: str | None = None
    area_code: AreaCode | None = None
    street: Text | None = None
    house_number: HouseNumber | None = None
    postal_code: Text | None = None
    city: Text | None = None
    emergency_trunk_id: Annotated[int, Field(ge=0)] | None = Field(
        None, description="the trunk emergency calls try first; 0 clears it"
    )

    _check_region = field_validator("region")(classmethod(lambda cls, v: _region(v)))


def _check_name(s, tenant_id: int, name: str, exclude_id: int | None = None) -> None:
    check_unique_name(s, Site, tenant_id, name, "site", exclude_id)


def _check_trunk(s, tenant_id: int, trunk_id: int | None) -> None:
    """A site's emergency trunk must exist and carry this tenant's calls."""
    if not trunk_id:
        return
    trunk = s.get(Trunk, trunk_id)
    if trunk is None or (trunk.tenant_ids and tenant_id not in trunk.tenant_ids):
        raise InvalidParams(
            f"trunk {trunk_id} does not exist or does not carry this tenant's calls",
            field="emergency_trunk_id",
            value=trunk_id,
        )


@method("site.create", SiteCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def create(ctx, p: SiteCreate):
    """Create a site. The tenant's first site is the default for users without one."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.write() as s:
        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        _check_name(s, tenant_id, p.name)
        _check_trunk(s, tenant_id, p.emergency_trunk_id)
        site = Site(tenant_id=tenant_id, **p.model_dump(exclude={"tenant_id"}, exclude_none=True))
        s.add(site)
        s.flush()
        return dump(site)


@method("site.get", IdParams, errors=("not_found",), perm=Perm.DIRECTORY)
def get(ctx, p: IdParams):
    """Get one site."""
    with ctx.app.read() as s:
        return dump(get_scoped(s, Site, p.id, ctx.principal, "site"))


@method("site.list", ListParams, perm=Perm.DIRECTORY)
def list_(ctx, p: ListParams):
    """List sites."""
    with ctx.app.read() as s:
        stmt = select(Site).order_by(Site.id)
        stmt = in_scope(stmt, Site.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, dump)


@method("site.update", SiteUpdate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def update(ctx, p: SiteUpdate):
    """Change a site; its users read short numbers and send emergency addresses from the next call on."""
    with ctx.app.write() as s:
        site = get_scoped(s, Site, p.id, ctx.principal, "site")
        if p.name is not None:
            _check_name(s, site.tenant_id, p.name, exclude_id=site.id)
        _check_trunk(s, site.tenant_id, p.emergency_trunk_id)
        for k, v in p.model_dump(exclude={"id"}, exclude_none=True).items():
            setattr(site, k, v or None if k == "emergency_trunk_id" else v)
        s.add(site)
        s.flush()
        return dump(site)


@method("site.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a site that no user is assigned to."""
    with ctx.app.write() as s:
        site = get_scoped(s, Site, p.id, ctx.principal, "site")
        users = s.exec(select(User.id).where(User.site_id == site.id)).all()
        if users:
            raise Conflict(f"site {site.id} still has {len(users)} user(s)", site_id=site.id, user_ids=list(users)[:20])
        s.delete(site)
        return {"deleted": True, "id": p.id}
