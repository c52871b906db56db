"""controlplane/services/dmq_watch.py: a replication peer that comes back makes the node ask for what it missed."""
from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.services.dmq_watch import DmqWatch, peers_back


def test_only_a_peer_that_was_not_active_and_is_now_counts_as_back():
    a, b = "198.18.1.12:5090", "198.18.2.11:5090"
    assert peers_back(None, {a: "active"}) == []  # the first look: a node that starts synchronises by itself
    assert peers_back({a: "active", b: "active"}, {a: "active", b: "active"}) == []
    assert peers_back({a: "active", b: "pending"}, {a: "active", b: "active"}) == [b]  # the partition healed
    assert peers_back({a: "active"}, {a: "active", b: "active"}) == [b]  # deleted meanwhile, added again
    assert peers_back({a: "active", b: "active"}, {a: "active", b: "pending"}) == []  # lost: nothing to ask yet


class Kamailio:
    """Answers dmq.list_nodes from a script of looks and keeps what the watch set."""

    def __init__(self, looks):
        self.looks, self.set = list(looks), []

    def dmq_peers(self):
        look = self.looks.pop(0)
        if look is None:
            raise KamailioRpcError("connection refused")
        return [{"address": a, "state": s} for a, s in look.items()]

    def call(self, method, *params):
        self.set.append((method, *params))


def test_the_watch_asks_the_node_once_per_return_and_looks_afresh_after_kamailio_was_away():
    peer = "198.18.2.11:5090"
    k = Kamailio([{peer: "active"}, {peer: "pending"}, {peer: "pending"}, {peer: "active"}, {peer: "active"},
                  None, {peer: "active"}])
    watch = DmqWatch(k)
    backs = [watch.check() for _ in range(7)]
    assert backs == [[], [], [], [peer], [], [], []]  # after Kamailio was away: a first look again
    assert k.set == [("htable.seti", "node", "resync", 1)] and watch.resyncs == 1
