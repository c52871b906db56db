"""Listening to a mailbox by phone (issue 23, VM-02/03): the menu, as a pure state machine the media server drives.

From anywhere (remote access: `ask_box`), the caller first names the mailbox by its number (the mailbox's or its
owner's extension) and `#`; three numbers that name none end the call. The caller enters the mailbox's PIN and `#`;
three wrong PINs end the call and lock the mailbox (the control plane locks it for a while and raises a fraud
event). Then: how many new messages there are, and the messages, new ones
first. After each message:
    1 replay   2 next (the message is kept, heard)   3 call back   7 delete   9 save (heard) and next
    0 options   * the menu again   # goodbye
A message played to its end counts as heard. After the last one (or with none): `0` options, `#` goodbye.
Options (`0`, there or after a message): `1` record the unavailable greeting, `2` the busy one — the caller speaks
after the tone and ends with `#` (or after MAX_GREETING_S) — `5` change the PIN (the new one twice, each with `#`),
`*` back. No key for a while: the menu again, then goodbye.
Calling back (`3`): the media server asks the listener's phone to call the number of who left the message (a REFER:
the phone's own new call, with its own permissions) and ends this call when the phone agrees; a message without a
number to call (anonymous), or a phone that refuses, is said and the menu goes on.

`start(...)` gives the first state and what to do; `on(state, event)` the next state and what to do. Events: a key
(`Key("5")`), the end of what was playing (`PLAYED`), a wait that ran out (`TIMEOUT`), the phone's answer to calling
back (`CALLED_BACK`, `NOT_CALLED_BACK`). What to do: `Say(prompt)` / `SayNumber(n)` (played in order),
`PlayMessage(id)`, `Heard(id)`, `Delete(id)`, `PinFailed()`, `PinOk()`, `Hangup()`, `RecordGreeting(kind)` (from now
until `StopRecording()`; the media server hands it over as the mailbox's greeting), `CallBack(number)`,
`ChangePin(pin)` (the media server hands its hash to the control plane).
"""

from __future__ import annotations

from typing import NamedTuple

from .voicemail import callback_number, valid_pin

MAX_PIN_TRIES = 3
PIN_TIMEOUT_S = 10.0  # waiting for the PIN's next key
MENU_TIMEOUT_S = 8.0  # waiting for a key after the menu
MAX_GREETING_S = 60.0  # a greeting recorded by phone ends by itself after this long (a TIMEOUT event)
MAX_DIGITS = 12
NUMBERS = 20  # prompts n0 .. n20; more messages are said as "more than twenty"


class Message(NamedTuple):
    id: str
    heard: bool
    caller: str = ""  # who left it, as the node identified them (an extension, an E.164 number, 'anonymous')


class Key(NamedTuple):
    digit: str


PLAYED, TIMEOUT = "played", "timeout"
CALLED_BACK, NOT_CALLED_BACK = "called_back", "not_called_back"  # the listener's phone took the call back, or not


class Say(NamedTuple):
    prompt: str


class SayNumber(NamedTuple):
    n: int


class PlayMessage(NamedTuple):
    id: str


class Heard(NamedTuple):
    id: str


class Delete(NamedTuple):
    id: str


class PinFailed(NamedTuple):
    pass


class PinOk(NamedTuple):
    pass


class Hangup(NamedTuple):
    pass


class OpenBox(NamedTuple):
    """Remote access: the caller named a mailbox by its number; the media server looks it up and calls `opened`."""

    number: str


class RecordGreeting(NamedTuple):
    kind: str  # "unavailable" or "busy"


class StopRecording(NamedTuple):
    pass


class CallBack(NamedTuple):
    """Ask the listener's phone to call this number (an extension or E.164), then end this call if it agrees."""

    number: str


class ChangePin(NamedTuple):
    pin: str  # the new PIN, entered twice alike and valid (kemi.policy.voicemail.valid_pin)


