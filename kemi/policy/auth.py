"""Digest-authentication policy: which realm to challenge with and which HA1 to check against.

Unknown accounts are checked against a decoy HA1, so an unknown user and a wrong password
look the same from outside (same code, same headers, same work): no enumeration.
"""
from __future__ import annotations

import hashlib

from .facts import RequestFacts
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
    host = facts.to_host if facts.method == "REGISTER" else facts.from_host
    return host.lower() if host else snapshot.default_realm


def find_account(snapshot: Snapshot, username: str, realm: str) -> Account | None:
    acc = snapshot.accounts.get((username, realm.lower()))
    if acc is None or not acc.enabled:
        return None
    tenant = snapshot.tenants.get(acc.tenant_id)
    if tenant is None or not tenant.enabled:
        return None
    user = snapshot.users.get(acc.user_id)
    if user is None or not user.enabled:
        return None
    return acc


def ha1_for_check(snapshot: Snapshot, username: str, realm: str, decoy: str) -> str:
    """The HA1 to verify the presented credentials against (the decoy for unknown accounts)."""
    acc = find_account(snapshot, username, realm)
    return acc.ha1 if acc is not None else decoy
