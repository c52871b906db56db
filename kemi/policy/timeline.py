"""A whole call, dry-run: the first decision, then a scripted sequence of events (the callee is busy, nobody answers
for 20 s, a trunk answers 503, a member becomes free...), each through the same transitions live calls take
(`kemi.policy.call`). What `route.simulate` answers when an admin asks where a call "went somewhere strange".

The shell's part is assumed to succeed: every relay leaves, every device named is registered, every member offered
is free to be claimed. Each step says what happened, what the policy decided and the trace lines it added.
"""

from __future__ import annotations

from typing import NamedTuple

from . import call, ivr, voicemail
from .call import AnswerChallenge, Divert, Effect, Failed, Finish, OfferNextStep, RelayTrunk, WaitAgain
from .callstate import CallState
from .decision import (
    Action,
    Announce,
    Decision,
    Reject,
    RouteToGroup,
    RouteToTrunk,
    RouteToUser,
    ToIvr,
    ToVoicemail,
)
from .live import QUIET, LiveView
from .snapshot import Snapshot

# event name -> the final answer the transaction gets (code, reason, a device rang first)
EVENTS: dict[str, tuple[int, str, bool]] = {
    "busy": (486, "Busy Here", True),
    "no_answer": (408, "Request Timeout", True),
    "unreachable": (408, "Request Timeout", False),
    "declined": (603, "Decline", True),
    "unavailable": (480, "Temporarily Unavailable", False),
    "server_error": (503, "Service Unavailable", False),
    "challenge": (407, "Proxy Authentication Required", False),
}
ENDING = ("answer", "cancel")
MENU = ("keys", "no_key")  # in IVR menus: the caller presses `digits`; no key within the menu's time
KINDS = (*EVENTS, *ENDING, "failure", "member_free", *MENU)
MAX_EVENTS = 50


class Event(NamedTuple):
    kind: str  # one of KINDS
    after_s: float = 0.0  # seconds after the previous event (ringing time, waiting time)
    code: int = 0  # kind "failure": the final answer's code ...
    reason: str = ""  # ... and reason phrase
    digits: str = ""  # kind "keys": the keys pressed, in order (0-9, *, #)


class Step(NamedTuple):
    event: str  # what happened, as a reader says it
    at_s: float  # seconds since the call began
    outcome: str  # what the policy decided
    trace: tuple[str, ...]  # the trace lines this step added
    ended: bool = False


def run(
    decision: Decision,
    events: list[Event],
    snapshot: Snapshot,
    live: LiveView = QUIET,
    now: float = 0.0,
    speaks: str = "",
) -> list[Step]:
    """The call's timeline: its first decision, then one step per event until the call is answered or ends (`speaks`:
    the language a refused end is announced in, kemi.policy.announce)."""
    state = call.begin(decision, "simulated", "simulated", now, speaks)
    steps: list[Step] = []
    state, outcome, ended = _route(state, decision.action, snapshot, live, now)
    steps.append(Step("call", 0.0, outcome, state.trace, ended))
    at = 0.0
    pos: ivr.Position | None = None  # where the caller is in IVR menus
    for ev in events[:MAX_EVENTS]:
        if ended:
            break
        at += max(0.0, ev.after_s)
        before = len(state.trace)
        label = _label(ev)
        if ev.kind == "answer":
            steps.append(Step(label, at, "answered: the call is connected", (), True))
            break
        if ev.kind in MENU:
            state, pos, outcome, ended = _menus(state, pos, ev, snapshot, live, now + at)
        elif ev.kind == "member_free":
            state, outcome, ended = _queue_turn(state, snapshot, live, now + at)
        else:
            failed = _failure(ev)
            state, effects = call.on_failure(state, failed, snapshot, live, now + at)
            state, outcome, ended = _apply(state, effects, snapshot, live, now + at)
        steps.append(Step(label, at, outcome, state.trace[before:], ended))
    return steps


