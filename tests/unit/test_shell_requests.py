"""The request route's stages on a fake KSR (tests/harness/fake_ksr.py): what a request gets back before any call is
routed — the RPC listener, sanity, hop counts, CANCEL, pings and a draining node."""
import os
import tempfile

import pytest

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from kemi import contract as shm  # noqa: E402
from kemi.shell import routes  # noqa: E402


@pytest.fixture
def request_in():
    ksr = shared()

    def make(method="INVITE", ruri_user="202", to_tag="", local_port=5060, **pv):
        ksr.pv_values.update({"$rm": method, "$rU": ruri_user, "$rd": "acme.example", "$fU": "201", "$fd": "acme.example",
                              "$tU": ruri_user, "$td": "acme.example", "$tt": to_tag or None, "$si": "192.0.2.10", "$sp": 5060,
                              "$Rp": local_port, "$ci": "call-1", "$ua": "Yealink", "$rz": "sip", "$pr": "udp", **pv})
        routes.request_route()
        return ksr
    return make


def replies(ksr):
    return [args for name, args in ksr.calls if name == "sl.send_reply"]


def test_sip_on_the_rpc_listener_is_dropped_without_a_word(request_in):
    ksr = request_in(local_port=routes.SETTINGS.rpc_port)
    assert "set_drop" in ksr.names() and replies(ksr) == []


def test_a_request_the_sanity_checks_refuse_is_left_to_their_answer(request_in):
    shared().returns["sanity.sanity_check"] = -1
    ksr = request_in()
    assert "set_drop" in ksr.names() and replies(ksr) == []
    assert any(name == "notice" and "sanity checks" in args[0] for name, args in ksr.calls)


def test_a_request_out_of_hops_gets_483(request_in):
    shared().returns["maxfwd.process_maxfwd"] = -1
    assert replies(request_in()) == [(483, "Too Many Hops")]


def test_a_cancel_matching_no_transaction_gets_481(request_in):
    shared().returns["tm.t_check_trans"] = -1
    assert replies(request_in(method="CANCEL")) == [(481, "Call/Transaction Does Not Exist")]


def test_a_cancel_of_a_transaction_releases_its_media_and_is_relayed(request_in):
    ksr = request_in(method="CANCEL")
    assert ("rtpengine.rtpengine_manage", ("",)) in ksr.calls and "tm.t_relay" in ksr.names()


def test_a_ping_to_the_node_is_answered_and_a_draining_node_says_so(request_in):
    assert replies(request_in(method="OPTIONS", ruri_user="")) == [(200, "OK")]
    ksr = shared()
    ksr.htables[shm.NODE.name] = {shm.DRAIN: "1"}
    ksr = request_in(method="OPTIONS", ruri_user="")
    assert [code for code, _ in replies(ksr)] == [503]
    assert any(name == "hdr.append_to_reply" and args[0].startswith("Retry-After:") for name, args in ksr.calls)


def test_a_draining_node_refuses_a_new_call_with_503_and_takes_no_further_step(request_in):
    ksr = shared()
    ksr.htables[shm.NODE.name] = {shm.DRAIN: "1"}
    ksr.returns.update({"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1})  # a new request, not a retransmission
    ksr = request_in(method="INVITE", ruri_user="202")
    assert [code for code, _ in replies(ksr)] == [503]
    assert "auth.pv_auth_check" not in ksr.names() and "tm.t_relay" not in ksr.names()


def test_an_ack_matching_no_dialog_is_absorbed(request_in):
    shared().returns.update({"rr.loose_route": -1, "tm.t_check_trans": -1})
    ksr = request_in(method="ACK", to_tag="t1")
    assert replies(ksr) == [] and "tm.t_relay" not in ksr.names()


def test_a_method_the_node_does_not_serve_gets_405_with_allow(request_in):
    shared().returns["tm.t_check_trans"] = -1
    shared().returns["tmx.t_precheck_trans"] = -1
    ksr = request_in(method="PUBLISH")
    assert replies(ksr) == [(405, "Method Not Allowed")]
    assert any(name == "hdr.append_to_reply" and args[0].startswith("Allow: INVITE") for name, args in ksr.calls)
