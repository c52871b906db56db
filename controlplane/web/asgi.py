"""The control plane's HTTP surface as an ASGI application (Starlette): JSON-RPC 2.0 at POST /rpc, Prometheus at
GET /metrics, GET /health, and the web phone's static files under /phone/.

The handlers are thin: the JSON-RPC dispatcher, the metrics registry and the health document are the same objects the
rest of the control plane uses; blocking work (the database, Kamailio's RPC) runs in the worker-thread pool, never on
the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
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


class BodyTooLarge(Exception):
    pass


def _json(status: int, doc: Any) -> Response:
    return Response(json.dumps(doc), status_code=status, media_type="application/json")


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body, at most `limit` bytes, arriving within `timeout_s` (asyncio.TimeoutError otherwise)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ValueError("Content-Length must be a non-negative integer")
        if int(declared) > limit:
            raise BodyTooLarge

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    return await asyncio.wait_for(collect(), timeout_s)


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
) -> Starlette:
    async def rpc(request: Request) -> Response:
        try:
            body = await read_body(request, max_body, request_timeout_s)
        except BodyTooLarge:
            return _json(413, {"error": f"request body too large (at most {max_body} bytes)"})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        except asyncio.TimeoutError:
            return _json(408, {"error": "the request body did not arrive in time"})
        except ClientDisconnect:
            return Response(status_code=400)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            result = await run_in_threadpool(dispatcher.handle_body, body, token)
        except Exception:  # noqa: BLE001 - never a dropped connection or a traceback to the client
            log.exception("JSON-RPC body not handled")
            result = INTERNAL_ERROR
        if result is None:
            return Response(status_code=204)
        return _json(200, result)

    async def metrics(_request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def health_doc(_request: Request) -> Response:
        return _json(200, await run_in_threadpool(health))

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
    return Starlette(
        routes=[
            Route("/rpc", rpc, methods=["POST"]),
            Route("/rpc/", rpc, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/health", health_doc, methods=["GET"]),
            Route("/", home, methods=["GET"]),
            Mount("/phone", app=phone),
        ],
        exception_handlers={404: not_found, HTTPException: not_allowed},
    )
