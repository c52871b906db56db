"""The whole call after its first decision: pure transitions from one `CallState` to the next.

Each event of a call — its transaction failed (`on_failure`), a queued call's turn came (`on_queue_turn`),
nobody could be offered it (`when_unplaced`) — goes through one function here that returns the new state and
the effects the shell applies in order (`Effect`). The shell performs them; when one of them cannot be done
(a relay refused, no registered device, the members taken by another call), it tells the same function again
(`on_failure` with the state the effect left), so the order of fallbacks is written only here:

    a queued call's time is up      ->  the group's overflow
    a carrier's 401/407             ->  answer with the trunk's credentials (once per trunk)
    5xx or timeout from a trunk     ->  the next trunk
    busy / no answer / unreachable  ->  the forwarding decided with the call
    a group step unanswered         ->  the next step, then wait again in the queue, then the overflow
    nothing left                    ->  the final reply goes back, the call's record is written

`route.simulate` runs these same functions on a scripted sequence of events (`kemi.policy.timeline`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from . import announce, ivr, voicemail
from . import queue as policy_queue
from .callstate import CallRecord, CallState, Forwarding, FraudMark, GroupOffer, QueuePlace, TrunkLeg
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
    TrunkHop,
)
from .forwarding import fallback_case
from .live import QUIET, LiveView
from .routing import (
    caller_language,
    dial_extension,
    group_overflow,
    menu_number,
    offer_waiting,
    session_lifetime,
    should_fail_over,
    trunk_credentials,
)
from .snapshot import Snapshot


class Failed(NamedTuple):
    """The event of the failure route: the transaction's best final answer (or the caller's CANCEL)."""

    code: int
    reason: str
    cancelled: bool = False
    rang: bool = False  # a device rang (180/183) before: a timeout means "no answer", not "unreachable"
    choice: str = ""  # calls in IVR menus: the choice the media server's 302 names (kemi.policy.ivr.CHOICE_HEADER)


# ---------------------------------------------------------------- effects: what the shell does, in order


class ReleaseClaims(NamedTuple):
    """Give back this call's offer claims on these members (nobody is offered the call any more)."""

    users: tuple[int, ...]


class LeaveQueue(NamedTuple):
    """The call no longer waits in the group's queue (its entry and counts go)."""

    key: str
    group_id: int


class Finish(NamedTuple):
    """Nothing more to try: the final reply goes back (or is sent, `local`), media released, the record written."""

    code: int
    reason: str
    cancelled: bool = False
    local: bool = False  # the node answers (nothing was relayed, or a call resumed from the queue)
    warning: str = ""  # local answers: the Warning header's text


class AnswerChallenge(NamedTuple):
    """Answer the carrier's 401/407 with the trunk's credentials and send the request again."""

    user: str
    password: str
    realm: str


class RelayTrunk(NamedTuple):
    """A new branch to this trunk (failover)."""

    hop: TrunkHop


class Divert(NamedTuple):
    """New branches to a forwarding or overflow target (a user, a trunk, a hunt group). `fresh_ring`: the branch
    before was the media server's early media (IVR menus), not a device ringing — the mark that a device rang starts
    afresh, so a target whose devices never ring counts as unreachable, not as not answering, and the record's ring
    time is the target's."""

    action: Action
    fresh_ring: bool = False


class OfferNextStep(NamedTuple):
    """The group's next step: its members with a registered device, claimed first."""

    group_id: int


class WaitAgain(NamedTuple):
    """The call waits in its group's queue again, for the time it has left."""

    seconds: float


class TakeTurn(NamedTuple):
    """A call waiting with music: its turn came (a member is free): offer it now, as a suspended call's turn. The
    music's early media was no device ringing: the mark that one rang starts afresh (as `Divert.fresh_ring`)."""


Effect = (
    ReleaseClaims | LeaveQueue | Finish | AnswerChallenge | RelayTrunk | Divert | OfferNextStep | WaitAgain | TakeTurn
)
Transition = tuple[CallState, tuple[Effect, ...]]


# ---------------------------------------------------------------- the first decision, and the targets of later ones


