"""RTCP for tests: both parties of a live call report on each other through RTPengine, with chosen loss, jitter and
round trip, so that RTPengine scores the call's media (MOS) as it would for real phones (SIPp sends RTP, no RTCP).

For each party: some RTP (PCMU, its own SSRC) and a sender report into the party's RTPengine port; then a receiver
report about the other party's stream whose LSR/DLSR make RTPengine measure the wanted round trip (RFC 3550 6.4)."""
from __future__ import annotations

import os
import socket
import struct
import time

NTP_EPOCH = 2208988800  # seconds from 1900 to 1970


def ntp_now() -> tuple[int, int]:
    t = time.time() + NTP_EPOCH
    return int(t), int((t % 1) * (1 << 32))


def rtp(ssrc: int, seq: int, ts: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160  # PCMU, 20 ms of silence


def sender_report(ssrc: int, msw: int, lsw: int, rtp_ts: int, packets: int) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, msw, lsw, rtp_ts, packets, packets * 160)


def receiver_report(ssrc: int, about: int, *, fraction_lost: float, lost: int, highest_seq: int, jitter_ts: int, lsr: int,
                    dlsr: int) -> bytes:
    frac = max(0, min(255, round(fraction_lost * 256)))
    return struct.pack("!BBHIIIIIII", 0x81, 201, 7, ssrc, about, (frac << 24) | (lost & 0xFFFFFF), highest_seq, jitter_ts, lsr, dlsr)


def leg_ports(query: dict) -> dict[str, tuple[int, int]]:
    """{tag: (RTP port, RTCP port)} of RTPengine's side facing each party, from an ng `query` reply."""
    out = {}
    for tag, leg in (query.get("tags") or {}).items():
        streams = leg["medias"][0]["streams"]
        rtp_port = next(s["local port"] for s in streams if "RTP" in s.get("flags", []))
        rtcp_port = next((s["local port"] for s in streams if "RTCP" in s.get("flags", [])), rtp_port + 1)
        out[tag] = (int(rtp_port), int(rtcp_port))
    return out


def report_quality(ng, call_id: str, *, loss: float = 0.0, jitter_ms: float = 0.0, rtt_ms: float = 20.0, host: str = "127.0.0.1",
                   packets: int = 50) -> None:
    """Play both parties' RTP + RTCP into the call so that each reports `loss` (fraction), `jitter_ms` and `rtt_ms`."""
    ports = leg_ports(ng.query(call_id))
    assert len(ports) == 2, f"a two-party call expected, RTPengine knows {list(ports)}"
    tags = list(ports)
    ssrc = {t: int.from_bytes(os.urandom(4), "big") | 1 for t in tags}
    socks = {t: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for t in tags}
    rtcp_socks = {t: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for t in tags}
    try:
        for i in range(packets):  # RTP first: RTPengine learns each SSRC and its clock rate (PCMU, 8 kHz)
            for t in tags:
                socks[t].sendto(rtp(ssrc[t], i, i * 160), (host, ports[t][0]))
            time.sleep(0.002)
        sent_at, lsr = {}, {}
        for t in tags:
            msw, lsw = ntp_now()
            sent_at[t] = time.monotonic()
            lsr[t] = ((msw & 0xFFFF) << 16) | (lsw >> 16)
            rtcp_socks[t].sendto(sender_report(ssrc[t], msw, lsw, packets * 160, packets), (host, ports[t][1]))
        time.sleep(0.1 + rtt_ms / 1000.0)  # hold the SR longer than the round trip: DLSR > 0 (0 means "no SR received")
        for me, other in ((tags[0], tags[1]), (tags[1], tags[0])):
            # the other's SR reached me rtt/2 after it was sent; I answer now: DLSR = time held = elapsed - rtt
            held = max(0.0, time.monotonic() - sent_at[other] - rtt_ms / 1000.0)
            rr = receiver_report(ssrc[me], ssrc[other], fraction_lost=loss, lost=round(loss * packets), highest_seq=packets - 1,
                                 jitter_ts=round(jitter_ms * 8), lsr=lsr[other], dlsr=round(held * 65536))
            rtcp_socks[me].sendto(rr, (host, ports[me][1]))
        time.sleep(0.2)
    finally:
        for s in (*socks.values(), *rtcp_socks.values()):
            s.close()
