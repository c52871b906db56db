"""The control plane's HTTP server against the one it replaced (issue 24): `make bench ARGS="--only-api"` (also part
of `make bench`).

One node (Kamailio, RTPengine, its control plane) with `users` users, so /metrics carries what production's does. In
this process, one more control plane application on the same database, Kamailio and RTPengine, served three ways:
- "new": the control plane as it is (controlplane.web: Starlette on uvicorn, and its token check);
- "old": the standard library's ThreadingHTTPServer with the handler main had before issue 24 (kept here as it was),
  on the same dispatcher — the servers alone compared;
- "before": that old server with the token check main had then too (an ORM session per call, kept here as it was) —
  the API as a client saw it before.
In paired rounds, in turns (the order rotated every round):
1. API latency: sequential `token.whoami` calls on one kept-alive connection (median and p99);
2. the same with a new connection per call (what `cm` does);
3. throughput: 8 clients at once, each on its own kept-alive connection;
4. /metrics: sequential scrapes (median).
Each figure is the median over rounds with the spread of the per-round ratios new/old and new/before. Loopback only,
bounded counts.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sqlmodel import Session, select

from controlplane.api.errors import Unauthorized
from controlplane.api.rpc import Dispatcher, Principal
from controlplane.app import App
from controlplane.db.models import ApiToken, Role, User
from controlplane.node.settings import load_settings
from controlplane.sealed import hash_token
from controlplane.server import health_of, make_authenticator
from controlplane.web.asgi import build_app
from controlplane.web.serve import HttpServer
from tests.harness.node import TestNode
from tests.harness.ports import free_port

from .run import BENCH_NODE, provision_kemi

CALLS = 300
FRESH_CALLS = 100
CLIENTS = 8
CLIENT_CALLS = 100
SCRAPES = 20
SIDES = ("new", "old", "before")


def stdlib_server(app: App, dispatcher: Dispatcher, port: int) -> ThreadingHTTPServer:
    """The baseline: main's server before issue 24 (controlplane/server.py at e5be478), its handler as it was."""
    health = health_of(app)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = app.settings.api_request_timeout_s

        def log_message(self, fmt, *args):
            pass

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
                self._send(200, json.dumps(health()).encode())
            else:
                self._send(404, b'{"error": "POST JSON-RPC to /rpc"}')

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            auth = self.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            result = dispatcher.handle_body(body, token)
            if result is None:
                self._send(204, b"")
            else:
                self._send(200, json.dumps(result).encode())

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    return httpd


def authenticator_before(app: App):
    """main's token check before issue 24 (controlplane/server.py at e5be478), as it was: an ORM session per call."""

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


def _whoami(client: httpx.Client, url: str, token: str) -> float:
    t = time.perf_counter()
    r = client.post(url, json={"jsonrpc": "2.0", "method": "token.whoami", "id": 1},
                    headers={"Authorization": f"Bearer {token}"})
    took = time.perf_counter() - t
    assert r.status_code == 200 and "result" in r.json(), r.text[:200]
    return took


def measure(base: str, token: str) -> dict:
    url = f"{base}/rpc"
    with httpx.Client(timeout=30) as c:
        _whoami(c, url, token)  # the connection made, the method warm
        kept = sorted(_whoami(c, url, token) for _ in range(CALLS))
        scrape = []
        for _ in range(SCRAPES):
            t = time.perf_counter()
            c.get(f"{base}/metrics").raise_for_status()
            scrape.append(time.perf_counter() - t)
    fresh = []
    for _ in range(FRESH_CALLS):
        with httpx.Client(timeout=30) as c:
            fresh.append(_whoami(c, url, token))

    def client_run(_):
        with httpx.Client(timeout=30) as c:
            for _ in range(CLIENT_CALLS):
                _whoami(c, url, token)

    t = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_run, range(CLIENTS)))
    wall = time.perf_counter() - t
    return {
        "latency_median_ms": statistics.median(kept) * 1000,
        "latency_p99_ms": kept[int(len(kept) * 0.99) - 1] * 1000,
        "new_connection_median_ms": statistics.median(fresh) * 1000,
        "concurrent_calls_per_s": CLIENTS * CLIENT_CALLS / wall,
        "scrape_median_ms": statistics.median(scrape) * 1000,
    }


