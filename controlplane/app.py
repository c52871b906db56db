"""The control plane's application object: database, snapshot publisher, adapters, ingestion."""

from __future__ import annotations

import os

import logging
import secrets
import threading
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import update
from sqlmodel import Session, select

from controlplane.adapters.kamailio_rpc import KamailioRpc
from controlplane.services.trunk_tls import TrunkTlsProbe
from controlplane.adapters.rtpengine_ng import NgClient
from controlplane.db.models import ApiToken, ConfigState, Role
from controlplane.sealed import Sealer, hash_token, private_file, shared_secret
from controlplane.services.cdr_ingest import CdrIngestor
from controlplane.services.mwi import MwiPublisher
from controlplane.services.shared_store import SharedStore
from controlplane.services.voicemail import Store as VoicemailStore
from controlplane.services.voicemail import VoicemailIngestor
from controlplane.features.fraud_policy import ensure_sample_tariff
from controlplane.metrics import Metrics
from controlplane.services.snapshot import SnapshotPublisher
from controlplane.services.live_state import LiveStateSync
from controlplane.services.dmq_watch import DmqWatch, peer_probe
from controlplane.services.fraud_monitor import FraudMonitor
from controlplane.services.notify import Notifier
from controlplane.services.feature_codes import apply_feature
from kemi.shell.snapshot_holder import SnapshotHolder
from controlplane.db.session import make_engine, migrate
from controlplane.node.settings import NodeSettings

log = logging.getLogger("callmanager")


def seal_stored_secrets(engine, sealer) -> None:
    """Trunk passwords stored in clear (before sealing existed) are encrypted now; idempotent."""
    from controlplane.db.models import Trunk

    with Session(engine) as s:
        clear = [
            t
            for t in s.exec(select(Trunk).where(Trunk.auth_password.is_not(None))).all()
            if t.auth_password != sealer.seal(t.auth_password)
        ]
        for t in clear:
            t.auth_password = sealer.seal(t.auth_password)
            s.add(t)
        if clear:
            s.commit()


def ensure_config_state(engine) -> None:
    """The one configuration-version row exists before any change bumps it (several control planes may start at once on
    a new cluster database: the second insert loses, which is fine)."""
    from sqlalchemy.exc import IntegrityError

    with Session(engine) as s:
        if s.get(ConfigState, 1) is not None:
            return
        s.add(ConfigState(id=1, version=0))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()


