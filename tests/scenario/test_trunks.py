"""Calls to and from the public network through trunks, with real Kamailio, RTPengine and SIPp.

The carriers are SIPp instances on 127.0.0.2 (phones use 127.0.0.1), so the node can tell a
carrier's traffic from a phone's by source address, as it does in production.
"""
import re
import time

from tests.scenario.conftest import CARRIER_IP, wait_for, wait_snapshot


def received(callee) -> str:
    return callee.messages.read_text(errors="replace") if callee.messages.exists() else ""


def first_invite(text: str) -> str:
    m = re.search(r"(INVITE sip:.*?)(?:\r?\n\r?\n)", text, re.S)
    return m.group(1) if m else ""


def cdr_of(node, user_id, disposition=None):
    items = node.rpc("cdr.list", user_id=user_id)["items"]
    items = [c for c in items if disposition is None or c["disposition"] == disposition]
    return items[0] if items else None


def test_outgoing_call_goes_to_the_trunk_in_e164_with_the_users_number(node, sipp, trunks, pbx_user):
    user, phone, number = pbx_user()
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    uas = sipp.callee(carrier, "answer")
    r = sipp.caller(phone, "0301234567", hold_ms=1000)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(uas).ok
    invite = first_invite(received(uas))
    assert invite.startswith(f"INVITE sip:+49301234567@{CARRIER_IP}:{carrier.port}")
    assert f"P-Asserted-Identity: <sip:{number}@trunk-ag.example;user=phone>" in invite
    assert "Privacy:" not in invite
    cdr = wait_for(lambda: cdr_of(node, user["id"], "answered"), timeout=5)
    assert cdr["callee"] == "+49301234567" and cdr["callee_national"] == "030 1234567"
    assert any("destination class local" in t for t in cdr["trace"])


def test_clir_prefix_sends_privacy_id(node, sipp, trunks, pbx_user):
    _, phone, number = pbx_user()
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    uas = sipp.callee(carrier, "answer")
    assert sipp.caller(phone, "*310891234567", hold_ms=500).ok
    assert sipp.wait(uas).ok
    invite = first_invite(received(uas))
    assert invite.startswith("INVITE sip:+49891234567@")
    assert "Privacy: id" in invite and f"<sip:{number}@" in invite  # the carrier still knows who calls


