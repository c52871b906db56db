"""Read the current SIP message from KSR into frozen facts. The only reader of KSR pseudo-variables."""
from __future__ import annotations

import KSR

from kemi.policy.facts import AuthResult, RequestFacts


def _pv(name: str) -> str:
    return KSR.pv.gete(name) or ""


def request_facts(auth: AuthResult = AuthResult.NONE, auth_user: str = "", auth_realm: str = "") -> RequestFacts:
    return RequestFacts(
        method=_pv("$rm"),
        ruri_user=_pv("$rU"),
        ruri_host=_pv("$rd").lower(),
        from_user=_pv("$fU"),
        from_host=_pv("$fd").lower(),
        to_user=_pv("$tU"),
        to_host=_pv("$td").lower(),
        src_ip=_pv("$si"),
        src_port=int(_pv("$sp") or 0),
        call_id=_pv("$ci"),
        auth_user=auth_user,
        auth_realm=auth_realm,
        auth=auth,
        to_myself=KSR.is_myself_ruri() > 0,
    )


def credentials() -> tuple[str, str]:
    """Username and realm of the digest credentials in the request ('' when there are none)."""
    return _pv("$au"), _pv("$ar").lower()


def local_port() -> int:
    return int(_pv("$Rp") or 0)


def reply_code() -> int:
    return int(_pv("$rs") or 0)


def transaction_reply() -> tuple[int, str]:
    return int(_pv("$T_reply_code") or 0), _pv("$T_reply_reason")


def has_sdp() -> bool:
    return "application/sdp" in _pv("$cT").lower()


def avp(name: str) -> str:
    return _pv(f"$avp({name})")


def dlg_var(name: str) -> str:
    return _pv(f"$dlg_var({name})")
