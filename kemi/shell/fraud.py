"""Fraud limits on calls out, on Kamailio: attempts counted per minute and hour in htable `fraud`
(u<user>:m<minute>, u<user>:h<hour>, t<tenant>:...), answered calls in progress in htable
`fraudcalls` (u<user>, t<tenant>: +1 when the call is answered, -1 when it ends); the verdict is
kemi.policy.fraud.check_limits. One crossing into Kamailio per attempt: the counters are
incremented ($shtinc) and read in one `$_s` format. Calls let through carry `cm_fraud`
(tenant:user:class:price per minute) for the counters and the control plane's spend monitor.
"""
from __future__ import annotations

import time

import KSR

from kemi.policy.fraud import Counters, check_limits

from . import ksr_apply as apply

TABLE, CALLS, MARK = "fraud", "fraudcalls", "cm_fraud"


def admit(snap, tenant_id: int, user_id: int) -> str:
    """Count this attempt; why it is refused ('' when it may go on)."""
    now = int(time.time())
    m, h = now // 60, now // 3600
    fmt = (f"$_s($sht({CALLS}=>u{user_id}) $sht({CALLS}=>t{tenant_id}) $shtinc({TABLE}=>u{user_id}:m{m}) $shtinc({TABLE}=>u{user_id}:h{h}) "
           f"$shtinc({TABLE}=>t{tenant_id}:m{m}) $shtinc({TABLE}=>t{tenant_id}:h{h}))")
    values = (KSR.pv.gete(fmt) or "").split(" ")
    if len(values) != 6 or not all(v.lstrip("-").isdigit() for v in values):
        KSR.warn(f"callmanager: fraud counters of user {user_id} unreadable ({values!r}); counted as none\n")
        values = ["0"] * 6
    return check_limits(snap.fraud_policy(tenant_id), Counters(*(max(int(v), 0) for v in values)))


def track(tenant_id: int, user_id: int, dest_class: str, rate: float) -> None:
    """The call carries its mark: counted in progress from its answer on, priced by the spend monitor."""
    apply.set_dlg_var(MARK, f"{tenant_id}:{user_id}:{dest_class}:{rate}")


def answered(mark: str) -> None:
    tenant, user = mark.split(":", 2)[:2]
    KSR.htable.sht_inc(CALLS, f"u{user}")
    KSR.htable.sht_inc(CALLS, f"t{tenant}")


def ended(tenant_id: int, user_id: int) -> None:
    KSR.htable.sht_dec(CALLS, f"u{user_id}")
    KSR.htable.sht_dec(CALLS, f"t{tenant_id}")
