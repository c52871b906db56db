"""The straight paths of the ordinary messages (kemi/shell/ordinary.py) do what the general request route does:
every REGISTER, ACK and BYE below goes through the request route twice on the fake KSR — straight path off, then on — from the same
state, and both runs must make the same Kamailio calls with the same arguments, in the same order, and leave the
same flags and shared-memory tables behind. Each case also says which path the straight one must have taken."""
import dataclasses
import os
import tempfile

import pytest

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from kemi import contract as shm  # noqa: E402
from kemi.policy.auth import ha1  # noqa: E402
from kemi.policy.snapshot import parse_snapshot  # noqa: E402
from kemi.shell import calls, ids, ordinary, routes  # noqa: E402
from kemi.shell.runtime import EDGE  # noqa: E402

NOW = 1_800_000_000.5
DOC = {
    "format": 1, "version": 3, "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example"}],
    "accounts": [{"username": u, "realm": "acme.example", "ha1": ha1(u, "acme.example", "pw"), "user_id": i, "tenant_id": 1,
                  **({"allowed": ["198.51.100.0/24"]} if u == "carol" else {}), **({"tls": True} if u == "dave" else {})}
                 for i, u in ((1, "alice"), (2, "bob"), (3, "carol"), (4, "dave"))],
    "users": [{"id": i, "tenant_id": 1, "name": u, "extension": e, "aors": [f"sip:{u}@acme.example"]}
              for i, u, e in ((1, "alice", "201"), (2, "bob", "202"), (3, "carol", "203"), (4, "dave", "204"))],
    "extensions": [{"tenant_id": 1, "number": e, "user_id": i}
                   for i, e in ((1, "201"), (2, "202"), (3, "203"), (4, "204"))],
    "trunks": [{"id": 1, "name": "carrier", "host": "203.0.113.5", "port": 5060, "transport": "udp", "priority": 1,
                "sources": ["203.0.113.5"]}],
    "trusted": ["198.18.7.0/24"],
}
REG = {"$rm": "REGISTER", "$rU": None, "$rd": "acme.example", "$fU": "alice", "$fd": "acme.example", "$tU": "alice",
       "$td": "acme.example", "$tt": None, "$si": "192.0.2.10", "$sp": 5060, "$Rp": 5060, "$ua": "Yealink", "$rz": "sip",
       "$pr": "udp", "$ci": "reg-1", "$au": None, "$ar": None}
