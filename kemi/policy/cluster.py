"""Decisions of a SIP node in a cluster about the other SIP nodes (docs/cluster.md).

A phone behind a NAT or on a connection (TCP, TLS, WebSocket) can be reached only through the node it registered
with: the NAT binding is to that node's address, the connection ends there. Such a registration carries that node's
own Path (RFC 3327, with where the phone really is); a node that calls the phone sends the call to the registering node
(the registrar's lookup follows the Path), which relays it on over the binding or the connection. Other phones are
called directly by any node. A Path a phone sent itself is never kept: it would send other people's calls wherever the
phone named.
"""

from __future__ import annotations

STREAMS = frozenset({"tcp", "tls", "ws", "wss", "sctp"})
PEER_MARK = "cmpeer=1"  # the record-route parameter of a call leg relayed for a peer (in-dialog: relayed only)


def path_needed(clustered: bool, nated: bool, proto: str) -> bool:
    """Whether a registration saved here carries this node's Path: in a cluster, for a phone only this node can reach
    (behind a NAT, or on a connection)."""
    return clustered and (nated or proto.lower() in STREAMS)


def nat_pinged(proto: str) -> bool:
    """Whether the node keeps a NAT'd registration's binding open with its OPTIONS pings: UDP only — a phone on a
    connection keeps that alive itself (and nathelper cannot ping a connection's contact)."""
    return proto.lower() not in STREAMS


def relayed_for_peer(src_ip: str, peers: frozenset[str], to_tag: str) -> bool:
    """Whether a new request is one a cluster peer sends through this node on the Path of a phone registered here —
    relayed on, not authenticated, counted or decided again (the peer did all that): it comes from a peer's address
    and opens a dialog. Whether it names this node in its Route is Kamailio's to say (loose_route)."""
    return bool(peers) and not to_tag and src_ip in peers


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def own_path_uri(own_ip: str, own_port: str, src_ip: str, src_port: str, proto: str) -> str:
    """This node's Path URI for a registration it takes: loose-routing, with where the phone really is as the path
    module's `received` parameter (escaped: it is a URI within a URI parameter)."""
    transport = f"%3Btransport%3D{proto.lower()}" if proto.lower() != "udp" else ""
    return f"sip:{_host(own_ip)}:{own_port};lr;received=sip:{_host(src_ip)}:{src_port}{transport}"


def made_here(h_id: int, node_index: int, node_count: int) -> bool:
    """Whether this node made a dialog (not a copy a peer replicated): each node numbers its dialogs from its place
    among the SIP nodes, stepping by their number (kamailio.cfg h_id_start/h_id_step)."""
    return node_count <= 1 or h_id % node_count == node_index % node_count


def accounts_end(timed_out: bool, made_by_this_node: bool, holds_address: bool) -> bool:
    """Whether this node accounts a dialog's end (agents, counters, media session, the record) — once in the cluster.

    A request that ends a dialog (a BYE) passes only the node holding the pair's address: whichever node saw it
    accounts, a copy included (the node that made it died and this one took the address over). A dialog's timer runs
    on every copy, with the lifetime the copy was given (a peer's later session refresh does not reach it): a copy's
    timeout is this node's to account only while it holds the address — the node that made the call is gone and this
    one serves its calls; otherwise the node that made it accounts the call's end itself."""
    return not timed_out or made_by_this_node or holds_address


# What a node asks the other SIP nodes for when one of them comes back after being unreachable (a partition, a lost
# link): Kamailio's DMQ only resynchronises at a node's start or when its node list was empty, so registrations and
# flags changed on either side meanwhile would otherwise wait for the next REGISTER or change. (DMQ peer, body): the
# sync requests of dmq_usrloc (action DMQ_SYNC = 3) and of htable (HT_DMQ_SYNC = 1); each peer answers with all it has.
RESYNC_REQUESTS = (("usrloc", '{"action":3}'), ("htable", '{"action":1}'))
RESYNC_KEY = "resync"  # htable NODE: set by the control plane when a peer came back; the node's timer takes it

# What the DMQ listener does with a message (kamailio.cfg DMQ_LISTEN): a peer's replication goes to DMQ; a peer's
# OPTIONS is answered — the peers' control planes probe each other's listener every second (controlplane/services/
# dmq_watch.py), so a cut too short for DMQ's own pings to fail is still seen; anything else is dropped silently.
REPLICATE, ANSWER, DROP = "replicate", "answer", "drop"


def dmq_listener(method: str, from_peer: bool) -> str:
    if not from_peer:
        return DROP
    if method == "KDMQ":
        return REPLICATE
    return ANSWER if method == "OPTIONS" else DROP
