"""Decisions: what the policy core tells the shell to do, with a trace of why."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reject:
    code: int
    reason: str
    warning: str = ""  # human-readable explanation sent in a Warning header
    headers: tuple[str, ...] = ()  # further reply headers, e.g. "Allow: ..."


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    proxy: bool  # 407 Proxy-Authenticate (True) or 401 WWW-Authenticate (False)


@dataclass(frozen=True, slots=True)
class RouteToUser:
    tenant_id: int
    user_id: int
    aors: tuple[str, ...]
    on_unreachable: Reject = Reject(480, "Temporarily Unavailable", "callee has no registered device")


@dataclass(frozen=True, slots=True)
class Register:
    """Accept the registration for this account (the shell saves the binding)."""

    aor: str
    tenant_id: int
    user_id: int


Action = Reject | Challenge | RouteToUser | Register


@dataclass(frozen=True, slots=True)
class CallParty:
    tenant_id: int | None
    user_id: int | None
    number: str  # extension or SIP user as dialled / presented


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    trace: tuple[str, ...] = ()
    caller: CallParty | None = None
    callee: CallParty | None = None
    counts_as_call: bool = True  # False for challenges: an auth round trip is not a call attempt

