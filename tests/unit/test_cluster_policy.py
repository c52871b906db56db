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
