"""A whole node on the cluster database (PostgreSQL, started by the test): it registers and routes calls, stores their
CDRs in PostgreSQL, and keeps routing with the database gone — changes are refused meanwhile, and the calls' records
wait in the spool until the database is back (docs/cluster.md)."""
import pytest

from controlplane.cli.client import RpcError

from tests.harness.node import TestNode
from tests.harness.postgres import PostgresServer
from tests.harness.sipp import Sipp
from tests.scenario.conftest import assert_clean_log, wait_for, wait_snapshot


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_node(pg, tmp_path_factory, real_components):
    url = pg.create_database("callmanager")
    n = TestNode(tmp_path_factory.mktemp("pgnode") / "var", database_url=url).start()
    yield n
    n.stop()
    assert_clean_log(n)


def test_a_node_on_postgresql_routes_on_without_its_database_and_stores_the_records_when_it_returns(pg, pg_node,
                                                                                                      tmp_path):
    node, sipp = pg_node, Sipp(pg_node.sip, tmp_path)
    tenant = node.rpc("tenant.create", name="Cluster GmbH", sip_domain="cluster.example")
    phones = {}
    for i, ext in ((1, "401"), (2, "402")):
        user = node.rpc("user.create", tenant_id=tenant["id"], name=f"PG user {i}")
        node.rpc("sip_account.create", user_id=user["id"], username=f"pg{i}", password=f"pg-{i}-secret-pw")
        node.rpc("extension.create", number=ext, user_id=user["id"])
        phones[ext] = (user, sipp.phone(f"pg{i}", "cluster.example", f"pg-{i}-secret-pw"))
    wait_snapshot(node)
    (alice_user, alice), (bob_user, bob) = phones["401"], phones["402"]
    assert sipp.register(bob).ok

    def call() -> None:
        callee = sipp.callee(bob, "answer")
        r = sipp.caller(alice, "402", hold_ms=500)
        assert r.ok, r.output[-2000:]
        assert sipp.wait(callee).ok

    def records() -> list:
        return node.rpc("cdr.list", user_id=bob_user["id"])["items"]

    call()
    assert wait_for(lambda: len(records()) == 1, timeout=10), "the CDR is stored in PostgreSQL"

    pg.stop_now()  # the database is gone
    assert sipp.register(bob).ok  # registrations and calls go on: Kamailio routes on its last snapshot
    call()
    with pytest.raises(RpcError) as refused:
        node.rpc("user.create", tenant_id=tenant["id"], name="During the outage")
    assert refused.value.error["data"]["error_id"] == "database_unavailable"

    pg.resume()
    assert wait_for(lambda: len(records()) == 2, timeout=20), "the call made without a database is recorded when it is back"
    assert "During the outage" not in {u["name"] for u in node.rpc("user.list", tenant_id=tenant["id"])["items"]}
