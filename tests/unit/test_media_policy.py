"""The media policy (kemi/policy/media.py) and the encryption policy in the routing decision: every direction's
RTPengine flags, the plans the replies and the dialog keep, and what a tenant's or account's policy refuses."""

import pytest
from hypothesis import given, strategies as st

from kemi.policy import media
from kemi.policy.auth import ha1
from kemi.policy.decision import Register, Reject, RouteToTrunk, RouteToUser
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.routing import callee_srtp, decide_initial, register_action
from kemi.policy.snapshot import parse_snapshot
from kemi.policy.media import RTP, SRTP, WEBRTC

SAVP_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 4000 RTP/SAVP 0 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 x\r\n"
)


def test_the_offers_profile_is_its_first_audio_streams():
    assert media.offer_profile(SAVP_OFFER) == "RTP/SAVP"
    assert media.offer_profile("m=video 1 RTP/AVP 96\nm=audio 2 UDP/TLS/RTP/SAVPF 111\n") == "UDP/TLS/RTP/SAVPF"
    assert media.offer_profile("m=video 1 RTP/AVPF 96\n") == "RTP/AVPF"  # no audio: the first stream
    assert media.offer_profile("v=0\r\n") == "" and media.offer_profile("m=audio\r\n") == ""
    assert [media.mode_of(p) for p in ("RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF", "", "junk")] == [
        RTP,
        SRTP,
        SRTP,
        WEBRTC,
        RTP,
        RTP,
    ]


@given(st.text(max_size=300))
def test_any_body_gives_a_short_profile_and_never_raises(body):
    assert len(media.offer_profile(body)) <= 40


def test_two_plain_legs_get_exactly_the_flags_every_call_had():
    assert media.flags(RTP, RTP) == media.flags(RTP, RTP, True) == media.RTPENGINE_FLAGS
    assert media.plan("RTP/AVP", False).plain and media.plan("", False).plain


def test_srtp_is_bridged_to_plain_rtp_both_ways():
    assert media.flags(RTP, SRTP).endswith("ICE=remove RTP/AVP")  # the SRTP phone's offer to a trunk
    assert media.flags(SRTP, RTP, True).endswith("ICE=remove RTP/SAVP")  # its answer, back in SRTP
    assert media.flags(SRTP, RTP).endswith("ICE=remove RTP/SAVP")  # a trunk's offer to an SRTP phone


def test_webrtc_directions_follow_the_field_notes_including_the_dtls_role():
    to_sip = media.flags(RTP, WEBRTC)  # a browser's offer to a phone
    assert "DTLS-reverse=passive" in to_sip  # the trap: without it the DTLS handshake never completes
    assert all(w in to_sip.split() for w in ("ICE=remove", "RTP/AVP", "rtcp-mux-demux", "DTLS=off", "SDES-off"))
    back = media.flags(WEBRTC, RTP, True).split()  # the phone's answer to the browser
    assert all(w in back for w in ("ICE=force", "UDP/TLS/RTP/SAVPF", "rtcp-mux-require", "DTLS=passive", "SDES-off"))
    to_browser = media.flags(WEBRTC, RTP).split()  # a phone's offer to a browser
    assert all(w in to_browser for w in ("ICE=force", "UDP/TLS/RTP/SAVPF", "rtcp-mux-offer", "generate-mid"))
    assert "DTLS=passive" not in to_browser
    browser_to_browser = media.flags(WEBRTC, WEBRTC).split()  # the trap again, between two browsers (measured)
    assert "DTLS-reverse=passive" in browser_to_browser and "generate-mid" in browser_to_browser
    sip_answer = media.flags(RTP, WEBRTC, True).split()  # the browser's answer to the phone
    assert all(w in sip_answer for w in ("ICE=remove", "RTP/AVP", "rtcp-mux-demux", "SDES-off"))
    assert "DTLS-reverse=passive" not in sip_answer


def test_a_plan_is_kept_and_read_back_and_garbage_is_plain():
    p = media.plan("RTP/SAVP", False)
    assert p == media.MediaPlan(SRTP, RTP) and media.parse_plan(p.code()) == p
    assert "SRTP (SDES) from the caller, RTP to the callee" in p.words()
    assert media.MediaPlan(SRTP, SRTP).words() == "media: SRTP (SDES) both ways (RTPengine re-keys)"
    for bad in ("", "srtp", "srtp>", "x>rtp", "rtp>rtp>rtp", ">"):
        assert media.parse_plan(bad) is None


