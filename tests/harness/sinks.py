"""Endpoints that collect what the node sends out: a webhook receiver (JSON POSTs)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class WebhookSink:
    """An HTTP server on loopback that keeps the JSON body of every POST; `with WebhookSink() as hook: hook.url`."""

    def __init__(self) -> None:
        got: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.posted = got
        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"

    def start(self) -> "WebhookSink":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def __enter__(self) -> "WebhookSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
