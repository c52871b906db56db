"""Browsers (WebRTC): what the node's WS/WSS listeners answer. SIP over WebSocket is RFC 7118: an HTTP GET upgraded to
a WebSocket with the `sip` sub-protocol; everything else on those ports is refused with a reason. docs/webrtc.md."""

from __future__ import annotations


def http_upgrade(method: str, upgrade: str, protocols: str) -> tuple[int, str, str] | None:
    """None: the request is a WebSocket upgrade for SIP (Kamailio's websocket module completes the handshake); else the
    (code, reason, body) the listener answers."""
    if method.upper() != "GET" or upgrade.strip().lower() != "websocket":
        return 426, "Upgrade Required", "this port takes SIP over WebSocket (RFC 7118) only\n"
    if "sip" not in (p.strip().lower() for p in protocols.split(",")):
        return 400, "Bad Request", "Sec-WebSocket-Protocol must offer sip (RFC 7118)\n"
    return None