def test_trunk_failover_on_503_to_the_next_trunk(node, sipp, trunks, pbx_user):
    user, phone, _ = pbx_user()
    first, second = sipp.carrier(CARRIER_IP), sipp.carrier(CARRIER_IP)
    trunks(first, priority=1)
    trunks(second, priority=2)
    wait_snapshot(node)
    failing = sipp.callee(first, "unavailable")
    answering = sipp.callee(second, "answer")
    r = sipp.caller(phone, "0891234567", hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(failing).ok and sipp.wait(answering).ok
    cdr = wait_for(lambda: cdr_of(node, user["id"], "answered"), timeout=5)
    assert any("503" in t and "failing over" in t for t in cdr["trace"]), cdr["trace"]


def test_incoming_call_from_the_trunk_rings_the_user_of_the_number(node, sipp, trunks, pbx_user):
    user, phone, number = pbx_user()
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    assert sipp.register(phone).ok
    callee = sipp.callee(phone, "answer")
    national = "0" + number[3:]
    r = sipp.carrier_call(carrier, "0891234567", national, hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(callee).ok
    cdr = wait_for(lambda: cdr_of(node, user["id"], "answered"), timeout=5)
    assert cdr["caller"] == "+49891234567" and cdr["callee"] == number and cdr["callee_user_id"] == user["id"]


def test_incoming_call_to_an_unassigned_number_is_404_and_from_elsewhere_challenged(node, sipp, trunks, pbx_user):
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    pbx_user()
    wait_snapshot(node)
    assert sipp.carrier_call(carrier, "0891234567", "+4930555099", expect=404).ok
    stranger = sipp.carrier("127.0.0.3")  # not a trunk's address: must authenticate like a phone
    assert sipp.carrier_call(stranger, "0891234567", "+4930555001", expect=407).ok


def test_barred_range_is_refused_with_403(node, sipp, trunks, pbx_user):
    user, phone, _ = pbx_user(outbound="special")
    trunks(sipp.carrier(CARRIER_IP))
    wait_snapshot(node)
    assert sipp.caller(phone, "09001234567", expect=403).ok
    cdr = wait_for(lambda: cdr_of(node, user["id"], "rejected"), timeout=5)
    assert cdr["sip_code"] == 403 and any("0900" in t for t in cdr["trace"])


def test_emergency_call_of_a_locked_user_reaches_the_trunk_with_number_and_address(node, sipp, trunks, pbx_user):
    user, phone, number = pbx_user(locked=True, outbound="internal")
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    assert sipp.caller(phone, "0301234567", expect=403).ok  # locked: nothing else goes out
    uas = sipp.callee(carrier, "answer")
    r = sipp.caller(phone, "112", hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(uas).ok
    invite = first_invite(received(uas))
    assert invite.startswith(f"INVITE sip:112@{CARRIER_IP}")
    assert f"<sip:{number}@" in invite
    assert "X-Callmanager-Location: Hauptstr. 1, 10115 Berlin, DE" in invite


def test_a_uk_emergency_call_goes_by_the_sites_route_with_its_location_by_value_and_no_timer_of_the_node(node, sipp, trunks, pbx_user, public):
    """TRK-04/08: 999 from a London site (locked user): the site's emergency trunk first (503 there), then the next, with
    a PIDF-LO body part the Geolocation header names; the dialog has no keep-alives and a week's lifetime; the CDR is
    marked emergency."""
    london = node.rpc("site.create", tenant_id=public["tenant"]["id"], name=f"London {time.monotonic_ns()}", region="GB",
                      area_code="20", street="Baker Street", house_number="221b", postal_code="NW1 6XE", city="London")
    user, phone, number = pbx_user(locked=True, site_id=london["id"])
    first, second = sipp.carrier(CARRIER_IP), sipp.carrier(CARRIER_IP)
    emergency_trunk = trunks(first, priority=9)  # last by priority, first for this site's emergency calls
    trunks(second, priority=1)
    node.rpc("site.update", id=london["id"], emergency_trunk_id=emergency_trunk["id"])
    wait_snapshot(node)
    failing = sipp.callee(first, "unavailable")
    uas = sipp.callee(second, "answer")
    call = sipp.caller_in_background(phone, "999", hold_ms=4000)
    dialog = wait_for(lambda: next((d for d in node.kamailio_rpc("dlg.list") or [] if d.get("state") == 4), None), timeout=10)
    variables = {k: v for x in dialog.get("variables", []) for k, v in x.items()}
    r = call.result(timeout=30)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(failing).ok and sipp.wait(uas).ok
    assert dialog["lifetime"] >= 7 * 86400 and not dialog["iflags"] & 0b110, dialog  # no keep-alives, no 12 h limit
    assert variables.get("cm_em") == "1"
    assert first_invite(received(failing)).startswith(f"INVITE sip:999@{CARRIER_IP}:{first.port}")
    text = received(uas)
    invite = text[text.index("INVITE sip:999@"):]
    invite = invite[:invite.index("\n\n-----") if "\n\n-----" in invite else len(invite)]
    assert f"<sip:{number}@" in invite
    cid = re.search(r"Geolocation: <cid:([^>]+)>", invite).group(1)
    assert "Geolocation-Routing: yes" in invite and "Content-Type: multipart/mixed;boundary=" in invite
    assert f"Content-ID: <{cid}>" in invite and "Content-Type: application/pidf+xml" in invite and "Content-Type: application/sdp" in invite
    assert "<ca:country>GB</ca:country>" in invite and "<ca:RD>Baker Street</ca:RD>" in invite and "<ca:HNO>221b</ca:HNO>" in invite
    assert "X-Callmanager-Location: Baker Street 221b, NW1 6XE London, GB" in invite
    cdr = wait_for(lambda: cdr_of(node, user["id"], "answered"), timeout=5)
    assert cdr["emergency"] is True and cdr["callee"] == "999"
    assert any("location sent by value" in t for t in cdr["trace"]), cdr["trace"]
    assert [c["id"] for c in node.rpc("cdr.list", emergency=True)["items"] if c["caller_user_id"] == user["id"]] == [cdr["id"]]


def test_a_phone_that_sends_urn_service_sos_reaches_the_emergency_number_of_its_site(node, sipp, trunks, pbx_user):
    """RFC 5031: a phone that knows it makes an emergency call sends the URN, not digits. Before, the node answered 416."""
    from tests.harness.raw_sip import DigestClient

    user, phone, number = pbx_user(locked=True)
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    uas = sipp.callee(carrier, "busy")  # the emergency centre's line is busy: the call ends with a final answer, cleanly
    client = DigestClient(node.sip, "127.0.0.1", timeout=5.0)
    try:
        first, second = client.attempt(phone.user, phone.domain, phone.password, method="INVITE", ruri="urn:service:sos")
    finally:
        client.close()
    assert first is not None and first.code == 407, first  # who calls must be known: the location comes from their site
    assert second is not None and second.code == 486, second
    assert sipp.wait(uas).ok
    invite = first_invite(received(uas))
    assert invite.startswith(f"INVITE sip:112@{CARRIER_IP}:{carrier.port}") and f"<sip:{number}@" in invite
    cdr = wait_for(lambda: cdr_of(node, user["id"], "busy"), timeout=5)
    assert cdr["emergency"] is True and any("urn:service:sos (RFC 5031)" in t for t in cdr["trace"]), cdr


def test_carrier_challenge_is_answered_with_the_trunk_credentials(node, sipp, pbx_user, public):
    user, phone, _ = pbx_user()
    carrier = sipp.carrier(CARRIER_IP)
    trunk = node.rpc("trunk.create", name=f"auth-carrier-{user['id']}", host=carrier.ip, port=carrier.port, priority=1,
                     tenant_ids=[public["tenant"]["id"]], auth_username="pbx-trunk-1", auth_password="s3cret-trunk")
    assert "auth_password" not in trunk and trunk["has_password"] is True  # never returned
    try:
        wait_snapshot(node)
        uas = sipp.carrier_with_auth(carrier, "pbx-trunk-1", "s3cret-trunk")
        r = sipp.caller(phone, "0891234567", hold_ms=300)
        assert r.ok, r.output[-2000:]
        assert sipp.wait(uas).ok  # the carrier verified the credentials and answered 200
        cdr = wait_for(lambda: cdr_of(node, user["id"], "answered"), timeout=5)
        assert any("answering its challenge as pbx-trunk-1" in t for t in cdr["trace"])
        assert not any("s3cret" in t for t in cdr["trace"])
    finally:
        node.rpc("trunk.delete", id=trunk["id"])
