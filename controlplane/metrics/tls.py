"""The TLS certificate the node serves, for the NOC (docs/noc.md): when it ends, and whether it can be served at all.
The alert rules (grafana/prometheus/rules.yml) warn 21 days before the end and page 3 days before and when expired."""

from __future__ import annotations

import logging
import os

from prometheus_client.core import GaugeMetricFamily

from controlplane.node import tls

log = logging.getLogger("callmanager.metrics")


class CertificateCollector:
    """Reads the certificate file at scrape time, parsed again only when the file changed (a renewal). Never raises."""

    def __init__(self, settings):
        self.settings = settings
        self._seen: tuple | None = None
        self._info: tls.CertInfo | None = None

    def _current(self) -> tls.CertInfo | None:
        cert, key = self.settings.tls_files
        try:
            st, sk = os.stat(cert), os.stat(key)
            stamp = (st.st_mtime_ns, st.st_size, sk.st_mtime_ns, sk.st_size)
        except OSError:
            return None
        if stamp != self._seen:
            self._seen = stamp
            try:
                self._info = tls.check_pair(cert, key)
            except tls.TlsProblem as exc:
                log.warning("TLS certificate cannot be served: %s", exc)
                self._info = None
        return self._info

    def collect(self):
        cert, _key = self.settings.tls_files
        expiry = GaugeMetricFamily(
            "callmanager_tls_certificate_expiry_timestamp_seconds",
            "When the certificate of the node's TLS listener ends (notAfter, Unix time)",
            labels=["file", "self_signed"],
        )
        valid = GaugeMetricFamily(
            "callmanager_tls_certificate_valid",
            "1: the TLS certificate and key files can be served together (readable PEM, the key the certificate's)",
        )
        try:
            info = self._current()
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.debug("certificate unreadable: %s", exc)
            info = None
        valid.add_metric([], 1 if info is not None else 0)
        if info is not None:
            expiry.add_metric([str(cert), "1" if info.self_signed else "0"], info.not_after)
            yield expiry
        yield valid


class TrunkTlsCollector:
    """Each TLS trunk's last handshake check (controlplane.services.trunk_tls). Never raises."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        ok = GaugeMetricFamily(
            "callmanager_trunk_tls_ok",
            "1: the TLS trunk's handshake works with the node's CA file (checked every trunk_tls_check_s)",
            labels=["trunk"],
        )
        expiry = GaugeMetricFamily(
            "callmanager_trunk_tls_certificate_expiry_timestamp_seconds",
            "When the TLS trunk's certificate ends (notAfter, Unix time)",
            labels=["trunk"],
        )
        probe = getattr(self.app, "trunk_tls", None)
        for name, r in sorted((probe.results if probe is not None else {}).items()):
            ok.add_metric([name], 1 if r.ok else 0)
            if r.not_after is not None:
                expiry.add_metric([name], r.not_after)
        yield ok
        yield expiry
