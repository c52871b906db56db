"""A cluster node's shell on a fake KSR (tests/harness/fake_ksr.py): the Path a registration carries, a call a peer
relays through this node on a phone's Path, and the in-dialog requests of such a leg (kemi/policy/cluster.py; the
whole path against real Kamailio nodes: tests/scenario/test_cluster_path.py)."""
import dataclasses
import os
import tempfile

import pytest

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from kemi.policy.auth import ha1  # noqa: E402
from kemi.policy.snapshot import parse_snapshot  # noqa: E402
from kemi.shell import routes  # noqa: E402

PEER = "198.18.1.6"
DOC = {
    "format": 1, "version": 3, "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example"}],
    "accounts": [{"username": "alice", "realm": "acme.example", "ha1": ha1("alice", "acme.example", "pw"), "user_id": 1,
                  "tenant_id": 1}],
    "users": [{"id": 1, "tenant_id": 1, "name": "alice", "extension": "201", "aors": ["sip:alice@acme.example"]}],
    "extensions": [{"tenant_id": 1, "number": "201", "user_id": 1}],
}


@pytest.fixture
def cluster(monkeypatch):
    class Snapshots:
        snapshot = parse_snapshot(DOC)

        def get(self):
            return self.snapshot

    monkeypatch.setattr(routes, "SNAPSHOTS", Snapshots())
    monkeypatch.setattr(routes, "SETTINGS", dataclasses.replace(routes.SETTINGS, dmq_port=5090,
                                                                dmq_sources=frozenset({PEER})))
    ksr = shared()

    def request(method="REGISTER", **pv):
        ksr.pv_values.update({"$rm": method, "$rU": None if method == "REGISTER" else "201", "$rd": "acme.example",
                              "$fU": "alice", "$fd": "acme.example", "$tU": "alice", "$td": "acme.example", "$tt": None,
                              "$si": "192.0.2.10", "$sp": 40000, "$Rp": 5060, "$Ri": "198.18.1.5", "$ci": "c-1",
                              "$ua": "Yealink", "$rz": "sip", "$pr": "udp", "$au": "alice", "$ar": "acme.example", **pv})
        routes.request_route()
        return ksr

    ksr.returns.update({"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1,
                        "auth.pv_auth_check": 1, "hdr.is_present": -1})
    return ksr, request


def appended(ksr):
    return [a[0] for n, a in ksr.calls if n == "hdr.append"]


def test_a_phone_behind_a_nat_is_registered_with_this_node_s_path(cluster):
    ksr, request = cluster
    ksr.returns["nathelper.nat_uac_test"] = 1
    request()
    assert appended(ksr) == ["Path: <sip:198.18.1.5:5060;lr;received=sip:192.0.2.10:40000>\r\n"]
    names = ksr.names()
    assert names.index("hdr.append") < names.index("textopsx.msg_apply_changes") < names.index("registrar.save")


def test_a_phone_on_a_connection_is_registered_with_this_node_s_path(cluster):
    ksr, request = cluster
    request(**{"$pr": "tcp", "$cl": "0"})
    assert appended(ksr) == ["Path: <sip:198.18.1.5:5060;lr;received=sip:192.0.2.10:40000%3Btransport%3Dtcp>\r\n"]


def test_a_phone_any_node_can_reach_is_registered_without_a_path(cluster):
    ksr, request = cluster
    request()
    assert appended(ksr) == [] and "textopsx.msg_apply_changes" not in ksr.names() and "registrar.save" in ksr.names()


def test_a_path_the_phone_sent_is_removed(cluster):
    ksr, request = cluster
    ksr.returns["hdr.is_present"] = 1
    request()
    names = ksr.names()
    assert ("hdr.remove", ("Path",)) in ksr.calls
    assert names.index("hdr.remove") < names.index("textopsx.msg_apply_changes") < names.index("registrar.save")