def begin(decision: Decision, call_id: str, cdr_id: str, now: float, speaks: str = "") -> CallState:
    """The state of a new call from its first decision: who called whom, and the decision's trace; `speaks`: the
    language its refusal is announced in (kemi.policy.announce.speaks)."""
    caller, callee = decision.caller, decision.callee
    party = callee or caller
    return CallState(
        record=CallRecord(
            cdr_id,
            call_id,
            now,
            party.tenant_id if party else None,
            caller.number if caller else "",
            caller.user_id if caller else None,
            callee.number if callee else "",
            callee.user_id if callee else None,
        ),
        trace=decision.trace,
        speaks=speaks,
    )


def onto(state: CallState, action: Action, now: float, diverted: bool = False) -> CallState:
    """The state of a call sent to `action` (first decision; `diverted`: a forwarding or overflow target) before its
    branches leave. One forwarding per call leg: a forwarding target's own forwarding is not followed."""
    if isinstance(action, RouteToUser):
        if diverted:
            return state
        fallbacks = Forwarding(
            action.on_busy,
            action.on_no_answer,
            action.on_unreachable if not isinstance(action.on_unreachable, Reject) else None,
        )
        return state._replace(forwarding=fallbacks if any(fallbacks) else None)
    if isinstance(action, RouteToTrunk):
        first = action.hops[0]
        return state._replace(
            trunk=TrunkLeg(first.name, action.hops[1:], state.trunk.answered_challenge if state.trunk else None),
            fraud=FraudMark(*action.fraud[:2], float(action.fraud[2])) if action.fraud else state.fraud,
            emergency=state.emergency or action.emergency,
        ).traced(f"trying trunk {first.name}")
    if isinstance(action, RouteToGroup):
        return state._replace(queue=queue_place(action, now))  # a queue of a group it overflows from is left behind
    if isinstance(action, (Announce, ToVoicemail, ToIvr)):
        state = _media_leg(state, action)
    if isinstance(action, Announce):
        return state._replace(announcing=action.refusal, media=action)
    if isinstance(action, ToVoicemail):
        return state._replace(announcing=voicemail.refusal(action), mailbox=action.mailbox_id or None, media=action)
    if isinstance(action, ToIvr):
        return state._replace(announcing=ivr.NO_MENU, media=action, ivr=action.menu_id)
    return state


# ---------------------------------------------------------------- calls the media server takes

MediaAction = Announce | ToVoicemail | ToIvr
NOT_REACHED = "the media server could not be reached"


def media_refusal(action: MediaAction) -> Reject:
    """How a call for the media server ends when it cannot get there: the refusal it was to hear, the end the mailbox
    stood in for (486 / 480), or 480 for menus."""
    if isinstance(action, Announce):
        return action.refusal
    if isinstance(action, ToVoicemail):
        return voicemail.refusal(action)
    return ivr.NO_MENU


def without_media_server(
    state: CallState, action: MediaAction, method: str, media_server: bool
) -> tuple[CallState, Reject] | None:
    """A call for the media server that this node does not send there — a request other than INVITE (a MESSAGE to a
    mailbox's extension) or a node without a media server: (its state, the refusal the node answers itself)."""
    if method == "INVITE" and media_server:
        return None
    if isinstance(action, ToVoicemail):
        state = state.traced("no media server on this node: the mailbox cannot take the call")
    elif isinstance(action, ToIvr):
        state = state.traced("no media server on this node: the menus cannot be played")
    return state, media_refusal(action)


def media_timers(action: MediaAction) -> tuple[int, int, int]:
    """(ms after a provisional, ms before one, the transaction's lifetime or 0: the node's default) of a branch to the
    media server: it answers at once; menus keep the caller longer and the chosen destination rings after them."""
    if isinstance(action, Announce):
        return announce.INV_MS, announce.FR_MS, 0
    if isinstance(action, ToVoicemail):
        return voicemail.INV_MS, voicemail.FR_MS, 0
    return ivr.INV_MS, ivr.FR_MS, ivr.LIFETIME_MS


def _media_leg(state: CallState, action: Action | None) -> CallState:
    """One more branch to the media server (not when the same one is tried again on the next process)."""
    return state if action is not None and action == state.media else state._replace(media_legs=state.media_legs + 1)


