"""Listening to a mailbox by phone (kemi.policy.mailbox_menu): the PIN, the count, the messages and the keys."""

from kemi.policy import mailbox_menu as menu
from kemi.policy.mailbox_menu import (PLAYED, TIMEOUT, Delete, Hangup, Heard, Key, Message, PinFailed, PinOk, PlayMessage,
                                      RecordGreeting, Say, SayNumber, StopRecording)
from kemi.policy.voicemail import hash_pin, pin_matches

MSGS = [Message("old1", True), Message("new1", False), Message("new2", False)]


def keys(state, digits, pin="2468"):
    done = []
    for d in digits:
        state, actions = menu.on(state, Key(d), lambda got: got == pin)
        done += actions
    return state, done


def test_the_pin_opens_the_mailbox_and_new_messages_come_first():
    state, actions = menu.start(MSGS, locked=False, has_pin=True)
    assert actions == [Say("vm_enter_pin")]
    state, actions = keys(state, "2468#")
    assert actions == [PinOk(), Say("vm_you_have"), SayNumber(2), Say("vm_new_messages"), PlayMessage("new1")]
    state, actions = menu.on(state, PLAYED)
    assert actions == [Heard("new1"), Say("vm_menu")]  # heard to its end: kept as heard
    state, actions = keys(state, "2")
    assert actions == [PlayMessage("new2")]
    state, actions = keys(state, "7")  # deleted while it plays
    assert actions == [Delete("new2"), Say("vm_deleted"), PlayMessage("old1")]
    state, actions = keys(state, "9")
    assert actions == [Say("vm_saved"), Say("vm_no_more"), Say("vm_main_menu")]  # old1 was heard already
    state, actions = keys(state, "#")
    assert actions == [Say("vm_goodbye"), Hangup()]
    assert menu.on(state, Key("1"))[1] == []  # over


def test_replay_menu_and_goodbye():
    state, _ = menu.start(MSGS[:1], locked=False, has_pin=True)
    state, _ = keys(state, "2468#")
    state, actions = menu.on(state, PLAYED)
    assert actions == [Say("vm_menu")]  # an old message: nothing to mark
    assert keys(state, "1")[1] == [PlayMessage("old1")]
    assert keys(state, "*")[1] == [Say("vm_menu")]
    assert keys(state, "#")[1] == [Say("vm_goodbye"), Hangup()]


def test_three_wrong_pins_lock_the_mailbox():
    state, _ = menu.start(MSGS, locked=False, has_pin=True)
    state, actions = keys(state, "1111#")
    assert actions == [PinFailed(), Say("vm_wrong_pin"), Say("vm_enter_pin")]
    state, actions = keys(state, "2222#")
    assert actions[0] == PinFailed()
    state, actions = keys(state, "3333#")
    assert actions == [PinFailed(), Say("vm_locked"), Hangup()]
    assert state.stage == "bye"


def test_a_locked_mailbox_or_one_without_pin_is_not_opened():
    assert menu.start(MSGS, locked=True, has_pin=True)[1] == [Say("vm_locked"), Hangup()]
    assert menu.start(MSGS, locked=False, has_pin=False)[1] == [Say("vm_locked"), Hangup()]


def test_silence_asks_again_once_then_says_goodbye():
    state, _ = menu.start([], locked=False, has_pin=True)
    state, actions = menu.on(state, TIMEOUT)
    assert actions == [Say("vm_enter_pin")]
    state, actions = menu.on(state, TIMEOUT)
    assert actions == [Say("vm_goodbye"), Hangup()]


def test_an_empty_mailbox_says_so():
    state, _ = menu.start([], locked=False, has_pin=True)
    _, actions = keys(state, "2468#")
    assert actions == [PinOk(), Say("vm_you_have"), SayNumber(0), Say("vm_new_messages"), Say("vm_no_messages"),
                       Say("vm_main_menu")]


