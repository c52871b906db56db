"""Voicemail in the policy core (issue 23, kemi.policy.voicemail): where forwarding to a mailbox leads, which greeting
the caller hears, how the media server is told, and how the call ends when the mailbox cannot take it."""

import dataclasses

from hypothesis import given, strategies as st

from kemi.policy import voicemail
from kemi.policy.call import Divert, Failed, Finish, begin, on_failure, onto
from kemi.policy.callstate import CallState, action_from_doc, action_to_doc
from kemi.policy.decision import RouteToUser, ToVoicemail
from kemi.policy.snapshot import Mailbox
from kemi.policy.timeline import describe
from tests.unit.test_forwarding import ring_bob, snap_with, with_user

BOX = Mailbox(9, 1, max_s=90)


def with_box(snap, box=BOX):
    return dataclasses.replace(snap, mailboxes={box.id: box})


def test_unconditional_forwarding_to_a_mailbox_plays_the_unavailable_greeting():
    d = ring_bob(with_box(snap_with([{"kind": "unconditional", "target_mailbox": 9}])))
    assert d.action == ToVoicemail(1, 9, "unavailable", "", 90)
    assert d.callee.user_id == 2  # the record shows whom the caller called
    assert "unconditional forwarding to mailbox 9 (unavailable greeting, messages up to 90 s)" in d.trace


def test_busy_no_answer_and_unreachable_lead_to_the_mailbox_with_their_greeting():
    d = ring_bob(with_box(snap_with([
        {"kind": "busy", "target_mailbox": 9},
        {"kind": "no_answer", "target_mailbox": 9, "timeout_s": 12},
        {"kind": "unreachable", "target_mailbox": 9},
    ])))
    a = d.action
    assert isinstance(a, RouteToUser) and a.no_answer_s == 12
    assert a.on_busy.greeting == "busy"
    assert a.on_no_answer.greeting == "unavailable" and a.on_unreachable.greeting == "unavailable"
    # the tenant's language is the greeting's
    snap = with_box(snap_with([{"kind": "unconditional", "target_mailbox": 9}]))
    snap = dataclasses.replace(snap, tenants={1: dataclasses.replace(snap.tenants[1], language="de")})
    assert ring_bob(snap).action.language == "de"


def test_a_mailbox_that_takes_no_messages_is_not_forwarded_to():
    no_box = snap_with([{"kind": "unconditional", "target_mailbox": 9}])  # disabled: not in the snapshot
    d = ring_bob(no_box)
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2
    assert any("the mailbox takes no messages now; not forwarded" in line for line in d.trace)
    other_tenant = with_box(snap_with([{"kind": "unconditional", "target_mailbox": 9}]), Mailbox(9, 2))
    assert isinstance(ring_bob(other_tenant).action, RouteToUser)


def test_a_user_without_devices_goes_to_the_mailbox():
    snap = with_user(with_box(snap_with([{"kind": "unreachable", "target_mailbox": 9}])), 2, aors=())
    assert ring_bob(snap).action == ToVoicemail(1, 9, "unavailable", "", 90)


def test_when_the_mailbox_cannot_take_the_call_it_ends_as_without_it():
    d = ring_bob(with_box(snap_with([{"kind": "busy", "target_mailbox": 9}])))
    state = begin(d, "c1", "r1", 0.0)
    state = onto(state, d.action.on_busy, 1.0)
    assert state.mailbox == 9
    state, effects = on_failure(state, Failed(503, "Service Unavailable"), snap_with([]))
    assert effects == (Divert(d.action.on_busy),)  # its next process first
    state, effects = on_failure(state, Failed(503, "Service Unavailable"), snap_with([]))
    assert effects == (Finish(486, "Busy Here", local=True, warning="the callee is busy and the mailbox could not take "
                                                                     "the call"),)
    assert "mailbox 9 could not take the call (503 Service Unavailable)" in state.trace
    # the caller hanging up during the greeting is just that
    state = onto(begin(d, "c2", "r2", 0.0), d.action.on_busy, 1.0)
    _, effects = on_failure(state, Failed(487, "Request Terminated", cancelled=True), snap_with([]))
    assert effects == (Finish(487, "Request Terminated", True),)


def test_a_ringing_user_whose_devices_fail_is_diverted_to_the_mailbox():
    d = ring_bob(with_box(snap_with([{"kind": "no_answer", "target_mailbox": 9, "timeout_s": 5}])))
    state = onto(begin(d, "c1", "r1", 0.0), d.action, 0.0)
    _, effects = on_failure(state, Failed(408, "Request Timeout", rang=True), snap_with([]))
    assert any(isinstance(e, Divert) and e.action == ToVoicemail(1, 9, "unavailable", "", 90) for e in effects)


