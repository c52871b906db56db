"""A browser without a browser, for the fast WebRTC tier: SIP over WebSocket (RFC 7118, as JsSIP speaks it: a made-up
`.invalid` Via host and Contact) with digest authentication, and aiortc's WebRTC media (ICE, DTLS-SRTP, rtcp-mux,
UDP/TLS/RTP/SAVPF) — the protocol a browser uses, checked without Chromium.

    phone = WebRtcPhone(node.ws_url, "alice", "acme.example", "secret")
    phone.register()                       # 200
    phone.call("sip:202@acme.example")     # the final answer's code
    phone.stats()                          # {"dtls": "connected", "sent": n, "received": n}
    phone.hangup(); phone.close()

Everything runs on one asyncio loop in a thread of its own; the methods are synchronous. ICE gathers on loopback only
(aioice leaves 127.0.0.1 out by default; tests send to loopback only).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time

import aioice.ice
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from tests.harness.raw_sip import Reply, digest

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def _header(msg: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*)$", msg, re.MULTILINE | re.IGNORECASE)
    return m.group(1).strip() if m else ""


def _headers(msg: str, name: str) -> list[str]:
    return [v.strip() for v in re.findall(rf"^{name}:\s*(.*)$", msg, re.MULTILINE | re.IGNORECASE)]


def _body(msg: str) -> str:
    return msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""


class WebRtcPhone:
    def __init__(self, ws_url: str, user: str, domain: str, password: str, timeout: float = 15.0):
        self.url, self.user, self.domain, self.password, self.timeout = ws_url, user, domain, password, timeout
        self.host = secrets.token_hex(6) + ".invalid"
        self.tag = secrets.token_hex(6)
        self.contact = f"<sip:{user}@{self.host};transport=ws>"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ws = None
        self.cseq = 1
        self.waiters: list[tuple[callable, asyncio.Future]] = []
        self.incoming_requests: asyncio.Queue | None = None
        self.pc: RTCPeerConnection | None = None
        self.received = 0
        self.dialog: dict | None = None
        self.seen: list[str] = []  # every message received, first lines
        self._run(self._connect())

    # ------------------------------------------------------------------ plumbing
    def _run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.timeout + 5)

    async def _connect(self) -> None:
        self.incoming_requests = asyncio.Queue()
        self.ws = await websockets.connect(self.url, subprotocols=["sip"], open_timeout=self.timeout)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = raw if isinstance(raw, str) else raw.decode(errors="replace")
                self.seen.append(msg.split("\r\n", 1)[0])
                if msg.startswith("SIP/2.0"):
                    if msg.split(" ", 2)[1] == "183" and _body(msg).strip():
                        await self._early(msg)
                    for match, fut in list(self.waiters):
                        if not fut.done() and match(msg):
                            fut.set_result(msg)
                            self.waiters.remove((match, fut))
                            break
                else:
                    await self._request(msg)
        except websockets.ConnectionClosed:
            pass

    async def _send(self, text: str) -> None:
        await self.ws.send(text)

    def _await(self, call_id: str, cseq: str, final_only: bool = True) -> asyncio.Future:
        def match(msg: str) -> bool:
            code = int(msg.split(" ", 2)[1])
            return (
                _header(msg, "Call-ID") == call_id and _header(msg, "CSeq") == cseq and (code >= 200 or not final_only)
            )

        fut = self.loop.create_future()
        self.waiters.append((match, fut))
        return fut

    def _request_text(
        self,
        method: str,
        ruri: str,
        call_id: str,
        cseq: int,
        from_tag: str,
        to: str,
        extra=(),
        body: str = "",
        branch: str | None = None,
    ) -> str:
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{branch or secrets.token_hex(8)}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={from_tag}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact}",
            *extra,
            "User-Agent: callmanager-webrtc-test",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def _authorization(self, reply: str, method: str, uri: str, header: str) -> str:
        """The credentials answering the reply's challenge (the harness's one digest, tests/harness/raw_sip.py)."""
        return digest(header, Reply(reply).challenge(), self.user, self.password, method, uri, self.domain).rstrip()

    async def _transaction(self, method: str, ruri: str, call_id: str, to: str, body: str = "", extra=()) -> str:
        """A request with its digest challenge answered once; the final reply."""
        for attempt in range(2):
            cseq = self.cseq
            self.cseq += 1
            fut = self._await(call_id, f"{cseq} {method}")
            await self._send(self._request_text(method, ruri, call_id, cseq, self.tag, to, extra, body))
            reply = await asyncio.wait_for(fut, self.timeout)
            code = int(reply.split(" ", 2)[1])
            if code in (401, 407) and attempt == 0:
                auth = self._authorization(
                    reply, method, ruri, "Authorization" if code == 401 else "Proxy-Authorization"
                )
                extra = (*extra, auth)
                if method == "INVITE":  # the challenged INVITE's ACK is hop-by-hop (tm sends... we must)
                    await self._send(self._ack_for(reply, ruri, cseq))
                continue
            return reply
        return reply

    def _ack_for(self, reply: str, ruri: str, cseq: int) -> str:
        via = _header(reply, "Via")
        return (
            "\r\n".join(
                [
                    f"ACK {ruri} SIP/2.0",
                    f"Via: {via}",
                    "Max-Forwards: 70",
                    f"From: {_header(reply, 'From')}",
                    f"To: {_header(reply, 'To')}",
                    f"Call-ID: {_header(reply, 'Call-ID')}",
                    f"CSeq: {cseq} ACK",
                    "Content-Length: 0",
                ]
            )
            + "\r\n\r\n"
        )

    async def _early(self, msg: str) -> None:
        """Early media (183 with SDP: an announcement, IVR menus): its answer applied, so the prompt is heard."""
        if self.pc is not None and self.pc.signalingState == "have-local-offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(_body(msg), "answer"))

    # ------------------------------------------------------------------ registration
    def register(self, expires: int = 300) -> int:
        async def go():
            reply = await self._transaction(
                "REGISTER",
                f"sip:{self.domain}",
                secrets.token_hex(8),
                f"<sip:{self.user}@{self.domain}>",
                extra=(f"Expires: {expires}",),
            )
            return int(reply.split(" ", 2)[1])

        return self._run(go())

    # ------------------------------------------------------------------ media
    async def _peer(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        pc.addTrack(AudioStreamTrack())
        self.received = 0

        @pc.on("track")
        def on_track(track):
            async def consume():
                try:
                    while True:
                        await track.recv()
                        self.received += 1
                except Exception:  # noqa: BLE001 - the track ended
                    return

            asyncio.ensure_future(consume())

        self.pc = pc
        return pc

    def stats(self) -> dict:
        async def go():
            if self.pc is None:
                return {}
            report = await self.pc.getStats()
            sent = sum(s.packetsSent for s in report.values() if s.type == "outbound-rtp")
            received = sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")
            dtls = self.pc.getTransceivers()[0].receiver.transport.state if self.pc.getTransceivers() else ""
            return {"dtls": dtls, "sent": sent, "received": received, "frames": self.received}

        return self._run(go())

    # ------------------------------------------------------------------ calls
    def call(self, uri: str) -> int:
        """Call `uri`; the final answer's code (200: answered, media set up from the answer, ACK sent)."""

        async def go():
            pc = await self._peer()
            await pc.setLocalDescription(await pc.createOffer())
            call_id = secrets.token_hex(10)
            to = f"<{uri}>"
            self.call_id = call_id
            reply = await self._transaction("INVITE", uri, call_id, to, pc.localDescription.sdp)
            code = int(reply.split(" ", 2)[1])
            if code == 200:
                if pc.signalingState == "have-local-offer":
                    await pc.setRemoteDescription(RTCSessionDescription(_body(reply), "answer"))
                routes = list(reversed(_route_set(reply)))
                self.dialog = {
                    "call_id": call_id,
                    "to": _header(reply, "To"),
                    "remote": _contact_uri(reply),
                    "routes": routes,
                    "from_tag": self.tag,
                    "remote_from": False,
                }
                cseq = int(_header(reply, "CSeq").split()[0])
                await self._send(self._in_dialog("ACK", cseq))
            return code

        return self._run(go(), self.timeout * 2)

    def _in_dialog(self, method: str, cseq: int, body: str = "") -> str:
        d = self.dialog
        extra = [f"Route: {r}" for r in d["routes"]]
        if d["remote_from"]:  # we are the callee: From/To swap
            lines = [
                f"{method} {d['remote']} SIP/2.0",
                f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{secrets.token_hex(8)}",
                "Max-Forwards: 70",
                f"From: {d['to']}",
                f"To: {d['from']}",
                f"Call-ID: {d['call_id']}",
                f"CSeq: {cseq} {method}",
                *extra,
                f"Content-Length: {len(body)}",
            ]
            return "\r\n".join(lines) + "\r\n\r\n" + body
        lines = [
            f"{method} {d['remote']} SIP/2.0",
            f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{secrets.token_hex(8)}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={d['from_tag']}",
            f"To: {d['to']}",
            f"Call-ID: {d['call_id']}",
            f"CSeq: {cseq} {method}",
            *extra,
            f"Content-Length: {len(body)}",
        ]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def hangup(self) -> int:
        async def go():
            cseq = self.cseq + 100
            fut = self._await(self.dialog["call_id"], f"{cseq} BYE")
            await self._send(self._in_dialog("BYE", cseq))
            reply = await asyncio.wait_for(fut, self.timeout)
            await self.pc.close()
            return int(reply.split(" ", 2)[1])

        return self._run(go())

    async def _request(self, msg: str) -> None:
        first = msg.split("\r\n", 1)[0]
        method = first.split(" ", 1)[0]
        if method == "INVITE" and _header(msg, "To").find("tag=") < 0:
            await self._send(_reply(msg, 180, "Ringing", self.tag))
            await self.incoming_requests.put(msg)
            return
        if method == "ACK":
            return
        if method == "BYE" and self.pc is not None:
            await self.pc.close()
        await self._send(_reply(msg, 200, "OK", self.tag))  # BYE, OPTIONS keep-alives, NOTIFY ...

    def incoming(self) -> str:
        """Wait for a call; its INVITE (answered 180)."""

        async def go():
            return await asyncio.wait_for(self.incoming_requests.get(), self.timeout)

        self.invite = self._run(go())
        self.call_id = _header(self.invite, "Call-ID")
        return self.invite

    def answer(self) -> None:
        async def go():
            msg = self.invite
            pc = await self._peer()
            await pc.setRemoteDescription(RTCSessionDescription(_body(msg), "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            self.dialog = {
                "call_id": _header(msg, "Call-ID"),
                "to": _header(msg, "To") + f";tag={self.tag}",
                "from": _header(msg, "From"),
                "remote": _contact_uri(msg),
                "routes": _route_set(msg),
                "from_tag": self.tag,
                "remote_from": True,
            }
            await self._send(_reply(msg, 200, "OK", self.tag, pc.localDescription.sdp, self.contact))

        self._run(go())

    def close(self) -> None:
        async def go():
            if self.pc is not None:
                await self.pc.close()
            if self.ws is not None:
                await self.ws.close()

        try:
            self._run(go(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


def _route_set(msg: str) -> list[str]:
    out: list[str] = []
    for value in _headers(msg, "Record-Route"):
        out.extend(v.strip() for v in re.findall(r"<[^>]+>[^,]*", value))
    return out


def _contact_uri(msg: str) -> str:
    m = re.search(r"<([^>]+)>", _header(msg, "Contact"))
    return m.group(1) if m else _header(msg, "Contact")


def _reply(msg: str, code: int, reason: str, tag: str, body: str = "", contact: str = "") -> str:
    to = _header(msg, "To")
    if "tag=" not in to:
        to += f";tag={tag}"
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in _headers(msg, "Via")]
    lines += [f"Record-Route: {r}" for r in _headers(msg, "Record-Route")]
    lines += [
        f"From: {_header(msg, 'From')}",
        f"To: {to}",
        f"Call-ID: {_header(msg, 'Call-ID')}",
        f"CSeq: {_header(msg, 'CSeq')}",
    ]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def wait(fn, timeout: float = 10.0, interval: float = 0.2):
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)