class App:
    def __init__(self, settings: NodeSettings, *, start_workers: bool = True):
        self.settings = settings
        os.umask(0o077)  # every file the control plane makes (database, spool, keys, tokens) is its owner's only
        self.engine = make_engine(settings.db_url)
        migrate(self.engine)
        self.sealer = Sealer(settings.secret_key_path)
        seal_stored_secrets(self.engine, self.sealer)
        ensure_config_state(self.engine)
        ensure_sample_tariff(self.engine)
        self.kamailio = KamailioRpc(
            settings.kamailio_rpc_url,
            secret=shared_secret(settings.rpc_secret_path),
            node_index=settings.dmq_node_index,
            node_count=len(settings.dmq_peers) + 1 if settings.dmq_port else 1,
        )
        self.rtpengine = NgClient(settings.rtpengine_address, settings.rtpengine_ng_port)
        self.metrics = Metrics(self)
        self.api_server: Any = None  # the HTTP server serving this app (controlplane.web.serve), once there is one
        self.publisher = SnapshotPublisher(
            self.engine,
            settings.snapshot_path,
            metrics=self.metrics,
            unseal=self.sealer.unseal,
            poll_interval=settings.snapshot_poll_s,
        )
        # the control plane reads the snapshot as a worker does: a change applied, not the whole document re-read
        self._snapshot = SnapshotHolder(str(settings.snapshot_path), check_interval=0)
        self._snapshot_lock = threading.Lock()  # API threads ask at once
        self.ingestor = CdrIngestor(
            self.engine,
            settings.spool_dir,
            metrics=self.metrics,
            interval=settings.cdr_ingest_interval_s,
            on_feature=self.apply_feature,
        )

        host = f"[{settings.sip_address}]" if ":" in settings.sip_address else settings.sip_address
        self.mwi = MwiPublisher(
            self.engine, self.kamailio, f"sip:{host}:{settings.sip_port}", shared_secret(settings.rpc_secret_path)
        )
        self.voicemail_store = VoicemailStore(settings.voicemail_store)
        self.publisher.on_published = self.voicemail_store.after_snapshot
        # a database several control planes share: recordings and mailboxes' changes go through it to every node
        self.shared_store = (
            SharedStore(
                self.engine,
                settings.voicemail_store,
                settings.node_name,
                on_mailbox=self._mailbox_changed_here,
                on_reconciled=self._every_mailbox_changed_here,
                metrics=self.metrics,
                interval=settings.shared_store_interval_s,
            )
            if settings.shared_database
            else None
        )
        self.voicemail_store.shared = self.shared_store
        self.voicemail = VoicemailIngestor(
            self.engine,
            settings.voicemail_spool,
            self.voicemail_store,
            settings=settings,
            metrics=self.metrics,
            interval=settings.voicemail_ingest_interval_s,
            on_change=self.voicemail_changed,
        )
        self.live = LiveStateSync(self.engine, self.kamailio, interval=settings.live_sync_interval_s)
        self.dmq_watch = (
            DmqWatch(self.kamailio, metrics=self.metrics, probe=peer_probe(settings)) if settings.dmq_port else None
        )
        self.trunk_tls = (
            TrunkTlsProbe(self.engine, settings.tls_ca_path, interval=settings.trunk_tls_check_s)
            if settings.trunk_tls_check_s
            else None
        )

        self.fraud = FraudMonitor(
            self,
            interval=settings.fraud_monitor_interval_s,
            notifier=Notifier(self.engine, settings, metrics=self.metrics),
            baseline_interval=settings.fraud_baseline_interval_s,
        )
        self.ingestor.on_stored = self.fraud.add_cdrs  # the monitor's running totals follow the CDRs as they are stored
        if start_workers:
            self.publisher.start()
            self.ingestor.start()
            self.voicemail.start()
            self.mwi.start()
            if self.shared_store is not None:
                self.shared_store.start()
            self.live.start()
            if self.dmq_watch is not None:
                self.dmq_watch.start()
            if self.trunk_tls is not None:
                self.trunk_tls.start()
            if settings.fraud_checks:
                self.fraud.start()

    def voicemail_changed(self, mailbox_id: int) -> None:
        """A mailbox or its messages changed (stored, heard, deleted; its PIN, its lock): the media server's file of it
        is written again, and its phones are told (message waiting) — on this node, and in a cluster on every node."""
        self._mailbox_changed_here(mailbox_id)
        if self.shared_store is not None:
            try:
                self.shared_store.mailbox_changed(mailbox_id)
            except Exception:  # noqa: BLE001 - the other nodes tell it on their next full round
                log.exception("mailbox %s: the change could not be passed on to the cluster's other nodes", mailbox_id)

    def _mailbox_changed_here(self, mailbox_id: int) -> None:
        try:
            self.voicemail.write_index(mailbox_id)
        except Exception:  # noqa: BLE001 - written again on its next change; the change itself is stored
            log.exception("mailbox %s: its file for listening by phone could not be written", mailbox_id)
        self.mwi.changed(mailbox_id)

    def _every_mailbox_changed_here(self) -> None:
        """The shared store was reconciled whole: every mailbox's file written again, every one published."""
        self.voicemail.write_all_indexes()
        self.mwi.publish_soon()

    def apply_feature(self, feature: dict) -> None:

        apply_feature(self, feature)

    def current_snapshot(self):
        """The routing snapshot Kamailio routes on, published first if the database is ahead of it."""

        self.publisher.publish()
        with self._snapshot_lock:
            return self._snapshot.get()

    def close(self) -> None:
        self.publisher.stop()
        self.ingestor.stop()
        self.voicemail.stop()
        self.mwi.stop()
        if self.shared_store is not None:
            self.shared_store.stop()
        self.live.stop()
        if self.dmq_watch is not None:
            self.dmq_watch.stop()
        if self.trunk_tls is not None:
            self.trunk_tls.stop()
        self.fraud.stop()
        if self.fraud.notifier is not None:
            self.fraud.notifier.stop()
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine) as s:
            yield s

    @contextmanager
    def write(self, changes_routing: bool = True) -> Iterator[Session]:
        """One transaction: all of it is committed, or none of it. Routing changes bump the version."""
        with Session(self.engine) as s:
            try:
                yield s
                # one atomic increment: control planes sharing a database never hand out a version twice
                if changes_routing:
                    bumped = s.execute(
                        update(ConfigState).where(ConfigState.id == 1).values(version=ConfigState.version + 1)
                    )
                    if not getattr(bumped, "rowcount", 0):  # made at start (ensure_config_state); gone only if deleted
                        s.add(ConfigState(id=1, version=1))
                s.commit()
            except BaseException:
                s.rollback()
                raise
        if changes_routing:
            self.publisher.kick()

    def ensure_platform_token(self, path, configured: str = "") -> str | None:
        """The configured platform token (a cluster's, from the settings) exists and is in `path` (mode 0600); without
        one, the first platform token is made and written to `path` if there is no token at all."""
        if configured:
            self._ensure_token(configured, "cluster platform token (node settings)")
            if not (Path(path).exists() and Path(path).read_text().strip() == configured):
                private_file(path, (configured + "\n").encode())
            return configured
        with Session(self.engine) as s:
            if s.exec(select(ApiToken)).first() is not None:
                return None
            token = "cm_" + secrets.token_urlsafe(32)
            s.add(
                ApiToken(
                    name="bootstrap platform token",
                    token_hash=hash_token(token),
                    role=Role.PLATFORM.value,
                    tenant_id=None,
                )
            )
            s.commit()
        private_file(path, (token + "\n").encode())
        return token

    def _ensure_token(self, token: str, name: str) -> None:
        from sqlalchemy.exc import IntegrityError

        with Session(self.engine) as s:
            if s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first() is not None:
                return
            s.add(ApiToken(name=name, token_hash=hash_token(token), role=Role.PLATFORM.value, tenant_id=None))
            try:
                s.commit()
            except IntegrityError:  # another control plane of the cluster added it at the same moment
                s.rollback()