def test_many_messages_are_counted_in_words_up_to_twenty():
    many = [Message(f"m{i}", False) for i in range(25)]
    state, _ = menu.start(many, locked=False, has_pin=True)
    assert Say("vm_more_than_twenty") in keys(state, "2468#")[1]
    for name in ("vm_more_than_twenty", "n0", "n20"):
        assert name in menu.PROMPTS


def test_pins_are_stored_as_salted_hashes():
    stored = hash_pin("2468")
    assert "2468" not in stored and stored != hash_pin("2468")  # salted
    assert pin_matches(stored, "2468") and not pin_matches(stored, "2469")
    assert not pin_matches("", "2468") and not pin_matches("plain$text", "") and not pin_matches("x$1$y$z", "2468")


def test_a_greeting_is_recorded_by_phone_from_either_menu():
    state, _ = menu.start([], locked=False, has_pin=True)
    state, _ = keys(state, "2468#")
    assert state.stage == "end"
    state, actions = keys(state, "0")
    assert actions == [Say("vm_greeting_choice")]
    state, actions = keys(state, "2")
    assert actions == [Say("vm_record_greeting"), Say("vm_beep"), RecordGreeting("busy")]
    state, actions = keys(state, "5")  # keys while recording are part of it
    assert actions == []
    state, actions = keys(state, "#")
    assert actions == [StopRecording(), Say("vm_greeting_saved"), Say("vm_main_menu")]
    # after a message, 0 too; a recording that runs long ends by itself
    state, _ = menu.start(MSGS[:1], locked=False, has_pin=True)
    state, _ = keys(state, "2468#0")
    state, actions = keys(state, "1")
    assert actions[-1] == RecordGreeting("unavailable")
    state, actions = menu.on(state, TIMEOUT)
    assert actions == [StopRecording(), Say("vm_greeting_saved"), Say("vm_menu")]
    # a wrong choice asks again; * goes back
    state, _ = keys(state, "0")
    assert keys(state, "7")[1] == [Say("vm_greeting_choice")]
    assert keys(state, "*")[1] == [Say("vm_menu")]


# ---------------------------------------------------------------- remote access: which mailbox first (VM-02/03)


def test_remote_access_asks_for_the_mailbox_then_its_pin():
    from kemi.policy import mailbox_menu as m

    state, said = m.ask_box()
    assert said == [m.Say("vm_enter_box")]
    for d in "201":
        state, said = m.on(state, m.Key(d))
    state, said = m.on(state, m.Key("#"))
    assert said == [m.OpenBox("201")] and state.stage == "opening"
    assert m.on(state, m.Key("5")) == (state, [])  # looked up meanwhile: keys wait
    state, said = m.opened(state, True, [m.Message("a", False)], locked=False, has_pin=True)
    assert state.stage == "pin" and said == [m.Say("vm_enter_pin")]


def test_remote_access_to_a_number_that_names_no_mailbox_three_times_ends_and_a_locked_one_says_so():
    from kemi.policy import mailbox_menu as m

    state, _ = m.ask_box()
    for attempt in range(3):
        state, _ = m.on(state, m.Key("9"))
        state, _ = m.on(state, m.Key("#"))
        state, said = m.opened(state, False, [], False, False)
    assert state.stage == "bye" and said[-1] == m.Hangup() and m.Say("vm_wrong_box") in said
    state, _ = m.ask_box()
    state, _ = m.on(state, m.Key("#"))
    state, said = m.opened(state, True, [], locked=True, has_pin=True)
    assert said == [m.Say("vm_locked"), m.Hangup()]
    state, _ = m.ask_box()
    state, _ = m.on(state, m.Key("#"))
    assert m.opened(state, True, [], locked=False, has_pin=False)[1] == [m.Say("vm_locked"), m.Hangup()]  # no PIN set


# ---------------------------------------------------------------- changing the PIN and calling back by phone


