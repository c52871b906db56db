"""Message waiting (issue 23, RFC 3842): each mailbox's counts published to the node's presence module, for the phones
subscribed to them (kemi/policy/mwi.py).

A change (a message stored, heard, deleted) is queued by `changed(mailbox_id)` and published by this service's own
thread — never on the API's or the ingestion's path. A publication is a PUBLISH of the mailbox's summary to every
address (AOR) of the mailbox's user, sent by Kamailio itself (`tm.t_uac_start`) to its own SIP listener, carrying the
node's RPC secret. Every mailbox is published again when Kamailio has restarted (the presence module keeps the counts in
shared memory only) and before the publications expire.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from controlplane.adapters.kamailio_rpc import KamailioRpcError, RestartWatch
from controlplane.db.models import Mailbox, SipAccount, VoicemailMessage
from kemi.policy import mwi

log = logging.getLogger("callmanager.mwi")

REFRESH_S = mwi.EXPIRES_S / 2  # every mailbox published again this often


class MwiPublisher:
    def __init__(self, engine: Engine, kamailio, sip_uri: str, secret: str, metrics=None, check_interval: float = 10.0):
        """`sip_uri`: the node's own SIP listener (sip:address:port), where the PUBLISHes go."""
        self.engine, self.kamailio, self.sip_uri, self.secret = engine, kamailio, sip_uri, secret
        self.metrics, self.check_interval = metrics, check_interval
        self._queue: queue.Queue[int | None] = queue.Queue(maxsize=10000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restarts = RestartWatch(kamailio)
        self._all_due = 0.0
        self.published = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mwi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def publish_soon(self) -> None:
        """Publish every mailbox again on the thread's next look."""
        self._all_due = 0.0
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def changed(self, mailbox_id: int) -> None:
        try:
            self._queue.put_nowait(mailbox_id)
        except queue.Full:  # a burst beyond this is covered by publishing every mailbox again
            self._all_due = 0.0

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._check_all()
                item = self._queue.get(timeout=self.check_interval)
                pending = {item} if item is not None else set()
                while True:  # several changes of one mailbox: one publication
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is not None:
                        pending.add(nxt)
                for box_id in pending:
                    self.publish(box_id)
            except queue.Empty:
                continue
            except Exception:  # noqa: BLE001 - this thread outlives any one failure
                log.exception("message waiting: a publication failed; tried again on the next change or refresh")
                self._stop.wait(1.0)

    def _check_all(self) -> None:
        """Publish every mailbox again when Kamailio restarted (its counts were in its memory) or the last full round
        is half their lifetime old."""
        try:
            restarted = self._restarts.restarted()
        except KamailioRpcError as exc:
            log.debug("message waiting: Kamailio not reachable (%s)", exc)
            return
        if restarted or time.monotonic() >= self._all_due:
            self.publish_all()

    def publish_all(self) -> int:
        with Session(self.engine) as s:
            ids = [b for b in s.exec(select(Mailbox.id).where(Mailbox.user_id != None)).all()]  # noqa: E711
        done = 0
        for box_id in ids:
            done += self.publish(box_id or 0)
        self._all_due = time.monotonic() + REFRESH_S
        return done

    def publish(self, mailbox_id: int) -> int:
        """Publish one mailbox's counts to its user's addresses (none when the mailbox is gone: nothing waiting).
        Returns the PUBLISHes sent."""
        with Session(self.engine) as s:
            box = s.get(Mailbox, mailbox_id)
            if box is None or box.user_id is None:
                return 0
            counts = dict(
                s.exec(
                    select(VoicemailMessage.heard, func.count())
                    .where(VoicemailMessage.mailbox_id == mailbox_id)
                    .group_by(VoicemailMessage.heard)  # type: ignore[arg-type]
                ).all()
            )
            aors = [
                f"sip:{a.username}@{a.realm}"
                for a in s.exec(select(SipAccount).where(SipAccount.user_id == box.user_id))
            ]
        body = mwi.summary(counts.get(False, 0), counts.get(True, 0))
        sent = 0
        for aor in aors:
            headers = (
                f"From: <{aor}>\r\nTo: <{aor}>\r\nEvent: {mwi.EVENT}\r\nExpires: {mwi.EXPIRES_S}\r\n"
                f"Content-Type: {mwi.CONTENT_TYPE}\r\n{mwi.KEY_HEADER}: {self.secret}\r\n"
            )
            try:
                self.kamailio.call("tm.t_uac_start", "PUBLISH", aor, self.sip_uri, ".", headers, body)
                sent += 1
            except KamailioRpcError as exc:
                log.warning("message waiting for %s not published: %s", aor, exc)
        self.published += sent
        return sent
