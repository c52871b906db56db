"""The control plane's own Prometheus metrics (API, snapshot, CDR ingestion).

Kamailio/RTPengine collectors and the NOC dashboards come with the observability work.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, app=None, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.api_requests = Counter("callmanager_api_requests_total", "JSON-RPC requests by method and outcome", ["method", "outcome"], registry=r)
        self.api_latency = Histogram("callmanager_api_request_duration_seconds", "JSON-RPC request latency", ["method"], registry=r)
        self.snapshot_version = Gauge("callmanager_snapshot_version", "Version of the last published routing snapshot", registry=r)
        self.snapshot_published_ts = Gauge("callmanager_snapshot_published_timestamp_seconds", "When the last snapshot was published", registry=r)
        self.snapshot_accounts = Gauge("callmanager_snapshot_sip_accounts", "SIP accounts in the published snapshot", registry=r)
        self.cdr_ingested = Counter("callmanager_cdr_ingested_total", "CDRs stored from the spool", registry=r)
        self.cdr_lag = Gauge("callmanager_cdr_ingestion_lag_seconds", "Age of the newest CDR at ingestion", registry=r)

    def observe_api(self, method: str, outcome: str, seconds: float) -> None:
        self.api_requests.labels(method, outcome).inc()
        self.api_latency.labels(method).observe(seconds)

    def snapshot_published(self, version: int, accounts: int) -> None:
        import time

        self.snapshot_version.set(version)
        self.snapshot_published_ts.set(time.time())
        self.snapshot_accounts.set(accounts)

    def cdrs_ingested(self, n: int, lag_s: float) -> None:
        self.cdr_ingested.inc(n)
        self.cdr_lag.set(lag_s)