def _menus(
    state: CallState, pos: ivr.Position | None, ev: Event, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, ivr.Position | None, str, bool]:
    """Keys pressed (or none) in the IVR menus, moved through as the media server does (`pos`: where the caller is,
    None: at the menu the call entered); a choice that leaves them goes back to the node as the media server's 302."""
    if state.ivr is None:
        return state, None, "nothing: the call is not in IVR menus", False
    menus = snapshot.ivr_menus
    if pos is None:
        pos = ivr.enter(menus, state.ivr)[0]
    heard: list[str] = []
    step: ivr.Step | None = None
    if ev.kind == "no_key":
        pos, step = ivr.waited(menus, pos)
        heard.append(f"menu {pos.menu} again")
    for key in ev.digits if ev.kind == "keys" else ():
        if not key.strip():
            continue
        pos, step = ivr.press(menus, pos, key)
        if not isinstance(step, ivr.Play):
            break
        heard.append(f"{key}: menu {pos.menu}")
    if isinstance(step, ivr.Leave):
        choice = ivr.choice_value(step.menu, step.key)
        state, effects = call.on_failure(state, Failed(302, "Moved Temporarily", choice=choice), snapshot, live, now)
        state, outcome, ended = _apply(state, effects, snapshot, live, now)
        return state, None, outcome, ended
    if isinstance(step, ivr.End):
        state = state.traced("no choice in the menus: goodbye")
        return state, None, f"the call ends: {ivr.ENDED.code} {ivr.ENDED.reason} ({ivr.ENDED.warning})", True
    return state, pos, "in the menus: " + ("; ".join(heard) if heard else "nothing pressed"), False


def _failure(ev: Event) -> Failed:
    if ev.kind == "cancel":
        return Failed(487, "Request Terminated", cancelled=True)
    if ev.kind == "failure":
        return Failed(ev.code, ev.reason or "Failed", rang=True)
    code, reason, rang = EVENTS[ev.kind]
    return Failed(code, reason, rang=rang)


def _label(ev: Event) -> str:
    if ev.kind == "failure":
        return f"final answer {ev.code} {ev.reason or ''}".rstrip()
    if ev.kind in EVENTS:
        code, reason, _ = EVENTS[ev.kind]
        return f"{ev.kind.replace('_', ' ')} ({code} {reason})"
    if ev.kind == "keys":
        return f"the caller presses {' '.join(k for k in ev.digits if k.strip())}"
    if ev.kind == "no_key":
        return "the caller presses nothing"
    return {"answer": "answered", "cancel": "the caller hangs up", "member_free": "a member of the group becomes free"}[
        ev.kind
    ]


def _route(
    state: CallState, action: Action, snapshot: Snapshot, live: LiveView, now: float, diverted: bool = False
) -> tuple[CallState, str, bool]:
    """The first decision applied, or (`diverted`) a forwarding / overflow target's, as the shell applies them."""
    if isinstance(action, Reject):
        return state, f"reject {action.code} {action.reason}" + (f": {action.warning}" if action.warning else ""), True
    if isinstance(action, Announce):
        r = action.refusal
        said = f"announcement {action.prompt} ({action.language}), then reject {r.code} {r.reason}"
        return call.onto(state, action, now), said + (f": {r.warning}" if r.warning else ""), True
    if isinstance(action, ToVoicemail):  # the media server answers: the caller hears the greeting and leaves a message
        return call.onto(state, action, now), f"{voicemail.describe(action)} answers: greeting, then a message", True
    if isinstance(action, ToIvr):  # the media server plays the menus as early media; keys move through them
        return call.onto(state, action, now), f"IVR menu {action.menu_id} ({action.language or 'node language'})", False
    if isinstance(action, RouteToGroup) and diverted:
        state, step = call.into_group(state, action, now)
        if step is None:
            return state, f"group {action.group_id} has nobody free and no queue to wait in: the call ends", True
        if isinstance(step, WaitAgain):
            return _apply(state, (step,), snapshot, live, now)
        return _next_step(state)
    state = call.onto(state, action, now, diverted)
    if isinstance(action, RouteToGroup):
        return _offer(state, action, snapshot, live, now)
    return state, describe(action), False