def test_the_answer_of_a_new_call_keeps_the_mode_the_callee_answered_in():
    flags, keep = media.answer("i:srtp>srtp", "RTP/AVP")  # a branch that went to a trunk answered plain
    assert flags.endswith("RTP/SAVP") and keep == "srtp>rtp"
    assert media.answer("i:srtp>srtp", "RTP/AVP", 183) == (flags, None)  # early media: the dialog keeps nothing yet
    flags, keep = media.answer("d:rtp>srtp", "RTP/SAVP")  # an in-dialog offer's answer: nothing kept
    assert flags.endswith("RTP/AVP") and keep is None
    assert media.answer("i:nonsense", "RTP/AVP") == (media.RTPENGINE_FLAGS, None)


def test_an_in_dialog_offer_goes_the_way_its_sender_is():
    flags, tell = media.in_dialog("srtp>rtp", downstream=True)  # the SRTP caller puts the call on hold
    assert flags.endswith("RTP/AVP") and tell == "d:srtp>rtp"
    flags, tell = media.in_dialog("srtp>rtp", downstream=False)  # the trunk's re-INVITE to the SRTP phone
    assert flags.endswith("RTP/SAVP") and tell == "d:rtp>srtp"
    assert media.in_dialog("rtp>rtp", True) is None and media.in_dialog("", True) is None
    flags, _ = media.in_dialog("webrtc>rtp", downstream=False, method="ACK")  # the phone's answer to a late offer
    assert "DTLS=passive" in flags and "generate-mid" not in flags


def test_branches_to_trunks_and_the_media_server_are_plain():
    p = media.MediaPlan(RTP, SRTP)
    peers = frozenset({("127.0.0.2", 5060), ("10.0.0.1", 5062)})
    assert media.branch_mode(p, *media.uri_host_port("sip:+4989@127.0.0.2;transport=udp"), peers) == RTP
    assert media.branch_mode(p, *media.uri_host_port("sip:vm.1@10.0.0.1:5062"), peers) == RTP
    assert media.branch_mode(p, *media.uri_host_port("sip:alice@127.0.0.2:5070;ob"), peers) == SRTP


def test_uri_host_and_port():
    assert media.uri_host_port("sip:a@Host.Example:5070;transport=tls") == ("host.example", 5070)
    assert media.uri_host_port("sip:[2001:db8::1]:5061") == ("2001:db8::1", 5061)
    assert media.uri_host_port("sip:[2001:db8::1]") == ("2001:db8::1", 5060)
    assert media.uri_host_port("sips:h?x=1") == ("h", 5060)
    assert media.uri_host_port("sip:h:99999999") == ("h", 5060)


@pytest.mark.parametrize(
    "transport, offer, method, tls, srtp, code",
    [
        ("udp", "RTP/SAVP", "INVITE", True, False, 403),
        ("tcp", "RTP/SAVP", "REGISTER", True, False, 403),
        ("tls", "RTP/AVP", "INVITE", True, False, None),
        ("wss", "UDP/TLS/RTP/SAVPF", "INVITE", True, True, None),
        ("tls", "RTP/AVP", "INVITE", True, True, 488),
        ("udp", "", "INVITE", False, True, 488),
        ("udp", "RTP/SAVP", "INVITE", False, True, None),
        ("udp", "", "REGISTER", False, True, None),
        ("udp", "RTP/AVP", "INVITE", False, False, None),
    ],
)
def test_what_the_encryption_policy_refuses(transport, offer, method, tls, srtp, code):
    refused = media.encryption_refusal(transport, offer, method, tls, srtp)
    assert (refused[0] if refused else None) == code


# ---------------------------------------------------------------- in the routing decision


def snapshot(tenant=None, alice=None, bob2=None):
    def acc(name, user, extra=None):
        return {
            "username": name,
            "realm": "acme.example",
            "ha1": ha1(name, "acme.example", "pw"),
            "user_id": user,
            "tenant_id": 1,
            **(extra or {}),
        }

    return parse_snapshot(
        {
            "format": 1,
            "version": 1,
            "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example", **(tenant or {})}],
            "accounts": [acc("alice", 1, alice), acc("bob", 2, {"srtp": True}), acc("bob2", 2, bob2)],
            "users": [
                {"id": 1, "tenant_id": 1, "name": "Alice", "extension": "201", "aors": ["sip:alice@acme.example"]},
                {
                    "id": 2,
                    "tenant_id": 1,
                    "name": "Bob",
                    "extension": "202",
                    "aors": ["sip:bob@acme.example", "sip:bob2@acme.example"],
                },
            ],
            "extensions": [
                {"tenant_id": 1, "number": "201", "user_id": 1},
                {"tenant_id": 1, "number": "202", "user_id": 2},
            ],
        }
    )


def invite(dialled="202", transport="udp", offer="RTP/AVP"):
    return RequestFacts(
        "INVITE",
        dialled,
        "acme.example",
        "alice",
        "acme.example",
        dialled,
        "acme.example",
        "192.0.2.10",
        5060,
        "c1",
        "alice",
        "acme.example",
        AuthResult.OK,
        False,
        transport=transport,
        offer=offer,
    )


