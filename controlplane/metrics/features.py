"""Hunt-group and fraud figures read at scrape time (a wallboard's and the fraud dashboard's source)."""

from __future__ import annotations

import logging
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func
from sqlmodel import Session, select

from controlplane.db.models import FraudLock, HuntGroup
from controlplane.features.queues import group_status
from controlplane.live_view import htable_items, registered_agents
from kemi.shell.barrier import ROUTES
from kemi import contract as shm

log = logging.getLogger("callmanager.metrics")


class QueueCollector:
    """Hunt-group figures at scrape time, per tenant and group (a wallboard's source). Never raises:
    a Kamailio that does not answer shows as callmanager_queue_up 0."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        up = GaugeMetricFamily("callmanager_queue_up", "1 when the hunt-group live view could be read from Kamailio")
        agents = GaugeMetricFamily(
            "callmanager_queue_agents", "Agents of a group by state", labels=["tenant", "group", "state"]
        )
        waiting = GaugeMetricFamily(
            "callmanager_queue_waiting_calls",
            "Calls to a group not answered yet (being offered or queued)",
            labels=["tenant", "group"],
        )
        queued = GaugeMetricFamily(
            "callmanager_queue_queued_calls",
            "Calls waiting in a group's queue for a free member",
            labels=["tenant", "group"],
        )
        longest = GaugeMetricFamily(
            "callmanager_queue_longest_wait_seconds", "Longest wait of a call in a group", labels=["tenant", "group"]
        )
        today = GaugeMetricFamily(
            "callmanager_queue_calls_today",
            "Calls to a group since midnight UTC by outcome",
            labels=["tenant", "group", "outcome"],
        )
        try:
            with Session(self.app.engine) as s:
                groups = s.exec(select(HuntGroup)).all()
            if not groups:
                self.app.kamailio.call("core.version")  # nothing to read, but is the live view there?
            dialogs = self.app.kamailio.dialogs() if groups else []
            registered = registered_agents(self.app) if groups else set()
            acd = htable_items(self.app, shm.ACD.name) if groups else {}
            with Session(self.app.engine) as s:
                for g in groups:
                    st = group_status(self.app, s, g, dialogs, registered, time.time(), acd)
                    labels = [str(g.tenant_id), g.name]
                    for state in ("available", "in_call", "wrap_up", "logged_out", "unregistered"):
                        agents.add_metric(labels + [state], st[state])
                    waiting.add_metric(labels, len(st["waiting"]))
                    queued.add_metric(labels, sum(1 for w in st["waiting"] if w["queued"]))
                    longest.add_metric(labels, st["longest_wait_s"])
                    for outcome, n in st["today"].items():
                        today.add_metric(labels + [outcome], n)
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("queue metrics unavailable: %s", exc)
            up.add_metric([], 0)
        yield from (up, agents, waiting, queued, longest, today)


class LockCollector:
    """Fraud locks in force by tenant and level, from the database."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        locks = GaugeMetricFamily(
            "callmanager_fraud_locks",
            "Fraud locks in force (2 class blocked, 3 outgoing locked, 4 locked entirely)",
            labels=["tenant", "level"],
        )
        try:
            with Session(self.app.engine) as s:
                for tid, level, n in s.exec(
                    select(FraudLock.tenant_id, FraudLock.level, func.count())
                    .where(FraudLock.lifted_at.is_(None))
                    .group_by(FraudLock.tenant_id, FraudLock.level)
                ).all():
                    locks.add_metric([str(tid), str(level)], n)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("lock metrics unavailable: %s", exc)
        yield locks


