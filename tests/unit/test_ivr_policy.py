"""IVR menus in the policy core (issue 23, kemi.policy.ivr): how a caller moves through the menus, what their choice
leads to, how a menu is checked, and what route.simulate shows."""

import dataclasses
from datetime import datetime

from hypothesis import given, strategies as st

from kemi.policy import ivr
from kemi.policy.call import Divert, Failed, Finish, begin, on_failure, onto
from kemi.policy.callstate import CallState
from kemi.policy.decision import Announce, RouteToUser, ToIvr, ToVoicemail
from kemi.policy.snapshot import Mailbox
from kemi.policy.timeline import Event, run
from tests.unit.test_forwarding import BERLIN, OFFICE, call_facts, with_user
from tests.unit.test_routing_public import public_snapshot
from kemi.policy.routing import decide_initial

MAIN = {"id": 5, "tenant_id": 1, "name": "main", "extension": "500", "timeout_s": 4, "tries": 2, "actions": [
    {"key": "1", "kind": "extension", "target": "202"},   # Bob
    {"key": "2", "kind": "menu", "target": "6"},
    {"key": "3", "kind": "play", "target": ""},
    {"key": "8", "kind": "mailbox", "target": "9"},
    {"key": "9", "kind": "hangup"},
    {"key": "*", "kind": "repeat"},
]}
SUB = {"id": 6, "tenant_id": 1, "name": "support", "actions": [
    {"key": "1", "kind": "extension", "target": "201"},   # Alice
    {"key": "#", "kind": "back"},
    {"key": "timeout", "kind": "extension", "target": "201"},
]}
NIGHT = {"id": 7, "tenant_id": 1, "name": "night", "actions": [{"key": "1", "kind": "mailbox", "target": "9"}]}
OTHER = {"id": 8, "tenant_id": 2, "name": "other company", "actions": [{"key": "1", "kind": "hangup"}]}


def snap(main=None, **kw):
    s = public_snapshot(ivr_menus=[{**MAIN, **(main or {})}, SUB, NIGHT, OTHER], time_plans=[OFFICE],
                        numbers_extra=[{"e164": "+49301234590", "tenant_id": 1, "user_id": None, "ivr_id": 5}], **kw)
    return dataclasses.replace(s, mailboxes={9: Mailbox(9, 1, max_s=60)})


def into_menu(s, dialled="500", now=0.0):
    d = decide_initial(call_facts(dialled), s, now)
    return d, onto(begin(d, "c1", "r1", now, "en"), d.action, now)


def choose(s, state, menu, key):
    choice = ivr.choice_value(menu, key)
    return on_failure(state, Failed(302, "Moved Temporarily", choice=choice), s)


# ---------------------------------------------------------------- into the menus


def test_a_menus_extension_and_its_number_lead_into_it():
    s = snap()
    d = decide_initial(call_facts("500"), s)
    assert d.action == ToIvr(1, 5, "") and "dialled 500: the extension of IVR menu 5" in d.trace
    d = decide_initial(call_facts("+49301234590", external=True), s)
    assert d.action == ToIvr(1, 5, "") and "number +49301234590 leads to IVR menu 5" in d.trace
    # the tenant's language is the menus'
    s2 = dataclasses.replace(s, tenants={**s.tenants, 1: dataclasses.replace(s.tenants[1], language="de")})
    assert decide_initial(call_facts("500"), s2).action.language == "de"


def test_a_menu_with_a_time_plan_sends_calls_outside_its_times_to_the_other_menu():
    s = snap({"time_plan": 1, "other_menu": 7})
    monday_10 = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN).timestamp()
    monday_20 = datetime(2026, 12, 7, 20, 0, tzinfo=BERLIN).timestamp()
    assert decide_initial(call_facts("500"), s, monday_10).action.menu_id == 5
    d = decide_initial(call_facts("500"), s, monday_20)
    assert d.action.menu_id == 7 and any("outside its times): menu 7" in t for t in d.trace)
    s = snap({"time_plan": 1, "other_menu": 7, "when": "in"})  # the other way round
    assert decide_initial(call_facts("500"), s, monday_10).action.menu_id == 7