class State(NamedTuple):
    # "box" (remote access: which mailbox), "opening" (being looked up), "pin", "message" (one playing), "menu"
    # (after a message), "end" (none left), "greeting" (the options: which greeting, or the PIN), "recording" (a
    # greeting), "newpin" / "newpin2" (a new PIN, then again), "calling" (the phone asked to call back), "bye"
    stage: str
    messages: tuple[Message, ...] = ()
    current: int = 0
    digits: str = ""
    tries: int = 0
    timeouts: int = 0
    entered: str = ""  # the new PIN as first entered (stage newpin2)


DIGIT_STAGES = ("box", "pin", "newpin", "newpin2")  # collecting keys up to # (the media server waits PIN_TIMEOUT_S)

PROMPTS = (
    "vm_enter_box",
    "vm_wrong_box",
    "vm_enter_pin",
    "vm_wrong_pin",
    "vm_locked",
    "vm_you_have",
    "vm_new_messages",
    "vm_no_messages",
    "vm_menu",
    "vm_deleted",
    "vm_saved",
    "vm_no_more",
    "vm_goodbye",
    "vm_more_than_twenty",
    "vm_main_menu",
    "vm_greeting_choice",
    "vm_record_greeting",
    "vm_greeting_saved",
    "vm_beep",
    "vm_new_pin",
    "vm_repeat_pin",
    "vm_pin_invalid",
    "vm_pin_mismatch",
    "vm_pin_changed",
    "vm_no_callback",
    *(f"n{i}" for i in range(NUMBERS + 1)),
)


def number(n: int) -> list:
    return [SayNumber(n)] if n <= NUMBERS else [Say("vm_more_than_twenty")]


def start(messages: list[Message], locked: bool, has_pin: bool) -> tuple[State, list]:
    """The call is answered: a locked mailbox or one without a PIN says so and ends; else the PIN is asked for."""
    if locked or not has_pin:
        return State("bye"), [Say("vm_locked"), Hangup()]
    ordered = tuple(sorted(messages, key=lambda m: m.heard))  # new ones first, each group in the order given
    return State("pin", ordered), [Say("vm_enter_pin")]


def ask_box() -> tuple[State, list]:
    """Remote access (a caller from anywhere, VM-02/03): which mailbox — its number and # — then its PIN."""
    return State("box"), [Say("vm_enter_box")]


def opened(state: State, found: bool, messages: list[Message], locked: bool, has_pin: bool) -> tuple[State, list]:
    """The mailbox the caller named (`found`: it exists and may be listened to from anywhere): its PIN next; a number
    that names none is said, three of them end the call (reported like wrong PINs: nobody guesses numbers for free)."""
    if found and (locked or not has_pin):
        return State("bye"), [Say("vm_locked"), Hangup()]
    if found:
        return start(messages, False, True)
    tries = state.tries + 1
    if tries >= MAX_PIN_TRIES:
        return State("bye"), [Say("vm_wrong_box"), Say("vm_goodbye"), Hangup()]
    return state._replace(stage="box", digits="", tries=tries), [Say("vm_wrong_box"), Say("vm_enter_box")]


def on(state: State, event, pin_ok=lambda digits: False) -> tuple[State, list]:
    """The next state and what to do. `pin_ok(digits)`: does this PIN open the mailbox?"""
    if state.stage == "bye":
        return state, []
    if state.stage == "box":
        return _box(state, event)
    if state.stage == "opening":  # the media server looks the mailbox up (`opened` follows)
        return state, []
    if state.stage == "pin":
        return _pin(state, event, pin_ok)
    if state.stage in ("end", "greeting", "recording"):
        return _greeting(state, event)
    if state.stage in ("newpin", "newpin2"):
        return _new_pin(state, event)
    if state.stage == "calling":
        return _calling(state, event)
    if state.stage == "message":
        if event == PLAYED:  # heard to its end: kept as heard, the menu follows
            msg = state.messages[state.current]
            if msg.heard:
                return state._replace(stage="menu", timeouts=0), [Say("vm_menu")]
            return _heard(state)._replace(stage="menu", timeouts=0), [Heard(msg.id), Say("vm_menu")]
        if isinstance(event, Key):  # a key while a message plays: as in the menu (it stops the message)
            return _menu(state._replace(stage="menu"), event)
        return state, []
    return _menu(state, event)


