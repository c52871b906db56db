"""A node drained for maintenance (node.drain): new requests get 503 with Retry-After, the server ping too (peers'
dispatchers take it out), a call in progress goes on and ends normally; undrained, it takes traffic again."""
import pytest

from tests.harness import raw_sip

from .conftest import wait_for, wait_snapshot

pytestmark = pytest.mark.scenario


def options_ping(node) -> raw_sip.Reply:
    host, port = node.sip
    text = raw_sip.send(node.sip, raw_sip.request("OPTIONS", f"sip:{host}:{port}"))
    assert text is not None, "no answer to the ping"
    return raw_sip.Reply(text)


def test_a_drained_node_refuses_new_work_keeps_its_calls_and_comes_back(node, make_user, sipp):
    _, _, alice = make_user()
    _, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
    callee = sipp.callee(bob, "answer")
    call = sipp.caller_in_background(alice, bob_ext, hold_ms=4000)
    wait_for(lambda: [c for c in node.rpc("call.list")["items"] if c["callee"] == bob_ext and c["state"] == "confirmed"], timeout=5)
    try:
        state = node.rpc("node.drain", on=True)
        assert state["draining"] is True and state["calls"] >= 1
        ping = options_ping(node)
        assert ping.code == 503 and ping.headers.get("retry-after") == "120", vars(ping)
        # new calls and registrations are refused with the reason a person can read
        invite = raw_sip.Reply(raw_sip.send(node.sip, raw_sip.request("INVITE", f"sip:{bob_ext}@{bob.domain}")))
        assert invite.code == 503 and invite.headers.get("retry-after") == "120", vars(invite)  # before any challenge
        register = raw_sip.Reply(raw_sip.send(node.sip, raw_sip.request("REGISTER", f"sip:{bob.domain}")))
        assert register.code == 503 and register.headers.get("retry-after") == "120" and "draining" in register.headers.get("warning", "")
        # the call in progress goes on and ends normally (its BYE is in-dialog)
        assert call.result().ok and sipp.wait(callee).ok
        assert wait_for(lambda: node.rpc("node.status")["calls"] == 0, timeout=10)
    finally:
        state = node.rpc("node.drain", on=False)
    assert state["draining"] is False
    assert options_ping(node).code == 200
    assert sipp.register(bob).ok


def test_only_the_platform_drains_a_node(node, tenant):
    from controlplane.cli.client import RpcError

    token = node.rpc("token.create", tenant_id=tenant["id"], role="admin", name="drain test admin")["token"]
    with pytest.raises(RpcError) as err:
        node.rpc("node.drain", token=token, on=True)
    assert err.value.error["data"]["error_id"] == "forbidden"
    assert node.rpc("node.status")["draining"] is False


def test_registrations_survive_a_restart_of_kamailio(node, make_user, sipp):
    """An upgrade restarts Kamailio: the phones stay registered (written back to the node's db_text table, saved when
    Kamailio stops and read when it starts), so calls to them keep working without waiting for their next REGISTER."""
    _, alice_ext, alice = make_user()
    wait_snapshot(node)
    assert sipp.register(alice, expires=3600).ok
    aor = f"{alice.user}@{alice.domain}"
    kamailio = node.component("kamailio")
    kamailio.stop()
    kamailio.start()
    found = wait_for(lambda: node.kamailio_rpc("ul.lookup", "location", aor), timeout=10)
    assert found["AoR"] == aor
    contact = found["Contacts"][0]["Contact"]
    assert f":{alice.port};" in contact["Address"] and 3000 < int(contact["Expires"]) <= 3600
