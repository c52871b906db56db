"""Everything a node exposes at /metrics (docs/noc.md explains each figure).

Counted as things happen: the API, snapshot publishing, CDR ingestion and the calls the CDRs describe
(dispositions, durations, post-dial delay, media quality), fraud events. Read at scrape time by collectors
that take their sources as constructor arguments and never raise: Kamailio (kamailio.py), RTPengine
(rtpengine.py), the control plane's own state (ControlCollector), hunt groups and fraud (features.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from sqlmodel import Session

from controlplane.db.models import ConfigState

from kemi.policy.announce import announcements

from .features import (
    MediaServerCollector,
    EdgeCollector,
    LockCollector,
    PairAddressCollector,
    QueueCollector,
    RoutingErrorsCollector,
    SharedCountersCollector,
)
from .kamailio import KamailioCollector
from .rtpengine import RtpengineCollector

log = logging.getLogger("callmanager.metrics")


class Metrics:
    def __init__(self, app=None, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.api_requests = Counter(
            "callmanager_api_requests_total",
            "JSON-RPC requests by method and outcome",
            ["method", "outcome"],
            registry=r,
        )
        self.api_http_errors = Counter(
            "callmanager_api_http_errors_total",
            "HTTP requests to the control plane refused or failed outside JSON-RPC's own errors (body too large, late "
            "or malformed; /metrics or /health failing), by path and status",
            ["path", "status"],
            registry=r,
        )
        self.api_latency = Histogram(
            "callmanager_api_request_duration_seconds", "JSON-RPC request latency", ["method"], registry=r
        )
        self.snapshot_version = Gauge(
            "callmanager_snapshot_version", "Version of the last published routing snapshot", registry=r
        )
        self.snapshot_published_ts = Gauge(
            "callmanager_snapshot_published_timestamp_seconds", "When the last snapshot was published", registry=r
        )
        self.snapshot_accounts = Gauge(
            "callmanager_snapshot_sip_accounts", "SIP accounts in the published snapshot", registry=r
        )
        self.cdr_ingested = Counter("callmanager_cdr_ingested_total", "CDRs stored from the spool", registry=r)
        self.cdr_quarantined = Counter(
            "callmanager_cdr_quarantined_total",
            "Spool lines set aside in spool/cdr/bad/ (cut, corrupt or refused by the database; the rest is stored)",
            registry=r,
        )
        self.dmq_resyncs = Counter(
            "callmanager_dmq_resyncs",
            "Times a replication peer came back and the node asked the cluster for what it missed meanwhile",
            registry=r,
        )
        self.shared_store_applied = Counter(
            "callmanager_shared_store_changes_applied",
            "Changes of other nodes (recordings written or removed, mailboxes changed) applied to this node",
            registry=r,
        )
        self.shared_store_behind = Gauge(
            "callmanager_shared_store_behind_changes",
            "Changes of the cluster's shared store not yet applied to this node (0 when it keeps up)",
            registry=r,
        )
        self.cdr_lag = Gauge("callmanager_cdr_ingestion_lag_seconds", "Age of the newest CDR at ingestion", registry=r)
        self.fraud_events = Counter(
            "callmanager_fraud_events_total", "Fraud events stored, by kind and level", ["kind", "level"], registry=r
        )
        self.fraud_bans = Counter(
            "callmanager_fraud_bans_total",
            "Sources banned at the edge, by cause (flood, scanner, brute_force)",
            ["cause"],
            registry=r,
        )
        self.notifications = Counter(
            "callmanager_fraud_notifications_total",
            "Fraud notifications by channel (webhook, email) and "
            "outcome (sent, failed after retries, refused target, dropped: queue full)",
            ["channel", "outcome"],
            registry=r,
        )
        self.fraud_calls_ended = Counter(
            "callmanager_fraud_calls_ended_total", "Calls in progress ended by the fraud controls", registry=r
        )
        self.cdr_last_run_ts = Gauge(
            "callmanager_cdr_ingest_last_run_timestamp_seconds",
            "When the CDR ingestor last read the spool without error",
            registry=r,
        )
        # the calls, from their CDRs (labels: tenant id, disposition; never a number)
        self.calls = Counter(
            "callmanager_calls_total",
            "Calls ended (one per CDR), by tenant and disposition",
            ["tenant", "disposition"],
            registry=r,
        )
        self.announcements = Counter(
            "callmanager_announcements_total",
            "Refusals and feature codes announced to the caller (docs/media.md), by prompt; outcome not_played: the "
            "media server could not play it and the node answered without it",
            ["prompt", "outcome"],
            registry=r,
        )
        self.voicemail_messages = Counter(
            "callmanager_voicemail_messages_total",
            "Messages the media server recorded, by what became of them (docs/voicemail.md): stored; too_short "
            "(under the mailbox's minimum, VM-07); no_mailbox (deleted meanwhile); bad (not a readable recording, kept "
            "in the spool's bad/)",
            ["outcome"],
            registry=r,
        )
        self.voicemail_emails = Counter(
            "callmanager_voicemail_emails_total",
            "Messages e-mailed to their mailbox's address (VM-04), by outcome (failed: tried again later)",
            ["outcome"],
            registry=r,
        )
        self.call_duration = Histogram(
            "callmanager_call_duration_seconds",
            "Talk time of answered calls (ACD = sum / count)",
            ["tenant"],
            buckets=(10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.post_dial_delay = Histogram(
            "callmanager_call_post_dial_delay_seconds",
            "From the INVITE to the first ringing or the answer",
            ["tenant"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
            registry=r,
        )
        self.media_mos = Histogram(
            "callmanager_media_mos",
            "MOS of a call's media (RTPengine's average for the call, from RTCP)",
            buckets=(1.5, 2.5, 3.1, 3.6, 4.0, 4.3, 4.4),
            registry=r,
        )
        self.media_jitter = Histogram(
            "callmanager_media_jitter_seconds",
            "Average jitter of a call's media",
            buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.1),
            registry=r,
        )
        self.media_loss = Histogram(
            "callmanager_media_packet_loss_ratio",
            "Average packet loss of a call's media (0.01 = 1 %)",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=r,
        )
        self.media_rtt = Histogram(
            "callmanager_media_round_trip_seconds",
            "Average round-trip time of a call's media",
            buckets=(0.02, 0.05, 0.1, 0.15, 0.3, 0.5),
            registry=r,
        )
        if app is not None:
            r.register(KamailioCollector(app.kamailio, dmq_peers=len(app.settings.dmq_peers)))
            r.register(RtpengineCollector(app.rtpengine))
            r.register(ControlCollector(app.engine, app.settings.spool_dir))
            r.register(QueueCollector(app))
            r.register(EdgeCollector(app))
            r.register(LockCollector(app))
            r.register(RoutingErrorsCollector(app))
            r.register(SharedCountersCollector(app))
            r.register(PairAddressCollector(app))
            r.register(MediaServerCollector(app))
            from .tls import CertificateCollector, TrunkTlsCollector

            if app.settings.sip_tls_port:
                r.register(CertificateCollector(app.settings))
            r.register(TrunkTlsCollector(app))

    def observe_api(self, method: str, outcome: str, seconds: float) -> None:
        self.api_requests.labels(method, outcome).inc()
        self.api_latency.labels(method).observe(seconds)

    def snapshot_published(self, version: int, accounts: int) -> None:
        self.snapshot_version.set(version)
        self.snapshot_published_ts.set(time.time())
        self.snapshot_accounts.set(accounts)

    def fraud_event(self, kind: str, level: int, cause: str = "") -> None:
        self.fraud_events.labels(kind, str(level)).inc()
        if kind == "ban":
            self.fraud_bans.labels(cause or "other").inc()

    def cdrs_ingested(self, n: int, lag_s: float) -> None:
        self.cdr_ingested.inc(n)
        self.cdr_lag.set(lag_s)

    def ingest_ran(self, ts: float) -> None:
        self.cdr_last_run_ts.set(ts)

    def calls_stored(self, rows: list[dict]) -> None:
        """Count the calls of CDRs just stored (each once: the ingestor passes only new rows)."""
        for r in rows:
            tenant = str(r.get("tenant_id") or "")
            for prompt, played in announcements(_trace(r.get("trace"))):
                self.announcements.labels(prompt, "played" if played else "not_played").inc()
            self.calls.labels(tenant, r.get("disposition") or "failed").inc()
            start, answer, ring = r.get("start_time"), r.get("answer_time"), r.get("pdd_s")
            if answer is not None and start is not None:
                self.call_duration.labels(tenant).observe(max(0.0, float(r.get("duration_s") or 0.0)))
            if ring is not None:
                self.post_dial_delay.labels(tenant).observe(max(0.0, float(ring)))
            if r.get("mos") is not None:
                self.media_mos.observe(float(r["mos"]))
                for hist, key, scale in (
                    (self.media_jitter, "jitter_ms", 1e-3),
                    (self.media_loss, "loss_pct", 1e-2),
                    (self.media_rtt, "rtt_ms", 1e-3),
                ):
                    if r.get(key) is not None:
                        hist.observe(float(r[key]) * scale)


def _trace(value) -> list:
    """A record's trace as stored (a JSON list) or as a list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


