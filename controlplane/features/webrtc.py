"""Credentials for a user's browser (the web softphone, docs/webrtc.md): the web app, logged in with the user's own API
token, asks for them and registers over WSS with digest like any phone — no SIP password is ever in the page's source.

Each user has one browser account (`webrtc-<user id>`, `webrtc` true: calls to the user are offered per device, the
browser's DTLS-SRTP); each call of `webrtc.credentials` gives it a new random password, returned once and stored only
as its digest hash — a page that asks again (a new login, a reload) makes the previous page's password stale, which
Kamailio answers with a challenge its registration cannot meet.
"""

from __future__ import annotations

import logging
import secrets

from pydantic import Field
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import SipAccount, Tenant, User

from .common import Id, get_scoped
from .sip_accounts import _set_password

log = logging.getLogger("callmanager.webrtc")


class CredentialsParams(Params):
    user_id: Id | None = Field(None, description="whose browser (default: the token's own user)")


def browser_username(user_id: int) -> str:
    return f"webrtc-{user_id}"


def ws_servers(settings) -> list[str]:
    """Where browsers connect: WSS on the node's (or its pair's virtual) address, and plain WS where it is on."""
    host = settings.sip_vip or settings.sip_address
    host = f"[{host}]" if ":" in host else host
    out = [f"wss://{host}:{settings.wss_port}"] if settings.wss_port else []
    return out + ([f"ws://{host}:{settings.sip_ws_port}"] if settings.sip_ws_port else [])


@method(
    "webrtc.credentials",
    CredentialsParams,
    errors=("invalid_params", "not_found", "forbidden", "conflict"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def credentials(ctx, p: CredentialsParams):
    """SIP credentials for the user's browser (a fresh password each time, returned once) and the node's WebSocket
    servers: {username, password, domain, uri, ws_servers}."""
    user_id = p.user_id if p.user_id is not None else ctx.principal.user_id
    if user_id is None:
        raise InvalidParams("this token belongs to no user: give user_id", field="user_id")
    servers = ws_servers(ctx.app.settings)
    if not servers:
        raise InvalidParams("this node has no WebSocket listener (sip_wss_port and sip_ws_port are 0)")
    with ctx.app.write() as s:
        user = get_scoped(s, User, user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        tenant = s.get(Tenant, user.tenant_id)
        name = browser_username(user.id)
        acc = s.exec(
            select(SipAccount).where(SipAccount.username == name, SipAccount.realm == tenant.sip_domain)
        ).first()
        if acc is not None and acc.user_id != user.id:
            raise Conflict(f"SIP account {name}@{tenant.sip_domain} belongs to another user", field="user_id")
        if acc is None:
            acc = SipAccount(
                tenant_id=tenant.id,
                user_id=user.id,
                username=name,
                realm=tenant.sip_domain,
                ha1="",
                ha1b="",
                webrtc=True,
            )
        password = secrets.token_urlsafe(18)
        _set_password(acc, password)
        acc.webrtc = True
        s.add(acc)
        s.flush()
        out = {
            "username": name,
            "password": password,
            "domain": tenant.sip_domain,
            "uri": f"sip:{name}@{tenant.sip_domain}",
            "ws_servers": servers,
        }
    # published before the answer, not by the background publisher a moment later: the browser registers at once, and
    # Kamailio's workers then see the new password within their snapshot check (the page retries for a few seconds)
    try:
        ctx.app.publisher.publish()
    except Exception:  # noqa: BLE001 - the password is stored; the background publisher publishes it on its next kick
        log.exception("webrtc.credentials: the snapshot with %s's new password was not published now", name)
        ctx.app.publisher.kick()
    return out
