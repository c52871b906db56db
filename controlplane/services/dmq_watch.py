"""Watches the cluster's replication peers as Kamailio's DMQ sees them and has the node ask for everything it missed
when a peer comes back (docs/cluster.md: a partition heals, a link returns).

DMQ sends a change only to the peers it finds active at that moment and does not keep what it could not send; it
synchronises only at a node's start, or when its node list was empty. A node that keeps another peer across a
partition (its pair in its own data center) would therefore miss the other side's registrations and flags until
they change again. When a peer is active again after it was not, this service sets NODE=>resync in the node's
Kamailio; the node's timer then sends dmq_usrloc's and htable's sync requests to every peer, which answer with all
they have (kemi/shell/ksr_apply.py cluster_resync).

DMQ sees a peer away only when one of its pings (every 5 s) times out, after tm's 30 s; a change it sends retransmits
for the same 30 s. A cut of about 30–35 s could so outlast a change's retransmissions before any ping failed, and the
change would wait for the phone's next REGISTER. So the watch also probes each peer's DMQ listener itself every second
(`PeerProbe`: an OPTIONS from this node's address, which the peer answers — kemi.policy.cluster.dmq_listener); a peer
silent for AWAY_S or longer that answers again counts as back too. Both views may see the same return a few seconds
apart: one resynchronisation within QUIET_S serves both.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.node.settings import dmq_peer
from controlplane.services.periodic import Periodic
from kemi import contract as shm
from kemi.policy.cluster import RESYNC_KEY

log = logging.getLogger("callmanager.dmq")


def peers_back(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    """The peers active now that were not active at the previous look (absent, pending, disabled). None before: the
    first look (a node that starts synchronises by itself) — none."""
    if before is None:
        return []
    return sorted(a for a, state in now.items() if state == "active" and before.get(a) != "active")


AWAY_S = 20.0  # silent this long: changes sent meanwhile may have run out of retransmissions (tm: 30 s, every ≤ 4 s)
MAX_READS = 256  # datagrams read per look at most (one answer per peer and look is what comes; the rest is noise)
QUIET_S = 15.0  # a return seen by both the probe and DMQ's pings (≤ 5 s apart) asks for one resynchronisation


def probe_back(
    silent_since: dict[str, float], answered: set[str], peers: list[str], now: float, away_s: float = AWAY_S
) -> tuple[dict[str, float], list[str]]:
    """The probe's view: each peer not answering since when (the next `silent_since`), and the peers that answer again
    after AWAY_S or more of silence."""
    silent, back = {}, []
    for peer in peers:
        since = silent_since.get(peer)
        if peer in answered:
            if since is not None and now - since >= away_s:
                back.append(peer)
        else:
            silent[peer] = now if since is None else since
    return silent, sorted(back)


def resync_wanted(
    dmq_back: list[str], probed: list[str], now: float, last_resync: float, quiet_s: float = QUIET_S
) -> list[str]:
    """The peers to resynchronise with now: back in DMQ's view or the probe's — unless a resynchronisation was asked
    within `quiet_s` (the same return, seen a few seconds later by the other view)."""
    back = sorted(set(dmq_back) | set(probed))
    return [] if back and now - last_resync < quiet_s else back


class PeerProbe:
    """OPTIONS to each peer's DMQ listener from this node's own address (the peers take messages on it from their
    peers only), one per look; `answered` is who replied since the previous look."""

    def __init__(self, own_address: str, peers: list[tuple[str, int]]):
        self.peers = {f"{host}:{port}" if ":" not in host else f"[{host}]:{port}": (host, port) for host, port in peers}
        self._by_source = {(_normal(host), port): name for name, (host, port) in self.peers.items()}
        family = socket.AF_INET6 if ":" in own_address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((own_address, 0))
        self.sock.setblocking(False)
        self.own = own_address
        self.local_port = self.sock.getsockname()[1]
        self._seq = 0
        self._tag = os.urandom(6).hex()

    def answered(self) -> set[str]:
        got: set[str] = set()
        for _ in range(MAX_READS):
            try:
                data, source = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP error of an earlier probe (port unreachable): that peer did not answer
                continue
            name = self._by_source.get((_normal(source[0]), source[1]))
            if name is not None and data.startswith(b"SIP/2.0 "):
                got.add(name)
        return got

    def send(self) -> None:
        self._seq += 1
        for name, (host, port) in self.peers.items():
            uri_host = f"[{host}]" if ":" in host else host
            own = f"[{self.own}]" if ":" in self.own else self.own
            message = (
                f"OPTIONS sip:{uri_host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {own}:{self.local_port};branch=z9hG4bK{self._tag}{self._seq};rport\r\n"
                f"From: <sip:dmq-watch@{own}>;tag={self._tag}\r\nTo: <sip:{uri_host}:{port}>\r\n"
                f"Call-ID: {self._tag}-{self._seq}@{own}\r\nCSeq: {self._seq} OPTIONS\r\nMax-Forwards: 1\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            try:
                self.sock.sendto(message.encode(), (host, port))
            except OSError as exc:  # no route (the link is down): that peer does not answer this time
                log.debug("DMQ probe to %s not sent: %s", name, exc)

    def close(self) -> None:
        self.sock.close()


def _normal(address: str) -> str:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).compressed
    except ValueError:
        return address


def peer_probe(settings) -> PeerProbe | None:
    """This node's probe of its DMQ peers (`dmq_peers`, from its SIP address); None without peers, or when the address
    cannot be bound (logged: the watch then has DMQ's own view only)."""
    if not settings.dmq_peers:
        return None
    try:
        return PeerProbe(settings.sip_address, [dmq_peer(p) for p in settings.dmq_peers])
    except OSError as exc:
        log.warning(
            "DMQ peers cannot be probed from %s (%s): a short cut is seen by DMQ's pings only",
            settings.sip_address,
            exc,
        )
        return None


class DmqWatch:
    def __init__(
        self, kamailio, interval: float = 1.0, metrics=None, probe: PeerProbe | None = None, clock=time.monotonic
    ):
        self.kamailio, self.interval, self.metrics, self.probe, self.clock = kamailio, interval, metrics, probe, clock
        self._before: dict[str, str] | None = None
        self._silent: dict[str, float] = {}
        self._last_resync = float("-inf")
        self._loop = Periodic("dmq-watch", self.check, interval, log, "DMQ watch failed")
        self.resyncs = 0

    def check(self) -> list[str]:
        """One look; the peers that came back (the node was asked to resynchronise)."""
        now_s = self.clock()
        probed: list[str] = []
        silent = self._silent
        if self.probe is not None:
            silent, probed = probe_back(self._silent, self.probe.answered(), list(self.probe.peers), now_s)
            self.probe.send()
        try:
            now = {p["address"]: p["state"] for p in self.kamailio.dmq_peers()}
        except KamailioRpcError:
            self._before = None  # Kamailio away (restarting: it synchronises at its start): look afresh
            self._silent = silent
            return []
        back = resync_wanted(peers_back(self._before, now), probed, now_s, self._last_resync)
        if back:
            try:
                self.kamailio.call("htable.seti", shm.NODE.name, RESYNC_KEY, 1)
            except KamailioRpcError as exc:
                log.warning("DMQ peers %s are back, but Kamailio did not take the resync request: %s", back, exc)
                # the next look sees them as back again: DMQ's view not moved on, the probe's silences kept
                self._silent = {**silent, **{p: self._silent[p] for p in probed if p in self._silent}}
                return []
            self.resyncs += 1
            self._last_resync = now_s
            if self.metrics is not None:
                self.metrics.dmq_resyncs.inc()
            log.warning(
                "DMQ peers %s are back: the node asks the cluster for the registrations and flags it missed", back
            )
        self._before, self._silent = now, silent
        return back

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        if self.probe is not None:
            self.probe.close()
