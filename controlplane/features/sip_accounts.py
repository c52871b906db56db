"""SIP accounts: digest credentials of a user's devices (any number per user, SPEC ACC-06).

Only HA1 hashes are stored; a password is taken (or generated) at create/update time and
returned once, in that response, when it was generated.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from sqlmodel import select

from controlplane.api.errors import Conflict, Forbidden, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Mailbox, PhoneNumber, SipAccount, Tenant, User
from controlplane.numbering import e164
from kemi.policy.auth import ha1, ha1b
from kemi.policy.edge import networks

from controlplane.group_members import groups_referring_to

from .common import Id, IdParams, ListParams, dump, get_scoped, in_scope, page

SipUsername = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~+-]+$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")]
HIDDEN = {"ha1", "ha1b"}


class Device(Params):
    """Per-device settings (TEL-29)."""

    ring: bool | None = Field(None, description="rings when the user is called (parallel ringing)")
    clir: bool | None = Field(None, description="calls from this device suppress the number (overrides the user)")
    presented_number: str | None = Field(None, description="number presented on calls from this device ('' clears)")
    allowed_networks: list[str] | None = Field(
        None,
        max_length=64,
        description="SEC-10: addresses or CIDR ranges the account may be "
        "used from; the right password from elsewhere is refused ([] : anywhere)",
    )
    webrtc: bool | None = Field(
        None,
        description="a browser (WebRTC over WSS): calls to its user are offered per device, DTLS-SRTP to this one",
    )
    require_tls: bool | None = Field(
        None,
        description="this device registers and calls over TLS only (403 'TLS required' otherwise); its tenant's"
        " require_tls applies too",
    )
    require_srtp: bool | None = Field(
        None,
        description="this device's calls offer SRTP (488 'SRTP required' otherwise) and calls to its user are "
        "offered SRTP when all the user's devices require it; its tenant's require_srtp applies too",
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value):
        if value is None:
            return None
        try:
            return [str(n) for n in networks(value)]
        except ValueError as exc:
            raise ValueError(f"not an address or CIDR range: {exc}") from None


def _apply_device(s, acc: SipAccount, p: Device) -> None:
    if p.allowed_networks is not None:
        acc.allowed_networks = list(dict.fromkeys(p.allowed_networks))
    if p.ring is not None:
        acc.ring = p.ring
    if p.webrtc is not None:
        acc.webrtc = p.webrtc
    if p.require_tls is not None:
        acc.require_tls = p.require_tls
    if p.require_srtp is not None:
        acc.require_srtp = p.require_srtp
    if p.clir is not None:
        acc.clir = p.clir
    if p.presented_number is not None:
        if p.presented_number == "":
            acc.presented_number = None
            return
        number = e164(p.presented_number, "presented_number")
        own = s.exec(
            select(PhoneNumber).where(PhoneNumber.e164 == number, PhoneNumber.tenant_id == acc.tenant_id)
        ).first()
        if own is None and not s.get(Tenant, acc.tenant_id).allow_clip_no_screening:
            raise Forbidden(
                f"{number} is not a number of this tenant (CLIP no screening is not enabled)", field="presented_number"
            )
        acc.presented_number = number


class SipAccountCreate(Device):
    user_id: Id
    username: SipUsername
    password: Password | None = None  # omitted: a strong one is generated and returned once
    enabled: bool = True


class SipAccountUpdate(Device):
    id: Id
    password: Password | None = None
    generate_password: bool = False
    enabled: bool | None = None


class SipAccountList(ListParams):
    user_id: Id | None = None


def _out(acc: SipAccount, password: str | None = None) -> dict:
    d = dump(acc, HIDDEN)
    d["aor"] = f"sip:{acc.username}@{acc.realm}"
    if password is not None:
        d["password"] = password
    return d


def _set_password(acc: SipAccount, password: str) -> None:
    acc.ha1 = ha1(acc.username, acc.realm, password)
    acc.ha1b = ha1b(acc.username, acc.realm, password)


@method("sip_account.create", SipAccountCreate, errors=("invalid_params", "not_found", "conflict"), perm=Perm.CONFIG)
def create(ctx, p: SipAccountCreate):
    """Create a SIP account for a user; its realm is the tenant's SIP domain."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        tenant = s.get(Tenant, user.tenant_id)
        if s.exec(
            select(SipAccount).where(SipAccount.username == p.username, SipAccount.realm == tenant.sip_domain)
        ).first():
            raise Conflict(
                f"SIP account {p.username}@{tenant.sip_domain} exists already", field="username", value=p.username
            )
        generated = p.password is None
        password = secrets.token_urlsafe(12) if generated else p.password
        acc = SipAccount(
            tenant_id=tenant.id,
            user_id=user.id,
            username=p.username,
            realm=tenant.sip_domain,
            ha1="",
            ha1b="",
            enabled=p.enabled,
        )
        _set_password(acc, password)
        _apply_device(s, acc, p)
        s.add(acc)
        s.flush()
        out = _out(acc, password if generated else None)
        box = s.exec(select(Mailbox.id).where(Mailbox.user_id == user.id)).first()
    if box is not None:  # the new device's address gets its user's message waiting
        ctx.app.voicemail_changed(box)
    return out


@method("sip_account.get", IdParams, errors=("not_found",), perm=Perm.CONFIG)
def get(ctx, p: IdParams):
    """Get one SIP account (never its credentials)."""
    with ctx.app.read() as s:
        return _out(get_scoped(s, SipAccount, p.id, ctx.principal, "sip_account"))


@method("sip_account.list", SipAccountList, perm=Perm.CONFIG)
def list_(ctx, p: SipAccountList):
    """List SIP accounts, optionally of one user."""
    with ctx.app.read() as s:
        stmt = select(SipAccount).order_by(SipAccount.id)
        stmt = in_scope(stmt, SipAccount.tenant_id, ctx.principal, p.tenant_id)
        if p.user_id is not None:
            stmt = stmt.where(SipAccount.user_id == p.user_id)
        return page(s, stmt, p.limit, p.offset, _out)


@method("sip_account.update", SipAccountUpdate, errors=("invalid_params", "not_found", "forbidden"), perm=Perm.CONFIG)
def update(ctx, p: SipAccountUpdate):
    """Set or generate a new password, enable/disable the account, or change its device settings."""
    if p.password is not None and p.generate_password:
        raise InvalidParams("give either password or generate_password, not both")
    with ctx.app.write() as s:
        acc = get_scoped(s, SipAccount, p.id, ctx.principal, "sip_account")
        generated = secrets.token_urlsafe(12) if p.generate_password else None
        if p.password is not None or generated:
            _set_password(acc, p.password or generated)
        if p.enabled is not None:
            acc.enabled = p.enabled
        _apply_device(s, acc, p)
        s.add(acc)
        s.flush()
        return _out(acc, generated)


@method("sip_account.delete", IdParams, errors=("not_found", "conflict"), perm=Perm.CONFIG)
def delete(ctx, p: IdParams):
    """Delete a SIP account; its devices can no longer register or call."""
    with ctx.app.write() as s:
        acc = get_scoped(s, SipAccount, p.id, ctx.principal, "sip_account")
        used = groups_referring_to(s, acc.tenant_id, sip_account_id=acc.id)
        if used:
            raise Conflict(
                f"SIP account {acc.id} is a member of hunt group(s) {used}: take it out there first", group_ids=used
            )
        s.delete(acc)
        return {"deleted": True, "id": p.id}