def test_a_call_a_peer_sends_on_a_path_is_relayed_without_a_challenge(cluster):
    ksr, request = cluster
    ksr.returns["rr.loose_route"] = -3  # rr's RR_PRELOADED: the Route named this node, nothing follows
    request("INVITE", **{"$si": PEER, "$au": None, "$ar": None})
    names = ksr.names()
    assert ("rr.add_rr_param", (";cmpeer=1",)) in ksr.calls and "rr.record_route" in names
    assert ("tm.t_on_reply", ("ksr_peer_reply",)) in ksr.calls and names[-1] == "tm.t_relay"
    assert "auth.auth_challenge" not in names and "rtpengine.rtpengine_manage" not in names
    assert "sanity.sanity_check" not in names  # the peer checked it; nothing of this node's decisions runs


def test_a_peer_s_request_without_a_route_to_this_node_is_handled_as_any_other(cluster):
    ksr, request = cluster
    ksr.returns["rr.loose_route"] = -1
    request("INVITE", **{"$si": PEER, "$au": None, "$ar": None})
    assert "tm.t_relay" not in ksr.names()


def test_a_new_request_from_elsewhere_with_a_route_is_not_relayed_for_it(cluster):
    ksr, request = cluster
    ksr.returns["rr.loose_route"] = -3
    request("INVITE", **{"$au": None, "$ar": None})  # a phone, not a peer
    assert "rr.add_rr_param" not in ksr.names() and ("auth.auth_challenge", ("acme.example", 1)) in ksr.calls


def test_in_dialog_requests_of_a_leg_relayed_for_a_peer_are_only_relayed(cluster):
    ksr, request = cluster
    ksr.returns.update({"rr.loose_route": 1, "rr.check_route_param": 1})
    request("BYE", **{"$tt": "b-tag", "$si": PEER})
    names = ksr.names()
    assert names[-1] == "tm.t_relay" and "nathelper.handle_ruri_alias" in names
    assert "rtpengine.rtpengine_manage" not in names and "rtpengine.rtpengine_delete" not in names


def test_in_dialog_the_alias_gives_way_to_a_next_hop(cluster):
    """A node whose loose_route left a Route beyond it (the peer holding the phone) sends there, not to the alias."""
    ksr, request = cluster
    ksr.returns.update({"rr.loose_route": 1, "rr.check_route_param": -1})
    request("BYE", **{"$tt": "b-tag", "$du": "sip:198.18.1.6:5060;lr"})
    assert "nathelper.handle_ruri_alias" not in ksr.names() and ksr.names()[-1] == "tm.t_relay"
    ksr2 = shared()
    ksr2.returns.update({"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1,
                         "rr.loose_route": 1, "rr.check_route_param": -1})
    request("BYE", **{"$tt": "b-tag"})
    assert "nathelper.handle_ruri_alias" in ksr2.names()


def test_a_peer_back_after_a_partition_makes_the_node_ask_every_peer_for_what_it_missed(cluster, monkeypatch):
    """The control plane sets NODE=>resync when a DMQ peer is active again; the node's timer takes it and asks for
    everything (dmq_usrloc's and htable's sync requests), once."""
    from kemi import contract as shm

    ksr, _ = cluster
    monkeypatch.setattr(routes, "_TICKS", [routes.END_CHECK_TICKS - 1])

    def ticks(n):
        for _ in range(n):
            routes.acd_timer()

    ticks(1)
    assert "dmq.bcast_message" not in ksr.names()  # nothing asked for: no peer came back
    ksr.htables.setdefault(shm.NODE.name, {})["resync"] = 1
    ticks(routes.END_CHECK_TICKS)
    asked = [a for n, a in ksr.calls if n == "dmq.bcast_message"]
    assert asked == [("usrloc", '{"action":3}', "application/json"), ("htable", '{"action":1}', "application/json")]
    assert "resync" not in ksr.htables[shm.NODE.name]
    ticks(routes.END_CHECK_TICKS)
    assert len([n for n, _ in ksr.calls if n == "dmq.bcast_message"]) == 2  # once per request of the control plane
