"""A working node: register, call, media and CDR through real Kamailio + KEMI + RTPengine + SIPp."""
import re
import time

import pytest

from .conftest import cdrs_for, wait_for, wait_snapshot

pytestmark = pytest.mark.scenario


def last_cdr(node, user_id, disposition=None):
    items = node.rpc("cdr.list", user_id=user_id, disposition=disposition)["items"]
    return items[0] if items else None


def test_register_right_password_is_accepted_wrong_is_challenged_again_and_counted(node, make_user, sipp):
    _, _, phone = make_user()
    wait_snapshot(node)
    assert sipp.register(phone).ok
    aors = node.kamailio_rpc("ul.lookup", "location", f"{phone.user}@{phone.domain}")
    assert aors["AoR"] == f"{phone.user}@{phone.domain}"
    bad = type(phone)(phone.user, phone.domain, "wrong-password", phone.port, phone.media_port)
    assert sipp.register(bad, wrong=True).ok  # a new 401 after the wrong credentials
    count = node.kamailio_rpc("htable.get", "authfail", f"acct:{phone.user}@{phone.domain}")
    assert int(count["item"]["value"]) >= 1


def test_unknown_user_gets_the_same_challenge_as_a_wrong_password(node, tenant, sipp):
    ghost = sipp.phone("nobody", tenant["sip_domain"], "whatever-pw")
    assert sipp.register(ghost, wrong=True).ok


def test_answered_call_relays_media_both_ways_and_bye_ends_it_everywhere(node, make_user, sipp):
    alice_user, _, alice = make_user()
    bob_user, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
    callee = sipp.callee(bob, "answer")
    import threading

    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", sipp.caller(alice, bob_ext, hold_ms=3000)))
    t.start()
    live = wait_for(lambda: [c for c in node.rpc("call.list")["items"] if c["callee"] == bob_ext and c["state"] == "confirmed"], timeout=5)
    assert live, "the call is listed while it is up"
    call = live[0]
    assert call["caller"] != "" and call["callee_user_id"] == bob_user["id"]
    time.sleep(1.5)
    media = node.rpc("call.list")["items"][0]["media"]
    assert media["relayed"] and len(media["legs"]) == 2
    assert all(leg["packets"] > 0 for leg in media["legs"]), media  # both directions through RTPengine
    t.join(40)
    assert box["r"].ok, box["r"].output[-2000:]
    assert sipp.wait(callee).ok
    from controlplane.adapters.rtpengine_ng import NgClient

    ng = NgClient("127.0.0.1", node.settings.rtpengine_ng_port)
    assert wait_for(lambda: call["call_id"] not in ng.list_calls(), timeout=3)
    assert wait_for(lambda: not [d for d in node.kamailio_rpc("dlg.list") or [] if d.get("call-id") == call["call_id"] and int(d.get("state", 0)) < 5], timeout=3)
    cdr = wait_for(lambda: cdrs_for(node, call["call_id"]), timeout=5)
    assert len(cdr) == 1
    assert cdr[0]["disposition"] == "answered" and cdr[0]["sip_code"] == 200
    assert cdr[0]["caller_user_id"] == alice_user["id"] and cdr[0]["callee_user_id"] == bob_user["id"]
    assert 2.5 <= cdr[0]["duration_s"] <= 8
    assert any("extension of user" in line for line in cdr[0]["trace"])


def test_busy_callee_486_is_passed_back_and_recorded(node, make_user, sipp):
    _, _, alice = make_user()
    bob_user, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
    callee = sipp.callee(bob, "busy")
    assert sipp.caller(alice, bob_ext, expect=486).ok
    assert sipp.wait(callee).ok
    cdr = wait_for(lambda: last_cdr(node, bob_user["id"]), timeout=5)
    assert cdr["disposition"] == "busy" and cdr["sip_code"] == 486


def test_no_answer_then_cancel_is_recorded_as_cancelled(node, make_user, sipp):
    _, _, alice = make_user()
    bob_user, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
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


def test_config_change_through_the_api_routes_the_next_call_without_restart(node, make_user, sipp):
    _, _, alice = make_user()
    bob_user, _, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
    assert sipp.caller(alice, "77", expect=404).ok
    kamailio_pid = node.component("kamailio").proc.pid
    node.rpc("extension.create", number="77", user_id=bob_user["id"])
    time.sleep(1.0)  # "used by the next call within about one second"
    callee = sipp.callee(bob, "busy")
    assert sipp.caller(alice, "77", expect=486).ok
    assert sipp.wait(callee).ok
    assert node.component("kamailio").proc.pid == kamailio_pid and node.component("kamailio").alive()


def test_control_plane_down_during_a_call_loses_no_cdr(node, make_user, sipp):
    import threading

    _, _, alice = make_user()
    bob_user, bob_ext, bob = make_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok
    callee = sipp.callee(bob, "answer")
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", sipp.caller(alice, bob_ext, hold_ms=3000)))
    t.start()
    time.sleep(1.0)
    cp = node.component("controlplane")
    cp.stop()
    t.join(40)
    assert box["r"].ok, "the call completes while the control plane is down"
    assert sipp.wait(callee).ok
    # routing continues on the last snapshot while the control plane is down
    callee2 = sipp.callee(bob, "busy")
    assert sipp.caller(alice, bob_ext, expect=486).ok
    assert sipp.wait(callee2).ok
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
