"""Calls to and from the public network: trunks, numbers, caller ID, barring, emergency (no Kamailio)."""
from hypothesis import given, settings, strategies as st

from kemi.policy.decision import Reject, RouteToTrunk, RouteToUser
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.numbering import DestClass
from kemi.policy.routing import decide_initial, should_fail_over
from tests.unit.test_routing import snapshot

CARRIER_A, CARRIER_B = "198.51.100.7", "198.51.100.8"


def public_snapshot(alice=None, tenant=None, trunks=None, extra_users=(), numbers_extra=(), **kw):
    users = [
        {"id": 1, "tenant_id": 1, "name": "Alice", "extension": "201", "aors": ["sip:alice@acme.example"], "number": "+49301234501",
         "region": "DE", "area_code": "30", "address": "Hauptstr. 1, 10115 Berlin, DE", "outbound": "international", **(alice or {})},
        {"id": 2, "tenant_id": 1, "name": "Bob", "extension": "202", "aors": ["sip:bob@acme.example"], "number": "+49301234502"},
        {"id": 3, "tenant_id": 2, "name": "Olga", "extension": "202", "aors": ["sip:olga@other.example"]},
    ]
    tenants = [{"id": 1, "name": "Acme", "domain": "acme.example", **(tenant or {})}, {"id": 2, "name": "Other", "domain": "other.example"}]
    if trunks is None:
        trunks = [
            {"id": 1, "name": "carrier-a", "host": CARRIER_A, "port": 5060, "transport": "udp", "priority": 1, "sources": [CARRIER_A]},
            {"id": 2, "name": "carrier-b", "host": CARRIER_B, "port": 5070, "transport": "tcp", "priority": 2, "sources": [CARRIER_B]},
        ]
    numbers = [{"e164": "+49301234501", "tenant_id": 1, "user_id": 1}, {"e164": "+49301234502", "tenant_id": 1, "user_id": 2},
               {"e164": "+49301234599", "tenant_id": 1, "user_id": None}]
    extensions = [{"tenant_id": 1, "number": "201", "user_id": 1}, {"tenant_id": 1, "number": "202", "user_id": 2},
                  {"tenant_id": 2, "number": "202", "user_id": 3}] + [{"tenant_id": u["tenant_id"], "number": u["extension"], "user_id": u["id"]}
                                                                     for u in extra_users]
    return snapshot(users=users + list(extra_users), tenants=tenants, trunks=trunks, numbers=numbers + list(numbers_extra),
                    extensions=extensions, **kw)


def call(dialled, snap, src="192.0.2.10", auth=AuthResult.OK, from_user="alice"):
    facts = RequestFacts("INVITE", dialled, "acme.example", from_user, "acme.example", dialled, "acme.example", src, 5060, "c1",
                         "alice" if auth is AuthResult.OK else "", "acme.example" if auth is AuthResult.OK else "", auth)
    return decide_initial(facts, snap)


def test_external_call_goes_to_the_trunks_in_priority_order_with_the_users_number():
    d = call("030 9876543", public_snapshot())
    a = d.action
    assert isinstance(a, RouteToTrunk)
    assert a.target == "+49309876543" and d.callee.number == "+49309876543"
    assert [h.name for h in a.hops] == ["carrier-a", "carrier-b"]
    assert a.hops[0].uri == f"sip:+49309876543@{CARRIER_A}:5060;transport=udp"
    assert a.caller_number == "+49301234501" and not a.privacy
    assert any("destination class local" in t for t in d.trace)


def test_clir_per_user_and_per_call_prefix():
    assert call("0309876543", public_snapshot(alice={"clir": True})).action.privacy
    d = call("*310309876543", public_snapshot())
    assert d.action.privacy and d.action.target == "+49309876543"


def test_clip_no_screening_number_is_presented():
    d = call("0309876543", public_snapshot(alice={"presented_number": "+498001234567"}))
    assert d.action.caller_number == "+498001234567"


def test_barred_range_is_403_with_a_reason():
    d = call("0900 1234567", public_snapshot())
    assert isinstance(d.action, Reject) and d.action.code == 403 and "0900" in d.action.warning


def test_directory_only_where_enabled():
    assert call("11880", public_snapshot()).action.code == 403
    assert call("11880", public_snapshot(tenant={"allow_directory": True})).action.code == 403  # directory is a special class
    assert isinstance(call("11880", public_snapshot(alice={"outbound": "special"}, tenant={"allow_directory": True})).action, RouteToTrunk)


def test_outbound_permission_class():
    d = call("0044 20 7946 0958", public_snapshot(alice={"outbound": "national"}))
    assert d.action.code == 403 and "europe calls are not permitted" in d.action.warning
    assert isinstance(call("0044 20 7946 0958", public_snapshot(alice={"outbound": "europe"})).action, RouteToTrunk)
    d = call("001 212 555 0123", public_snapshot(alice={"outbound": "europe"}))  # zone 2 needs international
    assert d.action.code == 403 and "international calls are not permitted" in d.action.warning
    assert isinstance(call("0151 12345678", public_snapshot(alice={"outbound": "mobile"})).action, RouteToTrunk)
    assert call("030 9876543", public_snapshot(alice={"outbound": "internal"})).action.code == 403


