"""The web phone as production serves it (issue 24): the page over HTTPS (api_tls) and SIP over WSS, both on the
node's certificate — no plain listener involved (the node's plain WS is off)."""

import pytest

from tests.harness.node import TestNode
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_snapshot

DOMAIN = "secure.example"


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("https") / "var", api_tls=True, sip_ws_port=0)
    with running([n]):
        yield n


def test_over_https_the_page_registers_over_wss_and_calls(node, pages, tmp_path):
    assert node.settings.api_base.startswith("https://")
    tenant = node.rpc("tenant.create", name="Secure AG", sip_domain=DOMAIN)
    ann = node.rpc("user.create", tenant_id=tenant["id"], name="Ann")
    node.rpc("extension.create", number="201", user_id=ann["id"])
    carl = node.rpc("user.create", tenant_id=tenant["id"], name="Carl")
    node.rpc("extension.create", number="203", user_id=carl["id"])
    node.rpc("sip_account.create", user_id=carl["id"], username="carl", password="carl-secret-pw1")
    token = node.rpc("token.create", name="ann", role="user", tenant_id=tenant["id"], user_id=ann["id"])["token"]
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path / "sipp")
    carl_phone = sipp.phone("carl", DOMAIN, "carl-secret-pw1")
    assert sipp.register(carl_phone).ok

    phone = pages(node.settings.api_base, "ann", trust_any_certificate=True)
    phone.login(token)
    servers = phone.page.evaluate("performance.getEntriesByType('resource').map((r) => r.name)")
    assert all(u.startswith("https://") for u in servers if "/phone/" in u or "/rpc" in u), servers
    callee = sipp.callee(carl_phone, mode="answer")
    phone.call("203")
    phone.wait_state(r"^In call with")
    phone.media_flows()
    phone.click("Hang up")
    phone.wait_state(r"^Call ended")
    assert Sipp.wait(callee, 20).ok
    registered = node.rpc("call.list")  # nothing left in progress
    assert registered["items"] == [], registered