def test_the_pin_is_changed_by_phone_after_entering_it_twice():
    from kemi.policy.mailbox_menu import ChangePin

    state, _ = menu.start([], locked=False, has_pin=True)
    state, _ = keys(state, "2468#0")
    state, actions = keys(state, "5")
    assert actions == [Say("vm_new_pin")] and state.stage == "newpin"
    state, actions = keys(state, "12#")  # too short
    assert actions == [Say("vm_pin_invalid"), Say("vm_new_pin")]
    state, actions = keys(state, "97531#")
    assert actions == [Say("vm_repeat_pin")] and "97531" not in repr(actions)
    state, actions = keys(state, "97532#")  # not the same: from the start
    assert actions == [Say("vm_pin_mismatch"), Say("vm_new_pin")] and state.stage == "newpin"
    state, _ = keys(state, "97531#")
    state, actions = keys(state, "97531#")
    assert actions == [ChangePin("97531"), Say("vm_pin_changed"), Say("vm_main_menu")]
    assert state.stage == "end" and state.entered == "" and state.digits == ""


def test_three_unusable_new_pins_lead_back_to_the_options_and_silence_ends_the_call():
    state, _ = menu.start(MSGS[:1], locked=False, has_pin=True)
    state, _ = keys(state, "2468#05")
    for _ in range(2):
        state, actions = keys(state, "1#")
        assert actions == [Say("vm_pin_invalid"), Say("vm_new_pin")]
    state, actions = keys(state, "12345678901#")  # 11 digits: too long
    assert actions == [Say("vm_pin_invalid"), Say("vm_greeting_choice")] and state.stage == "greeting"
    state, _ = keys(state, "5")
    state, actions = menu.on(state, TIMEOUT)
    assert actions == [Say("vm_new_pin")]
    state, actions = menu.on(state, TIMEOUT)
    assert actions == [Say("vm_goodbye"), Hangup()]


def test_calling_back_asks_the_phone_and_ends_when_it_agrees():
    from kemi.policy.mailbox_menu import CALLED_BACK, NOT_CALLED_BACK, CallBack

    msgs = [Message("a", False, "+4930123456"), Message("b", False, "anonymous"), Message("c", True, "201")]
    state, _ = menu.start(msgs, locked=False, has_pin=True)
    state, _ = keys(state, "2468#")
    state, actions = keys(state, "3")  # while the first message plays
    assert actions == [CallBack("+4930123456")] and state.stage == "calling"
    assert keys(state, "7") == (state, [])  # keys wait for the phone's answer
    state, actions = menu.on(state, NOT_CALLED_BACK)
    assert actions == [Say("vm_no_callback"), Say("vm_menu")] and state.stage == "menu"
    state, actions = keys(state, "2")  # the anonymous one: nobody to call
    assert actions == [Heard("a"), PlayMessage("b")]
    state, actions = keys(state, "3")
    assert actions == [Say("vm_no_callback"), Say("vm_menu")]
    state, _ = keys(state, "2")
    state, actions = keys(state, "3")  # an internal caller: the extension
    assert actions == [CallBack("201")]
    state, actions = menu.on(state, CALLED_BACK)
    assert actions == [Hangup()] and state.stage == "bye"


def test_the_number_to_call_back():
    from kemi.policy.voicemail import callback_number

    assert callback_number("+4930123456") == "+4930123456"
    assert callback_number(" 201 ") == "201"
    for nothing in ("", "anonymous", "+", "1", "20a", "+49 30 1234", "²²²", "+" + "1" * 17):
        assert callback_number(nothing) == ""


def test_a_pin_hash_from_the_phone_must_have_the_stored_form():
    from kemi.policy.voicemail import pin_hash_form, valid_pin

    assert pin_hash_form(hash_pin("97531"))
    assert not pin_hash_form("97531") and not pin_hash_form(hash_pin("1234").replace("pbkdf2", "md5"))
    assert not pin_hash_form("pbkdf2-sha256$10$ab$" + "0" * 64)  # too few rounds
    assert valid_pin("1234") and valid_pin("0" * 10) and not valid_pin("123") and not valid_pin("12345678901")
    assert not valid_pin("12a4") and not valid_pin("١٢٣٤")  # Arabic-Indic digits are not phone keys
