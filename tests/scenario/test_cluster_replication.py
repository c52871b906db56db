"""Two SIP nodes of a cluster on one database, replicating registrations and live flags by Kamailio's DMQ
(docs/cluster.md): a phone registered through one node is called through the other, DND set on one is in force on the
other, a source banned by one is dropped by the other, and a node that was down catches up when it starts."""

import socket

import pytest

from tests.harness import raw_sip
from tests.harness.node import TestNode
from tests.harness.ports import free_port
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "dmq.example"
TOKEN = "cluster-token-" + "x" * 32


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory, real_components):
    url = postgres.create_database("cm_dmq")
    ports = [free_port(), free_port()]
    nodes = [
        TestNode(
            tmp_path_factory.mktemp(f"sip{i}") / "var",
            database_url=url,
            platform_token=TOKEN,
            node_name=f"sip{i + 1}",
            dmq_port=ports[i],
            dmq_peers=[f"127.0.0.1:{ports[1 - i]}"],
            dmq_node_index=i + 1,
            auth_failures_source=3,
        )
        for i in range(2)
    ]
    with running(nodes):
        yield nodes


@pytest.fixture(scope="module")
def people(cluster):
    a, _ = cluster
    tenant = a.rpc("tenant.create", name="DMQ GmbH", sip_domain=DOMAIN)
    users = {}
    for i, ext in ((1, "501"), (2, "502"), (3, "503")):
        user = a.rpc("user.create", tenant_id=tenant["id"], name=f"DMQ user {i}")
        a.rpc("sip_account.create", user_id=user["id"], username=f"dmq{i}", password=f"dmq-{i}-secret-pw")
        a.rpc("extension.create", number=ext, user_id=user["id"])
        users[ext] = user
    for n in cluster:
        wait_snapshot(n)
    return users


def registered(node, user: str) -> bool:
    return f"{user}@{DOMAIN}" in str(node.kamailio_rpc("ul.dump", "brief"))


def status(node, user_id: int) -> str:
    try:
        return node.kamailio_rpc("htable.get", "status", f"u{user_id}")["item"]["value"]
    except Exception:  # noqa: BLE001 - absent item: online
        return ""


