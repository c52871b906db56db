"""The ASGI server the control plane runs on: uvicorn (httptools) on a socket bound when the server is made, HTTPS
with the node's certificate when asked, and the limits a server facing a network needs (docs/operations.md)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # the C parser (PyPI httptools) rather than h11: see docs/benchmarks.md §20
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as BaseProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is uvicorn's pure-Python fallback
    BaseProtocol = H11Protocol  # type: ignore[misc,assignment]

log = logging.getLogger("callmanager.server")

# TLS 1.2+, forward-secret AEAD suites only: the same policy as Kamailio's listener (kamailio/tls.cfg.j2)
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def timed_protocol(request_timeout_s: float) -> type:
    """uvicorn's HTTP/1.1 protocol (httptools, else h11) with a deadline for a request's headers: uvicorn has none, so
    a client that connects and sends nothing, or half a request line, held its connection for ever (the body has its
    own deadline in the application). The deadline starts when the connection opens and again after each response."""

    class Timed(BaseProtocol):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # uvicorn writes a response's headers and its body apart: with Nagle on (asyncio left it on here) the body
            # waited for the client's delayed ACK — measured 44 ms on every request of a kept-alive connection
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_timeout_s, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            waiting_for_headers = self.cycle is None or self.cycle.response_complete
            if waiting_for_headers and not self.transport.is_closing():
                self.transport.close()

    return Timed


class HttpServer:
    """uvicorn in the calling thread (`serve_forever`), stopped from any other (`shutdown`). The socket is bound at
    construction, so a port in use fails the control plane's start and connections made before the loop runs wait in
    the backlog."""

    def __init__(
        self,
        asgi_app,
        host: str,
        port: int,
        *,
        request_timeout_s: float,
        idle_timeout_s: float,
        max_connections: int,
        tls: ssl.SSLContext | None = None,
    ):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(1024)
        except OSError:
            self.sock.close()
            raise
        self.sock.set_inheritable(True)
        self.tls = tls
        config = uvicorn.Config(
            asgi_app,
            http=timed_protocol(request_timeout_s),
            ws="none",
            lifespan="off",
            loop="asyncio",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=max(1, round(idle_timeout_s)),
            timeout_graceful_shutdown=5,
            limit_concurrency=max_connections,
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
        )
        self.server = uvicorn.Server(config)
        self._started = threading.Event()
        self._done = threading.Event()

    def serve_forever(self) -> None:
        self._started.set()
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self._done.set()

    def shutdown(self, wait_s: float = 10.0) -> None:
        """Stops serving (requests under way get up to 5 s) and closes the socket; idempotent."""
        self.server.should_exit = True
        if self._started.is_set():
            self._done.wait(wait_s)
        self.sock.close()
        close = getattr(self.server.config.app, "close", None)
        if close is not None:  # the application's worker threads (controlplane.web.asgi.Application)
            close()

    def reload_certificate(self, cert: Path, key: Path) -> None:
        """New connections get the new certificate (the context is shared with the listening socket)."""
        if self.tls is not None:
            self.tls.load_cert_chain(str(cert), str(key))