def run(users: int = 20000, rounds: int = 5) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-api-"))
    node = TestNode(work / "var", **BENCH_NODE)
    node.start()
    servers: list = []
    app = None
    try:
        provision_kemi(node, users)
        token = node.token
        # this process's application on the node's database and components (no workers: the node's control plane
        # runs those), served by each server on its own port
        settings = load_settings(env={}, **{**node.settings.model_dump(), "api_port": free_port()})
        app = App(settings, start_workers=False)
        dispatcher = Dispatcher(app, make_authenticator(app), metrics=app.metrics)
        new = HttpServer(
            build_app(dispatcher=dispatcher, registry=app.metrics.registry, health=health_of(app),
                      request_timeout_s=settings.api_request_timeout_s, max_body=settings.api_max_body_bytes),
            "127.0.0.1", settings.api_port, request_timeout_s=settings.api_request_timeout_s,
            idle_timeout_s=settings.api_idle_timeout_s, max_connections=settings.api_max_connections,
        )
        threading.Thread(target=new.serve_forever, daemon=True).start()
        servers.append(new)
        bases = {"new": f"http://127.0.0.1:{settings.api_port}"}
        before = Dispatcher(app, authenticator_before(app), metrics=app.metrics)
        for side, disp in (("old", dispatcher), ("before", before)):
            port = free_port()
            old = stdlib_server(app, disp, port)
            threading.Thread(target=old.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
            servers.append(old)
            bases[side] = f"http://127.0.0.1:{port}"
        for side in SIDES:  # warm all three
            measure(bases[side], token)
        per_round: list[dict] = []
        for r in range(rounds):
            order = SIDES[r % 3:] + SIDES[: r % 3]
            got = {side: measure(bases[side], token) for side in order}
            per_round.append(got)
            print(f"round {r + 1}: " + "; ".join(
                f"{side} {got[side]['latency_median_ms']:.2f} ms, "
                f"fresh {got[side]['new_connection_median_ms']:.2f} ms, "
                f"{got[side]['concurrent_calls_per_s']:.0f}/s, scrape {got[side]['scrape_median_ms']:.1f} ms"
                for side in SIDES), flush=True)
    finally:
        for s in servers:
            s.shutdown()
        if app is not None:
            app.close()
        node.stop()
    units = {
        "latency_median_ms": "ms (lower is better)",
        "latency_p99_ms": "ms (lower is better)",
        "new_connection_median_ms": "ms (lower is better)",
        "concurrent_calls_per_s": "calls/s (higher is better)",
        "scrape_median_ms": "ms (lower is better)",
    }
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}",
        "users": users,
        "rounds": rounds,
        "baseline": "ThreadingHTTPServer as at e5be478 on the same dispatcher ('old'; ratio) and with the token "
                    "check as at e5be478 too ('before'; ratio_before); value: the control plane as it is; same "
                    "process, in turns",
    }
    records = []
    for key, unit in units.items():
        ratios = [r["new"][key] / r["old"][key] for r in per_round]
        ratios_before = [r["new"][key] / r["before"][key] for r in per_round]
        records.append({
            "name": f"api_http_{key}",
            "value": round(statistics.median(r["new"][key] for r in per_round), 2),
            "baseline": round(statistics.median(r["old"][key] for r in per_round), 2),
            "ratio": round(statistics.median(ratios), 3),
            "unit": unit,
            "detail": {**meta, "ratio_spread": [round(min(ratios), 3), round(max(ratios), 3)],
                       "before": round(statistics.median(r["before"][key] for r in per_round), 2),
                       "ratio_before": round(statistics.median(ratios_before), 3),
                       "ratio_before_spread": [round(min(ratios_before), 3), round(max(ratios_before), 3)],
                       **{f"rounds_{side}": [round(r[side][key], 2) for r in per_round] for side in SIDES}},
        })
    return records
