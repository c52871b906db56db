"""Announced refusals (issue 23, kemi.policy.announce and the call's transitions): which refusals are said, how the
media server is told, and what happens when it cannot say them."""

from kemi.policy import announce
from kemi.policy.call import Divert, Failed, Finish, begin, on_failure, onto
from kemi.policy.callstate import CallState
from kemi.policy.decision import Announce, CallParty, Decision, Reject, RouteToUser
from tests.unit.test_routing_public import public_snapshot

PERSON = CallParty(1, 7, "201")
NOT_FOUND = Reject(404, "Not Found", "extension 604 does not exist")
EMPTY = public_snapshot()


def decision(action, caller=PERSON) -> Decision:
    return Decision(action, ("caller authenticated",), caller, None)


def test_a_person_dialling_a_number_not_in_service_hears_why():
    d = announce.spoken(decision(NOT_FOUND), "INVITE", "de")
    assert d.action == Announce("not_in_service", NOT_FOUND, "de", tenant_id=1)  # the caller's tenant's recording, if any
    assert d.trace[-1] == "announced to the caller: not_in_service (de)"


def test_each_refusal_has_its_prompt_and_some_are_not_said():
    said = {
        Reject(486, "Busy Here", "the callee is on another call"): "busy",
        Reject(480, "Temporarily Unavailable", "callee has no registered device"): "unavailable",
        Reject(484, "Address Incomplete", "0301 is not a complete telephone number"): "incomplete",
        Reject(403, "Forbidden", "premium calls are not permitted for this user"): "barred",
        Reject(403, "Forbidden", "call limit reached: 3 calls out in progress"): "limit_reached",
        Reject(403, "Forbidden", "this account is locked by fraud control"): "limit_reached",
        Reject(433, "Anonymity Disallowed", "the callee does not take calls without a number"): "anonymous_rejected",
        Reject(503, "Service Unavailable", "no trunk is available for this destination"): "no_route",
    }
    for refusal, prompt in said.items():
        assert announce.prompt_for(refusal) == prompt, refusal
        assert prompt in announce.PROMPTS
    # a Decline says nothing on purpose (block lists), and a protocol error is nobody's to hear
    for quiet in (Reject(603, "Decline", "the callee does not take calls from this number"),
                  Reject(405, "Method Not Allowed", "PUBLISH is not served here"),
                  Reject(420, "Bad Extension", "extension not supported: foo")):
        assert announce.spoken(decision(quiet), "INVITE", "en").action is quiet


def test_only_a_persons_invite_is_announced_and_only_with_a_media_server():
    assert announce.spoken(decision(NOT_FOUND), "MESSAGE", "en").action is NOT_FOUND
    assert announce.spoken(decision(NOT_FOUND, caller=None), "INVITE", "en").action is NOT_FOUND  # unidentified
    assert announce.spoken(decision(NOT_FOUND), "INVITE", "en", enabled=False).action is NOT_FOUND
    routed = RouteToUser(1, 2, ("sip:bob@x",))
    assert announce.spoken(decision(routed), "INVITE", "en").action is routed
    # an unknown language falls back to the first prompt set, never to a file that is not there
    assert announce.spoken(decision(NOT_FOUND), "INVITE", "fr").action.language == "en"


def test_the_media_server_reads_exactly_what_the_node_names():
    action = Announce("busy", Reject(486, "Busy Here", "x"), "de")
    user = announce.target_user(action)
    assert user == "ann.busy.486.de"
    assert announce.target_uri(action, "127.0.0.1:5062") == "sip:ann.busy.486.de@127.0.0.1:5062"
    assert announce.parse_target(user) == announce.Target("busy", 486, "de")
    for name in announce.PROMPTS:
        for lang in announce.LANGUAGES:
            a = Announce(name, Reject(404, "Not Found"), lang)
            assert announce.parse_target(announce.target_user(a)) == announce.Target(name, 404, lang)
    # anything else is no announcement: unknown prompts and languages, codes that are no refusal, path tricks
    for bad in ("", "alice", "ann.busy.486", "ann.busy.200.de", "ann.busy.486.fr", "ann.nope.404.en",
                "ann.../../etc.404.en", "ann.busy.486.de.x", "ANN.busy.486.de"):
        assert announce.parse_target(bad) is None, bad


def announcing() -> CallState:
    action = Announce("not_in_service", NOT_FOUND, "en")
    return onto(begin(decision(action), "c1", "r1", 0.0), action, 0.0)


