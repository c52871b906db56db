"""The central voicemail (issue 23, VM-08): a tenant's public number that takes the calls its users' mobiles forward
— a message in the right mailbox — lets a user listen from their mobile, and anyone else name a mailbox."""

import dataclasses

from kemi.policy.decision import Reject, ToVoicemail
from kemi.policy.facts import RequestFacts
from kemi.policy.routing import decide_initial
from kemi.policy.snapshot import Mailbox
from kemi.policy.voicemail import LISTEN, diverted_by
from tests.unit.test_forwarding import CARRIER_A
from tests.unit.test_routing_public import public_snapshot

CENTRAL = "+49301234580"


def snap(**bob):
    s = public_snapshot(numbers_extra=[{"e164": CENTRAL, "tenant_id": 1, "user_id": None, "voicemail": True}])
    users = dict(s.users)
    users[2] = users[2]._replace(**({"mobile": "+491711234567"} | bob))
    return dataclasses.replace(s, users=users, mailboxes={9: Mailbox(9, 1, max_s=90, user_id=2)})


def carrier_call(s, caller="+4989123456", diversion="", dialled=CENTRAL):
    facts = RequestFacts("INVITE", dialled, "acme.example", caller, "carrier.example", dialled, "acme.example",
                         CARRIER_A, 5060, "c1", diversion=diversion)
    return decide_initial(facts, s)


def test_a_call_forwarded_by_a_users_mobile_leaves_a_message_in_their_mailbox():
    d = carrier_call(snap(), diversion="<sip:+491711234567@mobile.example;user=phone>;reason=no-answer;counter=1")
    assert d.action == ToVoicemail(1, 9, "unavailable", "", 90)
    assert d.callee.user_id == 2 and d.callee.number == "+491711234567" and d.caller.number == "+4989123456"
    assert any("forwarded to the central voicemail +49301234580 by +491711234567 (no-answer), user 2" in t
               for t in d.trace), d.trace
    # busy on the mobile: the busy greeting; a national number, a tel: URI, no '+': all read as the same mobile
    for header in ("<tel:01711234567>;reason=user-busy", "sip:491711234567@mobile.example;reason=user-busy",
                   '"Bob mobile" <sip:01711234567@mobile.example>;reason="user-busy", <sip:+4930999@x>'):
        assert carrier_call(snap(), diversion=header).action.greeting == "busy", header
    # forwarded by the user's own office number (their DID) counts too
    assert carrier_call(snap(), diversion="<sip:+49301234502@carrier.example>").action.mailbox_id == 9


def test_a_call_forwarded_by_an_unknown_number_or_a_user_without_mailbox_is_not_in_service():
    d = carrier_call(snap(), diversion="<sip:+491709999999@mobile.example>;reason=no-answer")
    assert isinstance(d.action, Reject) and d.action.code == 404
    assert "no user's mobile or number" in d.trace[-1]
    s = dataclasses.replace(snap(), mailboxes={})
    d = carrier_call(s, diversion="<sip:+491711234567@mobile.example>")
    assert d.action.code == 404 and "user 2 has no mailbox" in d.trace[-1]
    assert carrier_call(snap(), diversion="garbage \xff,,<<").action.code == 404


def test_the_user_calling_from_their_mobile_listens_and_anyone_else_names_a_mailbox():
    d = carrier_call(snap(), caller="+491711234567")
    assert d.action == ToVoicemail(1, 9, LISTEN, "", d.action.max_s) and d.callee.user_id == 2
    d = carrier_call(snap(), caller="+4989123456")
    assert d.action.greeting == LISTEN and d.action.mailbox_id == 0  # remote access: mailbox number, then PIN
    assert carrier_call(snap(), caller="anonymous").action.mailbox_id == 0
    # another tenant's user with the same mobile is not this tenant's
    assert carrier_call(snap(tenant_id=2), caller="+491711234567").action.mailbox_id == 0


def test_the_number_and_reason_read_from_a_diversion_header():
    assert diverted_by("<sip:+491711234567@m.example;user=phone>;reason=no-answer") == ("+491711234567", "no-answer")
    assert diverted_by("tel:+4930123;reason=unconditional") == ("+4930123", "unconditional")
    assert diverted_by('"A, B" <sip:123@h>;reason="User-Busy";privacy=off, <sip:456@h>') == ("123", "user-busy")
    for nothing in ("", "<>", "<http://x>", "garbage", ";reason=x"):
        assert diverted_by(nothing) == ("", ""), nothing