# The primary's view of its streaming replicas (needs pg_monitor: controlplane.ops.cluster_db.ensure grants it). A lag
# the primary no longer measures (caught up, no WAL since) is NULL: 0.
REPLICAS_SQL = """
SELECT coalesce(nullif(application_name, 'walreceiver'), host(client_addr), 'replica') AS replica,
       coalesce(state, '') AS state,
       coalesce(extract(epoch FROM replay_lag), 0) AS lag_s,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0) AS lag_bytes
FROM pg_stat_replication
"""


def replica_families(rows):
    """`callmanager_database_replicas` (streaming), and each replica's replay lag in seconds and bytes."""
    streaming = GaugeMetricFamily(
        "callmanager_database_replicas", "Replicas streaming from the configuration database's primary"
    )
    lag_s = GaugeMetricFamily(
        "callmanager_database_replica_lag_seconds",
        "How far a replica's replay is behind the primary",
        labels=["replica"],
    )
    lag_b = GaugeMetricFamily(
        "callmanager_database_replica_lag_bytes",
        "WAL the primary wrote that a replica has not replayed yet",
        labels=["replica"],
    )
    count = 0
    for replica, state, seconds, size in rows:
        count += state == "streaming"
        lag_s.add_metric([str(replica)], float(seconds or 0))
        lag_b.add_metric([str(replica)], float(size or 0))
    streaming.add_metric([], count)
    yield streaming
    yield lag_s
    yield lag_b


