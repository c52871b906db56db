"""Trunks over TLS, checked from the control plane (docs/tls.md): every `trunk_tls_check_s` each enabled TLS trunk gets
a TLS handshake as Kamailio's client profile makes it — TLS 1.2 or newer, the provider's certificate chain checked
against the node's CA file (`tls_ca_file`) — and its certificate's end is read. A trunk whose handshake fails (an
untrusted, expired or wrong certificate; nothing listening) is logged once with its name and the reason, and again
when it works again; the NOC sees both as metrics. Calls through a failing trunk fail over to the next one (the
handshake fails there too, Kamailio's log says "certificate verify failed"); this check says which trunk and why
before a customer notices.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlmodel import Session, select

from controlplane.db.models import Trunk

from .periodic import Periodic

log = logging.getLogger("callmanager.trunks")


@dataclass(frozen=True)
class TrunkTls:
    name: str
    address: str  # host:port
    ok: bool
    reason: str  # '' when ok
    not_after: float | None  # the certificate's end (read without checking it); None: no certificate seen
    checked_at: float


def _context(ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # as Kamailio's tls module: the chain is checked, not the name
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def _handshake(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> bytes | None:
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return s.getpeercert(binary_form=True)


def check_trunk(name: str, host: str, port: int, ca: Path, timeout: float = 5.0, now: float | None = None) -> TrunkTls:
    """One trunk's handshake, checked; and its certificate's end, read from a handshake that does not check."""
    now = time.time() if now is None else now
    not_after = None
    try:
        der = _handshake(host, port, _context(None), timeout)
        if der:
            not_after = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except (OSError, ValueError):
        pass  # the checked handshake below says why
    try:
        _handshake(host, port, _context(ca), timeout)
        ok, reason = True, ""
    except ssl.SSLCertVerificationError as exc:
        ok, reason = False, f"certificate verify failed: {exc.verify_message}"
    except ssl.SSLError as exc:
        ok, reason = False, f"TLS handshake failed: {exc.reason or exc}"
    except (OSError, ValueError) as exc:  # ValueError: a host name the socket layer cannot encode
        ok, reason = False, f"no connection: {getattr(exc, 'strerror', None) or exc}"
    return TrunkTls(name, f"{host}:{port}", ok, reason, not_after, now)


class TrunkTlsProbe:
    def __init__(self, engine, ca: Path, interval: float = 300.0, timeout: float = 5.0):
        self.engine, self.ca, self.timeout = engine, ca, timeout
        self.results: dict[str, TrunkTls] = {}
        self._loop = Periodic("trunk-tls", self.check, interval, log, "trunk TLS check failed; will retry")

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def check(self) -> dict[str, TrunkTls]:
        with Session(self.engine) as s:
            trunks = [
                (t.name, t.host, t.port)
                for t in s.exec(select(Trunk).where(Trunk.transport == "tls")).all()
                if t.enabled
            ]
        results = {}
        for name, host, port in trunks:
            r = check_trunk(name, host, port, self.ca, self.timeout)
            before = self.results.get(name)
            if not r.ok and (before is None or before.ok or before.reason != r.reason):
                log.error(
                    "trunk %s (tls %s): %s — calls through it fail over to the next trunk (CA file %s)",
                    name,
                    r.address,
                    r.reason,
                    self.ca,
                )
            elif r.ok and before is not None and not before.ok:
                log.warning("trunk %s (tls %s): TLS handshake works again", name, r.address)
            results[name] = r
        self.results = results
        return results
