"""The KEMI shell's call handling on a fake KSR (tests/harness/fake_ksr.py): what the shell asks of Kamailio for each
transition the policy returns. Fast and exact about the calls made; the real Kamailio judges the whole path in
tests/scenario/."""
import os
import tempfile

import pytest

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from kemi.contract import AVP_CALL, AVP_RANG, DLG_CALL, END_REQUESTS, OFFERS, QUEUE, QUEUE_WAITING  # noqa: E402
from kemi.policy.callstate import CallRecord, CallState, Forwarding, GroupOffer, QueuePlace, TrunkLeg  # noqa: E402
from kemi.policy.decision import GroupStep, RouteToUser, TrunkHop  # noqa: E402
from kemi.shell import calls, routes  # noqa: E402
from tests.unit.test_group_routing import Floor, snap_with  # noqa: E402

BOB = RouteToUser(1, 2, ("sip:bob@acme.example",))


class Spool:
    def __init__(self):
        self.records = []

    def put(self, record):
        self.records.append(record)
        return "spool"


class Snapshots:
    def __init__(self, snapshot):
        self.snapshot = snapshot

    def get(self):
        return self.snapshot


@pytest.fixture
def shell(monkeypatch):
    shared()
    spool = Spool()
    monkeypatch.setattr(calls, "SPOOL", spool)
    monkeypatch.setattr(calls, "SNAPSHOTS", Snapshots(snap_with(overflow={"target_user": 2})))
    monkeypatch.setattr(calls, "LIVE", Floor())
    return spool


def on_transaction(state: CallState, code=0, reason="", rang=False):
    KSR.pv_values[f"$avp({AVP_CALL})"] = state.to_json()
    KSR.pv_values["$T_reply_code"] = code
    KSR.pv_values["$T_reply_reason"] = reason
    if rang:
        KSR.pv_values[f"$avp({AVP_RANG})"] = "1000.5"
    KSR.returns["tm.t_is_canceled"] = -1


def stored() -> CallState:
    return CallState.from_json(KSR.avp(AVP_CALL))


def fresh(**kw) -> CallState:
    return CallState(CallRecord("cdr-1", "c1", 1000.0, 1, "201", 1, "202", 2), ("dialled 202",), **kw)


def test_busy_leads_to_a_new_branch_towards_the_forwarding_target(shell):
    on_transaction(fresh(forwarding=Forwarding(busy=BOB)), 486, "Busy Here")
    routes.failure_route()
    assert ("registrar.lookup_uri", ("location", "sip:bob@acme.example")) in KSR.calls
    names = KSR.names()
    assert names.index("tm.t_on_failure") < names.index("tm.t_relay")  # armed before it leaves
    state = stored()
    assert state.forwarding is None and state.trace[-1] == "486 Busy Here: busy, forwarding"
    assert KSR.dlg_var(DLG_CALL) == KSR.avp(AVP_CALL)  # the dialog carries the same state
    assert shell.records == []  # the call goes on: no record yet


def test_a_forwarding_target_without_a_device_ends_the_call_with_its_record(shell):
    on_transaction(fresh(forwarding=Forwarding(busy=BOB)), 486, "Busy Here")
    KSR.returns["registrar.lookup_uri"] = -1
    routes.failure_route()
    assert "tm.t_relay" not in KSR.names() and "rtpengine.rtpengine_delete0" in KSR.names()
    [record] = shell.records
    assert (record["sip_code"], record["disposition"]) == (486, "busy")
    assert record["trace"][-2:] == ["forwarding target has no registered device", "final reply 486 Busy Here"]


def test_a_trunk_whose_relay_fails_is_passed_over_and_the_call_ends_503(shell):
    leg = TrunkLeg("a", (TrunkHop("b", "sip:+4930@b"), TrunkHop("c", "sip:+4930@c")))
    on_transaction(fresh(trunk=leg), 503, "Service Unavailable")
    KSR.returns["tm.t_relay"] = -1
    routes.failure_route()
    assert [a for n, a in KSR.calls if n == "tm.t_relay"] == [(), ()]  # b, then c
    assert KSR.pv_values["$ru"] == "sip:+4930@c"
    [record] = shell.records
    assert record["sip_code"] == 503 and record["sip_reason"] == "relay failed"
    assert "503 relay failed from the trunk: failing over to trunk c" in record["trace"]