def _digits(state: State, event, prompt: str) -> tuple[State, list] | None:
    """Keys collected up to `#` (a number, a PIN): what to do now, or None when `#` ends them (state.digits)."""
    if event == TIMEOUT:
        if state.timeouts >= 1:
            return state._replace(stage="bye"), [Say("vm_goodbye"), Hangup()]
        return state._replace(digits="", timeouts=state.timeouts + 1), [Say(prompt)]
    if not isinstance(event, Key):
        return state, []
    if event.digit != "#":
        if event.digit.isdigit() and len(state.digits) < MAX_DIGITS:
            return state._replace(digits=state.digits + event.digit, timeouts=0), []
        return state, []
    return None


def _box(state: State, event) -> tuple[State, list]:
    step = _digits(state, event, "vm_enter_box")
    if step is not None:
        return step
    return state._replace(stage="opening", digits=""), [OpenBox(state.digits)]


def _pin(state: State, event, pin_ok) -> tuple[State, list]:
    step = _digits(state, event, "vm_enter_pin")
    if step is not None:
        return step
    if pin_ok(state.digits):
        new = sum(1 for m in state.messages if not m.heard)
        said = [PinOk(), Say("vm_you_have"), *number(new), Say("vm_new_messages")]
        return _play(state._replace(digits="", tries=0, timeouts=0), 0, said)
    tries = state.tries + 1
    if tries >= MAX_PIN_TRIES:
        return State("bye"), [PinFailed(), Say("vm_locked"), Hangup()]
    return state._replace(digits="", tries=tries), [PinFailed(), Say("vm_wrong_pin"), Say("vm_enter_pin")]


def _play(state: State, index: int, said: list) -> tuple[State, list]:
    """Play message `index`, or say there is none left and offer what else can be done."""
    if index >= len(state.messages):
        last = Say("vm_no_more") if state.messages else Say("vm_no_messages")
        return state._replace(stage="end", current=index, timeouts=0), [*said, last, Say("vm_main_menu")]
    return state._replace(stage="message", current=index), [*said, PlayMessage(state.messages[index].id)]


def _back(state: State) -> tuple[State, list]:
    """After a greeting: the menu the caller came from."""
    if state.current >= len(state.messages):
        return state._replace(stage="end", timeouts=0), [Say("vm_main_menu")]
    return state._replace(stage="menu", timeouts=0), [Say("vm_menu")]


def _greeting(state: State, event) -> tuple[State, list]:
    if state.stage == "recording":
        if event == TIMEOUT or (isinstance(event, Key) and event.digit == "#"):
            saved = _back(state)
            return saved[0], [StopRecording(), Say("vm_greeting_saved"), *saved[1]]
        return state, []  # other keys are part of what is said
    if event == TIMEOUT:
        if state.timeouts >= 1:
            return state._replace(stage="bye"), [Say("vm_goodbye"), Hangup()]
        prompt = "vm_main_menu" if state.stage == "end" else "vm_greeting_choice"
        return state._replace(timeouts=state.timeouts + 1), [Say(prompt)]
    if not isinstance(event, Key):
        return state, []
    if state.stage == "greeting":
        if event.digit == "5":
            return state._replace(stage="newpin", digits="", tries=0, timeouts=0), [Say("vm_new_pin")]
        kind = {"1": "unavailable", "2": "busy"}.get(event.digit)
        if kind is None:
            return _back(state) if event.digit in ("*", "#") else (state, [Say("vm_greeting_choice")])
        return state._replace(stage="recording", timeouts=0), [
            Say("vm_record_greeting"),
            Say("vm_beep"),
            RecordGreeting(kind),
        ]
    # "end": no message left
    if event.digit == "0":
        return state._replace(stage="greeting", timeouts=0), [Say("vm_greeting_choice")]
    if event.digit == "#":
        return state._replace(stage="bye"), [Say("vm_goodbye"), Hangup()]
    return state._replace(timeouts=0), [Say("vm_main_menu")]


