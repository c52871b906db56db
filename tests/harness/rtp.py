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
                data, _ = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            self.packets.append((time.monotonic(), data))

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
