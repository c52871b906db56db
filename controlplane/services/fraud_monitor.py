"""The spend monitor: acts on fraud during the call, not only at the next one (SEC-06..08).

Every `interval` seconds: the spend today and this month of each user and tenant whose spend changed (new priced
CDRs), who pays for a call in progress, or — after a policy change or a new day — of everyone: finished calls
from the CDRs plus the running cost of answered calls out in progress (Kamailio's htable `fraudrun`,
one item per ACKed call: who pays, the class, the price per minute, when it was answered) — goes through
kemi.policy.fraud.spend_response. What it
answers is done here: a warning is recorded once per limit and period (and sent to the tenant's
contact); a lock is written (the routing snapshot follows within a second) and the calls in
progress that count against the limit are ended with a BYE to both sides (end_request: through Kamailio's ACD timer).
Emergency calls are never priced, so never ended.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime, timezone

from sqlalchemy import func
from sqlmodel import Session, select

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.db.models import Cdr, FraudEvent, FraudLock, FraudPolicyRow, User
from controlplane.services.periodic import Periodic
from controlplane.features.calls import _var
from kemi.policy.cdr import record as cdr_record
from controlplane.features.fraud_policy import period_starts, settled_spend
from kemi.policy.baseline import CallOut, Rule, anomalies, baselines
from kemi.policy.fraud import DEFAULT_POLICY, FraudPolicy, Limits, RunningCall, Spend, anomaly_response, spend_response

from kemi import contract as shm
from kemi.contract import DLG_ANSWER, DLG_CALL
from kemi.policy.callstate import CallState

log = logging.getLogger("callmanager.fraud")
CTX = DLG_CALL  # the dialog variable with the call's state (kemi.policy.callstate)


def running_calls(items: dict[str, object], now: float) -> list[RunningCall]:
    """Kamailio's `fraudrun` items ({"<h_entry>:<h_id>": "tenant:user:class:rate:answered at"}) as running calls."""
    out = []
    for key, value in items.items():
        try:
            tenant, user, dest_class, rate, answered = str(value).split(":")
            h_entry, h_id = key.split(":")
            out.append(
                RunningCall(
                    f"{int(h_entry)}:{int(h_id)}",
                    int(tenant),
                    int(user),
                    dest_class,
                    float(rate),
                    max(0.0, now - float(answered)),
                )
            )
        except ValueError:
            log.warning("call out %s has an unreadable entry %r", key, value)
    return out


def _both_tags(dialog: dict) -> bool:
    return bool((dialog.get("caller") or {}).get("tag") and (dialog.get("callee") or {}).get("tag"))


def end_request(key: str, dialog: dict, reason: str) -> tuple[str, str, str]:
    """The htable item that asks Kamailio to end a call (a dialog as dlg.list shows it): its ACD timer accounts the
    call's end (counts, media, record) and then sends the BYEs (kemi/shell/routes.py end_requested_calls).
    dlg.end_dlg alone can skip the dialog-end event (Kamailio 5.6 reads the dialog's state after its BYEs went out)."""
    value = json.dumps(
        [
            dialog.get("call-id"),
            (dialog.get("caller") or {}).get("tag"),
            (dialog.get("callee") or {}).get("tag"),
            reason[:200],
        ]
    )
    return shm.END_REQUESTS.name, key, value


def _day(t: datetime) -> int:
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp() // 86400)


def policy_of(row: FraudPolicyRow | None) -> FraudPolicy:
    if row is None:
        return DEFAULT_POLICY
    d = DEFAULT_POLICY
    return FraudPolicy(
        Limits(**{**d.user._asdict(), **row.user_limits}),
        Limits(**{**d.tenant._asdict(), **row.tenant_limits}),
        row.warn_ratio,
        row.spend_level,
        row.allow_high_risk,
        d.high_risk,
        row.anomaly_level,
        row.outbound,
    )


