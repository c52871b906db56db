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


def test_the_probe_counts_a_peer_back_only_after_a_silence_long_enough_to_have_lost_a_change():
    from controlplane.services.dmq_watch import AWAY_S, probe_back

    a, b = "198.18.1.12:5090", "198.18.2.11:5090"
    silent, back = probe_back({}, {a, b}, [a, b], 100.0)
    assert (silent, back) == ({}, [])
    silent, back = probe_back(silent, {a}, [a, b], 101.0)  # b silent from now
    assert (silent, back) == ({b: 101.0}, [])
    silent, back = probe_back(silent, {a}, [a, b], 101.0 + AWAY_S - 1)  # still silent: since when is kept
    assert silent == {b: 101.0}
    assert probe_back(silent, {a, b}, [a, b], 101.0 + AWAY_S - 1) == ({}, [])  # a short cut: retransmissions cover it
    assert probe_back(silent, {a, b}, [a, b], 101.0 + AWAY_S + 12) == ({}, [b])  # 32 s: DMQ's pings may not have failed


class Probe:
    def __init__(self, answers):
        self.peers = {"198.18.2.11:5090": ("198.18.2.11", 5090)}
        self.answers, self.sent = list(answers), 0

    def answered(self):
        return self.answers.pop(0)

    def send(self):
        self.sent += 1


def test_a_return_seen_by_the_probe_and_then_by_dmq_asks_for_one_resynchronisation():
    peer = "198.18.2.11:5090"
    t = [0.0]
    # the probe: answers, 32 s of silence, answers again; DMQ's own view: active throughout, then pending (its ping
    # failed late, as the cut ended), active again 4 s later
    answers = [{peer}] + [set()] * 32 + [{peer}] * 6
    looks = [{peer: "active"}] * 33 + [{peer: "active"}, {peer: "pending"}, {peer: "pending"}, {peer: "active"}] + [
        {peer: "active"}
    ] * 2
    k, probe = Kamailio(looks), Probe(answers)
    watch = DmqWatch(k, probe=probe, clock=lambda: t[0])
    backs = []
    for _ in range(39):
        backs.append(watch.check())
        t[0] += 1.0
    assert [i for i, b in enumerate(backs) if b] == [33]  # once, when the probe heard it again
    assert k.set == [("htable.seti", "node", "resync", 1)] and probe.sent == 39


def test_the_probe_hears_a_peer_that_answers_and_not_one_that_does_not():
    import socket

    from controlplane.services.dmq_watch import PeerProbe

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    probe = PeerProbe("127.0.0.1", [("127.0.0.1", peer.getsockname()[1]), ("127.0.0.1", mute.getsockname()[1])])
    try:
        probe.send()
        peer.settimeout(2)
        data, source = peer.recvfrom(4096)
        assert data.startswith(b"OPTIONS sip:127.0.0.1:") and b"CSeq: 1 OPTIONS" in data
        peer.sendto(b"SIP/2.0 200 OK\r\n\r\n", source)
        import time

        deadline = time.monotonic() + 2
        got = set()
        while not got and time.monotonic() < deadline:
            got = probe.answered()
            time.sleep(0.01)
        assert got == {f"127.0.0.1:{peer.getsockname()[1]}"}
    finally:
        probe.close()
        peer.close()
        mute.close()


def test_a_return_seen_by_both_views_within_the_quiet_time_asks_once():
    from controlplane.services.dmq_watch import QUIET_S, resync_wanted

    a, b = "198.18.1.12:5090", "198.18.2.11:5090"
    assert resync_wanted([b], [], 100.0, float("-inf")) == [b]
    assert resync_wanted([], [a, b], 100.0, float("-inf")) == [a, b]
    assert resync_wanted([b], [b], 100.0, float("-inf")) == [b]  # both at once: one
    assert resync_wanted([b], [], 100.0 + QUIET_S - 1, 100.0) == []  # DMQ's view a few seconds after the probe's
    assert resync_wanted([b], [], 100.0 + QUIET_S, 100.0) == [b]
    assert resync_wanted([], [], 101.0, 100.0) == []


def test_a_return_the_probe_saw_is_not_lost_when_kamailio_does_not_take_the_request():
    peer = "198.18.2.11:5090"
    t = [0.0]

    class Refusing(Kamailio):
        def __init__(self, looks, refusals):
            super().__init__(looks)
            self.refusals = refusals

        def call(self, method, *params):
            if self.refusals:
                self.refusals -= 1
                raise KamailioRpcError("busy")
            super().call(method, *params)

    k = Refusing([{peer: "active"}] * 26, refusals=1)
    probe = Probe([set()] * 24 + [{peer}] * 2)  # silent 24 s, then answering again
    watch = DmqWatch(k, probe=probe, clock=lambda: t[0])
    backs = []
    for _ in range(26):
        backs.append(watch.check())
        t[0] += 1.0
    assert [i for i, b in enumerate(backs) if b] == [25]  # refused at 24, asked again at the next look
    assert k.set == [("htable.seti", "node", "resync", 1)] and watch.resyncs == 1