def test_time_of_day_greetings_chain_menus_by_their_plans():
    """AUD-10: morning menu, else the day menu, else the evening menu — each a menu with its own time plan."""
    morning = {"id": 1, "name": "morning", "tz": "Europe/Berlin", "ranges": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": 0, "end": 11 * 60}]}
    day = {"id": 2, "name": "day", "tz": "Europe/Berlin", "ranges": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": 11 * 60, "end": 18 * 60}]}
    menus = [{**MAIN, "time_plan": 1, "when": "out", "other_menu": 6},  # outside the morning: the day menu ...
             {**SUB, "time_plan": 2, "when": "out", "other_menu": 7},  # ... outside the day: the evening menu
             NIGHT, OTHER]
    s = public_snapshot(ivr_menus=menus, time_plans=[morning, day])
    at = lambda h: datetime(2026, 12, 7, h, 0, tzinfo=BERLIN).timestamp()  # noqa: E731
    assert [decide_initial(call_facts("500"), s, at(h)).action.menu_id for h in (9, 14, 21)] == [5, 6, 7]
    d = decide_initial(call_facts("500"), s, at(21))
    assert "time plan 1 (outside its times): menu 6; time plan 2 (outside its times): menu 7" in d.trace
    circle = public_snapshot(ivr_menus=[{**MAIN, "time_plan": 1, "other_menu": 6}, {**SUB, "time_plan": 1, "other_menu": 5},
                                        NIGHT, OTHER], time_plans=[morning])
    assert decide_initial(call_facts("500"), circle, at(21)).action.menu_id == 6  # never back to a menu seen


# ---------------------------------------------------------------- moving through the menus (the media server's part)


def test_keys_move_through_submenus_and_back_and_a_leaving_choice_goes_to_the_node():
    menus = snap().ivr_menus
    pos, step = ivr.enter(menus, 5)
    assert step == ivr.Play((("menu", 5),), 4.0)
    pos, step = ivr.press(menus, pos, "2")
    assert pos.menu == 6 and pos.back == (5,) and step.prompts == (("menu", 6),)
    pos, step = ivr.press(menus, pos, "#")  # back
    assert pos.menu == 5 and pos.back == () and step.prompts == (("menu", 5),)
    pos, step = ivr.press(menus, pos, "3")  # a recording, then the menu again
    assert pos.menu == 5 and step.prompts == (("action", 5, "3"), ("menu", 5))
    pos, step = ivr.press(menus, pos, "1")
    assert step == ivr.Leave(5, "1", (("action", 5, "1"),))
    assert ivr.press(menus, pos, "9")[1] == ivr.Leave(5, "9", (("action", 5, "9"), ("system", ivr.GOODBYE)))


def test_an_invalid_key_or_no_key_plays_the_menu_again_until_its_tries_are_used_up():
    menus = snap().ivr_menus  # menu 5: two tries, no action for timeout / invalid
    pos, _ = ivr.enter(menus, 5)
    pos, step = ivr.press(menus, pos, "7")
    assert step == ivr.Play((("system", ivr.INVALID), ("menu", 5)), 4.0) and pos.rounds == 1
    pos, step = ivr.waited(menus, pos)
    assert isinstance(step, ivr.End)
    # a choice resets the count: repeat (*) and the menu plays again
    pos, _ = ivr.enter(menus, 5)
    pos, _ = ivr.press(menus, pos, "7")
    pos, step = ivr.press(menus, pos, "*")
    assert pos.rounds == 0 and step.prompts == (("menu", 5),)
    # the submenu has an action for no key: it is taken
    pos, _ = ivr.enter(menus, 6, (5,))
    assert ivr.waited(menus, pos)[1] == ivr.Leave(6, "timeout", (("action", 6, "timeout"),))


@given(st.lists(st.sampled_from([*ivr.KEYS, "wait"]), max_size=40))
def test_any_keys_end_in_a_menu_a_choice_or_the_end_and_never_leave_the_company(keys):
    menus = snap().ivr_menus
    pos, step = ivr.enter(menus, 5)
    for k in keys:
        pos, step = ivr.waited(menus, pos) if k == "wait" else ivr.press(menus, pos, k)
        assert menus[pos.menu].tenant_id == 1 and len(pos.back) <= ivr.MAX_DEPTH
        if not isinstance(step, ivr.Play):
            break
    assert isinstance(step, (ivr.Play, ivr.Leave, ivr.End))
    if isinstance(step, ivr.Leave):
        assert menus[step.menu].action(step.key).kind in ivr.LEAVING


# ---------------------------------------------------------------- the choice, decided by the node


def test_a_choice_of_an_extension_rings_that_user_with_their_forwarding():
    s = with_user(snap(), 2, forwarding=[{"kind": "busy", "target_mailbox": 9}])
    d, state = into_menu(s)
    assert state.ivr == 5 and state.announcing == ivr.NO_MENU
    state, effects = choose(s, state, 5, "1")
    assert isinstance(effects[0], Divert) and isinstance(effects[0].action, RouteToUser)
    assert effects[0].action.user_id == 2
    assert state.ivr is None and state.announcing is None and state.chose == "5:1"
    assert "IVR menu 5 (main): key 1 -> extension 202" in state.trace
    # Bob is busy: his busy forwarding (to the mailbox) applies
    state, effects = on_failure(state, Failed(486, "Busy Here", rang=True), s)
    assert isinstance(effects[0], Divert) and isinstance(effects[0].action, ToVoicemail)


def test_a_choice_of_a_mailbox_or_hangup_and_a_choice_the_menus_do_not_have():
    s = snap()
    _, state = into_menu(s)
    _, effects = choose(s, state, 5, "8")
    assert effects == (Divert(ToVoicemail(1, 9, "unavailable", "", 60), fresh_ring=True),)
    _, effects = choose(s, state, 5, "9")
    assert effects == (Finish(480, "Temporarily Unavailable", local=True, warning="the menu ended the call"),)
    for menu, key in ((5, "4"), (5, "2"), (8, "1"), (99, "1")):  # no action, not leaving, another company, no menu
        st_, effects = choose(s, state, menu, key)
        assert isinstance(effects[0], Divert) and isinstance(effects[0].action, Announce)  # the caller hears why
        assert effects[0].action.refusal == ivr.NO_MENU
    _, effects = on_failure(state, Failed(302, "Moved Temporarily", choice="<sip:+4915112345678@evil.example>"), s)
    assert effects[0].action.refusal == ivr.NO_MENU  # the media server never names a destination


def test_a_chosen_destination_that_fails_is_never_answered_with_the_redirect():
    s = snap()
    _, state = into_menu(s)
    state, effects = choose(s, state, 5, "1")
    assert isinstance(effects[0].action, RouteToUser)
    assert effects[0].fresh_ring  # the menus' early media was no device ringing: bob's devices must ring themselves
    # the shell finds no registered device and asks again with the same event: the caller hears why and gets 480
    _, effects = on_failure(state, Failed(302, "Moved Temporarily", choice="ivr.5.1"), s)
    assert isinstance(effects[-1], Divert) and effects[-1].action.refusal.code == 480
    _, effects = on_failure(state._replace(speaks=""), Failed(302, "Moved Temporarily"), s)
    assert effects[-1] == Finish(480, "Temporarily Unavailable")


def test_when_the_media_server_cannot_play_the_menus_the_call_gets_480():
    s = snap()
    _, state = into_menu(s)
    state, effects = on_failure(state, Failed(408, "Request Timeout"), s)
    assert effects == (Divert(ToIvr(1, 5, "")),)  # its next process first
    _, effects = on_failure(state, Failed(408, "Request Timeout"), s)
    assert effects == (Finish(480, "Temporarily Unavailable", local=True, warning="the menu cannot be played now"),)
    # no choice made: the media server's own 480 goes back
    _, state = into_menu(s)
    _, effects = on_failure(state, Failed(480, "No Choice"), s)
    assert effects == (Finish(480, "No Choice"),)


def test_the_call_state_with_menus_survives_its_codec():
    s = snap()
    _, state = into_menu(s)
    state, _ = choose(s, state, 5, "1")
    assert CallState.from_json(state.to_json()) == state


# ---------------------------------------------------------------- checks and the Request-URI / Contact


def test_menus_are_checked_keys_kinds_targets_and_circles():
    menus = snap().ivr_menus
    assert ivr.problems(menus, menus[5]) == []
    bad = dataclasses.replace(menus[5], actions=(ivr.Action("x", "menu", "8"), ivr.Action("1", "dance"),
                                                 ivr.Action("1", "extension", "20a")))
    found = " | ".join(ivr.problems(menus, bad))
    assert "key 'x' is none of" in found and "menu '8', which is not a menu of this company" in found
    assert "key '1' has two actions" in found and "'dance'" in found and "1-15 digits" in found
    circle = {**menus, 6: dataclasses.replace(menus[6], actions=(ivr.Action("1", "menu", "5"),))}
    assert "circle (5 -> 6 -> 5)" in ivr.problems(circle, circle[5])[0]
    assert "at most 12 actions" in ivr.problems(menus, dataclasses.replace(
        menus[5], actions=tuple(ivr.Action(k, "repeat") for k in (*ivr.KEYS, "timeout"))))[0]


@given(st.integers(1, 10**12 - 1), st.sampled_from([*ivr.KEYS, *ivr.EVENTS]))
def test_a_choice_reads_back_as_it_was_written(menu, key):
    assert ivr.parse_choice(ivr.choice_value(menu, key)) == (menu, key)
    assert ivr.parse_choice(ivr.choice_value(menu, key) + "x") is None


def test_the_request_uri_names_menu_language_and_tenant():
    assert ivr.parse_target(ivr.target_user(5, "de", 1)) == ivr.Target(5, "de", 1)
    assert ivr.parse_target("ivr.5.de") is None and ivr.parse_target("vm.5.busy.de.60") is None


# ---------------------------------------------------------------- route.simulate


def test_route_simulate_follows_the_keys():
    s = snap()
    d = decide_initial(call_facts("500"), s)
    steps = run(d, [Event("keys", 2, digits="2#2"), Event("keys", 1, digits="1")], s, speaks="en")
    assert steps[0].outcome == "IVR menu 5 (node language)"
    assert steps[1].outcome == "in the menus: 2: menu 6; #: menu 5; 2: menu 6"
    assert steps[2].outcome.startswith("forward: ring user 1") and "IVR menu 6 (support): key 1 -> extension 201" in steps[2].trace
    steps = run(d, [Event("no_key"), Event("no_key")], s)
    assert steps[-1].ended and "480" in steps[-1].outcome


def test_a_voicemail_key_lets_the_caller_listen_to_any_mailbox_of_the_company():
    s = snap({"actions": [*MAIN["actions"], {"key": "0", "kind": "voicemail"}]})
    _, state = into_menu(s)
    state, effects = choose(s, state, 5, "0")
    assert effects == (Divert(ToVoicemail(1, 0, "listen", "", 600), fresh_ring=True),)
    assert state.mailbox is None and "to voicemail access (any mailbox of the company, with its PIN)" in state.trace


def test_calls_for_the_media_server_that_the_node_does_not_send_there_get_their_refusal_here():
    from kemi.policy import call
    from kemi.policy.decision import Reject

    s = snap()
    d, state = into_menu(s)
    begun = begin(d, "c1", "r1", 0.0)
    assert call.without_media_server(begun, d.action, "INVITE", True) is None
    traced, refusal = call.without_media_server(begun, d.action, "INVITE", False)
    assert refusal == ivr.NO_MENU and "the menus cannot be played" in traced.trace[-1]
    box = ToVoicemail(1, 9, "busy", "", 60)
    assert call.without_media_server(begun, box, "MESSAGE", True)[1].code == 486  # as without the mailbox
    said = Announce("busy", Reject(486, "Busy Here", "busy"), "en")
    assert call.without_media_server(begun, said, "INVITE", False) == (begun, said.refusal)
    assert call.media_timers(d.action) == (ivr.INV_MS, ivr.FR_MS, ivr.LIFETIME_MS) and call.media_timers(box)[2] == 0


def test_callers_from_abroad_hear_the_language_their_number_says(  # ACD-21
):
    from kemi.policy import announce

    s = snap(tenant={"language": "de", "caller_languages": {"+49": "de", "+": "en", "+4191": "de"}})
    assert s.tenants[1].language_for("+441234567", external=True) == "en"
    assert s.tenants[1].language_for("+49301234", external=True) == "de"
    assert s.tenants[1].language_for("+41911234", external=True) == "de"  # the longest prefix wins
    assert s.tenants[1].language_for("+441234567", external=False) == "de"  # the company's own users: its language
    assert s.tenants[1].language_for("0891234", external=True) == "de"  # no E.164 number: the company's
    d = decide_initial(call_facts("+49301234590", external=True), s)  # the carrier's caller: 0891234567 (national)
    assert d.action.language == "de"
    caller = d.caller._replace(number="+442071234567")
    assert announce.speaks(d._replace(caller=caller), "INVITE", "en", True, s.tenants) == "en"
    from kemi.policy.routing import caller_language

    assert caller_language(s.tenants[1], caller) == "en" and caller_language(s.tenants[1], d.caller) == "de"


def test_a_number_key_goes_out_through_the_companys_trunks_or_to_its_own_number():
    from kemi.policy.decision import RouteToTrunk

    s = snap({"actions": [*MAIN["actions"], {"key": "4", "kind": "number", "target": "+493098765432"},
                          {"key": "5", "kind": "number", "target": "+49301234502"},  # Bob's own number
                          {"key": "6", "kind": "number", "target": "+4990012345678"}]})  # premium rate
    assert ivr.problems(s.ivr_menus, s.ivr_menus[5]) == []
    _, state = into_menu(s)
    left, effects = choose(s, state, 5, "4")
    trunk = effects[0].action
    assert isinstance(trunk, RouteToTrunk) and trunk.target == "+493098765432"
    assert [h.name for h in trunk.hops] == ["carrier-a", "carrier-b"] and trunk.fraud is None
    assert any("out to +493098765432 via carrier-a, carrier-b" in t for t in left.trace)
    _, effects = choose(s, state, 5, "5")
    assert isinstance(effects[0].action, RouteToUser) and effects[0].action.user_id == 2
    left, effects = choose(s, state, 5, "6")
    assert effects[0].action.refusal.code == 404 and any("not a destination this company may call" in t for t in left.trace)
    bad = dataclasses.replace(s.ivr_menus[5], actions=(ivr.Action("4", "number", "030123"),))
    assert "E.164" in ivr.problems(s.ivr_menus, bad)[0]


# ---------------------------------------------------------------- the personal IVR (IVR-06)


def test_a_personal_ivr_has_standard_keys_and_says_only_the_choices_it_has():
    actions = ivr.personal_actions({"message": "9", "mobile": "+491711234567", "switchboard": "200", "colleague": ""})
    assert actions == [{"key": "1", "kind": "mailbox", "target": "9"},
                       {"key": "2", "kind": "number", "target": "+491711234567"},
                       {"key": "0", "kind": "extension", "target": "200"}]
    menus = ivr.parse_menus([{"id": 3, "tenant_id": 1, "actions": actions, "personal": True}, MAIN])
    assert ivr.spoken(menus[3]) == ("pivr_intro", "pivr_message", "pivr_mobile", "pivr_switchboard")
    assert ivr.spoken(menus[5]) == (ivr.CHOOSE,) and ivr.spoken(None) == (ivr.CHOOSE,)
    assert ivr.problems(menus, menus[3]) == []


def test_forwarding_into_a_menu_and_not_into_another_companys():
    from tests.unit.test_forwarding import ring_bob, with_user

    s = with_user(snap(), 2, forwarding=[{"kind": "unconditional", "target_ivr": 6}])
    d = ring_bob(s)
    assert d.action == ToIvr(1, 6, "") and "unconditional forwarding to IVR menu 6 (support)" in d.trace
    assert d.callee.user_id == 2  # the record shows whom the caller called
    s = with_user(snap(), 2, forwarding=[{"kind": "unconditional", "target_ivr": 8}])  # tenant 2's menu
    d = ring_bob(s)
    assert isinstance(d.action, RouteToUser) and any("the menu no longer exists; not forwarded" in t for t in d.trace)
