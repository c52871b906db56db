"""The control plane service: JSON-RPC 2.0 at POST /rpc, Prometheus at GET /metrics, GET /health, the web phone at
/phone/ — an ASGI application (controlplane.web.asgi) on uvicorn (controlplane.web.serve)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from datetime import datetime, timezone

from sqlalchemy import Table, bindparam
from sqlalchemy import select as sa_select

import controlplane.features  # noqa: F401  (registers the methods)
from controlplane.api.errors import Unauthorized
from controlplane.api.rpc import Dispatcher, Principal
from controlplane.app import App
from controlplane.sealed import hash_token
from controlplane.db.models import ApiToken, Role, User
from controlplane.db.session import database_away
from controlplane.node.settings import NodeSettings, load_settings
from controlplane.web.asgi import build_app
from controlplane.web.serve import HttpServer, server_context

log = logging.getLogger("callmanager.server")


def make_authenticator(app: App):
    """Bearer token → Principal, read from the database on every request (a revoked or expired token stops at once,
    whichever control plane of the cluster revoked it): one prepared Core query, token and user in one round trip —
    the ORM session it replaced cost ~0.25 ms of every API call (docs/benchmarks.md §20)."""
    tokens: Table = ApiToken.__table__  # type: ignore[attr-defined]  # SQLModel's table, typed as Any
    users: Table = User.__table__  # type: ignore[attr-defined]
    query = (
        sa_select(tokens.c.id, tokens.c.role, tokens.c.tenant_id, tokens.c.user_id, tokens.c.expires_at, users.c.role)
        .select_from(tokens.outerjoin(users, users.c.id == tokens.c.user_id))
        .where(tokens.c.token_hash == bindparam("token_hash"))
    )

    def authenticate(token: str | None) -> Principal | None:
        if not token:
            return None
        with app.engine.connect() as c:
            row = c.execute(query, {"token_hash": hash_token(token)}).first()
        if row is None:
            return None
        token_id, role, tenant_id, user_id, expires_at, user_role = row
        expires = expires_at.replace(tzinfo=expires_at.tzinfo or timezone.utc) if expires_at is not None else None
        if expires is not None and expires <= datetime.now(timezone.utc):
            raise Unauthorized("the token has expired", expired_at=expires.isoformat())
        return Principal(
            token_id=token_id,
            role=Role(role),
            tenant_id=tenant_id,
            user_id=user_id,
            user_role=None if user_id is None else Role(user_role or Role.USER),
        )

    return authenticate


def health_of(app: App):
    def health() -> dict:
        body = {
            "status": "ok",
            "snapshot_version": app.publisher.published_version,
            "cdr_spool_pending": app.ingestor.pending(),
        }
        # what a load balancer and upgrade.yml want to know: is Kamailio there, is it draining, what it carries
        try:
            from controlplane.features.node import node_state

            body.update(
                kamailio="up", **{k: v for k, v in node_state(app).items() if k in ("draining", "calls", "ringing")}
            )
        except Exception:  # noqa: BLE001 - /health answers whatever Kamailio does
            body["kamailio"] = "down"
        return body

    return health


class ControlPlaneServer:
    def __init__(self, settings: NodeSettings, start_workers: bool = True):
        self.settings = settings
        self.app = App(settings, start_workers=start_workers)
        self.token_file = settings.var / "admin.token"
        try:
            self.app.ensure_platform_token(self.token_file, settings.platform_token)
        except Exception:
            self.app.close()  # its workers started: a control plane that did not start leaves none running
            raise
        self.dispatcher = Dispatcher(self.app, make_authenticator(self.app), metrics=self.app.metrics)
        try:
            self.httpd = HttpServer(
                build_app(
                    dispatcher=self.dispatcher,
                    registry=self.app.metrics.registry,
                    health=health_of(self.app),
                    request_timeout_s=settings.api_request_timeout_s,
                    max_body=settings.api_max_body_bytes,
                    on_error=lambda path, status: self.app.metrics.api_http_errors.labels(path, str(status)).inc(),
                ),
                settings.api_address,
                settings.api_port,
                request_timeout_s=settings.api_request_timeout_s,
                idle_timeout_s=settings.api_idle_timeout_s,
                max_connections=settings.api_max_connections,
                tls=api_tls_context(settings) if settings.api_tls else None,
            )
        except Exception:
            self.app.close()
            raise
        self.app.api_server = self.httpd  # tls.reload gives the API the new certificate too
        self._closing = threading.Lock()
        self._closed = False

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        """Stops serving, then the application's workers; idempotent."""
        self.httpd.shutdown()
        with self._closing:
            if not self._closed:
                self._closed = True
                self.app.close()


def api_tls_context(settings: NodeSettings):
    """The API's TLS context with the node's certificate (the configured pair, or the self-signed one made now if
    there is none yet — the same one Kamailio serves)."""
    import time

    from controlplane.node import tls

    cert, key = settings.tls_files
    tls.ensure_certificate(
        cert, key, bool(settings.tls_certificate), settings.node_name, settings.tls_addresses, time.time()
    )
    return server_context(cert, key)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="callmanager control plane")
    ap.add_argument("--config", help="JSON node settings file")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    stopping = threading.Event()
    running: list[ControlPlaneServer] = []

    def stop(*_):
        stopping.set()
        if running:
            threading.Thread(target=running[0].shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = start_when_database_answers(settings, stopping)
    if server is None:
        return
    running.append(server)
    log.info("control plane listening on %s (the web phone at %s/phone/)", settings.api_url, settings.api_base)
    try:
        if not stopping.is_set():
            server.serve_forever()  # uvicorn handles SIGTERM/SIGINT while it serves, then hands them back to stop()
    finally:
        server.shutdown()


def start_when_database_answers(
    settings: NodeSettings, stopping: threading.Event, retry_s: float = 2.0
) -> ControlPlaneServer | None:
    """The control plane, once its database answers. A database away at the start (a cluster's PostgreSQL restarting,
    the link to it down, a replica not promoted yet) is waited for — logged once, then retried — instead of exiting:
    a supervisor gives up on a program that fails at once a few times (supervisord: FATAL) and would not start it when
    the database is back. Kamailio routes on its last snapshot meanwhile. None when stopped while waiting."""
    waited = 0.0
    while not stopping.is_set():
        try:
            server = ControlPlaneServer(settings)
        except Exception as exc:  # noqa: BLE001 - only the database being away is waited for
            if database_away(exc) is None:
                raise
            if not waited:
                log.warning(
                    "the database does not answer (%s): waiting for it; Kamailio routes on its last snapshot",
                    str(exc).splitlines()[0][:200],
                )
            waited += retry_s
            stopping.wait(retry_s)
            continue
        if waited:
            log.info("the database answers: starting after about %.0f s", waited)
        return server
    return None


if __name__ == "__main__":
    main()
