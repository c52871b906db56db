"""Forwarding and backup routing with real Kamailio, RTPengine and SIPp (short timeouts)."""
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.scenario.conftest import CARRIER_IP, wait_for, wait_snapshot


def cdr_of(node, user_id, disposition=None):
    items = node.rpc("cdr.list", user_id=user_id)["items"]
    items = [c for c in items if disposition is None or c["disposition"] == disposition]
    return items[0] if items else None


def forward(node, user, kind, **target):
    return node.rpc("forwarding.create", user_id=user["id"], kind=kind, **target)


def test_unconditional_forwarding_rings_the_target_not_the_user(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    forward(node, bob_user, "unconditional", target_user_id=carol_user["id"])
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    callee = sipp.callee(carol, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(callee).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert any(f"to user {carol_user['id']}" in t for t in cdr["trace"])


def test_busy_forwarding(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    forward(node, bob_user, "busy", target_user_id=carol_user["id"])
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    busy = sipp.callee(bob, "busy")
    answer = sipp.callee(carol, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(busy).ok and sipp.wait(answer).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert any("486" in t and "busy, forwarding" in t for t in cdr["trace"]), cdr["trace"]


def test_no_answer_forwarding_after_the_configured_seconds(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    forward(node, bob_user, "no_answer", target_user_id=carol_user["id"], timeout_s=2)
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    ringing = sipp.callee(bob, "ring")  # rings and never answers: gets a CANCEL when the 2 s are over
    answer = sipp.callee(carol, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(ringing).ok and sipp.wait(answer).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert any("no_answer, forwarding" in t for t in cdr["trace"]), cdr["trace"]


def test_backup_routing_to_a_mobile_when_no_device_is_registered(node, sipp, trunks, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, _, bob_number = pbx_user()  # never registers
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    forward(node, bob_user, "unreachable", target_number="0151 12345678", present="forwarder")
    wait_snapshot(node)
    uas = sipp.callee(carrier, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(uas).ok
    invite = uas.messages.read_text(errors="replace")
    assert "INVITE sip:+4915112345678@" in invite and f"<sip:{bob_number}@" in invite  # B presented, as configured


def test_backup_routing_when_the_registered_device_does_not_respond(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    forward(node, bob_user, "unreachable", target_user_id=carol_user["id"])
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok  # bob's phone is registered, then gone (nothing listens)
    answer = sipp.callee(carol, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500, timeout_s=60)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer, timeout_s=60).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert any("unreachable, forwarding" in t for t in cdr["trace"]), cdr["trace"]


def test_holiday_rule_forwards_on_a_closed_date(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    today = datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()
    plan = node.rpc("time_plan.create", tenant_id=public["tenant"]["id"], name=f"open-{bob_user['id']}",
                    ranges=[{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}],
                    closed_dates=[today])  # the date injected as a holiday: the plan is closed all day today
    forward(node, bob_user, "unconditional", target_user_id=carol_user["id"], time_plan_id=plan["id"], when="outside")
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    answer = sipp.callee(carol, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok
    assert sipp.wait(answer).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert any("holiday or closed date" in t for t in cdr["trace"]), cdr["trace"]


def test_parallel_devices_the_others_hear_completed_elsewhere_and_one_cdr(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, desk, _ = pbx_user()
    password = "pw-second-device"
    node.rpc("sip_account.create", user_id=bob_user["id"], username=desk.user + "m", password=password)
    mobile_app = sipp.phone(desk.user + "m", desk.domain, password)
    wait_snapshot(node)
    assert sipp.register(desk).ok and sipp.register(mobile_app).ok
    ringing = sipp.callee(mobile_app, "ring")
    answering = sipp.callee(desk, "answer")
    r = sipp.caller(alice, ext_of(node, bob_user), hold_ms=500)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answering).ok and sipp.wait(ringing).ok
    cancel = ringing.messages.read_text(errors="replace")
    assert "CANCEL sip:" in cancel and "Call completed elsewhere" in cancel
    cdrs = wait_for(lambda: node.rpc("cdr.list", user_id=bob_user["id"])["items"], timeout=5)
    assert [c["disposition"] for c in cdrs] == ["answered"]  # no missed call for the other device


def ext_of(node, user):
    return node.rpc("extension.list", user_id=user["id"])["items"][0]["number"]


def test_route_simulate_and_the_live_call_take_the_same_decision(node, sipp, pbx_user):
    alice_user, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    forward(node, bob_user, "busy", target_user_id=carol_user["id"], callers="internal")
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    simulated = node.rpc("route.simulate", caller_user_id=alice_user["id"], dialled=ext_of(node, bob_user))
    busy = sipp.callee(bob, "busy")
    answer = sipp.callee(carol, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok
    assert sipp.wait(busy).ok and sipp.wait(answer).ok
    cdr = wait_for(lambda: cdr_of(node, bob_user["id"], "answered"), timeout=5)
    assert cdr["trace"][:len(simulated["trace"])] == simulated["trace"]  # same rules considered, same outcome
    assert simulated["decision"]["on_busy"]["user_id"] == carol_user["id"]
