"""RTP for tests: a receiver on loopback that keeps what a party hears (PCMU), for asserting that a prompt was heard
and which tone it carried."""
from __future__ import annotations

import audioop
import math
import socket
import threading
import time

from tests.harness.ports import free_port


class RtpReceiver:
    """Binds 127.0.0.1:<free port> and collects RTP until closed. `with RtpReceiver() as rx: ... rx.port`."""

    def __init__(self, ip: str = "127.0.0.1"):
        self.port = free_port(ip)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, self.port))
        self.sock.settimeout(0.1)
        self.packets: list[tuple[float, bytes]] = []
        self.peer: tuple[str, int] | None = None  # where the RTP comes from (RTPengine's side of this call)
        self._dtmf = (1000, 160000, 0x2833)  # the keys' RTP sequence, timestamp and source
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RtpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            self.peer = self.peer or addr
            self.packets.append((time.monotonic(), data))

    def send_dtmf(self, digits: str, payload_type: int = 101, gap_s: float = 0.25) -> None:
        """Press keys as a phone does (RFC 2833 events, from this receiver's port to where the call's RTP comes from):
        each key ~100 ms, then its end three times."""
        deadline = time.monotonic() + 10
        while self.peer is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.peer is not None, "no RTP came in: nowhere to send the keys to"
        codes = {**{str(i): i for i in range(10)}, "*": 10, "#": 11}
        seq, ts, ssrc = self._dtmf  # go on from the last keys: a receiver drops repeated sequence numbers and events
        for d in digits:
            ts += 1600
            for i in range(6):
                end = i >= 3
                marker = 0x80 if i == 0 else 0
                payload = bytes([codes[d], (0x80 if end else 0) | 10]) + (min(i + 1, 4) * 160).to_bytes(2, "big")
                header = bytes([0x80, marker | payload_type]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big")
                self.sock.sendto(header + ssrc.to_bytes(4, "big") + payload, self.peer)
                seq += 1
                time.sleep(0.02)
            time.sleep(gap_s)
        self._dtmf = (seq, ts, ssrc)

    def send_tone(self, hz: float, seconds: float) -> None:
        """Speak into the call: a tone as PCMU, 20 ms a packet, from this receiver's port to where its RTP comes from
        (the same stream as the keys of send_dtmf)."""
        assert self.peer is not None, "no RTP came in: nowhere to send to"
        seq, ts, ssrc = self._dtmf
        n = 0
        for _ in range(int(seconds * 50)):
            lin = b"".join(int(8000 * math.sin(2 * math.pi * hz * (n + i) / 8000)).to_bytes(2, "little", signed=True)
                           for i in range(160))
            n += 160
            header = bytes([0x80, 0]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            self.sock.sendto(header + audioop.lin2ulaw(lin, 2), self.peer)
            seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
            time.sleep(0.02)
        self._dtmf = (seq, ts, ssrc)

    def pcm(self) -> bytes:
        """The PCMU payloads received, as 16-bit linear samples (8 kHz), in arrival order."""
        return b"".join(audioop.ulaw2lin(d[12:], 2) for _, d in self.packets if len(d) > 12 and d[1] & 0x7F == 0)

    def seconds(self) -> float:
        return len(self.pcm()) / 2 / 8000

    def rms(self) -> int:
        pcm = self.pcm()
        return audioop.rms(pcm, 2) if pcm else 0

    def tone_share(self, hz: float) -> float:
        """How much of the received signal's power is at `hz` (Goertzel, 0..1): ~1 for a pure tone of that pitch."""
        pcm = self.pcm()
        n = len(pcm) // 2
        if n == 0:
            return 0.0
        samples = [int.from_bytes(pcm[i * 2 : i * 2 + 2], "little", signed=True) for i in range(n)]
        k = 2 * math.cos(2 * math.pi * hz / 8000)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - k * s1 * s2
        total = sum(x * x for x in samples)
        return min(1.0, 2 * power / (n * total)) if total else 0.0
