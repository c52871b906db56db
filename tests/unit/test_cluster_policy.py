"""kemi/policy/cluster.py: which registrations carry the node's Path, which requests are a peer's to relay."""
from kemi.policy.cluster import nat_pinged, path_needed, relayed_for_peer

PEERS = frozenset({"198.18.1.2", "198.18.2.2"})


def test_a_path_for_the_phones_only_this_node_can_reach():
    assert path_needed(True, True, "udp")  # behind a NAT: the binding is to this node
    for proto in ("tcp", "TLS", "ws", "wss"):
        assert path_needed(True, False, proto)  # on a connection that ends here
    assert not path_needed(True, False, "udp")  # reachable from any node: called directly
    assert not path_needed(False, True, "tcp")  # a single node: nobody else calls it


def test_only_new_requests_from_peers_are_relayed_for_them():
    assert relayed_for_peer("198.18.1.2", PEERS, "")
    assert not relayed_for_peer("198.18.1.2", PEERS, "abc")  # within a dialog: the in-dialog path
    assert not relayed_for_peer("198.18.9.9", PEERS, "")  # a phone, a trunk, anybody else
    assert not relayed_for_peer("198.18.1.2", frozenset(), "")  # a single node has no peers


def test_the_path_names_this_node_and_where_the_phone_is():
    from kemi.policy.cluster import own_path_uri

    assert own_path_uri("198.18.1.2", "5060", "198.18.77.1", "40123", "udp") == (
        "sip:198.18.1.2:5060;lr;received=sip:198.18.77.1:40123")
    assert own_path_uri("198.18.1.2", "5060", "198.18.77.1", "40123", "TCP") == (
        "sip:198.18.1.2:5060;lr;received=sip:198.18.77.1:40123%3Btransport%3Dtcp")
    assert own_path_uri("2001:db8::2", "5060", "2001:db8::9", "5062", "tls") == (
        "sip:[2001:db8::2]:5060;lr;received=sip:[2001:db8::9]:5062%3Btransport%3Dtls")


def test_only_udp_bindings_are_pinged():
    assert nat_pinged("udp") and nat_pinged("UDP")
    assert not any(nat_pinged(p) for p in ("tcp", "tls", "ws", "wss"))


def test_each_node_knows_the_dialogs_it_made_from_their_numbers():
    from kemi.policy.cluster import made_here

    # two nodes: node 1 numbers 1, 3, 5...; node 2 numbers 2, 4, 6...
    assert [made_here(h, 1, 2) for h in (1, 2, 3, 4)] == [True, False, True, False]
    assert [made_here(h, 2, 2) for h in (1, 2, 3, 4)] == [False, True, False, True]
    assert [made_here(h, 3, 3) for h in (3, 6, 7)] == [True, True, False]
    assert made_here(7, 0, 1)  # a single node made every dialog it has


def test_a_call_ending_is_accounted_by_one_node_of_the_pair():
    from kemi.policy.cluster import accounts_end

    # a BYE passes one node only (the address holder): it accounts, its own dialog or a dead peer's copy
    assert accounts_end(timed_out=False, made_by_this_node=True, holds_address=True)
    assert accounts_end(timed_out=False, made_by_this_node=False, holds_address=True)
    # a timer: the maker accounts; a copy's timer only where the address now is (its maker gone)
    assert accounts_end(timed_out=True, made_by_this_node=True, holds_address=False)
    assert not accounts_end(timed_out=True, made_by_this_node=False, holds_address=False)
    assert accounts_end(timed_out=True, made_by_this_node=False, holds_address=True)


TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 198.18.1.0/24 2 0 2
        +-- 198.18.1.0/28 2 0 2
           |-- 198.18.1.0
              /24 link UNICAST
           |-- 198.18.1.10
              /32 host LOCAL
           |-- 198.18.1.11
              /32 host LOCAL
        |-- 198.18.1.255
           /32 link BROADCAST
"""


def test_the_virtual_address_is_held_when_the_kernel_lists_it_as_local(tmp_path):
    from kemi.shell import vip

    trie = tmp_path / "fib_trie"
    trie.write_text(TRIE)
    six = tmp_path / "if_inet6"
    six.write_text("20010db8000000000000000000000010 02 40 00 80     eth0\n")
    assert vip.held("198.18.1.10", str(trie), str(six))
    assert not vip.held("198.18.1.255", str(trie), str(six))  # listed, but not as one of the host's addresses
    assert not vip.held("198.18.1.12", str(trie), str(six))
    assert vip.held("2001:db8::10", str(trie), str(six)) and not vip.held("2001:db8::11", str(trie), str(six))
    assert not vip.held("", str(trie), str(six)) and not vip.held("198.18.1.10", str(tmp_path / "none"), str(six))
    assert vip.held("127.0.0.1")  # this machine's own tables


def test_a_node_of_a_pair_exports_whether_it_holds_the_address_and_a_single_node_nothing():
    from types import SimpleNamespace

    from controlplane.metrics.features import PairAddressCollector

    def samples(vip, holds):
        app = SimpleNamespace(settings=SimpleNamespace(sip_vip=vip))
        return [(s.name, s.labels, s.value) for m in PairAddressCollector(app, held=lambda a: holds).collect() for s in m.samples]

    assert samples("198.18.1.10", True) == [("callmanager_vip_held", {"address": "198.18.1.10"}, 1)]
    assert samples("198.18.1.10", False) == [("callmanager_vip_held", {"address": "198.18.1.10"}, 0)]
    assert samples("", True) == []


def test_the_dmq_listener_hands_a_peers_replication_to_dmq_answers_its_probe_and_drops_the_rest():
    from kemi.policy.cluster import ANSWER, DROP, REPLICATE, dmq_listener

    assert dmq_listener("KDMQ", True) == REPLICATE
    assert dmq_listener("OPTIONS", True) == ANSWER  # the peers' control planes probe the listener (dmq_watch.py)
    assert dmq_listener("INVITE", True) == DROP
    assert dmq_listener("KDMQ", False) == DROP  # not one of the node's dmq_peers: not a word
    assert dmq_listener("OPTIONS", False) == DROP
