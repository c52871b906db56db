"""The control plane's HTTP surface as an ASGI application (Starlette): JSON-RPC 2.0 at POST /rpc, Prometheus at
GET /metrics, GET /health, and the web phone's static files under /phone/.

The handlers are thin: the JSON-RPC dispatcher, the metrics registry and the health document are the same objects the
rest of the control plane uses; blocking work (the database, Kamailio's RPC) runs in the worker-thread pool, never on
the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("callmanager.server")

WEBAPP_DIR = Path(__file__).resolve().parents[2] / "webapp" / "dist"
INTERNAL_ERROR = {
    "jsonrpc": "2.0",
    "error": {"code": -32603, "message": "Internal error", "data": {"error_id": "internal_error"}},
    "id": None,
}
# The page may talk to this origin (the API) and to SIP over WebSocket anywhere (the node's WSS listener is another
# port); nothing else, no inline script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self' wss: ws:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=()",
}


ErrorCount = Callable[[str, int], None] | None  # (path, HTTP status) of a request refused or failed outside JSON-RPC


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    pass


def _json(status: int, doc: Any) -> Response:
    return Response(json.dumps(doc), status_code=status, media_type="application/json")


async def _send_json(send: Send, status: int, data: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The request's body from the ASGI channel, at most `limit` bytes (BodyTooLarge; ValueError: a bad
    Content-Length; Disconnected: the client went away). The caller bounds the time."""
    if declared is not None:
        if not declared.isdigit():
            raise ValueError("Content-Length must be a non-negative integer")
        if int(declared) > limit:
            raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class RpcEndpoint:
    """POST /rpc as a plain ASGI application: the path every API call takes, kept short (no request object, no
    routing, one hop to a worker thread that also serialises the answer) — docs/benchmarks.md §20."""

    def __init__(
        self, dispatcher, request_timeout_s: float, max_body: int, on_error: ErrorCount = None, workers: int = 40
    ):
        self.dispatcher = dispatcher
        self.on_error = on_error or (lambda _path, _status: None)
        self.request_timeout_s = request_timeout_s
        self.max_body = max_body
        # blocking work (the database, Kamailio's RPC) runs here, never on the event loop
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="api")

    def _answer(self, body: bytes, token: str | None) -> bytes | None:
        try:
            result = self.dispatcher.handle_body(body, token)
            return None if result is None else json.dumps(result).encode()
        except Exception:  # noqa: BLE001 - never a dropped connection or a traceback to the client (nor a result
            # that does not serialise)
            log.exception("JSON-RPC body not handled")
            self.on_error("/rpc", 500)
            return json.dumps(INTERNAL_ERROR).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared, auth = None, b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"authorization":
                auth = value
        try:
            async with asyncio.timeout(self.request_timeout_s):
                body = await read_body(receive, declared, self.max_body)
        except BodyTooLarge:
            self.on_error("/rpc", 413)
            too_large = {"error": f"request body too large (at most {self.max_body} bytes)"}
            return await _send_json(send, 413, json.dumps(too_large).encode())
        except ValueError as exc:
            self.on_error("/rpc", 400)
            return await _send_json(send, 400, json.dumps({"error": str(exc)}).encode())
        except TimeoutError:
            self.on_error("/rpc", 408)
            return await _send_json(send, 408, b'{"error": "the request body did not arrive in time"}')
        except Disconnected:
            return None
        text = auth.decode("latin-1")
        token = text[7:].strip() if text[:7].lower() == "bearer " else None
        data = await asyncio.get_running_loop().run_in_executor(self.executor, self._answer, body, token)
        if data is None:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _send_json(send, 200, data)


class Application:
    """POST /rpc straight to the JSON-RPC endpoint; everything else through the Starlette application."""

    def __init__(self, rpc: RpcEndpoint, rest: Starlette):
        self.rpc = rpc
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in ("/rpc", "/rpc/"):
            await self.rpc(scope, receive, send)
        else:
            await self.rest(scope, receive, send)

    def close(self) -> None:
        self.rpc.executor.shutdown(wait=False, cancel_futures=True)


class StaticAssets(StaticFiles):
    """The web phone's files: the page itself revalidated on every load (ETag), its content-hashed assets cached for a
    year; each with the page's security headers."""

    def file_response(self, full_path, stat_result, scope, status_code=200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(str(full_path)).name
        hashed = "/assets/" in str(full_path).replace("\\", "/") and "-" in name
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        response.headers.update(PAGE_HEADERS)
        return response


class NoPage:
    """/phone/ when the web phone was not built (webapp/dist missing): a clear 404 instead of a start-up failure."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(404, {"error": "the web phone is not built here (make webapp)"})(scope, receive, send)


def build_app(
    *,
    dispatcher,
    registry,
    health: Callable[[], dict],
    request_timeout_s: float,
    max_body: int,
    webapp_dir: Path = WEBAPP_DIR,
    on_error: ErrorCount = None,
) -> Application:
    """The whole HTTP surface; `on_error(path, status)` counts what it refused or failed outside JSON-RPC's own errors
    (the control plane's callmanager_api_http_errors_total)."""
    count = on_error or (lambda _path, _status: None)
    rpc = RpcEndpoint(dispatcher, request_timeout_s, max_body, on_error=count)

    async def metrics(_request: Request) -> Response:
        try:
            body = await run_in_threadpool(generate_latest, registry)
        except Exception:  # noqa: BLE001 - a collector that fails is a 500 the scraper records, not a dropped connection
            log.exception("GET /metrics failed")
            count("/metrics", 500)
            return _json(500, {"error": "the metrics could not be collected (the control plane's log says why)"})
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def health_doc(_request: Request) -> Response:
        try:
            doc = await run_in_threadpool(health)
        except Exception:  # noqa: BLE001 - as above: an answer, logged and counted
            log.exception("GET /health failed")
            count("/health", 500)
            failed = {"status": "error", "error": "the health check failed (the control plane's log says why)"}
            return _json(500, failed)
        return _json(200, doc)

    async def home(_request: Request) -> Response:
        return RedirectResponse("/phone/", status_code=307)

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return _json(404, {"error": "POST JSON-RPC to /rpc; the web phone is at /phone/"})

    async def not_allowed(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        if code == 404:
            return await not_found(request, exc)
        return _json(code, {"error": exc.detail if isinstance(exc, HTTPException) else "internal error"})

    phone: ASGIApp = StaticAssets(directory=webapp_dir, html=True) if webapp_dir.is_dir() else NoPage()
    rest = Starlette(
        routes=[
            # reached only by other methods (405): Application sends POST straight to the endpoint
            Route("/rpc", rpc, methods=["POST"]),
            Route("/rpc/", rpc, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/health", health_doc, methods=["GET"]),
            Route("/", home, methods=["GET"]),
            Mount("/phone", app=phone),
        ],
        exception_handlers={404: not_found, HTTPException: not_allowed},
    )
    return Application(rpc, rest)
