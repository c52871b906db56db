"""SIP trunks to carriers (TRK-01..07): platform-level, shared by the tenants they are given to.

Outgoing calls try a tenant's trunks by priority and fail over on 5xx or no answer; incoming
calls are accepted only from a trunk's source addresses and routed by the dialled number.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Tenant, Trunk
from controlplane.numbering import region_ok

from .common import SipText, DOMAIN_RE, Id, IdParams, ListParams, Name, page
from .common import dump as _dump


def dump(t: Trunk) -> dict:
    """A trunk as the API shows it: the password never leaves, only whether one is set."""
    return {**_dump(t, exclude={"auth_password"}), "has_password": bool(t.auth_password)}


Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
Prefix = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9][0-9]{0,14}$")]


def _host(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        if DOMAIN_RE.match(v):
            return v.lower()
    raise ValueError(f"{v!r} is neither an IP address nor a host name")


def _sources(v: list[str] | None) -> list[str] | None:
    if v is None:
        return v
    out = []
    for c in v:
        try:
            out.append(str(ipaddress.ip_network(c, strict=False)))
        except ValueError:
            raise ValueError(f"{c!r} is not an IP address or CIDR range") from None
    return out


def _region(v: str | None) -> str | None:
    if v is not None and not region_ok(v):
        raise ValueError(f"{v!r} is not a supported ISO 3166 country code")
    return v.upper() if v else v


class TrunkFields(Params):
    host: Host | None = None
    port: int | None = Field(None, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] | None = None
    priority: int | None = Field(None, ge=0, le=1000, description="lower is tried first")
    enabled: bool | None = None
    region: str | None = Field(None, description="country whose numbering the carrier's numbers are read in")
    sources: list[str] | None = Field(
        None, description="addresses/CIDRs calls from the carrier come from; empty: the host"
    )
    tenant_ids: list[Id] | None = Field(None, description="tenants that may use it; empty: all")
    prefixes: list[Prefix] | None = Field(None, description="E.164 prefixes it carries; empty: all")
    auth_username: SipText | None = Field(
        None, max_length=100, description="digest user the carrier challenges for ('' clears)"
    )
    auth_password: SipText | None = Field(
        None, max_length=200, description="its password (stored for answering challenges, never returned)"
    )
    auth_realm: SipText | None = Field(
        None, max_length=253, description="only answer challenges of this realm (default: any)"
    )

    _v_host = field_validator("host")(classmethod(lambda cls, v: _host(v)))
    _v_sources = field_validator("sources")(classmethod(lambda cls, v: _sources(v)))
    _v_region = field_validator("region")(classmethod(lambda cls, v: _region(v)))


class TrunkCreate(TrunkFields):
    name: Name
    host: Host


class TrunkUpdate(TrunkFields):
    id: Id
    name: Name | None = None


def _check(s, p: TrunkFields, name: str | None, exclude_id: int | None = None) -> None:
    if name is not None:
        other = s.exec(select(Trunk).where(Trunk.name == name)).first()
        if other and other.id != exclude_id:
            raise Conflict(f"a trunk named {name!r} exists already", field="name", value=name)
    for tid in p.tenant_ids or ():
        if s.get(Tenant, tid) is None:
            raise InvalidParams(f"tenant {tid} does not exist", field="tenant_ids", value=tid)


@method("trunk.create", TrunkCreate, errors=("invalid_params", "conflict", "forbidden"), perm=Perm.PLATFORM)
def create(ctx, p: TrunkCreate):
    """Add a trunk (platform token)."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        _check(s, p, p.name)
        t = Trunk(
            **{k: (v or None) if k.startswith("auth_") else v for k, v in p.model_dump(exclude_none=True).items()}
        )
        t.auth_password = ctx.app.sealer.seal(t.auth_password)  # encrypted at rest (controlplane/sealed.py)
        s.add(t)
        s.flush()
        return dump(t)


@method("trunk.get", IdParams, errors=("not_found", "forbidden"), perm=Perm.PLATFORM)
def get(ctx, p: IdParams):
    """Get one trunk (platform token)."""
    ctx.principal.require_platform()
    with ctx.app.read() as s:
        return dump(_get(s, p.id))


@method("trunk.list", ListParams, errors=("forbidden",), perm=Perm.PLATFORM)
def list_(ctx, p: ListParams):
    """List trunks by priority (platform token)."""
    ctx.principal.require_platform()
    with ctx.app.read() as s:
        return page(s, select(Trunk).order_by(Trunk.priority, Trunk.id), p.limit, p.offset, dump)


@method(
    "trunk.update", TrunkUpdate, errors=("invalid_params", "not_found", "conflict", "forbidden"), perm=Perm.PLATFORM
)
def update(ctx, p: TrunkUpdate):
    """Change a trunk; used from the next call on."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        t = _get(s, p.id)
        _check(s, p, p.name, exclude_id=t.id)
        for k, v in p.model_dump(exclude={"id"}, exclude_none=True).items():
            setattr(t, k, (v or None) if k.startswith("auth_") else v)
        t.auth_password = ctx.app.sealer.seal(t.auth_password)
        s.add(t)
        s.flush()
        return dump(t)


@method("trunk.delete", IdParams, errors=("not_found", "forbidden"), perm=Perm.PLATFORM)
def delete(ctx, p: IdParams):
    """Remove a trunk."""
    ctx.principal.require_platform()
    with ctx.app.write() as s:
        s.delete(_get(s, p.id))
        return {"deleted": True, "id": p.id}


def _get(s, trunk_id: int) -> Trunk:
    from controlplane.api.errors import NotFound

    t = s.get(Trunk, trunk_id)
    if t is None:
        raise NotFound(f"trunk {trunk_id} does not exist", trunk_id=trunk_id)
    return t