def test_the_media_server_reads_exactly_what_the_node_names():
    action = ToVoicemail(1, 9, "busy", "de", 90)
    assert voicemail.target_user(action, "en") == "vm.9.busy.de.90"
    assert voicemail.parse_target("vm.9.busy.de.90") == voicemail.Deposit(9, "busy", "de", 90)
    # no language of its own: the node's
    assert voicemail.target_user(action._replace(language=""), "en") == "vm.9.busy.en.90"
    assert voicemail.target_uri(action, "127.0.0.1:5062", "call-1", 1, "en") == "sip:vm.9.busy.de.90@127.0.0.1:5062"
    for bad in ("vm.0.busy.de.90", "vm.9.happy.de.90", "vm.9.busy.fr.90", "vm.9.busy.de.0", "vm.9.busy.de.601",
                "vm.9.busy.de.90.x", "ann.busy.486.de", ""):
        assert voicemail.parse_target(bad) is None, bad


@given(st.integers(1, 10**12 - 1), st.sampled_from(voicemail.GREETINGS), st.sampled_from(("en", "de")),
       st.integers(-5, 10_000))
def test_every_deposit_the_node_names_is_read_back_the_same(box, greeting, language, max_s):
    action = voicemail.deposit(1, box, "busy" if greeting == "busy" else "no_answer", language, max_s)
    got = voicemail.parse_target(voicemail.target_user(action, "en"))
    assert got == voicemail.Deposit(box, greeting, language, action.max_s)
    assert 1 <= action.max_s <= voicemail.MAX_MESSAGE_S


def test_the_call_state_and_timeline_carry_the_mailbox():
    action = ToVoicemail(1, 9, "busy", "de", 90)
    assert action_from_doc(action_to_doc(action)) == action
    d = ring_bob(with_box(snap_with([{"kind": "unconditional", "target_mailbox": 9}])))
    state = onto(begin(d, "c1", "r1", 0.0), d.action, 0.0)
    assert CallState.from_json(state.to_json()) == state
    assert describe(action) == "mailbox 9 (busy greeting, de, messages up to 90 s)"


def test_star_98_listens_to_ones_own_mailbox_and_says_so_without_one():
    from kemi.policy.facts import AuthResult, RequestFacts
    from kemi.policy.routing import decide_initial

    def dial(snap, who="bob"):
        facts = RequestFacts("INVITE", "*98", "acme.example", who, "acme.example", "*98", "acme.example", "192.0.2.10",
                             5060, "c1", who, "acme.example", AuthResult.OK)
        return decide_initial(facts, snap, 0.0)

    own = with_box(snap_with([]), Mailbox(9, 1, 90, user_id=2))
    d = dial(own)
    assert d.action == ToVoicemail(1, 9, voicemail.LISTEN, "", voicemail.MAX_MESSAGE_S)
    assert voicemail.target_user(d.action, "en") == "vm.9.listen.en.600"
    assert voicemail.parse_target("vm.9.listen.en.600").greeting == voicemail.LISTEN
    assert voicemail.refusal(d.action).code == 480
    assert "listening to mailbox 9" in d.trace[-1]
    d = dial(own, who="alice")  # alice has none
    assert d.action.code == 404 and d.action.warning == "you have no mailbox"
    from kemi.policy import announce
    assert announce.prompt_for(d.action) == "feature_rejected"


def test_a_mailbox_extension_takes_a_colleagues_message_and_lets_its_owner_listen():
    from kemi.policy.facts import AuthResult, RequestFacts
    from kemi.policy.routing import decide_initial

    def dial(snap, who):
        facts = RequestFacts("INVITE", "2999", "acme.example", who, "acme.example", "2999", "acme.example", "192.0.2.10",
                             5060, "c1", who, "acme.example", AuthResult.OK)
        return decide_initial(facts, snap, 0.0)

    box = Mailbox(9, 1, 90, user_id=2, extension="2999")
    snap = dataclasses.replace(snap_with([]), mailboxes={9: box}, mailbox_extensions={(1, "2999"): 9})
    d = dial(snap, "alice")  # a colleague: straight to bob's mailbox
    assert d.action == ToVoicemail(1, 9, "unavailable", "", 90)
    assert d.callee.user_id == 2 and "leave a message" in d.trace[-1]
    d = dial(snap, "bob")  # the owner: listening
    assert d.action.greeting == voicemail.LISTEN and "called by its owner" in d.trace[-1]


def test_the_snapshot_knows_mailbox_extensions_from_its_document_and_its_changes():
    from tests.unit.test_routing_public import public_snapshot

    snap = public_snapshot(mailboxes=[{"id": 9, "tenant_id": 1, "user_id": 2, "extension": "2999", "max_s": 60},
                                      {"id": 10, "tenant_id": 1, "group_id": 4}])
    assert snap.mailbox_extensions == {(1, "2999"): 9}
    assert snap.mailboxes[10].group_id == 4 and snap.mailbox_of_user(2).id == 9


def test_remote_access_names_the_tenant_and_no_mailbox_to_the_media_server():
    action = voicemail.remote(3, "de")
    user = voicemail.target_user(action, "en")
    assert user == "vm.0.listen.de.600.t3"
    assert voicemail.parse_target(user) == voicemail.Deposit(0, "listen", "de", 600, 3)
    assert voicemail.parse_target("vm.0.listen.de.600") is None and voicemail.parse_target("vm.0.busy.de.60.t3") is None
    assert "voicemail access" in voicemail.describe(action)