def media_attempt(state: CallState) -> int:
    """Which of the media server's processes (kemi.policy.announce.worker_port) the call's branch goes to: the next
    one for each new branch of the same call — a process still holding the call's last branch (its transaction ends
    some seconds after the branch) would refuse the same Call-ID and From tag again as a loop (482, measured) — and
    the next again when one did not answer."""
    return max(0, state.media_legs - 1) + state.media_tries


def queue_place(action: RouteToGroup, now: float) -> QueuePlace | None:
    """A call to a group with a queue: its place (priority, arrival, latest end of its wait), held or not."""
    if not action.queue_s:
        return None
    # not rounded: whether the call may still wait is decided on the time left to the microsecond (a queue of exactly
    # MIN_WAIT_S leaves a call that has been routed for any time at all less than that: it does not wait)
    return QueuePlace(action.group_id, action.priority, now, now + action.queue_s)


def ringing_ms(action: RouteToUser) -> int | None:
    """How long the user's devices ring before the no-answer forwarding (None: the user has no forwarding, the node's
    own INVITE timer applies; 0: ring until the caller or the INVITE timer gives up, then the forwarding)."""
    has_forwarding = (
        action.on_busy is not None or action.on_no_answer is not None or not isinstance(action.on_unreachable, Reject)
    )
    return action.no_answer_s * 1000 if has_forwarding else None


def offering(state: CallState, action: RouteToGroup) -> CallState:
    """The group's steps become the call's offer (the shell claims and rings them step by step)."""
    return state._replace(group=GroupOffer(action.group_id, action.steps, (), action.wrapup_s))


class DialogPlan(NamedTuple):
    """How the node keeps a new call's dialog."""

    lifetime_s: int | None  # None: the module's default (the node's call limit)
    keepalive: bool  # in-dialog OPTIONS to both phones: a call whose BYE was lost ends
    emergency: bool  # marked on the dialog: no timer of the node ends it (TRK-08)


def dialog_plan(session_expires: str, emergency: bool, call_max_s: int, keepalive: bool) -> DialogPlan:
    """A new call's dialog: its lifetime (RFC 4028's Session-Expires, within the node's call limit), keep-alives as the
    node is set, or for an emergency call neither keep-alives nor a lifetime the node would end it at."""
    return DialogPlan(session_lifetime(session_expires, call_max_s, emergency), keepalive and not emergency, emergency)


# ---------------------------------------------------------------- the failure route


def on_failure(
    state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView = QUIET, now: float = 0.0
) -> Transition:
    """The transaction ended without an answer: the next thing to try, or the end of the call."""
    if state.ivr is not None and ev.code == 302 and not ev.cancelled:
        return ivr_chosen(state, ev, snapshot, live, now)
    if state.chose and 300 <= ev.code < 400:  # no answer of the chosen destination: never relayed back
        ev = ev._replace(code=480, reason="Temporarily Unavailable")
    if state.announcing is not None:
        return announced(state, ev)
    effects: list[Effect] = []
    if state.claimed and (ev.cancelled or state.group is None or not state.group.steps):
        effects.append(
            ReleaseClaims(state.claimed)
        )  # the caller gave up, or no step is left: nobody is offered it any more
        state = state._replace(claimed=())
    if (
        state.queue is not None and state.queue.held
    ):  # it waited in a group's queue until its time was up, or the caller gave up
        effects.append(LeaveQueue(state.queue.key, state.queue.group_id))
        q = state.queue
        state = state._replace(queue=q._replace(held=False, music=False))
        if not ev.cancelled and q.music:
            if ev.code == 302 and ev.choice == policy_queue.TURN:
                return state, (*effects, TakeTurn())
            ok, left = policy_queue.may_wait(q.until, q.holds, now)
            if ok:  # its time is not up: the media server failed (stopped, refused it): it waits on, without music
                state = state._replace(queue=q._replace(held=False, music=False, silent=True)).traced(
                    f"the media server could not keep the waiting call ({ev.code} {ev.reason}): it waits without music"
                )
                return state, (*effects, WaitAgain(left))
        if not ev.cancelled:
            state, effect = _divert(*wait_over(state, snapshot, live, now))
            if effect is not None:
                return state, (*effects, effect)
    if not ev.cancelled:
        for rule in AFTER_FAILURE:
            state, effect = rule(state, ev, snapshot, live, now)
            if effect is not None:
                return state, (*effects, effect)
        said = announce.after_failure(ev.code, ev.reason, state.speaks, state.record.tenant_id)
        if said is not None:  # nothing left to try: the caller hears why, then gets the refusal
            return state.traced(announce.said(said.prompt, said.language)), (*effects, Divert(said))
    return finished(state, ev), (*effects, Finish(ev.code, ev.reason, ev.cancelled))


