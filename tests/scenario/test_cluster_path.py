"""A phone only the node it registered with can reach — on a TCP connection, as a phone behind a NAT keeps one — is
called through the other node of the cluster: the registration carries the first node's Path (kemi/policy/cluster.py),
the other node sends the call there, and the first relays it over the phone's connection (docs/cluster.md).

The phone's Contact is a loopback port nobody listens on and its connection's port does not take connections: a call
reaches it over that connection or not at all. The nodes have addresses of their own (127.0.0.5 and .6), so the
phones (127.0.0.1) are not taken for the cluster's nodes."""

import time

import pytest

from tests.harness.node import TestNode
from tests.harness.ports import free_port
from tests.harness.postgres import PostgresServer
from tests.harness.raw_sip import TcpPhone
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "path.example"
TOKEN = "cluster-token-" + "p" * 32
ADDRESSES = ("127.0.0.5", "127.0.0.6")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_components):
    pg = PostgresServer().start()
    try:
        url = pg.create_database("cm_path")
        ports = [free_port(ADDRESSES[0]), free_port(ADDRESSES[1])]
        nodes = [
            TestNode(
                tmp_path_factory.mktemp(f"path{i}") / "var",
                database_url=url,
                platform_token=TOKEN,
                node_name=f"path{i + 1}",
                sip_address=ADDRESSES[i],
                dmq_port=ports[i],
                dmq_peers=[f"{ADDRESSES[1 - i]}:{ports[1 - i]}"],
                dmq_node_index=i + 1,
            )
            for i in range(2)
        ]
        with running(nodes):
            yield nodes
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def people(cluster):
    a, _ = cluster
    tenant = a.rpc("tenant.create", name="Path GmbH", sip_domain=DOMAIN)
    for i, ext in ((1, "601"), (2, "602")):
        user = a.rpc("user.create", tenant_id=tenant["id"], name=f"Path user {i}")
        a.rpc("sip_account.create", user_id=user["id"], username=f"path{i}", password=f"path-{i}-secret-pw")
        a.rpc("extension.create", number=ext, user_id=user["id"])
    for n in cluster:
        wait_snapshot(n)


def contact_of(node, user: str) -> dict:
    """The user's newest binding as the node's usrloc has it."""
    contacts = [c["Contact"] for c in node.kamailio_rpc("ul.lookup", "location", f"{user}@{DOMAIN}")["Contacts"]]
    return max(contacts, key=lambda c: c["Last-Modified"])


def test_a_phone_on_a_connection_to_one_node_is_called_through_the_other(cluster, people, tmp_path):
    a, b = cluster
    phone = TcpPhone(a.sip, "path2", DOMAIN, "path-2-secret-pw")
    try:
        assert phone.register() == 200
        assert wait_for(lambda: "path2" in str(b.kamailio_rpc("ul.dump", "brief")), timeout=5), "replicated to B"
        path = contact_of(b, "path2").get("Path", "")
        assert f"sip:{a.settings.sip_address}:{a.settings.sip_port}" in path and "received=" in path, path
        caller = Sipp(b.sip, tmp_path / "b").phone("path1", DOMAIN, "path-1-secret-pw")
        r = Sipp(b.sip, tmp_path / "b").caller(caller, "602", hold_ms=500)
        assert r.ok, r.output[-2000:]
        assert wait_for(lambda: "BYE" in phone.received, timeout=5), phone.received
        assert phone.received[:2] == ["INVITE", "ACK"], phone.received
        invite = phone.messages[0]
        assert f"{b.settings.sip_address}" in invite and f"{a.settings.sip_address}" in invite  # via B, then A
        # and a call through A, the node holding the connection, goes straight to it
        before = len(phone.received)
        r = Sipp(a.sip, tmp_path / "a").caller(caller, "602", hold_ms=300)
        assert r.ok, r.output[-2000:]
        assert wait_for(lambda: phone.received[before:].count("BYE") == 1, timeout=5), phone.received
        assert b.settings.sip_address not in phone.messages[before]
    finally:
        phone.close()


def test_a_path_the_phone_sends_itself_is_not_kept(cluster, people):
    """A phone naming its own Path would send other people's calls to it wherever it named: the node keeps its own."""
    a, b = cluster
    phone = TcpPhone(a.sip, "path1", DOMAIN, "path-1-secret-pw", extra="Path: <sip:127.0.0.9:5999;lr>\r\n")
    try:
        assert phone.register() == 200
        assert wait_for(lambda: "path1" in str(b.kamailio_rpc("ul.dump", "brief")), timeout=5)
        path = contact_of(b, "path1").get("Path", "")
        assert "127.0.0.9" not in path and a.settings.sip_address in path, path
        assert phone.register(expires=0) == 200
    finally:
        phone.close()
    time.sleep(0.2)
