"""A node being drained for maintenance (a rolling upgrade, docs/operations.md): it takes no new work and keeps the
work it has. Out-of-dialog requests are answered 503 with Retry-After, so phones and trunks try their next server
(DNS SRV) and stay away from this one; the server pings (OPTIONS to the node itself) answer 503 too, so the peers'
dispatcher probing takes the node out of their sets. In-dialog requests (BYE, re-INVITE, ...) are untouched: a call
in progress ends normally. Emergency calls are still taken — a node that is draining works, and an emergency call is
never sent round another retry."""

from __future__ import annotations

from collections.abc import Iterable

from .decision import Reject
from .numbering import Plan, clean, is_emergency, is_sos_urn

REASON = "Service Unavailable"
WARNING = "this node is draining for maintenance; use another server"


def refusal(retry_after_s: int) -> Reject:
    return Reject(503, REASON, WARNING, (f"Retry-After: {max(0, int(retry_after_s))}",))


def ping_answer(draining: bool, retry_after_s: int) -> Reject | None:
    """The answer to a server ping (OPTIONS to the node itself): None = 200 OK; while draining a 503, so that peers'
    dispatcher probing takes the node out of their sets."""
    return refusal(retry_after_s) if draining else None


def refuse_new(
    method: str, request_uri: str, dialled: str, regions: Iterable[str], retry_after_s: int
) -> Reject | None:
    """The answer to an out-of-dialog request while the node drains (None: take it). `regions`: the countries of the
    sites this node serves (whose emergency numbers are taken)."""
    if method in ("ACK", "CANCEL"):  # they belong to a transaction that exists
        return None
    if method == "INVITE":
        if is_sos_urn(request_uri):
            return None
        digits = clean(dialled or "")
        if digits and any(is_emergency(digits, Plan(region)) for region in regions):
            return None
    return refusal(retry_after_s)