def _heard(state: State) -> State:
    """The current message, heard."""
    i, msgs = state.current, state.messages
    return state._replace(messages=msgs[:i] + (msgs[i]._replace(heard=True),) + msgs[i + 1 :])


def _menu(state: State, event) -> tuple[State, list]:
    msg = state.messages[state.current] if state.current < len(state.messages) else None
    if event == TIMEOUT:
        if state.timeouts >= 1:
            return state._replace(stage="bye"), [Say("vm_goodbye"), Hangup()]
        return state._replace(timeouts=state.timeouts + 1), [Say("vm_menu")]
    if not isinstance(event, Key) or msg is None:
        return state, []
    state = state._replace(timeouts=0)
    if event.digit == "1":
        return _play(state, state.current, [])
    if event.digit in ("2", "9"):
        said = ([] if msg.heard else [Heard(msg.id)]) + ([Say("vm_saved")] if event.digit == "9" else [])
        return _play(_heard(state), state.current + 1, said)
    if event.digit == "3":
        number = callback_number(msg.caller)
        if not number:
            return state, [Say("vm_no_callback"), Say("vm_menu")]
        return state._replace(stage="calling"), [CallBack(number)]
    if event.digit == "7":
        rest = state.messages[: state.current] + state.messages[state.current + 1 :]
        return _play(state._replace(messages=rest), state.current, [Delete(msg.id), Say("vm_deleted")])
    if event.digit == "*":
        return state, [Say("vm_menu")]
    if event.digit == "0":
        return state._replace(stage="greeting"), [Say("vm_greeting_choice")]
    if event.digit == "#":
        return state._replace(stage="bye"), [Say("vm_goodbye"), Hangup()]
    return state, [Say("vm_menu")]


def _new_pin(state: State, event) -> tuple[State, list]:
    """A new PIN by phone: entered, checked, entered again; three unusable entries lead back to the options."""
    prompt = "vm_new_pin" if state.stage == "newpin" else "vm_repeat_pin"
    step = _digits(state, event, prompt)
    if step is not None:
        return step
    if state.stage == "newpin":
        if valid_pin(state.digits):
            return state._replace(stage="newpin2", entered=state.digits, digits=""), [Say("vm_repeat_pin")]
        tries = state.tries + 1
        if tries >= MAX_PIN_TRIES:
            return state._replace(stage="greeting", digits="", tries=0), [
                Say("vm_pin_invalid"),
                Say("vm_greeting_choice"),
            ]
        return state._replace(digits="", tries=tries), [Say("vm_pin_invalid"), Say("vm_new_pin")]
    if state.digits != state.entered:
        return state._replace(stage="newpin", digits="", entered=""), [Say("vm_pin_mismatch"), Say("vm_new_pin")]
    pin = state.digits
    back = _back(state._replace(digits="", entered="", tries=0))
    return back[0], [ChangePin(pin), Say("vm_pin_changed"), *back[1]]


def _calling(state: State, event) -> tuple[State, list]:
    """The listener's phone was asked to call back: agreed, this call ends; refused (or no answer), the menu again."""
    if event == CALLED_BACK:
        return state._replace(stage="bye"), [Hangup()]
    if event in (NOT_CALLED_BACK, TIMEOUT):
        return state._replace(stage="menu", timeouts=0), [Say("vm_no_callback"), Say("vm_menu")]
    return state, []  # keys while the phone decides