def announced(state: CallState, ev: Failed) -> Transition:
    """The end of a call sent to the media server to hear why it is refused: the media server's refusal after the
    prompt goes back as it is; when the media server could not play it (no answer, an error), the node answers the
    refusal itself — the caller is told no less than without the announcement."""
    refusal = state.announcing
    assert refusal is not None
    if ev.cancelled or ev.code == refusal.code:
        return finished(state, ev), (Finish(ev.code, ev.reason, ev.cancelled),)
    media = state.media
    if media is not None and state.media_tries == 0 and (ev.code in (408, 477) or ev.code >= 500):
        # no answer from the media server's process, or its own failure: once more, on its next process
        state = state._replace(media_tries=1).traced(
            f"the media server did not take the call ({ev.code} {ev.reason}): trying its next process"
        )
        return state, (Divert(media),)
    if state.mailbox is not None:
        state = state.traced(f"mailbox {state.mailbox} could not take the call ({ev.code} {ev.reason})")
    else:
        state = state.traced(f"{announce.NOT_PLAYED} ({ev.code} {ev.reason}): refused without it")
    return finished(state, Failed(refusal.code, refusal.reason)), (
        Finish(refusal.code, refusal.reason, local=True, warning=refusal.warning),
    )


def ivr_chosen(state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView, now: float) -> Transition:
    """The caller's choice in the IVR menus (the media server's 302, kemi.policy.ivr): the call goes where the menu's
    action leads — decided here from the configuration, never from the media server's word; a choice that names no
    such action of the caller's company ends the call."""
    choice = ivr.parse_choice(ev.choice)
    menu = snapshot.ivr_menus.get(choice[0]) if choice else None
    action = menu.action(choice[1]) if menu is not None and choice else None
    left = state._replace(announcing=None, media=None, media_tries=0, ivr=None, mailbox=None)
    if action is None or menu is None or menu.tenant_id != state.record.tenant_id or action.kind not in ivr.LEAVING:
        left = left.traced(f"the media server named no choice of the menus ({ev.choice[:80]!r})")
        return _refused(left, ivr.NO_MENU)
    left = left._replace(chose=f"{menu.id}:{action.key}").traced(
        f"IVR menu {menu.id}{f' ({menu.name})' if menu.name else ''}: key {action.key} -> {action.kind}"
        + (f" {action.target}" if action.target else "")
    )
    if action.kind == "hangup":  # the caller heard goodbye
        return _refused(left, ivr.HUNG_UP, speak=False)
    trace: list[str] = []
    target: Action | None = None
    tenant = snapshot.tenants.get(menu.tenant_id)
    if action.kind == "voicemail":
        target = voicemail.remote(menu.tenant_id, caller_language(tenant, left.caller_party))
        trace.append(f"to {voicemail.describe(target)}")
    elif action.kind == "mailbox":
        box = snapshot.mailboxes.get(int(action.target))
        if box is not None and box.tenant_id == menu.tenant_id and tenant is not None:
            lang = caller_language(tenant, left.caller_party)
            target = voicemail.deposit(menu.tenant_id, box.id, "unconditional", lang, box.max_s)
            trace.append(f"to {voicemail.describe(target)}")
        else:
            trace.append(f"mailbox {action.target} takes no messages now")
    elif action.kind == "number":
        target = menu_number(snapshot, menu.tenant_id, action.target, left.caller_party, now, live, trace)
    else:
        target = dial_extension(snapshot, menu.tenant_id, action.target, left.caller_party, now, live, trace)
    left = left.traced(*trace)
    if target is None:
        return _refused(left, Reject(404, "Not Found", "the menu's destination does not exist"))
    if isinstance(target, Reject):
        return _refused(left, target)
    return onto(left, target, now), (Divert(target, fresh_ring=True),)


