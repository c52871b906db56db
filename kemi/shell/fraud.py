"""Fraud limits on calls out, on Kamailio: attempts counted per minute and hour in htable `fraud`
(u<user>:m<minute>, u<user>:h<hour>, t<tenant>:...), answered calls in progress in htable
`fraudcalls` (u<user>, t<tenant>: +1 when the call is answered, -1 when it ends); the verdict is
kemi.policy.fraud.check_limits. Two crossings into Kamailio per attempt: the attempt's names go into one
variable ($var(cm_fk) = user:tenant:minute:hour), and one fixed format reads the two counts in progress and
increments the four attempt counters, their keys taken from that variable (a format naming the user and the
minute itself would be a new string on every call, parsed anew by Kamailio each time). Calls let through carry
`cm_fraud` (tenant:user:class:price per minute) for the counters, which the answer and the end take their keys
from in the same way, and for the control plane's spend monitor.
"""
from __future__ import annotations

import time

import KSR

from kemi.policy.fraud import Counters, capped_limits, check_limits

from . import ksr_apply as apply

TABLE, CALLS, RUNNING, MARK = "fraud", "fraudcalls", "fraudrun", "cm_fraud"
_ACKED = f"$_s($dlg_var({MARK}) $dlg_var(cm_answer_ts) $dlg(h_entry):$dlg(h_id) $dlg(state))"
_LIVE = ("3", "4")  # dialog states: answered (no ACK yet), confirmed; 5 is ended
_KEYS = "$var(cm_fk)"  # user:tenant:minute:hour of the attempt being admitted


def _key(source: str, field: int) -> str:
    return f"$({source}{{s.select,{field},:}})"


_U, _T, _M, _H = (_key("var(cm_fk)", i) for i in range(4))
_ADMIT = (f"$_s($sht({CALLS}=>u{_U}) $sht({CALLS}=>t{_T}) $shtinc({TABLE}=>u{_U}:m{_M}) $shtinc({TABLE}=>u{_U}:h{_H}) "
          f"$shtinc({TABLE}=>t{_T}:m{_M}) $shtinc({TABLE}=>t{_T}:h{_H}))")
_MU, _MT = _key(f"dlg_var({MARK})", 1), _key(f"dlg_var({MARK})", 0)  # the call's payer and tenant, from its mark
_ANSWERED = f"$_s($shtinc({CALLS}=>u{_MU}) $shtinc({CALLS}=>t{_MT}))"
_ENDED = f"$_s($shtdec({CALLS}=>u{_MU}) $shtdec({CALLS}=>t{_MT}) $dlg(h_entry):$dlg(h_id))"


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0  # absent ('<null>') or below zero: none


_limits: dict[int, tuple] = {}  # tenant id -> its policy and capped limits, for the snapshot version below (per worker)
_limits_version = [-1]


def admit(snap, tenant_id: int, user_id: int) -> str:
    """Count this attempt; why it is refused ('' when it may go on)."""
    now = int(time.time())
    KSR.pv.sets(_KEYS, f"{user_id}:{tenant_id}:{now // 60}:{now // 3600}")
    values = (KSR.pv.gete(_ADMIT) or "").split(" ")
    if len(values) != 6:
        values = ["0"] * 6  # not read (never seen): nothing counted refuses nothing
    if _limits_version[0] != snap.version:
        _limits.clear()
        _limits_version[0] = snap.version
    found = _limits.get(tenant_id)
    if found is None:
        policy = snap.fraud_policy(tenant_id)
        found = _limits[tenant_id] = (policy, capped_limits(policy))
    return check_limits(found[0], Counters(*map(_count, values)), found[1])


def track(tenant_id: int, user_id: int, dest_class: str, rate: float) -> None:
    """The call carries its mark: counted in progress from its answer on, priced by the spend monitor."""
    apply.set_dlg_var(MARK, f"{tenant_id}:{user_id}:{dest_class}:{rate}")


def answered() -> None:
    """The call (it carries its mark) counts in progress for its payer and tenant."""
    KSR.pv.gete(_ANSWERED)


def acked() -> None:
    """An in-dialog ACK: a call out (it carries its mark) is listed for the spend monitor, priced from its answer.
    Idempotent (a re-INVITE's ACK writes the same). One crossing for any other call.
    The caller's ACK and BYE can be handled at the same moment by two workers (a call hung up as it is answered):
    a dialog already ended is not listed, and one that ends while it is being listed is taken off again here
    (its end event may have removed the item just before it was written) — otherwise it stayed listed, priced as
    running, for a day."""
    mark, answered, dialog, state = ((KSR.pv.gete(_ACKED) or "").replace("<null>", "").split(" ") + ["", "", "", ""])[:4]
    if mark and answered and state in _LIVE:
        KSR.htable.sht_sets(RUNNING, dialog, f"{mark}:{answered.partition('/')[0]}")
        if str(KSR.pv.get("$dlg(state)")) not in _LIVE:
            KSR.htable.sht_rm(RUNNING, dialog)


def ended() -> None:
    """An answered call out (it carries its mark) ended: no longer in progress, nor listed for the spend monitor."""
    dialog = (KSR.pv.gete(_ENDED) or "").rpartition(" ")[2]
    KSR.htable.sht_rm(RUNNING, dialog)
