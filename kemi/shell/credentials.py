"""Digest credentials on the request route: checked against the account's HA1 (a decoy for unknown accounts), then
judged with the account's cool-down and address restriction; failures counted, sources banned, accounts cooled down.
Used by the general request route and by the ordinary REGISTER's straight path (kemi/shell/ordinary.py) alike."""

from __future__ import annotations

import secrets
import time

from kemi.policy.auth import auth_result, find_account, identity_must_match, realm_for
from kemi.policy.edge import KEY_MAX, bounded_key, judge_auth, plainly_accepted
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.media import offer_profile
from kemi.policy.routing import is_emergency_call
from kemi.policy.snapshot import Snapshot

from . import ksr_apply as apply
from . import ksr_read as read
from .runtime import EDGE

# Unknown accounts are checked against this: same work and same answer as a wrong password.
DECOY_HA1 = secrets.token_hex(16)


def authenticated_facts(msg: read.Message, snap: Snapshot) -> RequestFacts:
    """The request's facts with the result of checking its digest credentials; failures counted."""
    result, user, realm = AuthResult.NONE, msg.auth_user, msg.auth_realm
    if user:
        method_realm = realm_for(msg.method, msg.to_host, msg.from_host, snap.default_realm)
        acc = find_account(snap, user, method_realm)
        rc = read.check_credentials(
            method_realm, acc.ha1 if acc is not None else DECOY_HA1, identity_must_match(msg.method)
        )
        result = auth_result(rc)
        if result is AuthResult.OK or result is AuthResult.FAILED:
            result = judged_auth(msg, snap, acc, user, method_realm, result is AuthResult.OK, rc)
        if result is AuthResult.OK:
            realm = method_realm
    return RequestFacts(
        msg.method,
        msg.ruri_user,
        msg.ruri_host,
        msg.from_user,
        msg.from_host,
        msg.to_user,
        msg.to_host,
        msg.src_ip,
        msg.src_port,
        msg.call_id,
        user,
        realm,
        result,
        msg.method != "REGISTER" and msg.ruri_host not in snap.domains and read.is_myself_ruri(),
        # who forwarded a carrier's call here (the central voicemail, VM-08): read for those calls only
        read.one("$hdr(Diversion)")
        if not user and msg.method == "INVITE" and snap.trunk_for_source(msg.src_ip)
        else "",
        msg.proto.lower(),
        offer_profile(read.body()) if msg.method == "INVITE" and read.has_sdp(msg.content_type) else "",
    )


def cooldown(account: str, printed: str | None, printed_realm: str, realm: str) -> float:
    """The end of the account's cool-down (epoch seconds, 0: none): as the message read printed it (`printed`, None
    when the read was not exact) when it printed it under this account's key (the credentials' user@realm, lower-cased
    realm), else read from the htable."""
    if not EDGE.s.enabled:
        return 0.0
    if printed is not None and printed_realm == realm and len(account) < KEY_MAX:
        return float(printed) if printed.isascii() and printed.isdigit() else 0.0
    return EDGE.locked_until(account)


def judged_auth(
    msg: read.Message,
    snap: Snapshot,
    acc,
    user: str,
    realm: str,
    checked_ok: bool,
    rc: int,
    locked: float | None = None,
) -> AuthResult:
    """Right or wrong credentials, adjusted for the account's cool-down and address restriction (any
    account name, known or not, is treated alike); failures counted, sources banned, accounts cooled down."""
    account = bounded_key(f"{user}@{realm}")  # a key in shared memory: bounded in bytes whatever the sender wrote
    if locked is None:
        locked = cooldown(account, msg.locked_until if msg.exact else None, msg.auth_realm, realm)
    now = time.time()
    if plainly_accepted(checked_ok, locked, acc.allowed if acc is not None else (), now):
        return AuthResult.OK  # the common case: nothing more to read
    emergency = (
        locked > now and msg.method == "INVITE" and acc is not None and is_emergency_call(snap, acc, msg.ruri_user)
    )
    verdict = judge_auth(checked_ok, locked, acc.allowed if acc is not None else (), msg.src_ip, emergency, now)
    if verdict.ok:
        return AuthResult.OK
    tenant_id, user_id = (acc.tenant_id, acc.user_id) if acc is not None else (None, None)
    if checked_ok and verdict.count_account:  # the right password from an address the account may not be used from
        EDGE.refused_address(account, msg.src_ip, tenant_id, user_id)
    EDGE.auth_failed(
        user,
        realm,
        msg.src_ip,
        snap,
        verdict.why,
        tenant_id,
        user_id,
        count_account=verdict.count_account,
        method=msg.method,
    )
    apply.notice(
        f"callmanager: authentication refused for {account} from {msg.src_ip}: {verdict.why} (rc {rc}, Call-ID "
        f"{msg.call_id})"
    )
    return AuthResult.FAILED  # answered exactly like a wrong password