class ControlCollector:
    """The control plane's own state at scrape time: the configuration version (the database's) next to the
    snapshot version published for Kamailio, and the CDR spool's backlog. Never raises."""

    def __init__(self, engine, spool_dir):
        self.engine = engine
        self.spool_dir = Path(spool_dir)

    def collect(self):
        version = GaugeMetricFamily(
            "callmanager_config_version",
            "Version of the configuration in the database (routing follows it "
            "when callmanager_snapshot_version catches up)",
        )
        backlog = GaugeMetricFamily(
            "callmanager_cdr_spool_segments",
            "Spool segments holding records, closed (waiting) or open",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "callmanager_cdr_spool_oldest_seconds", "Age of the oldest closed spool segment not ingested yet"
        )
        up = GaugeMetricFamily("callmanager_database_up", "1: the configuration database answers this control plane")
        read_only = GaugeMetricFamily(
            "callmanager_database_read_only",
            "1: the database this control plane reaches is a replica (primary lost, not promoted yet: writes refused)",
        )
        replicas = None
        try:
            with Session(self.engine) as s:
                state = s.get(ConfigState, 1)
                postgres = self.engine.dialect.name == "postgresql"
                standby = bool(s.execute(text("SELECT pg_is_in_recovery()")).scalar()) if postgres else False
                if postgres and not standby:
                    replicas = s.execute(text(REPLICAS_SQL)).all()
            version.add_metric([], state.version if state else 0)
            up.add_metric([], 1)
            read_only.add_metric([], 1 if standby else 0)
            yield version
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("config version unavailable: %s", exc)
            up.add_metric([], 0)
        yield up
        yield read_only
        if replicas is not None:
            yield from replica_families(replicas)
        now, ages, counts = time.time(), [], {}
        for state in ("new", "open"):
            try:
                with os.scandir(self.spool_dir / state) as it:
                    entries = [e for e in it if not e.name.startswith(".")]
            except OSError:
                entries = []
            counts[state] = len(entries)
            if state == "new":
                for e in entries:
                    try:
                        ages.append(now - e.stat().st_mtime)
                    except OSError:
                        pass
        backlog.add_metric(["closed"], counts["new"])
        backlog.add_metric(["open"], counts["open"])
        oldest.add_metric([], max(ages, default=0.0))
        yield backlog
        yield oldest
        yield self._voicemail_spool(now)

    def _voicemail_spool(self, now: float):
        """Voicemail messages the media server left that are not stored yet (docs/voicemail.md), by age."""
        waiting = GaugeMetricFamily(
            "callmanager_voicemail_spool_oldest_seconds",
            "Age of the oldest recorded voicemail message not stored yet (0: none waiting)",
        )
        ages = []
        try:
            with os.scandir(self.spool_dir.parent / "voicemail" / "new") as it:
                for e in it:
                    if e.name.endswith(".json"):
                        try:
                            ages.append(now - e.stat().st_mtime)
                        except OSError:
                            pass
        except OSError:
            pass
        waiting.add_metric([], max(ages, default=0.0))
        return waiting
