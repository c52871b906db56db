"""The lab's WAN: an Ethernet link between data centers that delays (and may drop) frames, in user space.

The machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not set) and no fq qdisc for departure-time delays, so the
lab joins its data centers through this forwarder instead: it runs in the lab's router namespace, reads every frame
arriving on one interface (AF_PACKET, promiscuous) and sends it out of the other after `delay_ms`, dropping
`loss_pct` of them at random. One thread per direction, frames in order. Offloads are off on every lab interface, so
no frame is larger than the MTU.

    ip netns exec <router ns> python -m tests.lab.wanlink wan1 wan2 --delay-ms 20 --loss-pct 0.5

With more than two data centers every frame goes to all the others (a hub).
"""
from __future__ import annotations

import argparse
import collections
import random
import signal
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class Direction:
    def __init__(self, src: str, dst: str, delay_s: float, loss: float, stop: threading.Event):
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.rx.bind((src, 0))
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.tx.bind((dst, 0))
        self.delay_s, self.loss, self.stop = delay_s, loss, stop
        self.queue: collections.deque = collections.deque()
        self.ready = threading.Condition()
        self.forwarded = self.dropped = 0

    def receive(self) -> None:
        self.rx.settimeout(0.5)
        while not self.stop.is_set():
            try:
                frame, addr = self.rx.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue  # what this forwarder (or the kernel) sent out of this interface
            if self.loss and random.random() < self.loss:
                self.dropped += 1
                continue
            with self.ready:
                self.queue.append((time.monotonic() + self.delay_s, frame))
                self.ready.notify()

    def send(self) -> None:
        while not self.stop.is_set():
            with self.ready:
                while not self.queue and not self.stop.is_set():
                    self.ready.wait(0.5)
                if self.stop.is_set():
                    return
                due, frame = self.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self.tx.send(frame)
                self.forwarded += 1
            except OSError:
                self.dropped += 1  # a frame the link cannot carry (too large, interface gone): dropped, like a wire


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("interfaces", nargs="+", help="one per data center (two or more: a hub)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    args = ap.parse_args(argv)
    if not (0 <= args.delay_ms <= 10_000 and 0 <= args.loss_pct <= 100):
        ap.error("delay 0..10000 ms, loss 0..100 %")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if len(args.interfaces) < 2:
        ap.error("two interfaces or more")
    dirs = [Direction(a, b, args.delay_ms / 1000, args.loss_pct / 100, stop) for a in args.interfaces for b in args.interfaces if a != b]
    threads = [threading.Thread(target=fn, daemon=True) for d in dirs for fn in (d.receive, d.send)]
    for t in threads:
        t.start()
    print(f"wanlink {' <-> '.join(args.interfaces)}: {args.delay_ms} ms, {args.loss_pct} % loss", flush=True)
    while not stop.wait(1.0):
        pass
    for d in dirs:
        with d.ready:
            d.ready.notify_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
