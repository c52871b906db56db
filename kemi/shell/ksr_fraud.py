"""Fraud limits on calls out, on Kamailio: attempts counted per minute and hour in htable `fraud`
(u<user>:m<minute>, u<user>:h<hour>, t<tenant>:...), answered calls in progress in htable
`fraudcalls` (u<user>, t<tenant>: +1 when the call is answered, -1 when it ends); the verdict is
kemi.policy.fraud.check_limits. Six crossings into Kamailio per attempt (4 increments, 2 reads), each with
its key as a plain string (a `$_s(...)` format naming the user and the minute was a new string on every call,
parsed anew by Kamailio each time; its pkg memory did not grow, measured over 6,000 calls from 1,000 users).
Also measured and withdrawn: the keys put in one $var and one fixed format incrementing the four counters with keys
cut from it by {s.select} (two crossings) — slower, 37 against 28 µs per attempt (both alternating in the same
workers); the answer's and the end's counters keyed from the call's mark inside a format were no faster either.
Calls let through carry `cm_fraud` (tenant:user:class:price per minute) for the counters and the control
plane's spend monitor.
"""

from __future__ import annotations

import time

import KSR

from kemi import contract as shm

from kemi.policy.fraud import (
    SHARED_HOLD_S,
    Counters,
    capped_limits,
    check_limits,
    counters_in_force,
    shared_call_keys,
    shared_renewals,
)

from . import ksr_apply as apply
from . import ksr_read as read
from . import ksr_shared as shared
from . import wire
from .runtime import SETTINGS

TABLE, CALLS, RUNNING, MARK = shm.FRAUD.name, shm.FRAUD_CALLS.name, shm.FRAUD_RUNNING.name, shm.DLG_FRAUD
_DIALOG = "$_s($dlg(h_entry):$dlg(h_id))"  # the current dialog's id, as dlg.end_dlg takes it
_ACKED = wire.one_format(
    (f"$dlg_var({MARK})", f"$dlg_var({shm.DLG_ANSWER})", "$dlg(h_entry):$dlg(h_id)", "$dlg(state)")
)
_LIVE = ("3", "4")  # dialog states: answered (no ACK yet), confirmed; 5 is ended


_limits: dict[int, tuple] = {}  # tenant id -> its policy and capped limits, for the snapshot version below (per worker)
_limits_version = [-1]


def admit(snap, tenant_id: int, user_id: int) -> str:
    """Count this attempt (in the data center's Redis when the node has one, else or when it does not answer in the
    node's own htables); why it is refused ('' when it may go on)."""
    now = int(time.time())
    counts = shared.admit(tenant_id, user_id, now) if SETTINGS.shared_counters else None
    if counts is None:
        counts = counters_in_force(None, _local_counts(tenant_id, user_id, now))
    if _limits_version[0] != snap.version:
        _limits.clear()
        _limits_version[0] = snap.version
    found = _limits.get(tenant_id)
    if found is None:
        policy = snap.fraud_policy(tenant_id)
        found = _limits[tenant_id] = (policy, capped_limits(policy))
    return check_limits(found[0], counts, found[1])


def _local_counts(tenant_id: int, user_id: int, now: int) -> Counters:
    m, h = now // 60, now // 3600
    user, tenant = f"u{user_id}", f"t{tenant_id}"
    inc, get = KSR.htable.sht_inc, KSR.htable.sht_get
    values = [
        get(CALLS, user),
        get(CALLS, tenant),
        inc(TABLE, f"{user}:m{m}"),
        inc(TABLE, f"{user}:h{h}"),
        inc(TABLE, f"{tenant}:m{m}"),
        inc(TABLE, f"{tenant}:h{h}"),
    ]
    return Counters(*[v if v.__class__ is int and v > 0 else 0 for v in values])


def track(tenant_id: int, user_id: int, dest_class: str, rate: float) -> None:
    """The call carries its mark: counted in progress from its answer on, priced by the spend monitor."""
    apply.set_dlg_var(MARK, f"{tenant_id}:{user_id}:{dest_class}:{rate}")


def answered(mark: str) -> None:
    """An answered call out is in progress: on this node (always: the counts the node falls back on) and, when the
    node has the data center's Redis, there until it ends or the longest call is certainly over."""
    tenant, user = mark.split(":", 2)[:2]
    KSR.htable.sht_inc(CALLS, f"u{user}")
    KSR.htable.sht_inc(CALLS, f"t{tenant}")
    if SETTINGS.shared_counters and (keys := shared_call_keys(mark)):
        shared.started(keys, _call_name(), int(time.time()) + SHARED_HOLD_S, 2 * SHARED_HOLD_S)


def renew_shared() -> None:
    """Every SHARED_RENEW_S (its own timer): this node's calls out in progress count on in the data center."""
    running = read.htable_items(RUNNING)
    shared.renew(shared_renewals(running, SETTINGS.node_name), int(time.time()) + SHARED_HOLD_S, 2 * SHARED_HOLD_S)


def acked() -> None:
    """An in-dialog ACK: a call out (it carries its mark) is listed for the spend monitor, priced from its answer.
    Idempotent (a re-INVITE's ACK writes the same). One crossing for any other call.
    The caller's ACK and BYE can be handled at the same moment by two workers (a call hung up as it is answered):
    a dialog already ended is not listed, and one that ends while it is being listed is taken off again here
    (its end event may have removed the item just before it was written) — otherwise it stayed listed, priced as
    running, for a day."""
    mark, answered, dialog, state = wire.split(KSR.pv.gete(_ACKED), 4) or ("", "", "", "")  # values the shell wrote
    if mark and answered and state in _LIVE:
        KSR.htable.sht_sets(RUNNING, dialog, f"{mark}:{answered.partition('/')[0]}")
        if str(KSR.pv.get("$dlg(state)")) not in _LIVE:
            KSR.htable.sht_rm(RUNNING, dialog)


def ended(mark: str) -> None:
    """A call out (its mark: `track`) ended: no longer in progress, no longer priced as running."""
    tenant, user = mark.split(":", 2)[:2]
    KSR.htable.sht_dec(CALLS, f"u{user}")
    KSR.htable.sht_dec(CALLS, f"t{tenant}")
    dialog = wire.text(KSR.pv.gete(_DIALOG))
    KSR.htable.sht_rm(RUNNING, dialog)
    if SETTINGS.shared_counters and (keys := shared_call_keys(mark)):
        shared.ended(keys, f"{SETTINGS.node_name}:{dialog}")


def _call_name() -> str:
    """The call in the data center's sets: this node's name and its dialog (unique in the data center)."""
    return f"{SETTINGS.node_name}:{wire.text(KSR.pv.gete(_DIALOG))}"
