"""Call detail records: dispositions and the record the shell spools for the control plane."""
from __future__ import annotations

from typing import Any

ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no_answer"
CANCELLED = "cancelled"
REJECTED = "rejected"
UNAVAILABLE = "unavailable"
FAILED = "failed"
DISPOSITIONS = (ANSWERED, BUSY, NO_ANSWER, CANCELLED, REJECTED, UNAVAILABLE, FAILED)


def is_call_attempt(method: str) -> bool:
    """Only INVITEs are calls: a rejected MESSAGE or OPTIONS leaves no CDR."""
    return method == "INVITE"


def disposition(code: int, cancelled: bool = False) -> str:
    """Map a final SIP code (and whether the caller cancelled) to a CDR disposition."""
    if cancelled or code == 487:
        return CANCELLED
    if 200 <= code < 300:
        return ANSWERED
    if code in (486, 600):
        return BUSY
    if code == 408:
        return NO_ANSWER
    if code in (480, 410):
        return UNAVAILABLE
    if code in (403, 404, 484, 488, 603, 604, 606) or 300 <= code < 500:
        return REJECTED
    return FAILED


def record(
    ctx: dict[str, Any],
    *,
    code: int,
    reason: str,
    end_ts: float,
    answer_ts: float | None = None,
    cancelled: bool = False,
    ring_ts: float | None = None,
    quality: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Complete a call context (made at INVITE time) into a CDR document. `ring_ts`: when a device first rang
    (the post-dial delay ends there, or at the answer); `quality`: the rtpengine module's scores of the media."""
    start = float(ctx["start_ts"])
    first_sign = ring_ts or answer_ts
    return {
        "id": ctx["id"],
        "tenant_id": ctx.get("tenant_id"),
        "caller": ctx.get("caller", ""),
        "caller_user_id": ctx.get("caller_user_id"),
        "callee": ctx.get("callee", ""),
        "callee_user_id": ctx.get("callee_user_id"),
        "call_id": ctx.get("call_id", ""),
        "start_ts": start,
        "answer_ts": answer_ts,
        "end_ts": end_ts,
        "duration_s": round(end_ts - answer_ts, 3) if answer_ts else 0.0,
        "disposition": disposition(code, cancelled),
        "sip_code": code,
        "sip_reason": reason,
        "trace": list(ctx.get("trace", ())),
        **({"feature": ctx["feature"]} if ctx.get("feature") else {}),
        **({"emergency": True} if ctx.get("emergency") else {}),
        **(_priced(ctx, end_ts - answer_ts if answer_ts else 0.0) if ctx.get("fraud") else {}),
        **({"pdd_s": round(max(0.0, first_sign - start), 3)} if first_sign else {}),
        **(media_scores(quality) if quality else {}),
    }


def media_scores(quality: dict[str, str]) -> dict[str, float]:
    """The rtpengine module's averages for a call -> CDR fields: MOS (1-5), jitter in ms, loss in percent, round
    trip in ms (the module gives microseconds). A value that is missing or not a number is left out."""
    out: dict[str, float] = {}
    for key, field, scale in (("mos", "mos", 1.0), ("jitter", "jitter_ms", 1.0), ("loss", "loss_pct", 1.0), ("rtt", "rtt_ms", 1e-3)):
        try:
            value = float(quality.get(key) or "")
        except ValueError:
            continue
        if value == value and value >= 0:
            out[field] = round(value * scale, 3)
    if not 1.0 <= out.get("mos", 0.0) <= 5.0:
        return {}  # no score: RTPengine saw no RTCP for the call
    return out


def _priced(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Calls out: who pays (the caller, or the user whose forwarding sent the call out), the class and the price."""
    payer, dest_class, rate = ctx["fraud"]
    return {"payer_user_id": payer, "dest_class": dest_class, "cost": round(float(rate) * seconds / 60.0, 6)}


def call_context(decision_caller, decision_callee, *, cdr_id: str, call_id: str, start_ts: float, trace) -> dict[str, Any]:
    return {
        "id": cdr_id,
        "tenant_id": (decision_callee or decision_caller).tenant_id if (decision_callee or decision_caller) else None,
        "caller": decision_caller.number if decision_caller else "",
        "caller_user_id": decision_caller.user_id if decision_caller else None,
        "callee": decision_callee.number if decision_callee else "",
        "callee_user_id": decision_callee.user_id if decision_callee else None,
        "call_id": call_id,
        "start_ts": start_ts,
        "trace": list(trace),
    }