def test_the_media_servers_refusal_after_the_prompt_goes_back_as_it_is():
    state, effects = on_failure(announcing(), Failed(404, "Not Found", rang=True), EMPTY)
    assert effects == (Finish(404, "Not Found"),)
    assert state.trace[-1] == "final reply 404 Not Found"


def test_when_the_media_server_cannot_say_it_the_node_refuses_without_it():
    for failed in (Failed(408, "Request Timeout"), Failed(503, "relay failed"), Failed(500, "Server Internal Error")):
        # first its next process is tried (the one asked did not answer) ...
        state, effects = on_failure(announcing(), failed, EMPTY)
        assert effects == (Divert(state.media),) and state.media_tries == 1, failed
        assert "trying its next process" in state.trace[-1]
        # ... then the node refuses without the announcement
        state, effects = on_failure(state, failed, EMPTY)
        assert effects == (Finish(404, "Not Found", local=True, warning="extension 604 does not exist"),), failed
        assert f"the announcement could not be played ({failed.code} {failed.reason})" in state.trace[-2]
    # a refusal of its own (a request it did not understand) is not tried again
    state, effects = on_failure(announcing(), Failed(488, "Not Acceptable Here"), EMPTY)
    assert effects == (Finish(404, "Not Found", local=True, warning="extension 604 does not exist"),)


def test_the_next_process_is_another_one_for_the_same_call():
    from kemi.policy.announce import worker_port

    ports = {worker_port(5062, "call-1", 8, attempt) for attempt in (0, 1)}
    assert len(ports) == 2 and all(5062 <= p < 5070 for p in ports)
    assert worker_port(5062, "call-1", 1, 1) == 5062  # one process: the same one again


def test_a_caller_who_hangs_up_during_the_announcement_ends_it():
    _, effects = on_failure(announcing(), Failed(487, "Request Terminated", cancelled=True), EMPTY)
    assert effects == (Finish(487, "Request Terminated", True),)


def test_the_announcing_call_survives_the_transaction_and_dialog_round_trip():
    state = announcing()
    assert state.announcing == NOT_FOUND
    assert CallState.from_json(state.to_json()) == state


def ringing(speaks: str, **fallbacks) -> CallState:
    """A call ringing Bob's phone, placed by a person; its refused end announced in `speaks` ('' : not)."""
    action = RouteToUser(1, 2, ("sip:bob@acme.example",), **fallbacks)
    return onto(begin(decision(action), "c2", "r2", 0.0, speaks), action, 0.0)


def test_a_callee_who_is_busy_with_nothing_left_to_try_is_announced_then_the_busy_goes_back():
    state, effects = on_failure(ringing("de"), Failed(486, "Busy Here", rang=True), EMPTY)
    assert effects == (Divert(Announce("busy", Reject(486, "Busy Here"), "de", tenant_id=1)),)
    assert state.trace[-1] == "announced to the caller: busy (de)"
    # the media server's 486 after the prompt is the end (not announced a second time)
    state = onto(state, effects[0].action, 1.0, diverted=True)
    state, effects = on_failure(state, Failed(486, "Busy Here"), EMPTY)
    assert effects == (Finish(486, "Busy Here"),)


def test_a_forwarding_comes_before_the_announcement_and_a_no_answer_is_not_announced():
    forwarded = RouteToUser(1, 3, ("sip:carol@acme.example",))
    _, effects = on_failure(ringing("en", on_busy=forwarded), Failed(486, "Busy Here", rang=True), EMPTY)
    assert effects == (Divert(forwarded),)
    _, effects = on_failure(ringing("en"), Failed(408, "Request Timeout", rang=True), EMPTY)
    assert effects == (Finish(408, "Request Timeout"),)
    _, effects = on_failure(ringing("en"), Failed(487, "Request Terminated", cancelled=True), EMPTY)
    assert effects == (Finish(487, "Request Terminated", True),)


def test_without_a_language_nothing_is_announced():
    _, effects = on_failure(ringing(""), Failed(486, "Busy Here", rang=True), EMPTY)
    assert effects == (Finish(486, "Busy Here"),)
    assert announce.speaks(decision(NOT_FOUND), "INVITE", "en", enabled=False) == ""
    assert announce.speaks(decision(NOT_FOUND, caller=None), "INVITE", "en") == ""
    assert announce.speaks(decision(NOT_FOUND), "INVITE", "de") == "de"


