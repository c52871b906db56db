"""Notifications of the fraud controls to a tenant's contact: a webhook (JSON POST) and/or an
e-mail through the node's SMTP relay (settings `smtp_relay`, `smtp_from`). Targets come from
the tenant's fraud policy (`notify_webhook`, `notify_email`), set by the platform operator.

Delivery is off the fraud monitor's path: the monitor only enqueues (it never waits for a slow
endpoint before it ends calls), a worker thread delivers with a timeout and retries. A webhook
to a loopback, link-local, private or otherwise non-public address is refused (the control
plane would otherwise post to the node's own services: SSRF) unless the node's settings allow
private targets (`webhook_private_ok`).
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session

from controlplane.db.models import FraudPolicyRow

log = logging.getLogger("callmanager.notify")
LEVELS = {1: "warning", 2: "destination class blocked", 3: "outgoing calls locked", 4: "account locked entirely"}
RETRIES_S = (0.0, 2.0, 10.0)  # attempts: now, then after these pauses
QUEUE_MAX = 1000


class TargetRefused(ValueError):
    """A webhook URL that may not be posted to."""


def check_webhook(url: str, private_ok: bool = False, resolve=socket.getaddrinfo, unresolved_ok: bool = False) -> None:
    """Refuse a webhook that is not http(s), or whose host is (or resolves to) a non-public address. `unresolved_ok`:
    a name that does not resolve now passes (when it is set: it is checked again at each delivery)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the webhook must be an http:// or https:// URL with a host")
    if private_ok:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the webhook's port is not a number") from None
    try:
        addresses = {info[4][0] for info in resolve(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError) as exc:
        if unresolved_ok:
            return
        raise TargetRefused(f"the webhook's host {parts.hostname!r} does not resolve ({exc})") from None
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise TargetRefused(
                f"the webhook's host {parts.hostname!r} is {ip}, not a public address (loopback, private and "
                "link-local targets need the platform operator's setting webhook_private_ok)"
            )


class Notifier:
    """Called by the fraud monitor with a response; delivers in the background. `metrics`: counters by outcome."""

    def __init__(self, engine, settings, timeout: float = 3.0, metrics=None, retries_s=RETRIES_S):
        self.engine = engine
        self.settings = settings
        self.timeout = timeout
        self.metrics = metrics
        self.retries_s = retries_s
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, response) -> None:
        """Enqueue (never blocks): the targets are read now, delivered by the worker."""
        with Session(self.engine) as s:
            row = s.get(FraudPolicyRow, response.tenant_id)
            webhook, email = (row.notify_webhook, row.notify_email) if row is not None else ("", "")
        doc = {
            "tenant_id": response.tenant_id,
            "user_id": response.user_id,
            "level": response.level,
            "action": LEVELS[response.level],
            "limit": response.limit,
            "spent": round(response.spent, 4),
            "allowed": response.allowed,
            "dest_class": response.dest_class,
            "calls_ended": len(response.end_calls),
            "reason": response.reason,
        }
        for channel, target in (("webhook", webhook), ("email", email if self.settings.smtp_relay else "")):
            if not target:
                continue
            try:
                self._queue.put_nowait((channel, target, doc))
            except queue.Full:
                self._count(channel, "dropped")
                log.error(
                    "fraud notification for tenant %s dropped: %d notifications wait already",
                    response.tenant_id,
                    QUEUE_MAX,
                )
        if self._thread is None:
            self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fraud-notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered or given up (tests)."""
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                channel, target, doc = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._deliver(channel, target, doc)
            finally:
                self._queue.task_done()

    def _deliver(self, channel: str, target: str, doc: dict) -> None:
        for attempt, pause in enumerate(self.retries_s, 1):
            if pause and self._stop.wait(pause):
                return
            try:
                if channel == "webhook":
                    check_webhook(target, self.settings.webhook_private_ok)
                    httpx.post(target, json=doc, timeout=self.timeout, follow_redirects=False).raise_for_status()
                else:
                    self._mail(target, doc)
                self._count(channel, "sent")
                return
            except TargetRefused as exc:
                self._count(channel, "refused")
                log.error("fraud notification for tenant %s not sent: %s", doc["tenant_id"], exc)
                return
            except Exception as exc:  # noqa: BLE001 — any failure of the far end: retried, then given up
                log.warning(
                    "fraud notification for tenant %s by %s failed (attempt %d of %d): %s",
                    doc["tenant_id"],
                    channel,
                    attempt,
                    len(self.retries_s),
                    exc,
                )
        self._count(channel, "failed")

    def _mail(self, to: str, doc: dict) -> None:
        host, _, port = self.settings.smtp_relay.partition(":")
        msg = EmailMessage()
        msg["From"], msg["To"] = self.settings.smtp_from, to
        msg["Subject"] = f"callmanager fraud control: {doc['action']} ({doc['limit']})"
        msg.set_content(
            f"{doc['reason']}\n\nlevel {doc['level']}: {doc['action']}\n"
            f"calls ended now: {doc['calls_ended']}\n\nLocks are lifted by an admin (fraud.lift_lock).\n"
        )
        with smtplib.SMTP(host, int(port or 25), timeout=self.timeout) as smtp:
            smtp.send_message(msg)

    def _count(self, channel: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(channel=channel, outcome=outcome).inc()
