"""WebRTC without a browser — the fast tier (issue 24, docs/webrtc.md): a browser's protocol (SIP over WebSocket with
digest, ICE + DTLS-SRTP + rtcp-mux from aiortc) against a real node, in every direction the media policy knows:
browser → phone, phone → browser, browser ↔ browser, browser → trunk, browser → media server. Each checks what a
user hears: DTLS connected and packets both ways, RTPengine relaying both legs, and no media session left after.

The first test is also the DTLS-role regression test of the field notes (../shared/NOTES-webrtc.md): without
`DTLS-reverse=passive` on a browser's offer to a SIP leg the handshake never completes (measured: `dtls: failed`)."""

import concurrent.futures
import time

import pytest

from tests.harness.node import TestNode
from tests.harness.relay import gone, legs
from tests.harness.sipp import Sipp
from tests.harness.webrtc_phone import WebRtcPhone
from tests.scenario.conftest import CARRIER_IP, running, wait_for, wait_snapshot

DOMAIN = "web.example"


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("webrtc") / "var", media_server=True)
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    """Ann and Ben on browsers (WebRTC accounts), Carl on a SIP phone (SIPp); a carrier's trunk."""
    tenant = node.rpc("tenant.create", name="Web AG", sip_domain=DOMAIN)
    node.rpc("site.create", tenant_id=tenant["id"], name="Berlin", region="DE", area_code="30")
    for name, ext, web in (("ann", "201", True), ("ben", "202", True), ("carl", "203", False)):
        user = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("sip_account.create", user_id=user["id"], username=name, password=f"{name}-secret-pw1", webrtc=web)
        node.rpc("extension.create", number=ext, user_id=user["id"])
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    carrier = sipp.carrier(CARRIER_IP)
    node.rpc("trunk.create", name="carrier", host=carrier.ip, port=carrier.port, transport="udp", priority=1)
    wait_snapshot(node)
    carl = sipp.phone("carl", DOMAIN, "carl-secret-pw1")
    assert sipp.register(carl).ok
    return {"tenant": tenant, "sipp": sipp, "carrier": carrier, "carl": carl}


@pytest.fixture
def ann(node, office):
    phone = WebRtcPhone(node.ws_url, "ann", DOMAIN, "ann-secret-pw1")
    assert phone.register() == 200
    yield phone
    phone.close()


def heard_both_ways(phone: WebRtcPhone, node, seconds: float = 2.0) -> None:
    time.sleep(seconds)
    st = phone.stats()
    assert st["dtls"] == "connected" and st["sent"] > 20 and st["received"] > 20, st
    packets = legs(node, phone.call_id)
    assert len(packets) == 2 and all(p > 20 for p in packets), packets  # RTPengine relays both legs


def test_a_browser_calls_a_sip_phone(node, office, ann):
    sipp, carl = office["sipp"], office["carl"]
    callee = sipp.callee(carl)
    assert ann.call(f"sip:203@{DOMAIN}") == 200
    heard_both_ways(ann, node)
    assert ann.hangup() == 200
    assert sipp.wait(callee).ok
    offered = callee.messages.read_text()
    assert "RTP/AVP" in offered and "a=ice-" not in offered and "fingerprint" not in offered  # plain to the phone
    assert gone(node, ann.call_id)


def test_a_sip_phone_calls_a_browser(node, office, ann):
    sipp, carl = office["sipp"], office["carl"]
    call = concurrent.futures.ThreadPoolExecutor(1).submit(sipp.caller, carl, "201", hold_ms=3000)
    invite = ann.incoming()
    assert "UDP/TLS/RTP/SAVPF" in invite and "a=fingerprint" in invite and "a=ice-ufrag" in invite
    ann.answer()
    heard_both_ways(ann, node)
    assert call.result(timeout=30).ok
    assert gone(node, ann.call_id)


def test_a_browser_calls_a_browser(node, office, ann):
    ben = WebRtcPhone(node.ws_url, "ben", DOMAIN, "ben-secret-pw1")
    try:
        assert ben.register() == 200
        pool = concurrent.futures.ThreadPoolExecutor(1)
        answered = pool.submit(lambda: (ben.incoming(), ben.answer()))
        assert ann.call(f"sip:202@{DOMAIN}") == 200
        answered.result(timeout=15)
        heard_both_ways(ann, node)
        st = ben.stats()
        assert st["dtls"] == "connected" and st["received"] > 20, st
        assert ann.hangup() == 200
        assert gone(node, ann.call_id)
    finally:
        ben.close()
    record = wait_for(lambda: node.rpc("cdr.list", call_id=ann.call_id)["items"])
    assert record and any("DTLS-SRTP (WebRTC) to the callee's browsers" in line for line in record[0]["trace"]), record[
        0
    ]["trace"]


def test_a_browser_calls_out_through_a_plain_trunk(node, office, ann):
    sipp, carrier = office["sipp"], office["carrier"]
    uas = sipp.callee(carrier)
    assert ann.call(f"sip:0891234567@{DOMAIN}") == 200
    heard_both_ways(ann, node)
    assert ann.hangup() == 200
    assert sipp.wait(uas).ok
    offered = uas.messages.read_text()
    assert "RTP/AVP" in offered and "a=ice-" not in offered and "a=fingerprint" not in offered
    record = wait_for(lambda: node.rpc("cdr.list", call_id=ann.call_id)["items"])
    assert any("DTLS-SRTP (WebRTC) from the caller, RTP to the callee" in line for line in record[0]["trace"])
    assert gone(node, ann.call_id)


def test_a_browser_hears_an_announcement_from_the_media_server(node, office, ann):
    code = ann.call(f"sip:nobody@{DOMAIN}")  # no such extension: "the number is not in service", then 404
    assert code == 404
    st = ann.stats()
    assert st["dtls"] == "connected" and st["received"] > 20, st  # the prompt, as early media over DTLS-SRTP
    assert gone(node, ann.call_id)


def test_the_websocket_listener_takes_sip_upgrades_only(node):
    import httpx

    r = httpx.get(f"http://{node.settings.sip_address}:{node.settings.sip_ws_port}/", timeout=5)
    assert r.status_code == 426 and "SIP over WebSocket" in r.text
    r = httpx.get(
        f"http://{node.settings.sip_address}:{node.settings.sip_ws_port}/",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "chat",
        },
        timeout=5,
    )
    assert r.status_code == 400 and "sip" in r.text