def test_an_account_requiring_tls_and_srtp_is_refused_otherwise_and_routed_when_it_complies():
    snap = snapshot(alice={"tls": True, "srtp": True})
    d = decide_initial(invite(transport="udp", offer="RTP/SAVP"), snap)
    assert isinstance(d.action, Reject) and d.action.code == 403 and "TLS required" in d.action.warning
    d = decide_initial(invite(transport="tls", offer="RTP/AVP"), snap)
    assert d.action.code == 488 and "SRTP required" in d.action.warning and "RTP/AVP" in d.action.warning
    assert isinstance(decide_initial(invite(transport="tls", offer="RTP/SAVP"), snap).action, RouteToUser)


def test_the_tenants_policy_applies_to_every_account_but_never_to_an_emergency_call():
    snap = snapshot(tenant={"tls": True})
    assert decide_initial(invite(), snap).action.code == 403
    for number in ("112", "110"):
        d = decide_initial(invite(dialled=number), snap)  # no trunk here: it fails later, for another reason
        assert "emergency" in " ".join(d.trace) and "TLS required" not in " ".join(d.trace), d.trace
        assert isinstance(d.action, RouteToTrunk) or d.action.code != 403, d


def test_a_register_over_udp_for_a_tls_account_is_refused_and_over_tls_saved():
    snap = snapshot(alice={"tls": True})
    got = register_action(snap, "acme.example", AuthResult.OK, "alice", "acme.example", "udp")
    assert isinstance(got, Reject) and got.code == 403
    assert isinstance(register_action(snap, "acme.example", AuthResult.OK, "alice", "acme.example", "tls"), Register)
    assert isinstance(register_action(snapshot(), "acme.example", AuthResult.OK, "alice", "acme.example"), Register)


def test_the_callee_is_offered_srtp_when_its_tenant_or_every_device_of_its_user_requires_it():
    d = decide_initial(invite(), snapshot())  # bob: one of his two devices requires SRTP
    assert not callee_srtp(snapshot(), d.action)
    snap = snapshot(bob2={"srtp": True})  # now both
    assert callee_srtp(snap, decide_initial(invite(), snap).action)
    snap = snapshot(tenant={"srtp": True})
    assert callee_srtp(snap, decide_initial(invite(dialled="201", offer="RTP/SAVP"), snap).action) is True


def test_a_branch_to_a_browser_is_offered_webrtc_whatever_the_plan():
    p = media.plan("RTP/AVP", False, callee_web=True)
    assert not p.plain and p.code() == "rtp>rtp>w" and media.parse_plan(p.code()) == p
    assert "DTLS-SRTP (WebRTC) to the callee's browsers" in p.words()
    ws = media.uri_transport("sip:127.0.0.1:51234;transport=ws", "sip:ann@x.invalid;transport=ws")
    assert ws == "ws" and media.branch_mode(p, "x.invalid", 5060, frozenset(), ws) == WEBRTC
    assert media.branch_mode(p, "127.0.0.1", 5070, frozenset(), media.uri_transport("", "sip:c@127.0.0.1:5070")) == RTP
    assert media.uri_transport("sip:a@b;Transport=WSS;lr") == "wss" and media.uri_transport("", "") == ""


def test_the_websocket_listener_upgrades_sip_only():
    from kemi.policy.webrtc import http_upgrade

    assert http_upgrade("GET", "websocket", "sip") is None
    assert http_upgrade("get", " WebSocket ", "chat, SIP") is None
    assert http_upgrade("GET", "", "sip")[0] == 426
    assert http_upgrade("POST", "websocket", "sip")[0] == 426
    assert http_upgrade("GET", "websocket", "chat")[0] == 400
    assert http_upgrade("GET", "websocket", "")[0] == 400


def test_a_browser_among_the_callees_devices_makes_the_call_per_branch():
    from kemi.policy.routing import callee_web

    snap = snapshot(bob2={"webrtc": True})
    assert callee_web(snap, decide_initial(invite(), snap).action)
    assert not callee_web(snapshot(), decide_initial(invite(), snapshot()).action)


def test_trunks_and_the_media_servers_processes_are_the_plain_peers():
    from types import SimpleNamespace as T

    peers = media.plain_peers([T(host="Carrier.Example", port=5061)], "127.0.0.1:5062", 3)
    assert peers == {("carrier.example", 5061), ("127.0.0.1", 5062), ("127.0.0.1", 5063), ("127.0.0.1", 5064)}
    assert media.plain_peers([], "", 8) == frozenset() and media.plain_peers([], "[::1]:5062", 1) == {("::1", 5062)}
    assert media.with_nat("x", True) == "x SIP-source-address" and media.with_nat("x", False) == "x"