def _offer(
    state: CallState, action: RouteToGroup, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, str, bool]:
    state = call.offering(state, action)
    if action.steps:
        return _next_step(state)
    state, effects = call.when_unplaced(state, action.group_id, True, snapshot, live, now)
    return _apply(state, effects, snapshot, live, now)


def _next_step(state: CallState) -> tuple[CallState, str, bool]:
    group = state.group
    assert group is not None and group.steps
    step = group.steps[0]
    members = ", ".join(str(m) for m, _ in step.members)
    state = state._replace(group=group._replace(steps=group.steps[1:], offered=step.members)).traced(
        f"offering to user(s) {members} for {step.seconds} s"
    )
    return state, f"offer group {group.group_id} to user(s) {members} for {step.seconds} s", False


def _queue_turn(state: CallState, snapshot: Snapshot, live: LiveView, now: float) -> tuple[CallState, str, bool]:
    if state.queue is None or not state.queue.held:
        return state, "nothing: the call is not waiting in a queue", False
    since = state.queue.since
    group_id = state.queue.group_id
    state, action = call.on_queue_turn(state, None, snapshot, live, now)
    if action is not None and action.steps:
        state, outcome, ended = _offer(state, action, snapshot, live, now)
        return state.traced(f"a member is free after {now - since:.1f} s of waiting"), outcome, ended
    state, effects = call.when_unplaced(state, group_id, False, snapshot, live, now)
    return _apply(state, effects, snapshot, live, now)


def _apply(
    state: CallState, effects: tuple[Effect, ...], snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, str, bool]:
    for effect in effects:
        if isinstance(effect, Finish):
            return (
                state,
                f"the call ends: {effect.code} {effect.reason}" + (f" ({effect.warning})" if effect.warning else ""),
                True,
            )
        if isinstance(effect, Divert) and isinstance(effect.action, Announce):  # the end, said first
            a, r = effect.action, effect.action.refusal
            said = f"the call ends: {r.code} {r.reason} (announced first: {a.prompt}, {a.language})"
            return call.onto(state, a, now), said, True
        if isinstance(effect, Divert):
            state, outcome, ended = _route(state, effect.action, snapshot, live, now, diverted=True)
            return state, "forward: " + outcome, ended
        if isinstance(effect, RelayTrunk):
            return state, f"fail over to trunk {effect.hop.name}", False
        if isinstance(effect, AnswerChallenge):
            return state, f"answer the carrier's challenge as {effect.user}", False
        if isinstance(effect, OfferNextStep):
            return _next_step(state)
        if isinstance(effect, WaitAgain):
            state = call.held(state, "simulated", effect.seconds)
            return (
                state,
                f"wait in the queue of group {state.queue.group_id if state.queue else '?'}, {effect.seconds:.0f} s "
                "at most",
                False,
            )
    return state, "nothing", False


def describe(action: Action) -> str:
    """One line for a routing action, as the timeline shows it."""
    if isinstance(action, RouteToUser):
        return f"ring user {action.user_id} ({len(action.aors)} address(es))" + (
            f", {action.no_answer_s} s before the no-answer forwarding"
            if action.on_no_answer is not None and action.no_answer_s
            else ""
        )
    if isinstance(action, RouteToTrunk):
        return f"out to {action.target} via trunk {action.hops[0].name}" + (
            f" (then {', '.join(h.name for h in action.hops[1:])})" if len(action.hops) > 1 else ""
        )
    if isinstance(action, RouteToGroup):
        return f"group {action.group_id}"
    if isinstance(action, Reject):
        return f"reject {action.code} {action.reason}"
    if isinstance(action, ToVoicemail):
        return voicemail.describe(action)
    return type(action).__name__
