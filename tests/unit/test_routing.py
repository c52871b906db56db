"""The routing decision, tested without Kamailio."""
from hypothesis import given, strategies as st

from kemi.policy.auth import ha1, ha1_for_check
from kemi.policy.decision import Challenge, Register, Reject, RouteToUser
from kemi.policy.features import FeatureCode
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.snapshot import parse_snapshot


def snapshot(**kw):
    doc = {
        "format": 1,
        "version": 3,
        "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example"}, {"id": 2, "name": "Other", "domain": "other.example"}],
        "accounts": [
            {"username": "alice", "realm": "acme.example", "ha1": ha1("alice", "acme.example", "pw-a"), "user_id": 1, "tenant_id": 1},
            {"username": "bob", "realm": "acme.example", "ha1": ha1("bob", "acme.example", "pw-b"), "user_id": 2, "tenant_id": 1},
            {"username": "bob2", "realm": "acme.example", "ha1": ha1("bob2", "acme.example", "pw-c"), "user_id": 2, "tenant_id": 1},
            {"username": "olga", "realm": "other.example", "ha1": ha1("olga", "other.example", "pw-o"), "user_id": 3, "tenant_id": 2},
        ],
        "users": [
            {"id": 1, "tenant_id": 1, "name": "Alice", "extension": "201", "aors": ["sip:alice@acme.example"]},
            {"id": 2, "tenant_id": 1, "name": "Bob", "extension": "202", "aors": ["sip:bob@acme.example", "sip:bob2@acme.example"]},
            {"id": 3, "tenant_id": 2, "name": "Olga", "extension": "202", "aors": ["sip:olga@other.example"]},
        ],
        "extensions": [{"tenant_id": 1, "number": "201", "user_id": 1}, {"tenant_id": 1, "number": "202", "user_id": 2}, {"tenant_id": 2, "number": "202", "user_id": 3}],
    }
    doc.update(kw)
    return parse_snapshot(doc)


def invite(ruri_user="202", auth=AuthResult.OK, user="alice", realm="acme.example", from_host="acme.example", ruri_host="acme.example", src="192.0.2.10", to_myself=False):
    return RequestFacts("INVITE", ruri_user, ruri_host, user, from_host, ruri_user, ruri_host, src, 5060, "c1", user, realm, auth, to_myself)


SNAP = snapshot()


def test_authenticated_call_to_an_extension_rings_every_device_of_the_user():
    d = decide(invite())
    assert isinstance(d.action, RouteToUser)
    assert d.action.aors == ("sip:bob@acme.example", "sip:bob2@acme.example")
    assert d.caller.number == "201" and d.callee.user_id == 2
    assert any("extension of user 2" in t for t in d.trace)


def decide(f, snap=SNAP):
    from kemi.policy.routing import decide_initial

    return decide_initial(f, snap)


def test_unauthenticated_invite_from_an_untrusted_source_is_challenged_with_407():
    d = decide(invite(auth=AuthResult.NONE))
    assert d.action == Challenge("acme.example", proxy=True) and not d.counts_as_call


def test_wrong_credentials_get_a_new_challenge():
    assert isinstance(decide(invite(auth=AuthResult.FAILED)).action, Challenge)


def test_unknown_extension_is_404_with_a_readable_warning():
    d = decide(invite("999"))
    assert d.action.code == 404 and "999" in d.action.warning


def test_extensions_are_per_tenant():
    d = decide(invite("202", user="olga", realm="other.example", from_host="other.example", ruri_host="other.example"))
    assert d.action.aors == ("sip:olga@other.example",)


def test_a_tenant_cannot_dial_into_another_tenants_domain():
    d = decide(invite("202", ruri_host="other.example"))
    assert isinstance(d.action, Reject) and d.action.code == 403


def test_request_to_the_node_address_uses_the_callers_tenant():
    d = decide(invite("202", ruri_host="127.0.0.1", to_myself=True))
    assert isinstance(d.action, RouteToUser) and d.action.tenant_id == 1


def test_disabled_tenant_cannot_call():
    snap = snapshot(tenants=[{"id": 1, "name": "Acme", "domain": "acme.example", "enabled": False}, {"id": 2, "name": "Other", "domain": "other.example"}])
    assert isinstance(decide(invite(), snap).action, Challenge)  # its accounts no longer authenticate


def test_register_needs_credentials_then_binds_the_account():
    from kemi.policy.routing import decide_register

    f = RequestFacts("REGISTER", "", "acme.example", "bob", "acme.example", "bob", "acme.example", "192.0.2.1", 5060, auth=AuthResult.NONE)
    assert decide_register(f, SNAP).action == Challenge("acme.example", proxy=False)
    ok = decide_register(RequestFacts("REGISTER", "", "acme.example", "bob", "acme.example", "bob", "acme.example", "192.0.2.1", 5060, auth_user="bob", auth_realm="acme.example", auth=AuthResult.OK), SNAP)
    assert ok.action == Register("sip:bob@acme.example", 1, 2)


