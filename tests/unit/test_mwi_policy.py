"""Message waiting in the policy core (issue 23, kemi.policy.mwi): who may subscribe to what, and the summary."""

from kemi.policy import mwi
from kemi.policy.decision import Challenge, Reject, Subscribe
from kemi.policy.facts import AuthResult, RequestFacts
from tests.unit.test_routing_public import public_snapshot

SNAP = public_snapshot()


def subscribe(ruri_user="alice", auth=AuthResult.OK, auth_user="alice", host="acme.example", event="message-summary"):
    facts = RequestFacts("SUBSCRIBE", ruri_user, host, "alice", host, ruri_user, host, "192.0.2.10", 5060, "s1",
                         auth_user if auth is not AuthResult.NONE else "", host, auth)
    return mwi.decide_subscribe(facts, SNAP, event)


def test_a_phone_subscribes_to_its_own_message_waiting():
    d = subscribe()
    assert d.action == Subscribe("sip:alice@acme.example")
    assert d.counts_as_call is False
    assert subscribe(event="message-summary;id=7").action == Subscribe("sip:alice@acme.example")  # parameters aside


def test_without_credentials_it_is_challenged_in_its_domain():
    d = subscribe(auth=AuthResult.NONE)
    assert d.action == Challenge("acme.example", True)
    assert isinstance(subscribe(auth=AuthResult.NONE, host="nowhere.example").action, Reject)


def test_another_phones_waiting_messages_are_not_its_business():
    d = subscribe(ruri_user="bob")
    assert d.action.code == 403 and "its own" in d.action.warning


def test_other_event_packages_are_489_naming_the_one_served():
    for event in ("presence", "dialog", "", "reg"):
        d = subscribe(event=event)
        assert d.action.code == 489 and d.action.headers == ("Allow-Events: message-summary",), event


def test_the_summary_says_whether_something_waits_and_how_much():
    assert mwi.summary(0, 0) == "Messages-Waiting: no\r\nVoice-Message: 0/0\r\n"
    assert mwi.summary(2, 5) == "Messages-Waiting: yes\r\nVoice-Message: 2/5\r\n"
    assert mwi.summary(0, 3).startswith("Messages-Waiting: no")