def test_a_feature_code_done_is_confirmed_and_a_wrong_one_is_said_to_be_unusable():
    done = Reject(603, "Do Not Disturb on", "feature code done: Do Not Disturb on")
    assert announce.confirmed("dnd_on", done, "de") == Announce("fc_dnd_on", done, "de")
    assert announce.confirmed("dnd_on", done, "") is None
    assert announce.confirmed("something_new", done, "en") is None
    for wrong in (Reject(404, "Not Found", "*99 is not a feature code"),
                  Reject(404, "Not Found", "612 is not a group you belong to"),
                  Reject(403, "Forbidden", "you cannot forward to yourself")):
        assert announce.prompt_for(wrong) == "feature_rejected", wrong


def test_every_prompt_the_policy_names_is_shipped_in_every_language():
    from pathlib import Path

    from kemi.policy import ivr, mailbox_menu, queue

    shipped = Path(__file__).resolve().parents[2] / "mediaserver" / "prompts"
    named = (*announce.PROMPTS, *mailbox_menu.PROMPTS, *ivr.PERSONAL_PROMPTS, ivr.CHOOSE, ivr.INVALID, ivr.GOODBYE,
             *queue.WAIT_PROMPTS, "queue_welcome", "queue_place")
    missing = [f"{lang}/{p}.wav" for lang in announce.LANGUAGES for p in named
               if not (shipped / lang / f"{p}.wav").is_file()]
    assert missing == []


def test_the_callers_tenant_chooses_the_language_and_a_public_caller_hears_the_called_tenants():
    from types import SimpleNamespace

    tenants = {1: SimpleNamespace(language="de"), 2: SimpleNamespace(language="")}
    assert announce.speaks(decision(NOT_FOUND), "INVITE", "en", True, tenants) == "de"  # Alice's tenant 1
    other = CallParty(2, 9, "301")
    assert announce.speaks(decision(NOT_FOUND, caller=other), "INVITE", "en", True, tenants) == "en"  # node's
    public = Decision(NOT_FOUND, (), CallParty(None, None, "+4930999", trunk="carrier-a"), CallParty(1, 7, "201"))
    assert announce.speaks(public, "INVITE", "en", True, tenants) == "de"
    assert announce.spoken(decision(NOT_FOUND), "INVITE", "en", True, tenants).action.language == "de"


def test_the_api_offers_exactly_the_shipped_languages():
    from typing import get_args

    from controlplane.features.tenants import Language

    assert set(get_args(Language)) == {"", *announce.LANGUAGES}


def test_the_noc_counts_each_announcement_from_the_calls_trace():
    assert announce.announcements(["caller authenticated", "announced to the caller: busy (de)", "final reply 486"]) == [
        ("busy", True)
    ]
    assert announce.announcements([
        "announced to the caller: not_in_service (en)",
        "the announcement could not be played (408 Request Timeout): refused without it",
    ]) == [("not_in_service", False)]
    assert announce.announcements(["announced to the caller: ../../x (en)", 7, None]) == []  # only known prompts


def test_calls_are_spread_over_the_media_servers_processes_and_a_call_stays_on_one():
    ports = [announce.worker_port(5062, f"call-{i}@host", 8) for i in range(400)]
    assert set(ports) == set(range(5062, 5070))  # every process gets calls
    assert max(ports.count(p) for p in set(ports)) < 2 * 400 / 8  # roughly evenly
    assert announce.worker_port(5062, "same", 8) == announce.worker_port(5062, "same", 8)
    assert announce.worker_port(5062, "anything", 1) == 5062
    a = Announce("busy", Reject(486, "Busy Here"), "en")
    assert announce.target_uri(a, "127.0.0.1:5062", "c1", 1) == "sip:ann.busy.486.en@127.0.0.1:5062"


def test_a_tenants_own_recording_is_asked_for_by_naming_the_tenant():
    action = Announce("busy", Reject(486, "Busy Here"), "de", tenant_id=7)
    assert announce.target_user(action) == "ann.busy.486.de.t7"
    assert announce.parse_target("ann.busy.486.de.t7") == announce.Target("busy", 486, "de", 7)
    assert announce.parse_target("ann.busy.486.de") == announce.Target("busy", 486, "de", None)
    for bad in ("ann.busy.486.de.t0", "ann.busy.486.de.7", "ann.busy.486.de.t7.x", "ann.busy.486.de.tx"):
        assert announce.parse_target(bad) is None, bad