def _refused(state: CallState, refusal: Reject, speak: bool = True) -> Transition:
    """The end of a call the node refuses after the menus: said first where the node speaks, else answered here."""
    said = announce.after_failure(refusal.code, refusal.reason, state.speaks, state.record.tenant_id) if speak else None
    if said is not None:
        said = said._replace(refusal=refusal)
        return state.traced(announce.said(said.prompt, said.language)), (Divert(said),)
    return finished(state, Failed(refusal.code, refusal.reason)), (
        Finish(refusal.code, refusal.reason, local=True, warning=refusal.warning),
    )


def finished(state: CallState, ev: Failed) -> CallState:
    return state.traced(f"final reply {ev.code} {ev.reason}" + (" (caller cancelled)" if ev.cancelled else ""))


Rule = Callable[[CallState, Failed, Snapshot, LiveView, float], tuple[CallState, "Effect | None"]]


def trunk_challenge(
    state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, Effect | None]:
    """A carrier asks for credentials: answer once per trunk with the trunk's (never kept in the call's state)."""
    if ev.code not in (401, 407) or state.trunk is None:
        return state, None
    creds = trunk_credentials(snapshot, state.trunk.current, state.trunk.answered_challenge)
    if creds is None:
        return state, None
    user, password, realm = creds
    leg = state.trunk._replace(answered_challenge=state.trunk.current)
    return (
        state._replace(trunk=leg).traced(f"{ev.code} from trunk {leg.current}: answering its challenge as {user}"),
        AnswerChallenge(user, password, realm),
    )


def next_trunk(
    state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, Effect | None]:
    """Serial failover: a server error or timeout from a trunk sends the call to the next one."""
    leg = state.trunk
    if leg is None or not leg.rest or not should_fail_over(ev.code, ev.cancelled):
        return state, None
    hop = leg.rest[0]
    state = state._replace(trunk=TrunkLeg(hop.name, leg.rest[1:], leg.answered_challenge))
    return state.traced(f"{ev.code} {ev.reason} from the trunk: failing over to trunk {hop.name}"), RelayTrunk(hop)


def forward(
    state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, Effect | None]:
    """Busy, no answer or unreachable: the forwarding decided with the call (one forwarding per call leg)."""
    if state.forwarding is None:
        return state, None
    case = fallback_case(ev.code, False, ev.rang)
    target = getattr(state.forwarding, case) if case else None
    state = state._replace(forwarding=None)
    if target is None:
        return state, None
    return _divert(state.traced(f"{ev.code} {ev.reason}: {case}, forwarding"), target)


def next_group_step(
    state: CallState, ev: Failed, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, Effect | None]:
    """A step's time is up (or all its members failed): the next step, then the queue again, then the overflow."""
    group = state.group
    if group is None:
        return state, None
    if group.steps:
        return state.traced(f"{ev.code} {ev.reason}: next step of group {group.group_id}"), OfferNextStep(
            group.group_id
        )
    state = state._replace(group=None)
    if state.queue is not None:
        ok, left = policy_queue.may_wait(state.queue.until, state.queue.holds, now)
        if ok:
            return state, WaitAgain(left)  # unanswered: it waits again for the rest of its time
    state, target = overflow(
        state.traced(f"{ev.code} {ev.reason}: nobody in group {group.group_id} answered"),
        group.group_id,
        snapshot,
        live,
        now,
    )
    return _divert(state, target)


# The order in which a failed call's next step is looked for: the first rule with an effect wins.
AFTER_FAILURE: tuple[Rule, ...] = (trunk_challenge, next_trunk, forward, next_group_step)


# ---------------------------------------------------------------- hunt groups and their queue


def overflow(
    state: CallState, group_id: int, snapshot: Snapshot, live: LiveView, now: float
) -> tuple[CallState, Action | None]:
    """The group's overflow target on the live state of this moment (None: nowhere); counted against the chain's
    limit."""
    count = state.overflows + 1
    trace = list(state.trace)
    target = group_overflow(snapshot, group_id, state.caller_party, live, now, trace, count)
    return state._replace(overflows=count, trace=tuple(trace)), target


REPLANS = 2  # every planned member was just claimed by simultaneous calls: plan again, at most this often


