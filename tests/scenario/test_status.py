"""Status and screening with real Kamailio: DND in Kamailio's shared memory, VIP ring-through, busy-on-busy."""
import time

from tests.scenario.conftest import wait_for, wait_snapshot
from tests.scenario.test_forwarding import ext_of


def test_dnd_set_through_the_api_is_live_and_a_vip_rings_through(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    vip_user, vip, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    node.rpc("caller_list.create", user_id=bob_user["id"], kind="vip", member_user_id=vip_user["id"])
    wait_snapshot(node)
    assert sipp.register(bob).ok
    result = node.rpc("user.set_status", id=bob_user["id"], status="dnd", message="in a meeting")
    assert result["live"] is True  # reached Kamailio's htable at once
    assert node.kamailio_rpc("htable.get", "status", f"u{bob_user['id']}")["item"]["value"] == "dnd"
    assert sipp.caller(alice, ext_of(node, bob_user), expect=486).ok
    dnd = wait_for(lambda: node.rpc("cdr.list", user_id=bob_user["id"], disposition="busy")["items"], timeout=5)
    assert any("is dnd" in t for t in dnd[0]["trace"])
    answer = sipp.callee(bob, "answer")
    assert sipp.caller(vip, ext_of(node, bob_user), hold_ms=300).ok  # the VIP rings through DND
    assert sipp.wait(answer).ok
    node.rpc("user.set_status", id=bob_user["id"], status="online")
    answer = sipp.callee(bob, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok
    assert sipp.wait(answer).ok


def test_status_is_repushed_after_a_restart_of_kamailio(node, pbx_user):
    """Kamailio keeps statuses in shared memory: after a restart the sync (every live_sync_interval_s) puts them back
    from the database — nobody sets the status again."""
    bob_user, _, _ = pbx_user()
    node.rpc("user.set_status", id=bob_user["id"], status="away")
    key = f"u{bob_user['id']}"

    def value():
        try:
            return node.kamailio_rpc("htable.get", "status", key)["item"]["value"]
        except Exception:  # noqa: BLE001 — not there (yet) or Kamailio still starting
            return None

    assert value() == "away"
    kamailio = node.component("kamailio")
    kamailio.stop()
    kamailio.start()
    assert wait_for(lambda: value() == "away", timeout=node.settings.live_sync_interval_s + 10)


def test_a_change_in_kamailio_is_not_undone_by_the_sync_while_kamailio_runs(node, pbx_user):
    """A phone's feature code changes Kamailio's shared memory at once and the database a moment later: the periodic
    sync must not put the database's older value back meanwhile (it pushes only after a restart or a failed push)."""
    bob_user, _, _ = pbx_user()
    node.rpc("user.set_status", id=bob_user["id"], status="dnd")
    key = f"u{bob_user['id']}"
    node.kamailio_rpc("htable.delete", "status", key)  # what *dnd off from the phone does in shared memory
    time.sleep(2 * node.settings.live_sync_interval_s + 1)
    try:
        left = node.kamailio_rpc("htable.get", "status", key)["item"]["value"]
    except Exception:  # noqa: BLE001 — Kamailio answers "not found"
        left = None
    assert left is None


def test_busy_on_busy_second_call_is_486_while_the_first_is_up(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    _, carol, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    node.rpc("user.update", id=bob_user["id"], call_waiting=False)
    wait_snapshot(node)
    assert sipp.register(bob).ok
    answer = sipp.callee(bob, "answer")
    first = sipp.caller_in_background(alice, ext_of(node, bob_user), hold_ms=4000)
    assert wait_for(lambda: [c for c in node.rpc("call.list")["items"] if c["callee_user_id"] == bob_user["id"] and c["state"] == "confirmed"], timeout=5)
    second = sipp.caller(carol, ext_of(node, bob_user), expect=486)
    assert second.ok, second.output[-2000:]
    busy = wait_for(lambda: node.rpc("cdr.list", user_id=bob_user["id"], disposition="busy")["items"], timeout=5)
    assert any("no call waiting" in t for t in busy[0]["trace"]), busy[0]["trace"]  # the node said busy, not the phone
    assert first.result(timeout=40).ok and sipp.wait(answer).ok
    time.sleep(0.5)
    answer = sipp.callee(bob, "answer")  # the first call is over: free again
    assert sipp.caller(carol, ext_of(node, bob_user), hold_ms=300).ok
    assert sipp.wait(answer).ok


def test_feature_codes_from_the_phone_dnd_and_forwarding(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    assert sipp.caller(bob, "*78", expect=603).ok  # DND on: answered at once
    assert node.kamailio_rpc("htable.get", "status", f"u{bob_user['id']}")["item"]["value"] == "dnd"
    assert sipp.caller(alice, ext_of(node, bob_user), expect=486).ok
    assert wait_for(lambda: node.rpc("user.get", id=bob_user["id"])["status"] == "dnd", timeout=5)  # kept by the control plane
    assert sipp.caller(bob, "*79", expect=603).ok
    # kept by the control plane too: until then its periodic re-push could bring the old DND back
    assert wait_for(lambda: node.rpc("user.get", id=bob_user["id"])["status"] == "online", timeout=5)
    assert sipp.caller(bob, "*21" + ext_of(node, carol_user), expect=603).ok  # forward everything to Carol
    rules = wait_for(lambda: node.rpc("forwarding.list", user_id=bob_user["id"])["items"], timeout=5)
    assert rules[0]["target_user_id"] == carol_user["id"] and rules[0]["source"] == "feature_code"
    wait_snapshot(node)
    answer = sipp.callee(carol, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok
    assert sipp.wait(answer).ok
    assert sipp.caller(bob, "*22", expect=603).ok
    assert wait_for(lambda: not node.rpc("forwarding.list", user_id=bob_user["id"])["items"], timeout=5)


def test_switching_a_profile_switches_status_and_its_forwarding(node, sipp, pbx_user):
    _, alice, _ = pbx_user()
    bob_user, bob, _ = pbx_user()
    carol_user, carol, _ = pbx_user()
    prof = node.rpc("profile.create", user_id=bob_user["id"], name="out of office", code=2, status="away")
    node.rpc("forwarding.create", user_id=bob_user["id"], kind="away", target_user_id=carol_user["id"], profile_id=prof["id"])
    wait_snapshot(node)
    assert sipp.register(bob).ok and sipp.register(carol).ok
    answer = sipp.callee(bob, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok  # no profile: Bob rings
    assert sipp.wait(answer).ok
    assert sipp.caller(bob, "*302", expect=603).ok  # from the phone: profile 2
    assert wait_for(lambda: node.rpc("user.get", id=bob_user["id"])["active_profile_id"] == prof["id"], timeout=5)
    wait_snapshot(node)
    answer = sipp.callee(carol, "answer")
    assert sipp.caller(alice, ext_of(node, bob_user), hold_ms=300).ok  # away, and the profile's rule sends it to Carol
    assert sipp.wait(answer).ok
    node.rpc("profile.activate", user_id=bob_user["id"], profile_id=0)
    assert node.rpc("user.get", id=bob_user["id"])["active_profile_id"] is None