def test_a_phone_registered_through_one_node_is_called_through_the_other(cluster, people, tmp_path):
    a, b = cluster
    via_a, via_b = Sipp(a.sip, tmp_path / "a"), Sipp(b.sip, tmp_path / "b")
    alice, bob = via_a.phone("dmq1", DOMAIN, "dmq-1-secret-pw"), via_a.phone("dmq2", DOMAIN, "dmq-2-secret-pw")
    assert not registered(b, "dmq2")
    assert via_a.register(bob).ok
    assert wait_for(lambda: registered(b, "dmq2"), timeout=5), "the registration reached the other node"
    callee = via_b.callee(bob, "answer")
    r = via_b.caller(alice, "502", hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert via_b.wait(callee).ok
    # the end of a registration goes round too
    assert via_a.register(bob, expires=0).ok
    assert wait_for(lambda: not registered(b, "dmq2"), timeout=5), "the unregistration reached the other node"


def test_dnd_set_on_one_node_is_in_force_on_the_other(cluster, people, tmp_path):
    a, b = cluster
    via_a, via_b = Sipp(a.sip, tmp_path / "a"), Sipp(b.sip, tmp_path / "b")
    carol, alice = via_a.phone("dmq3", DOMAIN, "dmq-3-secret-pw"), via_b.phone("dmq1", DOMAIN, "dmq-1-secret-pw")
    carol_id = people["503"]["id"]
    assert via_a.register(carol).ok
    assert via_a.caller(carol, "*78", expect=603).ok  # DND on, from the phone, through node A
    assert wait_for(lambda: status(b, carol_id) == "dnd", timeout=5), "the status reached the other node"
    assert via_b.caller(alice, "503", expect=486).ok  # a call through node B finds her in DND
    assert via_a.caller(carol, "*79", expect=603).ok  # DND off
    assert wait_for(lambda: status(b, carol_id) == "", timeout=5)


def test_a_source_banned_by_one_node_is_dropped_by_the_other(cluster, people, tmp_path):
    a, b = cluster
    via_a, via_b = Sipp(a.sip, tmp_path / "a"), Sipp(b.sip, tmp_path / "b")
    guesser = via_a.phone("dmq1", DOMAIN, "a-wrong-guess", ip="127.0.0.3")
    for _ in range(4):  # auth_failures_source=3: the fourth wrong guess through A bans the source
        via_a.register(guesser, wrong=True, timeout_s=3)
    assert wait_for(lambda: "127.0.0.3" in str(b.kamailio_rpc("htable.dump", "ban")), timeout=5), "the ban reached B"
    right = via_b.phone("dmq1", DOMAIN, "dmq-1-secret-pw", ip="127.0.0.3")
    assert not via_b.register(right, timeout_s=3).ok, "node B answered a banned source"


def test_a_node_that_was_down_catches_up_when_it_starts(cluster, people, tmp_path):
    a, b = cluster
    via_a = Sipp(a.sip, tmp_path / "a")
    alice = via_a.phone("dmq1", DOMAIN, "dmq-1-secret-pw")
    alice_id = people["501"]["id"]
    b.stop()
    assert via_a.register(alice).ok
    assert via_a.caller(alice, "*78", expect=603).ok
    b.start()
    assert wait_for(lambda: registered(b, "dmq1"), timeout=10), "the registration made meanwhile came with the sync"
    assert wait_for(lambda: status(b, alice_id) == "dnd", timeout=10), "the status set meanwhile came with the sync"
    assert via_a.caller(alice, "*79", expect=603).ok


def test_the_dmq_listener_takes_only_the_cluster_s_nodes(cluster):
    """Replication is taken only from the configured peers' addresses and only as KDMQ; a peer's OPTIONS (its control
    plane's probe, controlplane/services/dmq_watch.py) is answered; anything else on the DMQ port is dropped without a
    word (a registration or a ban cannot be injected from elsewhere, nor the listener probed by others)."""
    _, b = cluster
    where = (b.settings.sip_address, b.settings.dmq_port)

    def ask(source: str, method: str) -> str | None:
        text = raw_sip.request(method, f"sip:no_such_peer@{where[0]}:{where[1]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(1.5)
            s.sendto(text.replace("{port}", str(s.getsockname()[1])).encode(), where)
            try:
                return s.recv(65535).decode(errors="replace")
            except TimeoutError:
                return None

    assert ask("127.0.0.1", "KDMQ") is not None, "a peer's KDMQ gets DMQ's answer"  # the control: the port answers
    assert ask("127.0.0.5", "KDMQ") is None, "KDMQ from an address that is no peer is dropped"
    answer = ask("127.0.0.1", "OPTIONS")
    assert answer is not None and answer.startswith("SIP/2.0 200"), "a peer's probe is answered"
    assert ask("127.0.0.5", "OPTIONS") is None, "a probe from an address that is no peer is not"
    assert ask("127.0.0.1", "INVITE") is None, "nothing else is taken on the DMQ port"


def test_the_noc_sees_each_node_replicating_with_its_peers(cluster):
    import httpx

    for n in cluster:
        text = httpx.get(f"http://{n.settings.api_address}:{n.settings.api_port}/metrics", timeout=10).text
        assert "callmanager_dmq_peers_configured 1.0" in text
        assert wait_for(lambda n=n: 'callmanager_dmq_peers{state="active"} 1.0' in httpx.get(
            f"http://{n.settings.api_address}:{n.settings.api_port}/metrics", timeout=10).text, timeout=10), text[-3000:]


def test_an_operator_sees_the_nodes_replication_in_its_status(cluster, people):
    a, b = cluster
    status = b.rpc("node.status")
    # both route with the same configuration: the change made through A reached B's snapshot too
    assert status["snapshot_version"] == a.rpc("node.status")["snapshot_version"] >= len(people) * 3
    assert status["replication"]["peers_configured"] == 1
    assert status["replication"]["peers"] == [{"address": f"127.0.0.1:{a.settings.dmq_port}", "state": "active"}]
    assert status["shared_counters"] is None  # no Redis given: the fraud limits count on the node


def test_a_call_through_one_node_is_a_copy_on_the_other_and_counted_once(cluster, people, tmp_path):
    """Dialogs are replicated (the node taking over a pair's address serves them, tests/lab/test_failover.py); each
    node numbers its own apart, and counts only its own as calls in progress (the NOC sums the nodes)."""
    a, b = cluster
    via_a = Sipp(a.sip, tmp_path / "a")
    alice, bob = via_a.phone("dmq1", DOMAIN, "dmq-1-secret-pw"), via_a.phone("dmq2", DOMAIN, "dmq-2-secret-pw")
    assert via_a.register(bob).ok
    # node.status counts the registrations each node holds (Bob's reached B too)
    assert wait_for(lambda: b.rpc("node.status")["registrations"] >= 1, timeout=5)
    assert a.rpc("node.status")["registrations"] >= 1
    callee = via_a.callee(bob, "answer")
    call = via_a.caller_in_background(alice, "502", hold_ms=3000)
    assert wait_for(lambda: len(a.kamailio_rpc("dlg.list") or []) == 1, timeout=5)
    assert wait_for(lambda: len(b.kamailio_rpc("dlg.list") or []) == 1, timeout=5), "the dialog reached the other node"
    [made] = a.kamailio_rpc("dlg.list")
    [copy] = b.kamailio_rpc("dlg.list")
    assert (copy["h_id"], copy["call-id"]) == (made["h_id"], made["call-id"]) and made["h_id"] % 2 == 1  # node 1's
    # the call is node A's: in its calls in progress and its count, not in B's
    assert len(a.rpc("call.list")["items"]) == 1 and b.rpc("call.list")["items"] == []
    assert "dialog:active_dialogs = 0" in b.kamailio_rpc("stats.get_statistics", "dialog:")
    assert call.result(timeout=30).ok and via_a.wait(callee).ok
    assert wait_for(lambda: not (b.kamailio_rpc("dlg.list") or []), timeout=5), "the copy ends with the call"
    cdrs = wait_for(lambda: [c for c in a.rpc("cdr.list")["items"] if c["call_id"] == made["call-id"]], timeout=10)
    assert len(cdrs) == 1 and cdrs[0]["disposition"] == "answered"  # one record, from the node that made the call
