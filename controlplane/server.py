"""The control plane service: JSON-RPC 2.0 at POST /rpc, Prometheus at GET /metrics, GET /health."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlmodel import Session, select

import controlplane.features  # noqa: F401  (registers the methods)
from controlplane.api.errors import Unauthorized
from controlplane.api.rpc import Dispatcher, Principal
from controlplane.app import App
from controlplane.sealed import hash_token
from controlplane.db.models import ApiToken, Role, User
from controlplane.db.session import database_away
from controlplane.node.settings import NodeSettings, load_settings

log = logging.getLogger("callmanager.server")
MAX_BODY = 1 << 20


def make_authenticator(app: App):
    def authenticate(token: str | None) -> Principal | None:
        if not token:
            return None
        with Session(app.engine) as s:
            t = s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
            if t is None:
                return None
            expires = (
                t.expires_at.replace(tzinfo=t.expires_at.tzinfo or timezone.utc) if t.expires_at is not None else None
            )
            if expires is not None and expires <= datetime.now(timezone.utc):
                raise Unauthorized("the token has expired", expired_at=expires.isoformat())
            user_role = None
            if t.user_id is not None:
                u = s.get(User, t.user_id)
                user_role = Role(u.role) if u is not None else Role.USER
            return Principal(
                token_id=t.id, role=Role(t.role), tenant_id=t.tenant_id, user_id=t.user_id, user_role=user_role
            )

    return authenticate


def make_handler(app: App, dispatcher: Dispatcher):
    class Handler(BaseHTTPRequestHandler):
        server_version = "callmanager"
        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without TCP_NODELAY the body waits for the client's delayed ACK
        # (~40 ms on every response of a kept-alive connection; measured: an idle /metrics scrape 60 ms -> see
        # benchmarks)
        disable_nagle_algorithm = True
        timeout = (
            app.settings.api_request_timeout_s
        )  # a client that stops sending (slow or idle connections) is dropped

        def log_message(self, fmt, *args):
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/metrics":
                self._send(200, generate_latest(app.metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/health":
                body = {
                    "status": "ok",
                    "snapshot_version": app.publisher.published_version,
                    "cdr_spool_pending": app.ingestor.pending(),
                }
                # what a load balancer and upgrade.yml want to know: is Kamailio there, is it draining, what it carries
                try:
                    from controlplane.features.node import node_state

                    body.update(
                        kamailio="up",
                        **{k: v for k, v in node_state(app).items() if k in ("draining", "calls", "ringing")},
                    )
                except Exception:  # noqa: BLE001 - /health answers whatever Kamailio does
                    body["kamailio"] = "down"
                self._send(200, json.dumps(body).encode())
            else:
                self._send(404, b'{"error": "POST JSON-RPC to /rpc"}')

        def do_POST(self):
            if self.path.rstrip("/") != "/rpc":
                self._send(404, b'{"error": "POST JSON-RPC to /rpc"}')
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._send(400, b'{"error": "Content-Length must be a non-negative integer"}')
                return
            if length > MAX_BODY:
                self._send(413, b'{"error": "request body too large"}')
                return
            body = self.rfile.read(length)
            auth = self.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            try:
                result = dispatcher.handle_body(body, token)
            except Exception:  # noqa: BLE001 - never a dropped connection or a traceback to the client
                log.exception("JSON-RPC body not handled")
                result = {
                    "jsonrpc": "2.0",
                    "error": {"code": -32603, "message": "Internal error", "data": {"error_id": "internal_error"}},
                    "id": None,
                }
            if result is None:
                self._send(204, b"")
            else:
                self._send(200, json.dumps(result).encode())

    return Handler


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
        self.httpd = ThreadingHTTPServer(
            (settings.api_address, settings.api_port), make_handler(self.app, self.dispatcher)
        )
        self.httpd.daemon_threads = True

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


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
    log.info("control plane listening on http://%s:%s/rpc", settings.api_address, settings.api_port)
    if not stopping.is_set():
        server.serve_forever()
    else:
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
