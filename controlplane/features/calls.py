"""Calls in progress: Kamailio's dialogs joined with RTPengine's media sessions."""

from __future__ import annotations

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.adapters.rtpengine_ng import NgError
from controlplane.api.errors import component_down
from controlplane.api.permissions import Perm
from controlplane.api.rpc import method
from controlplane.numbering import national

from kemi.contract import DLG_ANSWER, DLG_CALL
from kemi.policy.callstate import CallRecord, CallState

from .common import ListParams

DLG_STATES = {1: "unconfirmed", 2: "early", 3: "confirmed", 4: "confirmed", 5: "deleted"}


def _var(dlg: dict, name: str) -> str | None:
    for v in dlg.get("variables", []) or []:
        if isinstance(v, dict) and name in v:
            return v[name]
    return None


def call_state(dlg: dict) -> CallState | None:
    """The call's state the node keeps on the dialog (None: none, or unreadable)."""
    blob = _var(dlg, DLG_CALL)
    try:
        return CallState.from_json(blob) if blob else None
    except (ValueError, TypeError, KeyError):
        return None


def call_record(dlg: dict) -> CallRecord | None:
    state = call_state(dlg)
    return state.record if state is not None else None


def _media(app, call_id: str) -> dict:
    try:
        q = app.rtpengine.query(call_id)
    except NgError:
        return {"relayed": False}
    packets = bytes_ = 0
    legs = []
    for tag, leg in (q.get("tags") or {}).items():
        lp = lb = 0
        for m in leg.get("medias", []):
            for s in m.get("streams", []):
                st = s.get("stats", {})
                lp += int(st.get("packets", 0))
                lb += int(st.get("bytes", 0))
        legs.append({"tag": tag, "packets": lp, "bytes": lb})
        packets += lp
        bytes_ += lb
    return {"relayed": True, "packets": packets, "bytes": bytes_, "legs": legs}


def collect_calls(app) -> list[dict]:
    try:
        dialogs = app.kamailio.dialogs()
    except KamailioRpcError as exc:
        raise component_down("kamailio", exc) from None
    calls = []
    for d in dialogs:
        state = int(d.get("state", 0))
        if state >= 5:  # ended, kept by Kamailio only until its references are released
            continue
        r = call_record(d)
        calls.append(
            {
                "call_id": d.get("call-id"),
                "state": DLG_STATES.get(state, str(state)),
                "tenant_id": r.tenant_id if r else None,
                "caller": (r.caller if r else "") or d.get("from_uri"),
                "caller_user_id": r.caller_user_id if r else None,
                "callee": (r.callee if r else "") or d.get("to_uri"),
                "callee_user_id": r.callee_user_id if r else None,
                "caller_national": national(r.caller if r else ""),
                "callee_national": national(r.callee if r else ""),
                "start_ts": r.start_ts if r else None,
                "answer_ts": float(_var(d, DLG_ANSWER).partition("/")[0])
                if _var(d, DLG_ANSWER)
                else None,  # answered at/first rang at
                "media": _media(app, d.get("call-id", "")),
            }
        )
    return calls


@method("call.list", ListParams, errors=("unavailable",), perm=Perm.SELF, others=Perm.CALLS)
def list_(ctx, p: ListParams):
    """Calls in progress on this node (dialogs in Kamailio, media in RTPengine)."""
    pr = ctx.principal
    scope = pr.tenant_scope(p.tenant_id)
    calls = collect_calls(ctx.app)
    if scope is not None:
        calls = [c for c in calls if c["tenant_id"] == scope]
    if not pr.can(Perm.CALLS):
        calls = [
            c for c in calls if pr.user_id is not None and pr.user_id in (c["caller_user_id"], c["callee_user_id"])
        ]
    return {"items": calls[p.offset : p.offset + p.limit], "total": len(calls), "limit": p.limit, "offset": p.offset}
