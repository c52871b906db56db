"""Every answered call ends (issue 17): a call whose BYE was lost ends through the in-dialog keep-alives, and its
record, its counts and its media session end with it. A node of its own with keep-alives every 30 s (the dialog module's minimum)."""
from __future__ import annotations

import time

import pytest

from controlplane.adapters.rtpengine_ng import NgClient
from tests.harness.node import TestNode
from tests.harness.raw_sip import EagerPhone
from tests.harness.sipp import Sipp

from .conftest import assert_clean_log, wait_for

DOMAIN = "lifetime.example"


@pytest.fixture(scope="module")
def life(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("lifetime") / "var", dialog_keepalive_s=30).start()
    tenant = n.rpc("tenant.create", name="Lifetime KG", sip_domain=DOMAIN)
    sipp = Sipp(n.sip, tmp_path_factory.mktemp("sipp"))
    users = []
    for i, ext in enumerate(("801", "802")):
        user = n.rpc("user.create", tenant_id=tenant["id"], name=f"Life {i}", call_waiting=False)
        n.rpc("sip_account.create", user_id=user["id"], username=f"life{i}", password=f"life-secret-{i}")
        n.rpc("extension.create", number=ext, user_id=user["id"])
        users.append((user, sipp.phone(f"life{i}", DOMAIN, f"life-secret-{i}")))
    time.sleep(1.0)
    yield n, sipp, users
    n.stop()
    assert_clean_log(n)


def test_a_call_whose_callee_lost_it_ends_by_the_keepalives_with_its_record_counts_and_media(life):
    node, sipp, ((caller, caller_phone), (callee, callee_phone)) = life
    assert sipp.register(callee_phone).ok
    phone = EagerPhone(callee_phone.port, callee_phone.media_port, timeout=120, answers=1, forget=True)
    started = time.monotonic()
    r = sipp.caller(caller_phone, "802", expect="ended", bye_within_ms=110000, auto_answer=True, timeout_s=120)
    took = time.monotonic() - started
    phone.wait(5)
    assert r.ok, r.output[-1500:]  # the node ended the call: a BYE reached the caller
    assert took < 100  # 2 keep-alives answered 481 (30 s apart, checked every 5 s) + 10 s: not 12 hours
    assert "OPTIONS" in phone.received  # the keep-alives reached the phone that had lost the call
    records = wait_for(lambda: [c for c in node.rpc("cdr.list", user_id=callee["id"])["items"] if c["disposition"] == "answered"], timeout=10)
    assert records and records[0]["trace"][-1].startswith("answered; dialog ended by the node")
    assert not node.kamailio_rpc("dlg.list")  # the dialog is gone
    busy = {i["name"]: i["value"] for slot in node.kamailio_rpc("htable.dump", "acdbusy") or [] for i in slot.get("slot", [])}
    assert not any(busy.values()), busy  # nobody stays counted on a call
    ng = NgClient(node.settings.rtpengine_address, node.settings.rtpengine_ng_port)
    assert wait_for(lambda: not ng.list_calls(), timeout=5)  # its media session was deleted


@pytest.mark.long  # a 40 s soak of keep-alives on a healthy call: the long tier (make test ARGS=--long)
def test_an_ordinary_call_is_not_ended_by_keepalives(life):
    node, sipp, ((caller, caller_phone), (callee, callee_phone)) = life
    assert sipp.register(callee_phone).ok
    earlier = {c["id"] for c in node.rpc("cdr.list", user_id=callee["id"])["items"]}
    uas = sipp.callee(callee_phone, "answer", timeout_s=70, auto_answer=True)
    r = sipp.caller(caller_phone, "802", hold_ms=40000, auto_answer=True, timeout_s=70)  # a keep-alive round, answered
    assert r.ok, r.output[-1500:]
    assert sipp.wait(uas, 20).ok
    records = wait_for(lambda: [c for c in node.rpc("cdr.list", user_id=callee["id"])["items"] if c["id"] not in earlier], timeout=10)
    assert records and records[0]["duration_s"] >= 39
    assert records and records[0]["trace"][-1] == "answered; dialog ended"


def test_a_call_with_a_session_timer_lives_as_long_as_its_session_expires_says(life):
    """RFC 4028: Session-Expires 300 in the INVITE — without a refresh the node ends the call after 300 + 32 s
    (the dialog's lifetime), instead of the node's call limit."""
    from controlplane.services.fraud_monitor import end_request
    from tests.harness.raw_sip import DigestClient

    node, sipp, ((caller, caller_phone), (callee, callee_phone)) = life
    assert sipp.register(callee_phone).ok
    phone = EagerPhone(callee_phone.port, callee_phone.media_port, timeout=30, answers=1)
    client = DigestClient(node.sip, "127.0.0.1", timeout=5.0)
    client.extra_headers = "Session-Expires: 300;refresher=uac\r\nSupported: timer\r\n"
    _, final = client.attempt(caller_phone.user, DOMAIN, caller_phone.password, method="INVITE", dial="802")
    assert final is not None and final.code == 200
    def answered():  # this call's dialog (answered, no ACK yet); one of an earlier test may still be winding down
        return [x for x in node.kamailio_rpc("dlg.list") or [] if x.get("state") == 3]

    [d] = wait_for(answered, timeout=5)
    assert d["lifetime"] == 332
    node.kamailio_rpc("htable.sets", *end_request(f"{d['h_entry']}:{d['h_id']}", d, "test over"))
    assert wait_for(lambda: not [x for x in node.kamailio_rpc("dlg.list") or [] if x["h_id"] == d["h_id"] and x["state"] < 5], timeout=10)
    client.close()
    phone.wait(5)
