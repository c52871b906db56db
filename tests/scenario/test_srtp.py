"""Encrypted media and the tenants' encryption policy (issue 24, docs/tls.md): a phone offering SRTP (SDES) over TLS
calls a plain trunk and is called from it, RTPengine bridging SRTP and RTP; a tenant requiring SRTP refuses a plain
offer with 488 and a tenant requiring TLS refuses UDP with 403, emergency calls excepted; calls to a user whose
devices require SRTP are offered SRTP; the record's trace and route.simulate name the media mode. Real Kamailio,
RTPengine, SIPp and a pjsua2 phone (SIPp has neither TLS nor SRTP)."""

import concurrent.futures
import time

import pytest

from tests.harness.node import TestNode
from tests.harness.pj_phone import PjPhone
from tests.harness.sipp import Sipp
from tests.scenario.conftest import CARRIER_IP, running, wait_for, wait_snapshot

DOMAIN = "srtp.example"


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("srtp") / "var")
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    """A tenant requiring SRTP and TLS: alice (201, +49305551201) on an SRTP phone over TLS; a plain tenant with bob
    (202) on SIPp; a carrier's trunk both use."""
    tenant = node.rpc("tenant.create", name="Secure AG", sip_domain=DOMAIN, require_srtp=True, require_tls=True)
    site = node.rpc("site.create", tenant_id=tenant["id"], name="Berlin", region="DE", area_code="30")
    node.rpc("number_block.create", tenant_id=tenant["id"], first="+49 30 5551 200", size=10, site_id=site["id"])
    alice = node.rpc("user.create", tenant_id=tenant["id"], name="Alice")
    node.rpc("sip_account.create", user_id=alice["id"], username="alice", password="alice-secret-pw1")
    node.rpc("extension.create", number="201", user_id=alice["id"])
    node.rpc("number.assign", e164="+49305551201", user_id=alice["id"])
    plain = node.rpc("tenant.create", name="Plain GmbH", sip_domain="plain.example")
    bob = node.rpc("user.create", tenant_id=plain["id"], name="Bob")
    node.rpc("sip_account.create", user_id=bob["id"], username="bob", password="bob-secret-pw1")
    node.rpc("extension.create", number="202", user_id=bob["id"])
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    carrier = sipp.carrier(CARRIER_IP)
    node.rpc("trunk.create", name="carrier", host=carrier.ip, port=carrier.port, transport="udp", priority=1)
    wait_snapshot(node)
    return {"tenant": tenant, "plain": plain, "sipp": sipp, "carrier": carrier, "alice": alice}