def test_locked_user_cannot_call_out_but_can_call_emergency():
    snap = public_snapshot(alice={"locked": True, "outbound": "internal"})
    assert call("030 9876543", snap).action.code == 403
    e = call("112", snap).action
    assert isinstance(e, RouteToTrunk) and e.emergency and e.target == "112"
    assert e.caller_number == "+49301234501" and e.location == "Hauptstr. 1, 10115 Berlin, DE"


def test_own_public_number_is_connected_internally():
    d = call("030 1234502", public_snapshot())
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2


def test_incomplete_number_is_484_and_unknown_word_404():
    assert call("0", public_snapshot()).action.code == 484
    assert call("bob", public_snapshot()).action.code == 404


def test_no_trunk_is_503():
    assert call("030 9876543", public_snapshot(trunks=[])).action.code == 503


def test_dial_plan_rewrites_before_reading():
    snap = public_snapshot(tenant={"dialplan": [{"pattern": r"0(0\d+)", "replacement": r"\1"}]})
    d = call("00309876543", snap)  # outside-line 0, then 030...
    assert d.action.target == "+49309876543" and any("dial plan rule" in t for t in d.trace)


def test_trunk_restricted_by_tenant_and_prefix():
    trunks = [{"id": 1, "name": "mobile-only", "host": CARRIER_A, "port": 5060, "transport": "udp", "priority": 1, "prefixes": ["+4915"]},
              {"id": 2, "name": "other-tenant", "host": CARRIER_B, "port": 5060, "transport": "udp", "priority": 0, "tenant_ids": [2]}]
    snap = public_snapshot(trunks=trunks)
    assert [h.name for h in call("0151 12345678", snap).action.hops] == ["mobile-only"]
    assert call("030 9876543", snap).action.code == 503


def test_call_from_a_trunk_is_routed_by_the_dialled_number():
    snap = public_snapshot()
    for did in ("+49301234502", "49301234502", "0301234502"):
        d = call(did, snap, src=CARRIER_A, auth=AuthResult.NONE, from_user="0891234567")
        assert isinstance(d.action, RouteToUser) and d.action.user_id == 2, did
        assert d.caller.number == "+49891234567" and d.caller.trunk == "carrier-a"


def test_call_from_a_trunk_to_an_unassigned_number_is_404_and_unrouted_number_too():
    snap = public_snapshot()
    assert call("+49301234577", snap, src=CARRIER_A, auth=AuthResult.NONE).action.code == 404
    assert call("+49301234599", snap, src=CARRIER_A, auth=AuthResult.NONE).action.code == 404


def test_unknown_source_without_credentials_is_challenged_not_routed():
    d = call("+49301234502", public_snapshot(), src="203.0.113.9", auth=AuthResult.NONE)
    assert d.action.__class__.__name__ == "Challenge"


def test_failover_codes():
    assert should_fail_over(503, False) and should_fail_over(408, False) and should_fail_over(500, False)
    assert not should_fail_over(486, False) and not should_fail_over(404, False) and not should_fail_over(503, True)


user_states = st.fixed_dictionaries({
    "locked": st.booleans(), "clir": st.booleans(), "outbound": st.sampled_from([c.value for c in DestClass]),
    "area_code": st.sampled_from(["", "30", "89"]),
})


@settings(max_examples=60, deadline=None)
@given(user_states, st.sampled_from(["110", "112"]))
def test_emergency_calls_are_always_routed(state, number):
    d = call(number, public_snapshot(alice=state))
    assert isinstance(d.action, RouteToTrunk) and d.action.emergency and d.action.target == number
    assert not d.action.privacy  # the emergency centre always sees the number


@settings(max_examples=60, deadline=None)
@given(user_states, st.sampled_from(["0900 1234567", "01013 89123456", "0118 80", "012 3456789"]), st.booleans())
def test_barred_ranges_are_never_routed(state, dialled, directory):
    d = call(dialled, public_snapshot(alice=state, tenant={"allow_directory": directory}))
    if "118" in dialled and directory and not state["locked"] and state["outbound"] == "special":
        assert isinstance(d.action, RouteToTrunk)
    else:
        assert isinstance(d.action, Reject) and d.action.code in (403, 404)


def test_a_carrier_challenge_is_answered_once_per_trunk_and_only_with_credentials():
    from kemi.policy.routing import trunk_credentials

    trunks = [{"id": 1, "name": "a", "host": CARRIER_A, "port": 5060, "transport": "udp", "priority": 1,
               "auth": {"username": "pbx", "password": "pw", "realm": ""}},
              {"id": 2, "name": "b", "host": CARRIER_B, "port": 5060, "transport": "udp", "priority": 2}]
    snap = public_snapshot(trunks=trunks)
    assert trunk_credentials(snap, "a", None) == ("pbx", "pw", "")
    assert trunk_credentials(snap, "a", "a") is None  # answered already: the second challenge is a refusal
    assert trunk_credentials(snap, "b", None) is None and trunk_credentials(snap, "gone", None) is None
    assert "pw" not in repr(snap.trunks[0])
