"""Fraud limits on calls out, on Kamailio: attempts counted per minute and hour in htable `fraud`,
calls in progress in dialog profile `ext` (values u<user>, t<tenant>); the verdict is
kemi.policy.fraud.check_limits. Calls let through carry `cm_fraud` (tenant:user:class:price per
minute) for the control plane's spend monitor, which ends them when a spend limit is crossed.
"""
from __future__ import annotations

import time

import KSR

from kemi.policy.fraud import Counters, check_limits

from . import ksr_apply as apply

TABLE, PROFILE, MARK = "fraud", "ext", "cm_fraud"


def _calls(value: str) -> int:
    KSR.dialog.get_profile_size(PROFILE, value, "$var(cm_ext)")
    return int(KSR.pv.get("$var(cm_ext)") or 0)


def admit(snap, tenant_id: int, user_id: int) -> str:
    """Count this attempt; why it is refused ('' when it may go on)."""
    now = int(time.time())
    minute, hour = now // 60, now // 3600
    inc = KSR.htable.sht_inc
    c = Counters(_calls(f"u{user_id}"), _calls(f"t{tenant_id}"),
                 inc(TABLE, f"u{user_id}:m{minute}"), inc(TABLE, f"u{user_id}:h{hour}"),
                 inc(TABLE, f"t{tenant_id}:m{minute}"), inc(TABLE, f"t{tenant_id}:h{hour}"))
    return check_limits(snap.fraud_policy(tenant_id), c)


def track(tenant_id: int, user_id: int, dest_class: str, rate: float) -> None:
    """After dlg_manage: the call counts as in progress for its user and tenant, and the monitor can price it."""
    KSR.dialog.set_dlg_profile(PROFILE, f"u{user_id}")
    KSR.dialog.set_dlg_profile(PROFILE, f"t{tenant_id}")
    apply.set_dlg_var(MARK, f"{tenant_id}:{user_id}:{dest_class}:{rate}")
