"""RTPengine ng control protocol client: cookie, bencode, UDP send/receive, errors raised."""

from __future__ import annotations

import os
import socket
import time

from . import bencode


class NgError(RuntimeError):
    """RTPengine answered `result: error` (with its error-reason) or did not answer."""


class NgClient:
    def __init__(self, host: str, port: int, timeout: float = 1.0):
        self.addr = (host, port)
        self.timeout = timeout

    def command(self, command: str, **params) -> dict:
        cookie = os.urandom(6).hex()
        payload = cookie.encode() + b" " + bencode.encode({"command": command, **params})
        deadline = time.monotonic() + self.timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(payload, self.addr)
            while True:  # datagrams from elsewhere or with another cookie are ignored, within the one timeout
                try:
                    s.settimeout(max(0.001, deadline - time.monotonic()))
                    data, sender = s.recvfrom(1 << 20)
                except (socket.timeout, OSError) as exc:
                    raise NgError(
                        f"rtpengine at {self.addr[0]}:{self.addr[1]} did not answer {command!r}: {exc}"
                    ) from exc
                got_cookie, _, body = data.partition(b" ")
                if sender[1] == self.addr[1] and got_cookie == cookie.encode():
                    break
        try:
            reply = bencode.decode(body)
        except (ValueError, IndexError, TypeError, RecursionError) as exc:
            raise NgError(f"rtpengine sent an unreadable reply to {command!r}: {exc}") from exc
        if not isinstance(reply, dict):
            raise NgError(f"rtpengine sent a non-dictionary reply to {command!r}")
        if reply.get("result") == "error":
            raise NgError(f"rtpengine {command!r} failed: {reply.get('error-reason', 'unknown error')}")
        return reply

    def ping(self) -> bool:
        return self.command("ping").get("result") == "pong"

    def list_calls(self, limit: int = 10000) -> list[str]:
        return list(self.command("list", limit=str(limit)).get("calls", []))

    def query(self, call_id: str) -> dict:
        return self.command("query", **{"call-id": call_id})

    def statistics(self) -> dict:
        return self.command("statistics").get("statistics", {})
