"""The call's state between routes: one `CallState` document on the transaction (AVP) and on the dialog.

Stored whenever a route changed it and a later route (reply, failure, queue turn, dialog end) may need it;
the control plane reads the dialog's copy (`call.list`, the queue monitor) with `CallState.from_json` too.
"""

from __future__ import annotations

from kemi.contract import AVP_CALL, DLG_CALL
from kemi.policy.callstate import CallState

from . import ksr_apply as apply
from . import ksr_read as read


def store(state: CallState) -> None:
    blob = state.to_json()
    apply.set_avp(AVP_CALL, blob)
    apply.set_dlg_var(DLG_CALL, blob)


def load() -> CallState | None:
    """The transaction's call state (None: no call state, e.g. a request the node did not route)."""
    return parsed(read.avp(AVP_CALL))


def parsed(blob: str) -> CallState | None:
    """The call state a stored document holds (the dialog's, at its end, is read with the rest: ksr_read.dialog_end)."""
    """An unreadable state (a release that wrote another format, a damaged value) is logged and counted once, and the
    call goes on as one without a state: its reply goes back, no fallback is tried, no record is written."""
    if not blob:
        return None
    try:
        return CallState.from_json(blob)
    except ValueError as exc:
        apply.warn(f"callmanager: call state unreadable, the call goes on without it ({exc}): {blob[:160]!a}")
        apply.count_error("call_state")
        return None
