"""Digest-authentication policy: which realm to challenge with and which HA1 to check against.

Unknown accounts are checked against a decoy HA1, so an unknown user and a wrong password
look the same from outside (same code, same headers, same work): no enumeration.
"""

from __future__ import annotations

import hashlib

from kemi.policy.edge import bounded_key

from .facts import AuthResult, RequestFacts
from .snapshot import Account, Snapshot


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def ha1b(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}@{realm}:{realm}:{password}".encode()).hexdigest()


def challenge_realm(facts: RequestFacts, snapshot: Snapshot) -> str:
    """REGISTER authenticates in the To domain, other requests in the From domain.

    An account belongs to one realm (its tenant's SIP domain); any other domain is
    challenged as given, and no account will match it.
    """
    return realm_for(facts.method, facts.to_host.lower(), facts.from_host.lower(), snapshot.default_realm)


def realm_for(method: str, to_host: str, from_host: str, default_realm: str) -> str:
    """`challenge_realm` on bare (lower-cased) header values, for the shell before facts exist."""
    host = to_host if method == "REGISTER" else from_host
    return host or default_realm


def find_account(snapshot: Snapshot, username: str, realm: str) -> Account | None:
    """The account that may authenticate as username@realm: it, its user and its tenant enabled."""
    return snapshot.active_accounts.get((username, realm.lower()))


def ha1_for_check(snapshot: Snapshot, username: str, realm: str, decoy: str) -> str:
    """The HA1 to verify the presented credentials against (the decoy for unknown accounts)."""
    acc = find_account(snapshot, username, realm)
    return acc.ha1 if acc is not None else decoy


# Return codes of Kamailio's auth pv_auth_check(): > 0 ok, -4 nonce expired, -5 no credentials
# for the realm, -6 nonce reused; everything else (-1 generic, -2 wrong password, -8 user
# mismatch, ...) is a failed attempt.
_STALE_CODES = frozenset({-4, -6})
_NO_CREDENTIALS = -5


def auth_result(rc: int) -> AuthResult:
    """What a digest check's return code means for the decision (and for failure counting)."""
    if rc > 0:
        return AuthResult.OK
    if rc in _STALE_CODES:
        return AuthResult.STALE
    if rc == _NO_CREDENTIALS:
        return AuthResult.NONE
    return AuthResult.FAILED


def identity_must_match(method: str) -> bool:
    """REGISTER binds only the authenticated account's own AOR (To user == auth user).

    Calls may present another From user (e.g. a display number); the caller is identified by
    the authenticated account, never by From.
    """
    return method == "REGISTER"


def failure_counter_keys(username: str, realm: str, src_ip: str) -> tuple[str, ...]:
    """Keys of the shared `authfail` counters a failed attempt increments: per account, per source, total."""
    return (f"acct:{bounded_key(f'{username}@{realm}')}", f"src:{src_ip}", "total")