def test_register_for_a_domain_not_served_here_is_403():
    from kemi.policy.routing import decide_register

    f = RequestFacts("REGISTER", "", "nowhere.example", "bob", "nowhere.example", "bob", "nowhere.example", "192.0.2.1", 5060)
    assert decide_register(f, SNAP).action.code == 403


@given(st.text(min_size=1, max_size=20))
def test_unknown_accounts_are_checked_against_the_decoy_like_a_wrong_password(username):
    decoy = "d" * 32
    known = {"alice", "bob", "bob2"}
    got = ha1_for_check(SNAP, username, "acme.example", decoy)
    assert (got == decoy) == (username not in known)


@given(st.sampled_from(list(AuthResult)), st.text(alphabet="0123456789*#", min_size=1, max_size=6))
def test_no_call_is_ever_routed_without_authentication_or_a_trusted_source(auth, dialled):
    d = decide(invite(dialled, auth=auth))
    if auth is not AuthResult.OK:
        assert isinstance(d.action, Challenge)
    else:
        assert isinstance(d.action, (RouteToUser, Reject, FeatureCode))


def test_trusted_source_needs_no_credentials():
    snap = snapshot(trusted=["198.51.100.0/24"])
    d = decide(invite(auth=AuthResult.NONE, src="198.51.100.7"), snap)
    assert isinstance(d.action, RouteToUser) and d.caller.user_id is None


def test_digest_check_codes_map_to_results():
    from kemi.policy.auth import auth_result

    assert auth_result(1) is AuthResult.OK
    assert auth_result(-2) is AuthResult.FAILED  # wrong password (or the decoy for an unknown user)
    assert auth_result(-8) is AuthResult.FAILED
    assert auth_result(-4) is AuthResult.STALE and auth_result(-6) is AuthResult.STALE
    assert auth_result(-5) is AuthResult.NONE


@given(st.integers(min_value=-100, max_value=-1))
def test_every_negative_code_other_than_stale_or_absent_counts_as_a_failure(rc):
    from kemi.policy.auth import auth_result

    if rc not in (-4, -5, -6):
        assert auth_result(rc) is AuthResult.FAILED


def test_failures_are_counted_per_account_per_source_and_in_total():
    from kemi.policy.auth import failure_counter_keys, identity_must_match

    assert failure_counter_keys("bob", "acme.example", "192.0.2.1") == ("acct:bob@acme.example", "src:192.0.2.1", "total")
    assert identity_must_match("REGISTER") and not identity_must_match("INVITE")


def test_nated_legs_take_the_media_address_from_the_signalling_source():
    from kemi.policy.media import rtpengine_flags

    assert "SIP-source-address" in rtpengine_flags(True)
    assert "SIP-source-address" not in rtpengine_flags(False)
    assert "replace-origin" in rtpengine_flags(False)


def test_methods_not_served_get_405_with_allow():
    from kemi.policy.routing import unsupported_method

    r = unsupported_method("SUBSCRIBE")
    assert r.code == 405 and r.headers[0].startswith("Allow: ") and "INVITE" in r.headers[0]
    assert unsupported_method("INVITE") is None and unsupported_method("REGISTER") is None and unsupported_method("ACK") is None


@given(
    src=st.sampled_from(["192.0.2.10", "203.0.113.5", "198.18.7.9", "2001:db8::1", "not-an-ip", ""]),
    ruri_user=st.sampled_from(["202", "0301234567", "+4930123", "110", "*21", "urn:service:sos", "", "nobody"]),
    ruri_host=st.sampled_from(["acme.example", "elsewhere.example", "203.0.113.5"]),
    from_host=st.sampled_from(["acme.example", "elsewhere.example", ""]),
)
def test_needs_credentials_agrees_with_the_decision_for_every_request_without_credentials(src, ruri_user, ruri_host, from_host):
    """The INVITE's straight path challenges when `needs_credentials` says so, without asking `decide_initial`: both
    must agree on every source and destination, and on the realm (the From domain, else the default)."""
    from kemi.policy.auth import realm_for
    from kemi.policy.routing import needs_credentials

    snap = snapshot(trunks=[{"id": 1, "name": "carrier", "host": "203.0.113.5", "port": 5060, "transport": "udp", "priority": 1,
                             "sources": ["203.0.113.5"]}], trusted=["198.18.7.0/24"])
    f = invite(ruri_user=ruri_user, auth=AuthResult.NONE, user="", realm="", from_host=from_host, ruri_host=ruri_host, src=src)
    action = decide(f, snap).action
    assert needs_credentials(snap, src) == isinstance(action, Challenge), action
    if needs_credentials(snap, src):
        assert action == Challenge(realm_for("INVITE", "", from_host, snap.default_realm), proxy=True)