CREDS = {"$au": "alice", "$ar": "acme.example"}
ORDINARY = {"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1}

# name: (message values, KSR return codes, htable items before, the path the straight one takes)
CASES = {
    "challenged": ({}, {}, {}, "straight"),
    "saved": (CREDS, {"auth.pv_auth_check": 1}, {}, "straight"),
    "an agent's device saved": ({**CREDS, "$au": "bob", "$fU": "bob", "$tU": "bob"}, {"auth.pv_auth_check": 1}, {}, "straight"),
    "wrong password": (CREDS, {"auth.pv_auth_check": -2}, {}, "straight"),
    "stale nonce": (CREDS, {"auth.pv_auth_check": -4}, {}, "straight"),
    "unknown account": ({**CREDS, "$au": "mallory"}, {"auth.pv_auth_check": -2}, {}, "straight"),
    "unknown domain": ({"$td": "elsewhere.example"}, {}, {}, "straight"),
    "upper-case domain": ({**CREDS, "$td": "ACME.example", "$ar": "Acme.Example"}, {"auth.pv_auth_check": 1}, {}, "straight"),
    "from behind a NAT": (CREDS, {"auth.pv_auth_check": 1, "nathelper.nat_uac_test": 1}, {}, "straight"),
    "an extension it cannot do": ({**CREDS, "$(hdr(Require)[*])": "gruu"}, {"auth.pv_auth_check": 1}, {}, "straight"),
    "not saved": (CREDS, {"auth.pv_auth_check": 1, "registrar.save": -1}, {}, "straight"),
    "a retransmission": (CREDS, {"tmx.t_precheck_trans": 1}, {}, "straight"),
    "a retransmission, tm has it": (CREDS, {"tm.t_check_trans": 0}, {}, "straight"),
    "refused by the sanity checks": ({}, {"sanity.sanity_check": -1}, {}, "straight"),
    "out of hops": ({}, {"maxfwd.process_maxfwd": -1}, {}, "straight"),
    "from a banned source": ({}, {}, {shm.BAN.name: {"192.0.2.10": "flood:1800000600"}}, "straight"),
    "from a scanner": ({"$ua": "friendly-scanner"}, {}, {}, "straight"),
    "a cooled-down account": (CREDS, {"auth.pv_auth_check": 1},
                              {shm.AUTHLOCK.name: {"until:alice@acme.example": "1800000900"}}, "straight"),
    "a cool-down that ended": (CREDS, {"auth.pv_auth_check": 1},
                               {shm.AUTHLOCK.name: {"until:alice@acme.example": "1700000000"}}, "straight"),
    "outside the account's networks": ({**CREDS, "$au": "carol", "$fU": "carol", "$tU": "carol"}, {"auth.pv_auth_check": 1}, {},
                                       "straight"),
    "inside the account's networks": ({**CREDS, "$au": "carol", "$fU": "carol", "$tU": "carol", "$si": "198.51.100.7"},
                                      {"auth.pv_auth_check": 1}, {}, "straight"),
    "over TCP": ({**CREDS, "$pr": "tcp", "$cl": "0"}, {"auth.pv_auth_check": 1}, {}, "straight"),
    "over TLS": ({**CREDS, "$pr": "tls", "$cl": "0"}, {"auth.pv_auth_check": 1}, {}, "straight"),
    "over TLS from behind a NAT": ({**CREDS, "$pr": "tls", "$cl": "0"},
                                   {"auth.pv_auth_check": 1, "nathelper.nat_uac_test": 1}, {}, "straight"),
    "over TCP without a Content-Length": ({**CREDS, "$pr": "tcp"}, {"auth.pv_auth_check": 1}, {}, "general"),
    "over a WebSocket": ({**CREDS, "$pr": "ws", "$cl": "0"}, {"auth.pv_auth_check": 1}, {}, "general"),
    "a TLS-only account over UDP": ({**CREDS, "$au": "dave", "$fU": "dave", "$tU": "dave"}, {"auth.pv_auth_check": 1},
                                    {}, "straight"),
    "a TLS-only account over TLS": ({**CREDS, "$au": "dave", "$fU": "dave", "$tU": "dave", "$pr": "tls", "$cl": "0"},
                                    {"auth.pv_auth_check": 1}, {}, "straight"),
    "with a To tag": ({**CREDS, "$tt": "abc"}, {"auth.pv_auth_check": 1}, {}, "general"),
    "a sips: URI": ({**CREDS, "$rz": "sips"}, {"auth.pv_auth_check": 1}, {}, "general"),
    "while draining": (CREDS, {"auth.pv_auth_check": 1}, {shm.NODE.name: {shm.DRAIN: "1"}}, "general"),
}
# The first INVITE of a call, without credentials: challenged on its straight path when its source needs credentials.
INVITE = {"$rm": "INVITE", "$rU": "202", "$tU": "202", "$ci": "call-1"}
CASES.update({
    "an INVITE challenged": (INVITE, {}, {}, "straight"),
    "an INVITE from another domain challenged": ({**INVITE, "$fd": "Elsewhere.Example"}, {}, {}, "straight"),
    "an INVITE from behind a NAT challenged": (INVITE, {"nathelper.nat_uac_test": 1}, {}, "straight"),
    "an INVITE retransmitted": (INVITE, {"tmx.t_precheck_trans": 1}, {}, "straight"),
    "an INVITE refused by the sanity checks": (INVITE, {"sanity.sanity_check": -1}, {}, "straight"),
    "an INVITE out of hops": (INVITE, {"maxfwd.process_maxfwd": -1}, {}, "straight"),
    "an INVITE from a banned source": (INVITE, {}, {shm.BAN.name: {"192.0.2.10": "flood:1800000600"}}, "straight"),
    "an INVITE from a scanner": ({**INVITE, "$ua": "sipvicious"}, {}, {}, "straight"),
    "an INVITE from the carrier's trunk": ({**INVITE, "$si": "203.0.113.5", "$rU": "+4930123"}, {}, {}, "general"),
    "an INVITE from a trusted source": ({**INVITE, "$si": "198.18.7.9"}, {}, {}, "general"),
    "an INVITE over TCP": ({**INVITE, "$pr": "tcp", "$cl": "0"}, {}, {}, "straight"),
    "an INVITE over TCP without a Content-Length": ({**INVITE, "$pr": "tcp"}, {}, {}, "general"),
    "an INVITE while draining": (INVITE, {}, {shm.NODE.name: {shm.DRAIN: "1"}}, "general"),
})
# The first INVITE of a call with credentials: authenticated, decided and routed on its straight path.
CALL = {**INVITE, **CREDS}
OK = {"auth.pv_auth_check": 1}
CASES.update({
    "a call to a user": (CALL, OK, {}, "straight"),
    "a call to a user from behind a NAT": (CALL, {**OK, "nathelper.nat_uac_test": 1}, {}, "straight"),
    "a call to a user with a session timer": ({**CALL, "$hdr(Session-Expires)": "1800;refresher=uac"}, OK, {},
                                              "straight"),
    "a call to a user without a device": (CALL, {**OK, "registrar.lookup_uri": -1}, {}, "straight"),
    "a call to an unknown extension": ({**CALL, "$rU": "299", "$tU": "299"}, OK, {}, "straight"),
    "a call out through the trunk": ({**CALL, "$rU": "004930123456", "$tU": "004930123456"}, OK, {}, "straight"),
    "a call to this node's address": ({**CALL, "$rd": "127.0.0.1"}, OK, {}, "straight"),
    "a call to another domain": ({**CALL, "$rd": "elsewhere.example"}, {**OK, "is_myself_ruri": -1}, {}, "straight"),
    "a call with a wrong password": (CALL, {"auth.pv_auth_check": -2}, {}, "straight"),
    "a call with a stale nonce": (CALL, {"auth.pv_auth_check": -4}, {}, "straight"),
    "a call from an unknown account": ({**CALL, "$au": "mallory"}, {"auth.pv_auth_check": -2}, {}, "straight"),
    "a call with credentials of another realm": ({**CALL, "$ar": "Elsewhere.Example"}, {"auth.pv_auth_check": -2},
                                                 {}, "straight"),
    "a call retransmitted": (CALL, {**OK, "tmx.t_precheck_trans": 1}, {}, "straight"),
    "a call refused by the sanity checks": (CALL, {"sanity.sanity_check": -1}, {}, "straight"),
    "a call from a banned source": (CALL, OK, {shm.BAN.name: {"192.0.2.10": "flood:1800000600"}}, "straight"),
    "a call from a cooled-down account": (CALL, OK, {shm.AUTHLOCK.name: {"until:alice@acme.example": "1800000900"}},
                                          "straight"),
    "a call outside the account's networks": ({**CALL, "$au": "carol", "$fU": "carol"}, OK, {}, "straight"),
    "a call to a user in do-not-disturb": (CALL, OK, {shm.STATUS.name: {"u2": "dnd"}}, "straight"),
    "a call over TCP": ({**CALL, "$pr": "tcp", "$cl": "0"}, OK, {}, "straight"),
    "a call over TLS": ({**CALL, "$pr": "tls", "$cl": "0"}, OK, {}, "straight"),
    "a call over TLS offering SRTP": ({**CALL, "$pr": "tls", "$cl": "200", "$cT": "application/sdp",
                                      "$rb": "v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                                             "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"}, OK, {}, "straight"),
    "a call from a TLS-only account over UDP": ({**CALL, "$au": "dave", "$fU": "dave"}, OK, {}, "straight"),
    "a call from a TLS-only account over TLS": ({**CALL, "$au": "dave", "$fU": "dave", "$pr": "tls", "$cl": "0"}, OK, {},
                                                "straight"),
    "a call over a WebSocket": ({**CALL, "$pr": "ws", "$cl": "0"}, OK, {}, "general"),
    "a call while draining": (CALL, OK, {shm.NODE.name: {shm.DRAIN: "1"}}, "general"),
    "a call with a sips: URI": ({**CALL, "$rz": "sips"}, OK, {}, "general"),
})
DIALOG = {"$rU": "202", "$tU": "202", "$tt": "tag-b", "$ci": "call-1"}
IN_DIALOG = {"rr.loose_route": 1}
CASES.update({
    "ACK": ({**DIALOG, "$rm": "ACK"}, IN_DIALOG, {}, "straight"),
    "ACK of a call out (fraud listing)": ({**DIALOG, "$rm": "ACK", f"$dlg_var({shm.DLG_FRAUD})": "1:2:mobile:0.2", "$dlg(h_entry)": 7, "$dlg(h_id)": 9, f"$dlg_var({shm.DLG_ANSWER})": "1800000000.1/1800000000.0", "$dlg(state)": 4},
                                          IN_DIALOG, {}, "straight"),
    "ACK with SDP": ({**DIALOG, "$rm": "ACK", "$cT": "Application/SDP"}, IN_DIALOG, {}, "straight"),
    "ACK from behind a NAT": ({**DIALOG, "$rm": "ACK"}, {**IN_DIALOG, "nathelper.nat_uac_test": 1}, {}, "straight"),
    "ACK not relayed": ({**DIALOG, "$rm": "ACK"}, {**IN_DIALOG, "tm.t_relay": -1}, {}, "straight"),
    "ACK of a negative reply": ({**DIALOG, "$rm": "ACK"}, {"rr.loose_route": -1, "tm.t_check_trans": 1}, {}, "straight"),
    "ACK matching nothing": ({**DIALOG, "$rm": "ACK"}, {"rr.loose_route": -1}, {}, "straight"),
    "BYE": ({**DIALOG, "$rm": "BYE"}, IN_DIALOG, {}, "straight"),
    "BYE from behind a NAT": ({**DIALOG, "$rm": "BYE"}, {**IN_DIALOG, "nathelper.nat_uac_test": 1}, {}, "straight"),
    "BYE matching no dialog": ({**DIALOG, "$rm": "BYE"}, {"rr.loose_route": -1}, {}, "straight"),
    "BYE refused by the sanity checks": ({**DIALOG, "$rm": "BYE"}, {"sanity.sanity_check": -1}, {}, "straight"),
    "BYE out of hops": ({**DIALOG, "$rm": "BYE"}, {**IN_DIALOG, "maxfwd.process_maxfwd": -1}, {}, "straight"),
    "BYE from a banned source": ({**DIALOG, "$rm": "BYE"}, IN_DIALOG, {shm.BAN.name: {"192.0.2.10": "flood:1800000600"}}, "straight"),
    "BYE over TCP": ({**DIALOG, "$rm": "BYE", "$pr": "tcp", "$cl": "0"}, IN_DIALOG, {}, "straight"),
    "ACK over TLS": ({**DIALOG, "$rm": "ACK", "$pr": "tls", "$cl": "0"}, IN_DIALOG, {}, "straight"),
    "BYE over TCP without a Content-Length": ({**DIALOG, "$rm": "BYE", "$pr": "tcp"}, IN_DIALOG, {}, "general"),
    "BYE over a WebSocket": ({**DIALOG, "$rm": "BYE", "$pr": "ws", "$cl": "0"}, IN_DIALOG, {}, "general"),
    "a re-INVITE": ({**DIALOG, "$rm": "INVITE"}, IN_DIALOG, {}, "general"),
    "an ACK without a To tag": ({**DIALOG, "$rm": "ACK", "$tt": None}, IN_DIALOG, {}, "general"),
})


@pytest.fixture
def node(monkeypatch):
    class Snapshots:
        snapshot = dataclasses.replace(parse_snapshot(DOC), agents=frozenset({2}))

        def get(self):
            return self.snapshot

    class Spool:
        def __init__(self):
            self.kinds = []

        def put(self, record):
            self.kinds.append(record.get("kind"))
            return "spool"

    monkeypatch.setattr(routes, "SNAPSHOTS", Snapshots())
    spool = Spool()
    monkeypatch.setattr(EDGE, "spool", spool)
    assert EDGE.s.enabled  # the edge's verdicts are part of what is compared
    import time
    monkeypatch.setattr(time, "time", lambda: NOW)
    taken = []
    monkeypatch.setattr(ids, "record_id", lambda: "00000000-0000-4000-8000-000000000001")
    monkeypatch.setattr(calls, "SPOOL", spool)

    def noted(straight):
        """The straight path, noting when it took the request."""
        def run(*args):
            done = straight(*args)
            if straight is straight_in_dialog:
                taken.append("general" if done == ordinary.NOT_MINE else "straight")
            elif done:
                taken.append("straight")
            return done
        return run

    straight_in_dialog = ordinary.in_dialog
    for name in ("register", "challenge", "call", "in_dialog"):
        monkeypatch.setattr(ordinary, name, noted(getattr(ordinary, name)))
    yield spool, taken
    ordinary.ENABLED[0] = True


def run(pv, returns, tables, enabled, spool):
    ksr = shared()
    ksr.returns.update({**ORDINARY, **returns})
    for table, items in tables.items():
        ksr.htables[table] = dict(items)
    EDGE._exempt, EDGE._version, EDGE._agents, EDGE._previous, EDGE._previous_index = {}, -1, {}, {}, -1
    spool.kinds.clear()
    ordinary.ENABLED[0] = enabled
    ksr.pv_values.update({**REG, **pv})
    routes.request_route()
    return (list(ksr.calls), set(ksr.flags), {t: dict(v) for t, v in ksr.htables.items()}, list(spool.kinds),
            dict(ksr.pv_values))  # the last: what was assigned (the call's state on the transaction and dialog)


def case_calls(spool, case: str) -> list:
    """The Kamailio calls the request route makes for a case, straight paths on."""
    pv, returns, tables, _ = CASES[case]
    return run(pv, returns, tables, True, spool)[0]


def case_names(spool, case: str) -> list[str]:
    return [n for n, _ in case_calls(spool, case)]


@pytest.mark.parametrize("case", CASES)
def test_the_straight_path_does_what_the_general_path_does(node, case):
    spool, taken = node
    pv, returns, tables, path = CASES[case]
    general = run(pv, returns, tables, False, spool)
    taken.clear()
    straight = run(pv, returns, tables, True, spool)
    assert taken == [path]
    assert straight[0] == general[0]  # Kamailio calls, with their arguments, in order
    assert straight[1:] == general[1:]  # flags, shared-memory tables, events and records, assignments
    assert general[0], "the request got no Kamailio call at all"


def test_the_cases_cover_every_way_out_of_a_register(node):
    """The comparison is only worth what it covers: each answer a REGISTER can get appears in the cases."""
    spool, _ = node
    seen = set()
    for pv, returns, tables, _ in CASES.values():
        calls = run(pv, returns, tables, True, spool)[0]
        names = [n for n, _ in calls]
        seen |= {n for n in names if n in ("auth.auth_challenge", "registrar.save", "sl.send_reply", "set_drop",
                                           "sl.sl_reply_error", "setbflag", "notice")}
        seen |= {f"reply {a[0]}" for n, a in calls if n == "sl.send_reply"}
        seen |= {"agent marked" for n, a in calls if n == "registrar.registered_uri"}
    assert {"auth.auth_challenge", "registrar.save", "set_drop", "sl.sl_reply_error", "setbflag", "notice", "reply 403",
            "reply 420", "reply 483", "agent marked"} <= seen, seen


def test_the_cases_reach_what_they_are_named_after(node):
    spool, _ = node

    def names(case):
        pv, returns, tables, _ = CASES[case]
        return [n for n, _ in run(pv, returns, tables, True, spool)[0]]

    assert names("from a banned source")[-1:] == ["set_drop"] and "auth.auth_challenge" not in names("from a banned source")
    assert "set_drop" in names("a cooled-down account") or "auth.auth_challenge" in names("a cooled-down account")
    assert "registrar.save" not in names("a cooled-down account") and "registrar.save" in names("a cool-down that ended")
    assert "registrar.save" not in names("outside the account's networks")
    assert "registrar.save" in names("inside the account's networks")
    assert "nathelper.fix_nated_register" in names("from behind a NAT")


def test_the_invite_cases_reach_what_they_are_named_after(node):
    spool, _ = node

    def calls(case):
        pv, returns, tables, _ = CASES[case]
        return run(pv, returns, tables, True, spool)[0]

    assert calls("an INVITE challenged")[-1] == ("auth.auth_challenge", ("acme.example", 1))
    assert calls("an INVITE from another domain challenged")[-1] == ("auth.auth_challenge", ("elsewhere.example", 1))
    assert "nathelper.set_contact_alias" in [n for n, _ in calls("an INVITE from behind a NAT challenged")]
    for case in ("an INVITE from a banned source", "an INVITE from a scanner"):
        assert calls(case)[-1][0] == "set_drop"
    for case in ("an INVITE from the carrier's trunk", "an INVITE from a trusted source"):
        assert "auth.auth_challenge" not in [n for n, _ in calls(case)]


def test_the_call_cases_reach_what_they_are_named_after(node):
    spool, _ = node

    def calls(case):
        return case_calls(spool, case)

    def names(case):
        return case_names(spool, case)

    relayed = "tm.t_relay"
    for case in ("a call to a user", "a call to a user from behind a NAT", "a call to a user with a session timer",
                 "a call out through the trunk", "a call to this node's address"):
        assert relayed in names(case) and "rtpengine.rtpengine_manage" in names(case), case
    pv, returns, tables, _ = CASES["a call to a user with a session timer"]
    assert run(pv, returns, tables, True, spool)[4].get(f"$avp({shm.AVP_DIALOG_TIMEOUT})") == 1800 + 32
    pv, returns, tables, _ = CASES["a call out through the trunk"]
    assert "sip:+4930123456@203.0.113.5:5060" in run(pv, returns, tables, True, spool)[4].get("$ru", "")
    for case, code in (("a call to an unknown extension", 404), ("a call to a user without a device", 480),
                       ("a call outside the account's networks", None), ("a call with a wrong password", None)):
        got = calls(case)
        assert relayed not in [n for n, _ in got], case
        if code is not None:
            assert any(n == "sl.send_reply" and a[0] == code for n, a in got), (case, got)
    assert names("a call with a wrong password")[-1] == "auth.auth_challenge"
    assert names("a call from a banned source")[-1] == "set_drop"
    assert relayed not in names("a call from a cooled-down account")


def test_the_stream_transport_cases_reach_what_they_are_named_after(node):
    """TCP and TLS take the straight paths with their transport: the TLS-only account's rule sees it, a phone on a
    connection is not pinged with OPTIONS, a call over TLS offering SRTP keeps its plan for the branch offers."""
    spool, _ = node

    def calls(case):
        return case_calls(spool, case)

    def names(case):
        return case_names(spool, case)

    refused = calls("a TLS-only account over UDP")
    assert any(n == "sl.send_reply" and a[0] == 403 for n, a in refused) and "registrar.save" not in names(
        "a TLS-only account over UDP")
    assert "registrar.save" in names("a TLS-only account over TLS") and "registrar.save" in names("over TLS")
    nated = calls("over TLS from behind a NAT")
    assert ("setbflag", (6,)) in nated and ("setbflag", (7,)) not in nated  # NATed, but its connection keeps itself
    assert ("setbflag", (7,)) in calls("from behind a NAT")  # over UDP: pinged
    assert "tm.t_relay" in names("a call from a TLS-only account over TLS")
    assert "tm.t_relay" not in names("a call from a TLS-only account over UDP")
    srtp = calls("a call over TLS offering SRTP")
    assert "tm.t_relay" in [n for n, _ in srtp] and ("tm.t_on_branch", ) in [(n,) for n, _ in srtp]
    for case in ("over TCP without a Content-Length", "an INVITE over TCP without a Content-Length"):
        assert any(n == "sl.send_reply" and a[0] == 400 for n, a in calls(case)), case
