"""Request facts: what the shell read from a SIP request, frozen, with no KSR attached."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class AuthResult(Enum):
    NONE = "none"  # no credentials presented
    OK = "ok"
    FAILED = "failed"  # credentials presented, but wrong (or for an unknown account)
    STALE = "stale"  # nonce expired or reused: challenge again, not a failure


@dataclass(frozen=True, slots=True)
class RequestFacts:
    method: str
    ruri_user: str
    ruri_host: str
    from_user: str
    from_host: str
    to_user: str
    to_host: str
    src_ip: str
    src_port: int
    call_id: str = ""
    auth_user: str = ""  # username in the Authorization/Proxy-Authorization header
    auth_realm: str = ""
    auth: AuthResult = AuthResult.NONE
    to_myself: bool = False  # R-URI host is one of the node's own addresses
