"""Request facts: what the shell read from a SIP request, frozen, with no KSR attached."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class AuthResult(Enum):
    NONE = "none"  # no credentials presented
    OK = "ok"
    FAILED = "failed"  # credentials presented, but wrong (or for an unknown account)
    STALE = "stale"  # nonce expired or reused: challenge again, not a failure


class RequestFacts(NamedTuple):
    """Immutable (a NamedTuple: built on every request, several times cheaper than a frozen dataclass)."""

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
    diversion: str = ""  # a carrier's call: its (first) Diversion header, RFC 5806 — who forwarded it here
    transport: str = "udp"  # what it came over: udp, tcp, tls, ws, wss (the encryption policy, kemi.policy.media)
    offer: str = ""  # an INVITE's SDP profile (kemi.policy.media.offer_profile): "RTP/AVP", "RTP/SAVP", ...; '' none