def replan(
    state: CallState, action: RouteToGroup, contested_before: int, attempt: int, snapshot: Snapshot, live: LiveView
) -> tuple[CallState, RouteToGroup | None]:
    """An offer found no member to ring: when that is because simultaneous calls took the planned members (the
    live state shows them taken now), the group's offer planned again; None: no new plan (nobody can be offered)."""
    if state.contested == contested_before or attempt >= REPLANS:
        return state, None
    trace: list[str] = []
    again = offer_waiting(snapshot, action.group_id, live, trace)
    state = state.traced(*trace)
    if again is None:
        return state, None
    return (
        state.traced("every planned member was taken by simultaneous calls: planned again"),
        again._replace(wrapup_s=action.wrapup_s),
    )


def wait_left(state: CallState, now: float) -> float | None:
    """The seconds a call may wait in its group's queue now (None: it may not wait, or has no queue)."""
    if state.queue is None:
        return None
    ok, left = policy_queue.may_wait(state.queue.until, state.queue.holds, now)
    return left if ok else None


def wait_over(state: CallState, snapshot: Snapshot, live: LiveView, now: float) -> tuple[CallState, Action | None]:
    """A waiting call's time is up: the group's overflow target (None: nothing more)."""
    q = state.queue
    if q is None:
        return state, None
    group = snapshot.groups.get(q.group_id)
    state = state._replace(queue=None).traced(
        f"waited {now - q.since:.0f} s, no member became free"
        + (": overflow" if group is not None and group.overflow is not None else "")
    )
    return overflow(state, q.group_id, snapshot, live, now)


def when_unplaced(
    state: CallState,
    group_id: int,
    first: bool,
    snapshot: Snapshot,
    live: LiveView,
    now: float,
    had_steps: bool = False,
) -> Transition:
    """Nobody of the group could be offered the call now: it waits in the queue if it may, else the group's overflow,
    else 480. `first`: on the call's first routing (not from the queue); `had_steps`: the plan named members to offer
    (then, unless simultaneous calls took them, nobody offered has a registered device: no waiting, the overflow at
    once)."""
    q = state.queue
    if had_steps and not state.contested:
        state = state.traced("no member of the group has a registered device")
    else:
        if q is not None:
            ok, left = policy_queue.may_wait(q.until, q.holds, now)
            if ok:
                return state, (WaitAgain(left),)
        if first or q is None:
            state = state.traced("the call cannot wait")
        else:
            return _overflow_or_480(*wait_over(state, snapshot, live, now))
    return _overflow_or_480(*overflow(state, group_id, snapshot, live, now))


def stop_waiting(
    state: CallState, group_id: int, first: bool, snapshot: Snapshot, live: LiveView, now: float
) -> Transition:
    """The call was to wait but could not be held (the transaction could not be suspended): the group's overflow, else
    480. `first`: on the call's first routing."""
    if first or state.queue is None:
        return _overflow_or_480(*overflow(state.traced("the call cannot wait"), group_id, snapshot, live, now))
    return _overflow_or_480(*wait_over(state, snapshot, live, now))


def nowhere(state: CallState) -> Transition:
    """A queued call's overflow target could not be reached either: 480 from the node."""
    return state.traced("the overflow target cannot be reached"), (
        Finish(480, "Temporarily Unavailable", local=True, warning="no member of the group can be reached"),
    )


def into_group(state: CallState, action: RouteToGroup, now: float) -> tuple[CallState, Effect | None]:
    """A forwarding or overflow target that is a hunt group: its steps are offered (OfferNextStep), or with nobody free
    the call waits in its queue for the time the group allows (WaitAgain); None: it cannot wait there (the forwarding
    fails, the transaction's answer goes back)."""
    state = onto(state, action, now, diverted=True)
    if action.steps:
        return offering(state, action), OfferNextStep(action.group_id)
    # a fresh place: the whole queue time is left, less whatever routing takes — it must be more than the shortest wait
    if state.queue is None or action.queue_s <= policy_queue.MIN_WAIT_S:
        return state, None
    return state, WaitAgain(float(action.queue_s))


def relay_failed(ev: Failed) -> Failed:
    """A new branch the transaction layer refused to send counts as a 503 from that destination."""
    return ev._replace(code=503, reason="relay failed")


