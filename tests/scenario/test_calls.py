"""A working node: register, call, media and CDR through real Kamailio + KEMI + RTPengine + SIPp."""
import time

import pytest

from controlplane.adapters.rtpengine_ng import NgClient
from tests.harness import raw_sip

from .conftest import cdrs_for, wait_for, wait_snapshot

pytestmark = pytest.mark.scenario


def last_cdr(node, user_id, disposition=None):
    items = node.rpc("cdr.list", user_id=user_id, disposition=disposition)["items"]
    return items[0] if items else None


@pytest.fixture
def pair(node, make_user, sipp):
    """Alice (caller) and Bob (callee, registered): (alice_user, alice, bob_user, bob_ext, bob)."""

    def make(transport="udp"):
        alice_user, _, alice = make_user(transport=transport)
        bob_user, bob_ext, bob = make_user(transport=transport)
        wait_snapshot(node)
        assert sipp.register(bob).ok
        return alice_user, alice, bob_user, bob_ext, bob

    return make


def busy_call(sipp, caller, callee, dial):
    proc = sipp.callee(callee, "busy")
    result = sipp.caller(caller, dial, expect=486)
    assert sipp.wait(proc).ok
    return result


def test_register_right_password_is_accepted_wrong_is_challenged_again_and_counted(node, make_user, sipp):
    _, _, phone = make_user()
    wait_snapshot(node)
    assert sipp.register(phone).ok
    aors = node.kamailio_rpc("ul.lookup", "location", f"{phone.user}@{phone.domain}")
    assert aors["AoR"] == f"{phone.user}@{phone.domain}"
    assert sipp.register(phone.with_password("wrong-password"), wrong=True).ok  # a new 401 after the wrong credentials
    count = node.kamailio_rpc("htable.get", "authfail", f"acct:{phone.user}@{phone.domain}")
    assert int(count["item"]["value"]) >= 1


def test_unknown_user_gets_the_same_challenge_as_a_wrong_password(node, tenant, sipp):
    ghost = sipp.phone("nobody", tenant["sip_domain"], "whatever-pw")
    assert sipp.register(ghost, wrong=True).ok


def test_answered_call_relays_media_both_ways_and_bye_ends_it_everywhere(node, pair, sipp):
    alice_user, alice, bob_user, bob_ext, bob = pair()
    callee = sipp.callee(bob, "answer")
    call_done = sipp.caller_in_background(alice, bob_ext, hold_ms=3000)
    live = wait_for(lambda: [c for c in node.rpc("call.list")["items"] if c["callee"] == bob_ext and c["state"] == "confirmed"], timeout=5)
    assert live, "the call is listed while it is up"
    call = live[0]
    assert call["caller_user_id"] == alice_user["id"] and call["callee_user_id"] == bob_user["id"]
    time.sleep(1.5)
    media = [c for c in node.rpc("call.list")["items"] if c["call_id"] == call["call_id"]][0]["media"]
    assert media["relayed"] and len(media["legs"]) == 2
    assert all(leg["packets"] > 0 for leg in media["legs"]), media  # both directions through RTPengine
    result = call_done.result(timeout=40)
    assert result.ok, result.output[-2000:]
    assert sipp.wait(callee).ok
    ng = NgClient("127.0.0.1", node.settings.rtpengine_ng_port)
    assert wait_for(lambda: call["call_id"] not in ng.list_calls(), timeout=3)
    assert wait_for(lambda: not [d for d in node.kamailio_rpc("dlg.list") or [] if d.get("call-id") == call["call_id"] and int(d.get("state", 0)) < 5], timeout=3)
    cdr = wait_for(lambda: cdrs_for(node, call["call_id"]), timeout=5)
    assert len(cdr) == 1
    assert cdr[0]["disposition"] == "answered" and cdr[0]["sip_code"] == 200
    assert cdr[0]["caller_user_id"] == alice_user["id"] and cdr[0]["callee_user_id"] == bob_user["id"]
    assert 2.5 <= cdr[0]["duration_s"] <= 8
    assert any("extension of user" in line for line in cdr[0]["trace"])


def test_busy_callee_486_is_passed_back_and_recorded(node, pair, sipp):
    _, alice, bob_user, bob_ext, bob = pair()
    assert busy_call(sipp, alice, bob, bob_ext).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "busy" and cdr["sip_code"] == 486


def test_no_answer_then_cancel_is_recorded_as_cancelled(node, pair, sipp):
    _, alice, bob_user, bob_ext, bob = pair()
    callee = sipp.callee(bob, "ring")
    r = sipp.caller(alice, bob_ext, expect="cancel", ring_ms=1000)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(callee).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "cancelled" and cdr["sip_code"] == 487


def test_unknown_extension_is_404(node, make_user, sipp):
    alice_user, _, alice = make_user()
    wait_snapshot(node)
    assert sipp.caller(alice, "999", expect=404).ok
    cdr = wait_for(lambda: last_cdr(node, alice_user["id"], "rejected"), timeout=5)
    assert cdr["callee"] == "999" and cdr["sip_code"] == 404


def test_known_but_unregistered_user_is_480(node, make_user, sipp):
    _, _, alice = make_user()
    bob_user, bob_ext, _ = make_user()
    wait_snapshot(node)
    assert sipp.caller(alice, bob_ext, expect=480).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "unavailable" and cdr["sip_code"] == 480


