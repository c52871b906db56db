"""Notifications of the fraud controls to a tenant's contact: a webhook (JSON POST) and/or an
e-mail through the node's SMTP relay (settings `smtp_relay`, `smtp_from`). Targets come from
the tenant's fraud policy (`notify_webhook`, `notify_email`)."""
from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

import httpx
from sqlmodel import Session

from controlplane.db.models import FraudPolicyRow

log = logging.getLogger("callmanager.notify")
LEVELS = {1: "warning", 2: "destination class blocked", 3: "outgoing calls locked", 4: "account locked entirely"}


class Notifier:
    def __init__(self, engine, settings, timeout: float = 3.0):
        self.engine = engine
        self.settings = settings
        self.timeout = timeout

    def __call__(self, response) -> None:
        with Session(self.engine) as s:
            row = s.get(FraudPolicyRow, response.tenant_id)
            webhook, email = (row.notify_webhook, row.notify_email) if row is not None else ("", "")
        doc = {"tenant_id": response.tenant_id, "user_id": response.user_id, "level": response.level, "action": LEVELS[response.level],
               "limit": response.limit, "spent": round(response.spent, 4), "allowed": response.allowed, "dest_class": response.dest_class,
               "calls_ended": len(response.end_calls), "reason": response.reason}
        if webhook:
            httpx.post(webhook, json=doc, timeout=self.timeout).raise_for_status()
        if email and self.settings.smtp_relay:
            host, _, port = self.settings.smtp_relay.partition(":")
            msg = EmailMessage()
            msg["From"], msg["To"] = self.settings.smtp_from, email
            msg["Subject"] = f"callmanager fraud control: {LEVELS[response.level]} ({response.limit})"
            msg.set_content(f"{response.reason}\n\nlevel {response.level}: {LEVELS[response.level]}\n"
                            f"calls ended now: {len(response.end_calls)}\n\nLocks are lifted by an admin (fraud.lift_lock).\n")
            with smtplib.SMTP(host, int(port or 25), timeout=self.timeout) as smtp:
                smtp.send_message(msg)
