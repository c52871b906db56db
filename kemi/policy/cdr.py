"""Call detail records: dispositions and the record the shell spools for the control plane."""

from __future__ import annotations

import json
from typing import Any

from .callstate import CallState, compact_json

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
    state: CallState,
    *,
    code: int,
    reason: str,
    end_ts: float,
    answer_ts: float | None = None,
    cancelled: bool = False,
    ring_ts: float | None = None,
    quality: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The call detail record of a call that ended, from its state. `ring_ts`: when a device first rang
    (the post-dial delay ends there, or at the answer); `quality`: the rtpengine module's scores of the media."""
    r = state.record
    start = float(r.start_ts)
    first_sign = ring_ts or answer_ts
    seconds = end_ts - answer_ts if answer_ts else 0.0
    return {
        "id": r.id,
        "tenant_id": r.tenant_id,
        "caller": r.caller,
        "caller_user_id": r.caller_user_id,
        "callee": r.callee,
        "callee_user_id": r.callee_user_id,
        "call_id": r.call_id,
        "start_ts": start,
        "answer_ts": answer_ts,
        "end_ts": end_ts,
        "duration_s": round(seconds, 3) if answer_ts else 0.0,
        "disposition": disposition(code, cancelled),
        "sip_code": code,
        "sip_reason": reason,
        "trace": list(state.trace),
        **({"feature": state.feature._asdict()} if state.feature else {}),
        **({"emergency": True} if state.emergency else {}),
        **(
            {
                "payer_user_id": state.fraud.payer_user_id,
                "dest_class": state.fraud.dest_class,
                "cost": round(float(state.fraud.rate) * seconds / 60.0, 6),
            }
            if state.fraud
            else {}
        ),
        **({"pdd_s": round(max(0.0, first_sign - start), 3)} if first_sign else {}),
        **(media_scores(quality) if quality else {}),
    }


END_TYPE = "call_end"


def end_line(state_json: str, why: str, end_ts: float, answer: str, quality: dict[str, str] | None) -> str | None:
    """The spool line of an answered call's end: what the dialog's end knows (why, when, its answer and ring times as
    the dialog kept them: "<answered at>/<first rang at>", the media scores) and the call's state as the dialog kept it,
    as JSON text — not decoded in Kamailio's worker: the control plane's ingestion makes the record (`ended_record`).
    None when the state is not a JSON object on one line (damaged: the call has no record)."""
    if not (state_json[:1] == "{" and state_json[-1:] == "}" and "\n" not in state_json):
        return None
    head = compact_json({"type": END_TYPE, "why": why, "end_ts": end_ts, "answer": answer, "quality": quality})
    return head[:-1] + ',"state":' + state_json + "}"


def end_answer(answer: str, dialog_start_ts: str) -> str:
    """The answer and ring times an answered call's end spools ("<answered at>/<first rang at>"): as the node kept them
    at the answer; a cluster peer's copy of the dialog has none (they were set after it was replicated), so the moment
    the dialog module confirmed the dialog stands for the answer ('0' or '': not confirmed, the call's start will)."""
    if answer:
        return answer
    return f"{dialog_start_ts}/" if dialog_start_ts not in ("", "0") else ""


def ended_record(line: dict[str, Any]) -> dict[str, Any]:
    """The record of an answered call from its end's spool line (`end_line`); ValueError/KeyError/TypeError when the
    line is not one."""
    state = CallState.from_doc(line["state"])
    answered, _, rang = str(line.get("answer") or "").partition("/")
    quality = line.get("quality")
    return record(
        state.traced(str(line["why"])),
        code=200,
        reason="OK",
        end_ts=float(line["end_ts"]),
        answer_ts=_seconds(answered) or state.record.start_ts,
        ring_ts=_seconds(rang),
        quality={str(k): str(v) for k, v in quality.items()} if isinstance(quality, dict) else None,
    )


def _seconds(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def media_scores(quality: dict[str, str]) -> dict[str, float]:
    """The rtpengine module's averages for a call -> CDR fields: MOS (1-5), jitter in ms, loss in percent, round
    trip in ms (the module gives microseconds). A value that is missing or not a number is left out."""
    out: dict[str, float] = {}
    for key, field, scale in (
        ("mos", "mos", 1.0),
        ("jitter", "jitter_ms", 1.0),
        ("loss", "loss_pct", 1.0),
        ("rtt", "rtt_ms", 1e-3),
    ):
        try:
            value = float(quality.get(key) or "")
        except ValueError:
            continue
        if value == value and value >= 0:
            out[field] = round(value * scale, 3)
    if not 1.0 <= out.get("mos", 0.0) <= 5.0:
        return {}  # no score: RTPengine saw no RTCP for the call
    return out


def end_request(value: str) -> tuple[str, str, str, str] | None:
    """A request to end a call (the control plane's fraud monitor writes JSON [Call-ID, From tag, To tag, reason]);
    None when it cannot be read."""
    try:
        request = json.loads(value)
    except (ValueError, TypeError):
        return None
    if not isinstance(request, list) or len(request) != 4 or not all(isinstance(v, str) for v in request[:3]):
        return None
    call_id, from_tag, to_tag, reason = request
    return call_id, from_tag, to_tag, str(reason)