def test_a_cancelled_group_call_releases_its_offers_and_is_recorded_cancelled(shell):
    KSR.htables[OFFERS.name] = {"u10": 1, "u11": 1}
    state = fresh(group=GroupOffer(7, (GroupStep(((12, ("sip:agent2@acme.example",)),), 10),)), claimed=(10, 11))
    on_transaction(state, 487, "Request Terminated")
    KSR.returns["tm.t_is_canceled"] = 1
    routes.failure_route()
    assert KSR.htables[OFFERS.name] == {"u10": 0, "u11": 0}
    [record] = shell.records
    assert record["disposition"] == "cancelled" and record["trace"][-1].endswith("(caller cancelled)")


def test_an_unanswered_step_rings_the_next_member(shell):
    KSR.htables[OFFERS.name] = {"u10": 1}
    state = fresh(group=GroupOffer(7, (GroupStep(((11, ("sip:agent1@acme.example",)),), 10),), ((10, ("sip:agent0@acme.example",)),)),
                  claimed=(10,))
    on_transaction(state, 408, "Request Timeout", rang=True)
    routes.failure_route()
    assert KSR.htables[OFFERS.name] == {"u10": 0, "u11": 1}  # the first let go, the next one claimed
    assert ("tm.t_set_fr", (10000, calls.SETTINGS.device_timeout_ms)) in KSR.calls
    assert "tm.t_relay" in KSR.names()
    state = stored()
    assert state.claimed == (11,) and state.group.offered == ((11, ("sip:agent1@acme.example",)),)


def test_a_waiting_call_whose_time_is_up_leaves_the_queue_and_overflows(shell):
    KSR.htables[QUEUE.name] = {"g7:3:4": "0:950:1000", "n:g7": 1, QUEUE_WAITING: 1}
    on_transaction(fresh(queue=QueuePlace(7, 0, 950.0, 1000.0, 1, True, "g7:3:4")), 408, "Request Timeout")
    routes.failure_route()
    assert KSR.htables[QUEUE.name] == {"n:g7": 0, QUEUE_WAITING: 0}
    assert ("registrar.lookup_uri", ("location", "sip:bob@acme.example")) in KSR.calls  # the overflow target: user 2
    assert "tm.t_relay" in KSR.names()


def test_no_call_state_no_record_but_the_media_goes(shell):
    KSR.pv_values["$T_reply_code"] = 404
    routes.failure_route()
    assert "rtpengine.rtpengine_delete0" in KSR.names() and shell.records == []


def test_the_first_ring_is_remembered_for_the_no_answer_case(shell):
    KSR.pv_values.update({"$rs": 180, "$bf": 0, "$cT": ""})
    routes.branch_reply_route()
    assert float(KSR.avp(AVP_RANG)) > 0


def test_requests_to_end_calls_are_each_taken_once_and_unreadable_ones_dropped_with_a_warning(shell):
    KSR.htables[END_REQUESTS.name] = {"1:2": '["c1", "ft", "tt", "spend limit"]', "3:4": "not json"}
    KSR.returns["dialog.dlg_get"] = 1
    KSR.pv_values["$shtinc(cmended=>$dlg(h_entry):$dlg(h_id))"] = 1
    calls.end_requested_calls()
    assert KSR.htables[END_REQUESTS.name] == {}
    assert ("dialog.dlg_get", ("c1", "ft", "tt")) in KSR.calls and ("dialog.dlg_bye", ("all",)) in KSR.calls
    assert any(n == "warn" and "unreadable" in a[0] for n, a in KSR.calls)


def test_an_unreadable_call_state_is_logged_counted_and_the_reply_goes_back(shell):
    KSR.pv_values[f"$avp({AVP_CALL})"] = '{"t": "call", "f": [{"t": "record", "f": [1]}], "v": 2}'
    KSR.pv_values["$T_reply_code"] = 486
    routes.failure_route()
    assert "rtpengine.rtpengine_delete0" in KSR.names() and "tm.t_relay" not in KSR.names() and shell.records == []
    assert any(name == "warn" and "call state unreadable" in args[0] for name, args in KSR.calls)
    assert KSR.htables["cmerr"]["call_state"] == 1

