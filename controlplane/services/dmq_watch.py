"""Watches the cluster's replication peers as Kamailio's DMQ sees them and has the node ask for everything it missed
when a peer comes back (docs/cluster.md: a partition heals, a link returns).

DMQ sends a change only to the peers it finds active at that moment and does not keep what it could not send; it
synchronises only at a node's start, or when its node list was empty. A node that keeps another peer across a
partition (its pair in its own data center) would therefore miss the other side's registrations and flags until
they change again. When a peer is active again after it was not, this service sets NODE=>resync in the node's
Kamailio; the node's timer then sends dmq_usrloc's and htable's sync requests to every peer, which answer with all
they have (kemi/shell/ksr_apply.py cluster_resync).
"""

from __future__ import annotations

import logging

from controlplane.adapters.kamailio_rpc import KamailioRpcError
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


class DmqWatch:
    def __init__(self, kamailio, interval: float = 1.0, metrics=None):
        self.kamailio, self.interval, self.metrics = kamailio, interval, metrics
        self._before: dict[str, str] | None = None
        self._loop = Periodic("dmq-watch", self.check, interval, log, "DMQ watch failed")
        self.resyncs = 0

    def check(self) -> list[str]:
        """One look; the peers that came back (the node was asked to resynchronise)."""
        try:
            now = {p["address"]: p["state"] for p in self.kamailio.dmq_peers()}
        except KamailioRpcError:
            self._before = None  # Kamailio away (restarting: it synchronises at its start): look afresh
            return []
        back = peers_back(self._before, now)
        if back:
            try:
                self.kamailio.call("htable.seti", shm.NODE.name, RESYNC_KEY, 1)
            except KamailioRpcError as exc:
                log.warning("DMQ peers %s are back, but Kamailio did not take the resync request: %s", back, exc)
                return []  # the next look sees them as new again
            self.resyncs += 1
            if self.metrics is not None:
                self.metrics.dmq_resyncs.inc()
            log.warning(
                "DMQ peers %s are back: the node asks the cluster for the registrations and flags it missed", back
            )
        self._before = now
        return back

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