class FraudMonitor:
    def __init__(
        self, app, interval: float = 2.0, notifier=None, baseline_interval: float = 3600.0, rule: Rule = Rule()
    ):
        self.app = app
        self.interval = interval
        self.notifier = notifier
        self.baseline_interval = baseline_interval
        self.rule = rule
        self.baselines: tuple | None = None  # (users, tenants, days, computed at)
        self._baseline_day = -1
        self.calls_ended = 0
        self._warned: set[tuple] = set()  # (tenant, user, limit, period) warned already (also checked in the database)
        self._loop = Periodic(
            "fraud-monitor", self.run_once, interval, log, "fraud monitor round failed", wait_first=True
        )
        # Running totals of the priced CDRs, kept up to date from the ingestor (add_cdrs): a round costs
        # what is new, not a scan of the month's CDRs. Loaded from the database once per day/month/hour.
        self._lock = threading.Lock()
        self._periods: tuple | None = None  # (day start, month start, hour index) the totals are for
        self._users: dict[int, list[float]] = {}  # user -> [day, month]
        self._tenants: dict[int, list[float]] = {}
        self._hour: list[CallOut] = []  # the current hour's calls out in the watched classes
        # Whose spend changed since the last round (new priced CDRs; everyone after a load): a round looks at these
        # and at the payers of calls in progress only — its cost follows the traffic, not the number of users.
        self._dirty_users: set[int] = set()
        self._dirty_tenants: set[int] = set()
        self._policies_seen: dict | None = None  # a policy changed: everyone's spend is looked at again
        self._dialogs: dict[
            str, dict
        ] = {}  # this round's answered calls out, by dialog key (their context, for a fallback CDR)
        self._fallbacks: dict[
            str, tuple[float, dict, str]
        ] = {}  # CDR id -> (due, record, dialog key) of calls this monitor ended

    def _load(self, day: datetime, month: datetime, hour: int) -> None:
        start = datetime.fromtimestamp(hour * 3600, timezone.utc)
        with Session(self.app.engine) as s:
            users, tenants = settled_spend(s, month, day)
            rows = s.exec(
                select(Cdr.payer_user_id, Cdr.tenant_id, Cdr.dest_class, Cdr.duration_s).where(
                    Cdr.payer_user_id.is_not(None), Cdr.start_time >= start, Cdr.dest_class.in_(self.rule.watched)
                )
            ).all()
        self._users = {u: list(v) for u, v in users.items()}
        self._tenants = {t: list(v) for t, v in tenants.items()}
        self._hour = [CallOut(u, t, hour % 24, hour // 24, cls, float(d or 0) / 60.0) for u, t, cls, d in rows]
        self._periods = (day, month, hour)
        self._dirty_users.update(self._users)
        self._dirty_tenants.update(self._tenants)

    def add_cdrs(self, rows: list[dict]) -> None:
        """New CDR rows, just stored by the ingestor: priced ones go into the running totals."""
        with self._lock:
            if self._periods is None:
                return  # not loaded yet: the first round reads the database
            day, month, hour = self._periods
            for r in rows:
                uid, start = r.get("payer_user_id"), r.get("start_time")
                if uid is None or start is None:
                    continue
                cost = float(r.get("cost") or 0.0)
                for totals, key, dirty in (
                    (self._users, uid, self._dirty_users),
                    (self._tenants, r.get("tenant_id"), self._dirty_tenants),
                ):
                    if start >= month and cost:
                        dirty.add(key)
                        t = totals.setdefault(key, [0.0, 0.0])
                        t[1] += cost
                        if start >= day:
                            t[0] += cost
                if r.get("dest_class") in self.rule.watched and int(start.timestamp() // 3600) == hour:
                    self._hour.append(
                        CallOut(
                            uid,
                            r.get("tenant_id"),
                            hour % 24,
                            hour // 24,
                            r["dest_class"],
                            float(r.get("duration_s") or 0) / 60.0,
                        )
                    )

    def run_once(self, now: float | None = None) -> list:
        now = time.time() if now is None else now
        self._store_fallbacks(now)
        try:
            running = running_calls(self.app.kamailio.htable_items(shm.FRAUD_RUNNING.name), now)
        except KamailioRpcError:
            running = []  # Kamailio down: the finished calls still count
        stamp = datetime.fromtimestamp(now, timezone.utc)
        day, month = period_starts(stamp)
        hour = int(now // 3600)
        with Session(self.app.engine) as s:
            policies = {r.tenant_id: policy_of(r) for r in s.exec(select(FraudPolicyRow)).all()}
        with self._lock:
            if self._periods != (day, month, hour):
                self._load(day, month, hour)
            if policies != self._policies_seen:  # a limit changed: a spend that did not change may be over it now
                self._dirty_users.update(self._users)
                self._dirty_tenants.update(self._tenants)
            check_users = self._dirty_users | {c.user_id for c in running}
            check_tenants = self._dirty_tenants | {c.tenant_id for c in running}
            self._dirty_users, self._dirty_tenants = set(), set()
            users = {u: tuple(self._users.get(u, (0.0, 0.0))) for u in check_users}
            tenants = {t: tuple(self._tenants.get(t, (0.0, 0.0))) for t in check_tenants}
            current = list(self._hour)
        try:
            responses = self._spend_responses(users, tenants, running, policies)
            for r in responses:
                self._act(r, stamp, day if r.limit == "spend_day" else month)
        except Exception:
            with self._lock:  # looked at again next round
                self._dirty_users.update(check_users)
                self._dirty_tenants.update(check_tenants)
            raise
        self._policies_seen = policies
        responses += self.check_anomalies(now, running, policies, current)
        return responses

    def _spend_responses(self, users: dict, tenants: dict, running: list[RunningCall], policies: dict) -> list:
        """spend_response for the users and tenants given (settled spend) with their own calls in progress."""
        by_user: dict[int, list[RunningCall]] = {}
        by_tenant: dict[int, list[RunningCall]] = {}
        for c in running:
            by_user.setdefault(c.user_id, []).append(c)
            by_tenant.setdefault(c.tenant_id, []).append(c)
        with Session(self.app.engine) as s:
            tenant_of = (
                {u: t for u, t in s.exec(select(User.id, User.tenant_id).where(User.id.in_(list(users))))}
                if users
                else {}
            )
        responses = []
        for uid, spent in users.items():
            tid = tenant_of.get(uid)
            if tid is not None:
                responses += spend_response(
                    policies.get(tid, DEFAULT_POLICY), tid, uid, Spend(*spent), by_user.get(uid, [])
                )
        for tid, spent in tenants.items():
            responses += spend_response(
                policies.get(tid, DEFAULT_POLICY), tid, None, Spend(*spent), by_tenant.get(tid, [])
            )
        return responses

    # ------------------------------------------------------------------ learning the normal

    def refresh_baselines(self, now: float) -> None:
        """Every user's usual calls out by hour and class, from the CDRs of the last window_days days."""
        today = int(now // 86400)
        since = datetime.fromtimestamp((today - self.rule.window_days) * 86400, timezone.utc)
        until = datetime.fromtimestamp(today * 86400, timezone.utc)
        window = (Cdr.start_time >= since, Cdr.start_time < until, Cdr.payer_user_id.is_not(None))
        with Session(self.app.engine) as s:
            rows = s.exec(
                select(Cdr.payer_user_id, Cdr.tenant_id, Cdr.start_time, Cdr.dest_class, Cdr.duration_s).where(
                    *window, Cdr.dest_class.in_(self.rule.watched)
                )
            ).all()
            first = {
                u: (t, _day(st))
                for u, t, st in s.exec(
                    select(Cdr.payer_user_id, Cdr.tenant_id, func.min(Cdr.start_time))
                    .where(*window, Cdr.dest_class != "")
                    .group_by(Cdr.payer_user_id, Cdr.tenant_id)
                ).all()
            }
        calls = [CallOut(u, t, st.hour, _day(st), cls, float(d or 0) / 60.0) for u, t, st, cls, d in rows]
        self.baselines = (*baselines(calls, self.rule, today, first), now)
        self._baseline_day = today

    def check_anomalies(self, now: float, running: list[RunningCall], policies: dict, finished: list[CallOut]) -> list:
        if (
            self.baselines is None
            or int(now // 86400) != self._baseline_day
            or now - self.baselines[3] > self.baseline_interval
        ):
            self.refresh_baselines(now)
        users, tenants, days, _at = self.baselines
        hour = int(now // 3600)
        start = datetime.fromtimestamp(hour * 3600, timezone.utc)
        h = hour % 24
        current = finished + [
            CallOut(c.user_id, c.tenant_id, h, hour // 24, c.dest_class, c.seconds / 60.0)
            for c in running
            if not c.emergency
        ]
        out = []
        for a in anomalies(current, users, tenants, days, self.rule):
            r = anomaly_response(policies.get(a.tenant_id, DEFAULT_POLICY), a, running)
            self._act(r, datetime.fromtimestamp(now, timezone.utc), start)
            out.append(r)
        return out

    def _act(self, r, stamp: datetime, period: datetime) -> None:
        if r.level == 1:
            kind = "spend_warning" if r.limit.startswith("spend") else "anomaly"
            key = (r.tenant_id, r.user_id, r.limit, period.isoformat())
            if key in self._warned:
                return
            self._warned.add(key)
            with self.app.write(changes_routing=False) as s:
                seen = s.exec(
                    select(FraudEvent).where(
                        FraudEvent.kind == kind,
                        FraudEvent.tenant_id == r.tenant_id,
                        FraudEvent.user_id == r.user_id,
                        FraudEvent.time >= period,
                    )
                ).all()
                if any(e.detail.get("limit") == r.limit for e in seen):
                    return
                self._event(s, r, kind, stamp)
            self._notify(r)
            return
        set_by = f"fraud control ({r.limit})"
        with self.app.write() as s:  # a lock: the snapshot follows
            earlier = s.exec(
                select(FraudLock).where(
                    FraudLock.tenant_id == r.tenant_id,
                    FraudLock.user_id == r.user_id,
                    FraudLock.set_by == set_by,
                    FraudLock.created_at >= period,
                )
            ).first()
            if earlier is not None:
                return  # this limit locked already in this period (and if an admin lifted it, that was their decision)
            s.add(
                FraudLock(
                    tenant_id=r.tenant_id,
                    user_id=r.user_id,
                    level=r.level,
                    dest_class=r.dest_class,
                    reason=r.reason[:300],
                    set_by=set_by,
                )
            )
            self._event(s, r, "lock", stamp)
        self._notify(r)
        if r.end_calls:  # their contexts, for the fallback record (a dialog listing only when calls are ended: rare)
            try:
                self._dialogs = self._dialogs_to_end(r.end_calls)
            except KamailioRpcError:
                self._dialogs = {}
        for key in r.end_calls:
            d = self._dialogs.get(key)
            if d is None:
                log.info("call %s not ended (over already?)", key)
                continue
            if not _both_tags(d):
                log.warning("call %s not ended: its dialog names no callee yet (answered just now)", key)
                continue
            try:
                self.end_call(key, d, r.reason)
                self.calls_ended += 1
                self.app.metrics.fraud_calls_ended.inc()
                log.warning("ended call %s: %s", key, r.reason)
                self._expect_record(key, r.reason)
            except KamailioRpcError as exc:
                log.info("call %s not ended (Kamailio did not take the request): %s", key, exc)

    TAGS_WAIT_S = 1.0

    def _dialogs_to_end(self, keys) -> dict[str, dict]:
        """Kamailio's dialogs by key. A call answered this very moment can be listed for a few milliseconds without
        its callee's tag (the dialog module sets the state before the tag), and a request to end it must name both
        tags: such a listing is read again, for up to TAGS_WAIT_S."""
        deadline = time.monotonic() + self.TAGS_WAIT_S
        while True:
            dialogs = {f"{d.get('h_entry')}:{d.get('h_id')}": d for d in self.app.kamailio.dialogs()}
            if all(_both_tags(dialogs[k]) for k in keys if k in dialogs) or time.monotonic() > deadline:
                return dialogs
            time.sleep(0.05)

    def end_call(self, key: str, dialog: dict, reason: str) -> None:
        self.app.kamailio.call("htable.sets", *end_request(key, dialog, f"fraud controls: {reason}"))

    FALLBACK_AFTER_S = 10.0

    def _forget_running(self, key: str) -> None:
        """A call whose dialog-end event did not run: its fraudrun item goes (it would count as running for a day)."""
        try:
            self.app.kamailio.call("htable.delete", shm.FRAUD_RUNNING.name, key)
        except KamailioRpcError as exc:
            log.info("running call %s not removed from fraudrun (gone already?): %s", key, exc)

    def _expect_record(self, key: str, reason: str) -> None:
        """Kamailio writes the CDR of a call ended here at the dialog's end; should that record not arrive (the
        dialog-end event did not run), this monitor stores one made from the call's context, so the call is not lost."""
        d = self._dialogs.get(key)
        blob = _var(d, CTX) if d else None
        if not blob:
            return
        try:
            state = CallState.from_json(blob).traced(
                f"ended by the fraud controls: {reason}", "record made by the control plane (Kamailio's did not arrive)"
            )
            now = time.time()
            answered = float((_var(d, DLG_ANSWER) or "").partition("/")[0] or state.record.start_ts)
            self._fallbacks[state.record.id] = (
                now + self.FALLBACK_AFTER_S,
                cdr_record(state, code=200, reason="OK", end_ts=now, answer_ts=answered),
                key,
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("no fallback record for call %s: %s", key, exc)

    def _store_fallbacks(self, now: float) -> None:
        due = [cid for cid, (at, _, _) in self._fallbacks.items() if at <= now]
        if not due:
            return
        with Session(self.app.engine) as s:
            present = set(s.exec(select(Cdr.id).where(Cdr.id.in_(due))).all())
        missing = [self._fallbacks[cid][1] for cid in due if cid not in present]
        for cid in due:
            if cid not in present:
                self._forget_running(self._fallbacks[cid][2])
        if missing:
            stored = self.app.ingestor.store_records(missing)
            log.warning(
                "stored %d record(s) of calls ended by the fraud controls whose CDR Kamailio did not write", stored
            )
        for cid in due:
            self._fallbacks.pop(cid, None)

    @staticmethod
    def _event(s, r, kind: str, stamp: datetime) -> None:
        s.add(
            FraudEvent(
                id=str(uuid.uuid4()),
                tenant_id=r.tenant_id,
                time=stamp,
                kind=kind,
                level=r.level,
                user_id=r.user_id,
                reason=r.reason[:300],
                detail={
                    "limit": r.limit,
                    "spent": round(r.spent, 4),
                    "allowed": r.allowed,
                    "dest_class": r.dest_class,
                    "calls_ended": len(r.end_calls),
                },
            )
        )

    def _notify(self, r) -> None:
        if self.notifier is not None:
            try:
                self.notifier(r)
            except Exception:  # noqa: BLE001 - a notification that fails must not stop the controls
                log.exception("fraud notification for tenant %s failed", r.tenant_id)

    # ------------------------------------------------------------------ background thread

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