def trunk_timers(action: RouteToTrunk, trunk_timeout_ms: int, diverted: bool = False) -> tuple[int, int, int]:
    """(final-response ms, invite ms, transaction lifetime ms) for a call out: a carrier that sends nothing within
    `trunk_timeout_ms` is passed over; the policy's ringing time (emergency calls: as long as the centre takes) bounds
    the rest; 0: the node's default. A forwarded call out rings as long as the node lets any call ring."""
    if diverted:
        return 0, trunk_timeout_ms, 0
    return action.ring_s * 1000, trunk_timeout_ms, (action.ring_s + 30) * 1000 if action.ring_s else 0


class ReplyPlan(NamedTuple):
    """What a provisional or final reply of a branch leads to."""

    note_agent: bool  # a group call was answered: which member took it (busy, wrap-up later), claims released
    mark_rang: bool  # the devices rang: from now a timeout means "no answer", not "unreachable"
    media: bool  # its SDP goes to RTPengine (the offer's answer)


def on_reply(code: int, has_sdp: bool, group_mark: str, rang_before: bool) -> ReplyPlan:
    return ReplyPlan(
        note_agent=bool(group_mark) and 200 <= code < 300,
        mark_rang=code in (180, 183) and not rang_before,
        media=100 < code < 300 and has_sdp,
    )


def ended_here(state: CallState, ev: Failed) -> Transition:
    """The end of a call whatever is left to try (the shell's bound on tries after one failure was reached)."""
    return finished(state.traced("too many tries after one failure: ended"), ev), (
        Finish(ev.code, ev.reason, ev.cancelled),
    )


def _divert(state: CallState, target: Action | None) -> tuple[CallState, Effect | None]:
    """After a failure: new branches to the target; a target that refuses the call (a Reject: a block list, a barred
    number) is no target — the branch's answer goes back, as when there is none."""
    if target is None:
        return state, None
    if isinstance(target, Reject):
        return state.traced(f"the target refuses the call ({target.code} {target.reason})"), None
    return state, Divert(target)


def _overflow_or_480(state: CallState, target: Action | None) -> Transition:
    """From the node's own routing (first routing, a queue turn): new branches, else the node answers — with the
    target's refusal when it refuses, else 480."""
    if isinstance(target, Reject):
        return state, (Finish(target.code, target.reason, local=True, warning=target.warning),)
    if target is not None:
        return state, (Divert(target),)
    return state, (Finish(480, "Temporarily Unavailable", local=True, warning="no member of the group can be reached"),)


def on_queue_turn(
    state: CallState,
    planned: tuple[RouteToGroup, tuple[str, ...]] | None,
    snapshot: Snapshot,
    live: LiveView,
    now: float,
) -> tuple[CallState, RouteToGroup | None]:
    """A waiting call's turn (a member became free): the offer to make, planned a moment ago by the queue's timer or
    planned now; None when nobody is free any more (someone was quicker)."""
    q = state.queue
    if q is None:
        return state, None
    state = state._replace(queue=q._replace(held=False))
    if planned is not None:
        return state.traced(*planned[1]), planned[0]
    trace: list[str] = []
    action = offer_waiting(snapshot, q.group_id, live, trace)
    return state.traced(*trace), action


def held(state: CallState, key: str, left: float, music: bool = False) -> CallState:
    """The call waits in its group's queue now (its transaction suspended, or `music`: at the media server)."""
    q = state.queue
    assert q is not None
    state = _media_leg(state._replace(media_tries=0), None) if music else state
    return state._replace(queue=q._replace(key=key, holds=q.holds + 1, held=True, music=music)).traced(
        f"waiting in the queue of group {q.group_id} (priority {q.priority}), at most {left:.0f} s more"
        + (", with music" if music else "")
    )


def waiting_music(state: CallState, snapshot: Snapshot, media_server: bool, language: str, left: float):
    """How the call waits now: with the group's greeting, music and announcements at the media server (a
    `policy_queue.Wait`), or None: suspended, hearing ringing (no media server, the group wants none, or the media
    server failed it once)."""
    q = state.queue
    group = snapshot.groups.get(q.group_id) if q is not None else None
    if not media_server or q is None or group is None or not group.queue_music or q.silent:
        return None
    tenant = snapshot.tenants.get(group.tenant_id)
    lang = caller_language(tenant, state.caller_party) or language
    return policy_queue.Wait(group.id, lang, group.tenant_id, group.queue_announce_s, max(1, int(left + 0.999)))