class EdgeCollector:
    """The edge's live state at scrape time: banned sources, accounts cooling down, failed
    authentications (Kamailio's counter; it restarts with Kamailio and after 15 quiet minutes).
    Never raises: a Kamailio that does not answer shows as callmanager_fraud_edge_up 0."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        up = GaugeMetricFamily("callmanager_fraud_edge_up", "1 when the edge's htables could be read from Kamailio")
        banned = GaugeMetricFamily("callmanager_fraud_banned_sources", "Sources banned now (dropped silently)")
        cooling = GaugeMetricFamily(
            "callmanager_fraud_cooling_accounts", "SIP account names refused now after repeated failed authentications"
        )
        failures = CounterMetricFamily(
            "callmanager_fraud_auth_failures", "Failed digest authentications (all accounts and sources)"
        )
        registrations = CounterMetricFamily(
            "callmanager_registrations_failed",
            "REGISTERs refused for their credentials (wrong password, "
            "unknown account, cooling down, outside the account's networks)",
        )
        try:
            k = self.app.kamailio
            k.call("core.version")  # raises when Kamailio does not answer (htable_items would not)
            now = time.time()
            bans = htable_items(self.app, shm.BAN.name)
            banned.add_metric(
                [],
                sum(
                    1
                    for v in bans.values()
                    if str(v).partition(":")[2].isdigit() and int(str(v).partition(":")[2]) > now
                ),
            )
            locks = htable_items(self.app, shm.AUTHLOCK.name)
            cooling.add_metric([], sum(1 for key, v in locks.items() if key.startswith("until:") and _num(v) > now))
            counts = htable_items(self.app, shm.AUTHFAIL.name)
            failures.add_metric([], _num(counts.get("total")))
            registrations.add_metric([], _num(counts.get("total:REGISTER")))
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("edge metrics unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        yield from (up, banned, cooling, failures, registrations)


class RoutingErrorsCollector:
    """Unexpected exceptions in the Python routing, by the route they happened in (Kamailio's htable `cmerr`, counted by
    kemi/shell/barrier.py; each one was logged with its Call-ID and answered 500 where a reply was possible). Restarts
    from 0 with Kamailio. Never raises: nothing is exported while Kamailio does not answer."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        errors = CounterMetricFamily(
            "callmanager_routing_errors",
            "Unexpected exceptions in the Python routing, by route "
            "(each logged with its Call-ID; requests answered 500)",
            labels=["route"],
        )
        try:
            counts = self.app.kamailio.htable_items(shm.ERRORS.name)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("routing error counts unavailable: %s", exc)
            return

        for route in sorted(set(ROUTES) | set(counts)):
            errors.add_metric([str(route)[:40]], _num(counts.get(route)))
        yield errors


class SharedCountersCollector:
    """The data center's shared counters (its Redis, through Kamailio's ndb_redis; docs/cluster.md): whether the node
    has them, and the commands that failed (each time the node counted on its own instead: a limit then holds per
    node). Restarts from 0 with Kamailio. Never raises: nothing is exported while Kamailio does not answer."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        configured = GaugeMetricFamily(
            "callmanager_shared_counters_configured", "1: the fraud limits count in the data center's Redis"
        )
        configured.add_metric([], 1 if self.app.settings.redis_address else 0)
        yield configured
        try:  # a single node: none (it has no Redis to fail)
            counts = self.app.kamailio.htable_items(shm.SHARED.name) if self.app.settings.redis_address else {}
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("shared counter failures unavailable: %s", exc)
            return
        failures = CounterMetricFamily(
            "callmanager_shared_counters_failures",
            "Commands to the data center's Redis that failed (the node counted the fraud limits on its own instead)",
        )
        failures.add_metric([], _num(counts.get(shm.SHARED_FAILURES)))
        yield failures


class PairAddressCollector:
    """The data center's virtual address (keepalived; docs/cluster.md): 1 while this node holds it. Exported only by
    a node of a pair (sip_vip set). Read from the kernel's tables each scrape (the control plane runs on the node)."""

    def __init__(self, app, held=None):
        from kemi.shell.vip import held as kernel_held

        self.app = app
        self.held = held or kernel_held

    def collect(self):
        vip = self.app.settings.sip_vip
        if not vip:
            return
        g = GaugeMetricFamily(
            "callmanager_vip_held", "1 while this node holds its data center's virtual address", labels=["address"]
        )
        g.add_metric([vip], 1 if self.held(vip) else 0)
        yield g


def _num(value) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class MediaServerCollector:
    """The node's media server (docs/media.md): 1 while it answers a SIP OPTIONS (within 0.5 s, at scrape time).
    Exported only when the node runs one (media_server)."""

    def __init__(self, app, probe=None):
        from controlplane.node.probe import probe as sip_probe

        self.app = app
        self.probe = probe or sip_probe

    def collect(self):
        s = self.app.settings
        if not s.media_server:
            return
        g = GaugeMetricFamily(
            "callmanager_media_server_up", "1 when every process of the node's media server answered a SIP OPTIONS"
        )
        answering = 0
        for i in range(s.media_server_workers):
            try:
                answering += 1 if self.probe(s.sip_address, s.media_server_port + i, 0.2)[0] else 0
            except Exception:  # noqa: BLE001 - a scrape must never fail
                pass
        g.add_metric([], 1 if answering == s.media_server_workers else 0)
        yield g
        w = GaugeMetricFamily("callmanager_media_server_workers_up", "Media server processes answering SIP OPTIONS")
        w.add_metric([], answering)
        yield w