def test_config_change_through_the_api_routes_the_next_call_without_restart(node, pair, sipp):
    _, alice, bob_user, _, bob = pair()
    assert sipp.caller(alice, "77", expect=404).ok
    kamailio_pid = node.component("kamailio").proc.pid
    node.rpc("extension.create", number="77", user_id=bob_user["id"])
    time.sleep(1.0)  # "used by the next call within about one second"
    assert busy_call(sipp, alice, bob, "77").ok
    assert node.component("kamailio").proc.pid == kamailio_pid and node.component("kamailio").alive()


def test_control_plane_down_during_a_call_loses_no_cdr(node, pair, sipp):
    _, alice, bob_user, bob_ext, bob = pair()
    callee = sipp.callee(bob, "answer")
    call_done = sipp.caller_in_background(alice, bob_ext, hold_ms=3000)
    time.sleep(1.0)
    cp = node.component("controlplane")
    cp.stop()
    assert call_done.result(timeout=40).ok, "the call completes while the control plane is down"
    assert sipp.wait(callee).ok
    assert busy_call(sipp, alice, bob, bob_ext).ok  # routing goes on from the last snapshot
    cp.start()
    cdrs = wait_for(lambda: (lambda items: items if len(items) >= 2 else None)(node.rpc("cdr.list", user_id=bob_user["id"])["items"]), timeout=10)
    assert sorted(c["disposition"] for c in cdrs) == ["answered", "busy"]
    assert len({c["call_id"] for c in cdrs}) == 2  # one CDR per call, none duplicated


def test_phone_behind_nat_is_reached_at_its_real_address(node, make_user, sipp):
    _, _, alice = make_user()
    bob_user, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob, nat=True).ok  # Via/Contact say 127.0.0.99:5999, packets come from bob.port
    contact = node.kamailio_rpc("ul.lookup", "location", f"{bob.user}@{bob.domain}")["Contacts"][0]["Contact"]
    assert "127.0.0.99:5999" in contact["Address"]
    assert contact["Received"] == f"sip:127.0.0.1:{bob.port}"
    callee = sipp.callee(bob, "answer", contact="127.0.0.99:5999", sdp_ip="127.0.0.99")
    r = sipp.caller(alice, bob_ext, hold_ms=2000)
    assert r.ok, r.output[-2000:]  # INVITE reached the real port; the BYE found the callee too
    assert sipp.wait(callee).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "answered"


def test_register_and_call_over_tcp(node, pair, sipp):
    _, alice, bob_user, bob_ext, bob = pair(transport="tcp")
    contact = node.kamailio_rpc("ul.lookup", "location", f"{bob.user}@{bob.domain}")["Contacts"][0]["Contact"]
    assert contact["Socket"].startswith("tcp:")
    assert busy_call(sipp, alice, bob, bob_ext).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "busy"


def test_reinvite_in_the_call_goes_through_rtpengine(node, pair, sipp):
    _, alice, _, bob_ext, bob = pair()
    callee = sipp.callee(bob, "reinvite")
    r = sipp.caller(alice, bob_ext, expect="reinvite", hold_ms=500)
    assert r.ok, r.output[-2000:]  # the caller also checked a=recvonly in the answer to its hold re-INVITE
    assert sipp.wait(callee).ok
    text = callee.messages.read_text()
    ports = [int(line.split()[1]) for line in text.splitlines() if line.startswith("m=audio")]
    offered = ports[0::2]  # received INVITE, sent 200, received re-INVITE, sent 200
    rtp_range = range(node.settings.rtp_port_min, node.settings.rtp_port_max + 1)
    # both offers the callee saw name RTPengine's ports, not the caller's own (which moved in the
    # re-INVITE): the media stayed anchored in RTPengine through the re-INVITE
    assert len(offered) == 2 and all(p in rtp_range for p in offered), ports
    assert not {alice.media_port, alice.media_port + 2} & set(offered)


def test_max_forwards_exhausted_is_483(node):
    reply = raw_sip.send(node.sip, raw_sip.request("OPTIONS", "sip:201@scenario.example", max_forwards="0"))
    assert reply is not None and reply.startswith("SIP/2.0 483")


def test_malformed_request_is_400_and_the_node_keeps_serving(node):
    reply = raw_sip.send(node.sip, raw_sip.request("INVITE", "sip:201@scenario.example", cseq="abc INVITE"))
    assert reply is not None and reply.startswith("SIP/2.0 400"), reply  # answered, not dropped
    reply = raw_sip.send(node.sip, raw_sip.request("OPTIONS", f"sip:{node.sip[0]}:{node.sip[1]}"))
    assert reply is not None and reply.startswith("SIP/2.0 200")  # keep-alive to the server itself


def test_unserved_method_is_405_with_allow(node):
    reply = raw_sip.send(node.sip, raw_sip.request("PUBLISH", "sip:201@scenario.example", extra="Event: presence\r\n"))
    assert reply is not None and reply.startswith("SIP/2.0 405")
    assert "Allow: INVITE" in reply and "SUBSCRIBE" in reply
    # SUBSCRIBE is served for message waiting only: any other event package is 489 (RFC 6665) naming the one served
    reply = raw_sip.send(node.sip, raw_sip.request("SUBSCRIBE", "sip:201@scenario.example", extra="Event: presence\r\n"))
    assert reply is not None and reply.startswith("SIP/2.0 489")
    assert "Allow-Events: message-summary" in reply