@pytest.fixture
def alice_phone(node, office):
    phone = PjPhone.start(node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", srtp="mandatory")
    assert phone.register() == 200
    yield phone
    phone.close()


def last_record(node, tenant_id: int, callee: str) -> dict:
    return wait_for(
        lambda: next((r for r in node.rpc("cdr.list", tenant_id=tenant_id)["items"] if r["callee"] == callee), None),
        timeout=10,
    )


def test_an_srtp_phone_calls_out_through_a_plain_trunk(node, office, alice_phone):
    sipp, carrier = office["sipp"], office["carrier"]
    uas = sipp.callee(carrier, "hold", echo=True)  # answers, then takes the hold and the resume
    assert alice_phone.call(f"sip:0891234567@{DOMAIN}") == 200
    time.sleep(1.5)
    (st,) = alice_phone.stats()
    assert st["proto"] == "RTP/SAVP" and st["tx"] > 10 and st["rx"] > 10, st  # SRTP to the node, echoed back
    # on hold and back (re-INVITEs from the SRTP side: the dialog's plan keeps the carrier's leg plain)
    alice_phone.hold()
    time.sleep(1.0)
    alice_phone.resume()
    time.sleep(1.5)
    (again,) = alice_phone.stats()
    assert again["proto"] == "RTP/SAVP" and again["rx"] > 30 and again["tx"] > 30, (
        again
    )  # a new stream since the resume
    alice_phone.hangup()
    alice_phone.ended()
    assert sipp.wait(uas).ok
    offered = uas.messages.read_text()
    assert offered.count("INVITE sip:") >= 3, offered[-3000:]  # the call, the hold, the resume
    assert "m=audio" in offered and "RTP/SAVP" not in offered and "a=crypto" not in offered  # all plain RTP
    record = last_record(node, office["tenant"]["id"], "+49891234567")
    assert record["disposition"] == "answered"
    assert any("media: SRTP (SDES) from the caller, RTP to the callee" in line for line in record["trace"]), record


def test_the_trunk_calls_the_srtp_phone_which_is_offered_srtp(node, office, alice_phone):
    sipp, carrier = office["sipp"], office["carrier"]
    pool = concurrent.futures.ThreadPoolExecutor(1)
    result = pool.submit(sipp.carrier_call, carrier, "0891234567", "+49305551201", hold_ms=2500)
    alice_phone.incoming()  # a mandatory-SRTP phone refuses a plain offer (488): it rings only when offered SRTP
    alice_phone.answer()
    time.sleep(1.0)
    (st,) = alice_phone.stats()
    assert st["proto"] == "RTP/SAVP" and st["rx"] > 10 and st["tx"] > 10, st
    assert result.result(timeout=30).ok
    record = last_record(node, office["tenant"]["id"], "+49305551201")
    assert any("media: RTP from the caller, SRTP (SDES) to the callee" in line for line in record["trace"]), record


def test_the_tenants_policy_refuses_plain_media_and_plain_signalling(node, office):
    sipp = office["sipp"]
    plain_alice = sipp.phone("alice", DOMAIN, "alice-secret-pw1")
    r = sipp.register(plain_alice, timeout_s=5)  # REGISTER over UDP for an account that requires TLS
    assert not r.ok and "403" in r.output, r.output[-1500:]
    # over TLS but offering plain RTP: 488
    phone = PjPhone.start(node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", srtp="off")
    try:
        assert phone.register() == 200
        assert phone.call(f"sip:0891234567@{DOMAIN}") == 488
        refused = [e for e in phone.seen if e.get("event") == "state" and e.get("code") == 488]
        assert refused
    finally:
        phone.close()
    record = wait_for(
        lambda: next(
            (r for r in node.rpc("cdr.list", tenant_id=office["tenant"]["id"])["items"] if r["sip_code"] == 488), None
        )
    )
    assert record and any("SRTP required" in line for line in record["trace"]), record


def test_route_simulate_names_the_media_mode(node, office):
    alice = office["alice"]["id"]
    r = node.rpc("route.simulate", caller_user_id=alice, dialled="0891234567")  # as its policy wants: TLS and SRTP
    assert r["media"] == "media: SRTP (SDES) from the caller, RTP to the callee (RTPengine bridges)", r
    assert r["decision"]["type"] == "trunk"
    r = node.rpc("route.simulate", caller_user_id=alice, dialled="0891234567", transport="tls", offer="RTP/AVP")
    assert r["decision"]["code"] == 488 and "SRTP required" in r["decision"]["explanation"], r
    r = node.rpc("route.simulate", caller_user_id=alice, dialled="0891234567", transport="udp")
    assert r["decision"]["code"] == 403 and "TLS required" in r["decision"]["explanation"], r
    r = node.rpc("route.simulate", caller_user_id=alice, dialled="112", transport="udp", offer="RTP/AVP")
    assert r["decision"]["type"] == "trunk" and r["decision"]["emergency"], r  # never refused for the policy
    assert r["media"] == "media: RTP both ways"


def test_a_busy_srtp_user_forwarded_to_a_mobile_reaches_the_trunk_with_plain_rtp(node, office, alice_phone):
    """The call was offered SRTP to the phone; the phone's 486 forwards it out through a trunk (the failure route's new
    branch): that branch gets its own, plain offer."""
    sipp = office["sipp"]
    mobile_carrier = sipp.carrier("127.0.0.3")
    trunk = node.rpc(
        "trunk.create", name="mobiles", host=mobile_carrier.ip, port=mobile_carrier.port, transport="udp", priority=0
    )
    rule = node.rpc("forwarding.create", user_id=office["alice"]["id"], kind="busy", target_number="+4917612345678")
    wait_snapshot(node)
    try:
        uas = sipp.callee(mobile_carrier, "answer")
        pool = concurrent.futures.ThreadPoolExecutor(1)
        result = pool.submit(sipp.carrier_call, office["carrier"], "0891234567", "+49305551201", hold_ms=1500)
        alice_phone.incoming()
        alice_phone.reject(486)
        assert result.result(timeout=30).ok
        assert sipp.wait(uas).ok
        offered = uas.messages.read_text()
        assert "RTP/AVP" in offered and "RTP/SAVP" not in offered and "a=crypto" not in offered, offered[-2500:]
    finally:
        node.rpc("forwarding.delete", id=rule["id"])
        node.rpc("trunk.delete", id=trunk["id"])
