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
