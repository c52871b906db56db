"""Calls on Kamailio, from the first decision to the record: route a new call, then follow the policy's
transitions (`kemi.policy.call`) through its failures, its wait in a queue and its end.

Every decision is the policy's; this module reads what happened, asks the transition what comes next and
applies its effects (`perform`), telling the transition again when an effect could not be done.
"""

from __future__ import annotations

import time

from kemi.contract import AVP_RANG, DLG_ANSWER, DLG_TRACKED, END_REQUESTS
from kemi.policy import announce, call, cdr, cluster, ivr, voicemail
from kemi.policy import queue as policy_queue
from kemi.policy.announce import worker_port
from kemi.policy.call import (
    AnswerChallenge,
    Divert,
    Effect,
    Failed,
    Finish,
    LeaveQueue,
    OfferNextStep,
    RelayTrunk,
    ReleaseClaims,
    TakeTurn,
    WaitAgain,
)
from kemi.policy.callstate import CallState, FeatureUse
from kemi.policy.decision import (
    Action,
    Announce,
    Challenge,
    Reject,
    RouteToGroup,
    RouteToTrunk,
    RouteToUser,
    ToIvr,
    ToVoicemail,
)
from kemi.policy.facts import RequestFacts
from kemi.policy.features import FeatureCode
from kemi.policy import media as policy_media
from kemi.policy.routing import callee_srtp, callee_web, decide_initial
from kemi.policy.snapshot import Snapshot

from . import context, ids, vip
from . import ksr_groups as groups
from . import ksr_apply as apply
from . import ksr_dialog as dialog
from . import ksr_fraud as fraud_gate
from . import ksr_read as read
from .runtime import LIVE, SETTINGS, SNAPSHOTS, SPOOL

_PREPARED = [False]  # this worker's current request was prepared as a call (prepare_call); reset per request
_OFFER = [""]  # the current INVITE's SDP profile (kemi.policy.media.offer_profile), for its media plan
MAX_TRIES = 16  # effects tried after one failure before the call ends (each try consumes a fallback: a safety net)


def new_request() -> None:
    _PREPARED[0] = False
    _OFFER[0] = ""


# ---------------------------------------------------------------- the first decision


def initial_request(facts: RequestFacts, snap: Snapshot, nated: bool) -> None:
    now = time.time()
    _OFFER[0] = facts.offer
    decision = decide_initial(facts, snap, now, LIVE)
    speaks = announce.speaks(
        decision, facts.method, SETTINGS.prompt_language, bool(SETTINGS.media_server), snap.tenants
    )
    decision = announce.spoken(decision, facts.method, speaks, bool(speaks))
    action = decision.action
    if isinstance(action, Challenge):
        apply.challenge(action.realm)
        return
    state = call.begin(decision, facts.call_id, ids.record_id(), now, speaks)
    if isinstance(action, FeatureCode):
        feature_code(state, action, nated)
    else:
        route(state, action, facts.method, nated)


def feature_code(state: CallState, fc: FeatureCode, nated: bool) -> None:
    """Apply what is live at once (DND, group log-in), answer the phone — its confirmation said first where the
    node speaks — and hand the code to the control plane with the record."""
    apply.feature_code_live(fc)
    state = state._replace(feature=FeatureUse(fc.user_id, fc.kind, fc.value))
    done = Reject(603, fc.reply, f"feature code done: {fc.reply}")
    said = announce.confirmed(fc.kind, done, state.speaks, state.record.tenant_id)
    if said is None:
        finish_locally(state, done, "INVITE")
    else:
        to_media_server(state.traced(announce.said(said.prompt, said.language)), said, "INVITE", nated)


def route(state: CallState, action: Action, method: str, nated: bool) -> None:
    if isinstance(action, RouteToUser):
        route_to_user(state, action, method, nated)
    elif isinstance(action, RouteToTrunk):
        route_to_trunk(state, action, nated)
    elif isinstance(action, RouteToGroup):
        route_to_group(state, action, method, nated)
    elif isinstance(action, Reject):
        finish_locally(state, action, method)
    elif isinstance(action, (Announce, ToVoicemail, ToIvr)):
        to_media_server(state, action, method, nated)
    else:  # an action this shell does not know (a policy newer than the shell): refused, never dropped
        finish_locally(
            state.traced(f"no way to apply {type(action).__name__}"), Reject(500, "Server Internal Error"), method
        )


def to_media_server(state: CallState, action: Announce | ToVoicemail | ToIvr, method: str, nated: bool) -> None:
    """A call the media server takes: a refusal said first (it plays the prompt as early media, then answers the
    refusal), a mailbox (it answers, greets and records), IVR menus (early media; the choice comes back as a 302).
    When it cannot: `kemi.policy.call.announced`; when this node does not send it there: the refusal, here."""
    refused = call.without_media_server(state, action, method, bool(SETTINGS.media_server))
    if refused is not None:
        finish_locally(*refused, method)
        return
    apply.consume_credentials()
    state = call.onto(state, action, time.time())
    address_media_server(state, action)
    state = prepare_call(state, nated)
    dialog.ring_limits(*call.media_timers(action))
    if not apply.relay_branch(state):
        dialog.media_off()
        finish_locally(state.traced(call.NOT_REACHED), call.media_refusal(action), method)


def address_media_server(state: CallState, action: Announce | ToVoicemail | ToIvr) -> None:
    """The Request-URI naming what the media server is to do, and what it is told with it: the refusal's Warning to
    send on, who left a message."""
    uri = media_uri(action, state)
    if isinstance(action, Announce):
        apply.announcement(uri, action.refusal.warning)
    elif isinstance(action, ToVoicemail):
        apply.to_mailbox(uri, state.record.caller)
    else:
        apply.set_ruri(uri)


def media_uri(action: Announce | ToVoicemail | ToIvr, state: CallState) -> str:
    """The Request-URI of a call to the media server: what it is asked to do, at its process for this call."""
    where = (SETTINGS.media_server, state.record.call_id, SETTINGS.media_workers)
    if isinstance(action, Announce):
        return announce.target_uri(action, *where, call.media_attempt(state))
    kind = ivr if isinstance(action, ToIvr) else voicemail
    return kind.target_uri(action, *where, SETTINGS.prompt_language, call.media_attempt(state))


def finish_locally(state: CallState, rej: Reject, method: str) -> None:
    apply.reject(rej)
    if cdr.is_call_attempt(method):
        SPOOL.put(cdr.record(state, code=rej.code, reason=rej.reason, end_ts=time.time()))


def route_to_user(state: CallState, action: RouteToUser, method: str, nated: bool) -> None:
    apply.consume_credentials()
    if not apply.lookup_aors(action.aors):
        fallback = action.on_unreachable
        state = state.traced(
            "no registered device" + (": forwarded (unreachable)" if not isinstance(fallback, Reject) else "")
        )
        route(state, fallback, method, nated)
        return
    if method != "INVITE":  # MESSAGE, OPTIONS, ... to a user: relay, no dialog, no media
        apply.relay()
        return
    state = call.onto(state, action, time.time())
    ringing = call.ringing_ms(action)
    if ringing is not None:  # ring this long, then forward (no answer); silent devices count as unreachable
        dialog.ring_limits(ringing, SETTINGS.device_timeout_ms)
    snap = SNAPSHOTS.get()
    state = prepare_call(state, nated, action.track, srtp=callee_srtp(snap, action), web=callee_web(snap, action))
    apply.relay()


def route_to_trunk(state: CallState, action: RouteToTrunk, nated: bool) -> None:
    apply.consume_credentials()
    if (
        action.fraud is not None and SETTINGS.fraud_checks
    ):  # a call out someone pays for (never an emergency call): limits first
        refused = fraud_gate.admit(SNAPSHOTS.get(), action.tenant_id, action.fraud[0])
        if refused:
            finish_locally(
                state.traced(f"fraud control: {refused}"),
                Reject(403, "Forbidden", f"call limit reached: {refused}"),
                "INVITE",
            )
            return
    state = call.onto(state, action, time.time())
    apply.caller_identity(action)
    apply.set_ruri(action.hops[0].uri)
    dialog.ring_limits(*call.trunk_timers(action, SETTINGS.trunk_timeout_ms))
    if action.callback is not None:  # an agent calls out: if this number calls the group back, they get it first
        agent, window = action.callback
        groups.set_callback(action.target, agent, int(time.time()) + window)
    state = prepare_call(state, nated, action.track, emergency=action.emergency)
    if action.geolocation is not None:  # after RTPengine's offer (prepare_call): its SDP goes in the multipart body
        lines: list[str] = []
        apply.location_by_value(*action.geolocation, lines)
        apply.keep(state.traced(*lines))  # with the trace line saying how the location went
    if action.fraud is not None and SETTINGS.fraud_checks:
        fraud_gate.track(action.tenant_id, *action.fraud)
    apply.relay()


def route_to_group(state: CallState, action: RouteToGroup, method: str, nated: bool) -> None:
    apply.consume_credentials()
    if method != "INVITE":
        finish_locally(state, Reject(480, "Temporarily Unavailable", "a hunt group takes calls only"), method)
        return
    now, snap = time.time(), SNAPSHOTS.get()
    state = call.onto(
        state, action, now
    )  # groups with a queue: unanswered offers leave the call waiting for the rest of its time
    if action.present is not None:
        apply.present_as(*action.present)
    if action.steps:
        state, offered = groups.start_offer(state, action, SETTINGS.device_timeout_ms, snap, LIVE)
        if offered:
            state = prepare_call(state, nated, srtp=callee_srtp(snap, action), web=callee_web(snap, action))
            apply.relay()
            return
    state, effects = call.when_unplaced(
        state, action.group_id, True, snap, LIVE, time.time(), had_steps=bool(action.steps)
    )
    effect = effects[-1]
    if isinstance(effect, WaitAgain):
        state = prepare_call(state, nated, srtp=callee_srtp(snap, action), web=callee_web(snap, action))
        state, held = hold(state, effect.seconds, first=True)
        if held:
            return
        state, effects = call.stop_waiting(state, action.group_id, True, snap, LIVE, time.time())
        effect = effects[-1]
    if isinstance(effect, Divert):
        route(state, effect.action, method, nated)
    elif isinstance(effect, Finish):
        finish_locally(state, Reject(effect.code, effect.reason, effect.warning), method)


def prepare_call(
    state: CallState,
    nated: bool,
    track: tuple[int, ...] = (),
    *,
    emergency: bool = False,
    srtp: bool = False,
    web: bool = False,
) -> CallState:
    """Everything a new call needs before it is relayed (or held in a queue). Once per request: a call prepared
    for a group's queue that then cannot wait goes on to the overflow already record-routed, in its dialog and
    offered to RTPengine (a second offer appended RTPengine's SDP to the body a second time). `srtp`: the callee's
    leg is offered SRTP (kemi.policy.routing.callee_srtp); `web`: a device it may ring is a browser (callee_web).
    Returns the state as kept (with its media plan)."""
    again = _PREPARED[0]
    _PREPARED[0] = True
    media_plan = None
    if not again:
        plan = call.dialog_plan(read.session_expires(), emergency, SETTINGS.call_max_s, SETTINGS.dialog_keepalive)
        dialog.open_dialog(plan)
        media_plan = policy_media.plan(_OFFER[0], srtp, web)
        if not media_plan.plain:
            state = state._replace(media_plan=media_plan.code()).traced(media_plan.words())
    dialog.track(track)
    apply.keep(state)
    if media_plan is not None:
        dialog.offer(media_plan, nated)
    return state


# ---------------------------------------------------------------- replies and failures


def branch_reply_route() -> int:
    code, bflags, content_type, group_mark, media_avp = read.reply()
    plan = call.on_reply(code, read.has_sdp(content_type), group_mark, code in (180, 183) and read.avp(AVP_RANG) != "")
    if plan.note_agent:
        groups.note_answering_agent(group_mark)
    if plan.mark_rang:
        apply.set_avp(AVP_RANG, repr(time.time()))
    nated = dialog.nated_reply(bflags)
    if plan.media:
        dialog.answer(media_avp, nated, code)
    return 1


def media_branch_route() -> int:
    """A branch of a call not plain RTP: its own offer (trunks and the media server plain)."""
    dialog.media_branch(plain_peers(SNAPSHOTS.get()))
    return 1


_PEERS: list = [None, frozenset()]  # (snapshot, its plain peers): computed once per snapshot


def plain_peers(snap: Snapshot) -> frozenset:
    """kemi.policy.media.plain_peers of this snapshot's trunks and the node's media server, once per snapshot."""
    if _PEERS[0] is not snap:
        _PEERS[0] = snap
        _PEERS[1] = policy_media.plain_peers(snap.trunks, SETTINGS.media_server, SETTINGS.media_workers)
    return _PEERS[1]


def failure_route() -> int:
    cancelled = dialog.is_cancelled()
    code, reason = (487, "Request Terminated") if cancelled else read.transaction_reply()
    state = context.load()
    if state is None:
        dialog.media_off()
        return 1
    rang_at = read.avp(AVP_RANG)
    media_branch = state.ivr is not None or (state.queue is not None and state.queue.held and state.queue.music)
    choice = read.transaction_reply_header(ivr.CHOICE_HEADER) if media_branch and code == 302 else ""
    ev = Failed(code, reason, cancelled, rang_at != "", choice)
    snap = SNAPSHOTS.get()
    for _ in range(MAX_TRIES):
        state, effects = call.on_failure(state, ev, snap, LIVE, time.time())
        state, again = perform(state, effects, ev, rang_at)
        if again is None:
            return 1
        ev = again
    perform(*call.ended_here(state, ev), ev, rang_at)  # a safety net: each try consumes a fallback
    return 1


def perform(
    state: CallState, effects: tuple[Effect, ...], ev: Failed, rang_at: str = ""
) -> tuple[CallState, Failed | None]:
    """Apply a transition's effects in order. None: done (a branch left, the call waits, or it ended); a `Failed`: an
    effect could not be done, the transition is asked again with it."""
    for effect in effects:
        if isinstance(effect, ReleaseClaims):
            groups.release(effect.users)
        elif isinstance(effect, LeaveQueue):
            groups.leave_queue(effect.key, effect.group_id)
        elif isinstance(effect, Finish):
            dialog.media_off()
            if effect.local:  # the node answers (an announcement that could not be played: its refusal)
                apply.reply_in_transaction(effect.code, effect.reason, effect.warning)
            SPOOL.put(
                cdr.record(
                    state,
                    code=effect.code,
                    reason=effect.reason,
                    end_ts=time.time(),
                    cancelled=effect.cancelled,
                    ring_ts=_float(rang_at),
                )
            )
            return state, None
        elif isinstance(effect, AnswerChallenge):
            if not apply.answer_trunk_challenge(effect.user, effect.password, effect.realm):
                return state.traced("could not answer the challenge (realm or algorithm not matching)"), ev
            return state, None if apply.relay_branch(state) else ev
        elif isinstance(effect, RelayTrunk):
            apply.set_ruri(effect.hop.uri)
            sent = apply.relay_branch(state, (0, SETTINGS.trunk_timeout_ms))
            return state, None if sent else call.relay_failed(ev)
        elif isinstance(effect, Divert):
            if effect.fresh_ring:
                apply.unset_avp(AVP_RANG)
            state, ok = divert(state, effect.action)
            return state, None if ok else ev
        elif isinstance(effect, OfferNextStep):
            dialog.reset_ring_limits()
            state, ok = groups.next_step(state, SETTINGS.device_timeout_ms)
            return state, None if ok and apply.relay_branch(state) else ev
        elif isinstance(effect, WaitAgain):
            dialog.reset_ring_limits()
            state, ok = hold(state, effect.seconds, first=False)
            return state, None if ok else ev
        elif isinstance(effect, TakeTurn):  # a call waiting with music: its turn came
            apply.unset_avp(AVP_RANG)
            dialog.reset_ring_limits()
            take_turn(state)
            return state, None
    return state, None


def divert(state: CallState, action: Action) -> tuple[CallState, bool]:
    """From a failure or queue route: the call goes on as new branches to a user, a trunk or a hunt group."""
    dialog.reset_ring_limits()
    now = time.time()
    if isinstance(action, RouteToUser):
        if not apply.lookup_aors(action.aors):
            return state.traced("forwarding target has no registered device"), False
        ringing = call.ringing_ms(action) if state.forwarding is not None else None
        if ringing is not None:  # chosen in IVR menus: their ringing time, then their own forwarding
            dialog.ring_limits(ringing, SETTINGS.device_timeout_ms)
        return state, apply.relay_branch(state)
    if isinstance(action, RouteToGroup):
        state, step = call.into_group(state, action, time.time())
        if isinstance(step, WaitAgain):  # nobody free in the target group now: wait in its queue
            return hold(state, step.seconds, first=False)
        if step is None:
            return state, False
        state, offered = groups.start_offer(state, action, SETTINGS.device_timeout_ms, SNAPSHOTS.get(), LIVE)
        return state, offered and apply.relay_branch(state)
    if isinstance(action, (Announce, ToVoicemail, ToIvr)):  # why, said; a mailbox; menus
        off = call.without_media_server(state, action, "INVITE", bool(SETTINGS.media_server))
        if off is not None:
            return off[0], False
        state = call.onto(state, action, now)
        address_media_server(state, action)
        dialog.ring_limits(*call.media_timers(action))
        return state, apply.relay_branch(state)
    if isinstance(action, RouteToTrunk):
        if (
            action.fraud is not None and SETTINGS.fraud_checks
        ):  # forwarded out: the forwarding user's limits, and they pay
            refused = fraud_gate.admit(SNAPSHOTS.get(), action.tenant_id, action.fraud[0])
            if refused:
                return state.traced(f"fraud control: {refused}; not forwarded"), False
            fraud_gate.track(action.tenant_id, *action.fraud)
        state = call.onto(state, action, now, diverted=True)
        apply.caller_identity(action)
        apply.set_ruri(action.hops[0].uri)
        return state, apply.relay_branch(state, call.trunk_timers(action, SETTINGS.trunk_timeout_ms, diverted=True)[:2])
    return state, False


# ---------------------------------------------------------------- the queue


def acd_timer() -> None:
    groups.tick(SNAPSHOTS.get(), LIVE, tell_media_server if SETTINGS.media_server else None)


def tell_media_server(key: str, what: str) -> None:
    """Tell the media server holding a waiting call its place or its turn (kemi.policy.queue): a SIP MESSAGE."""
    found = policy_queue.parse_music_key(key)
    if found is None:
        return
    _group, attempt, call_id = found
    address, _, port = str(SETTINGS.media_server).rpartition(":")
    uri = f"sip:queue@{address}:{worker_port(int(port), call_id, SETTINGS.media_workers, attempt)}"
    headers = (
        f"From: <sip:queue@{address}>;tag={ids.record_id()[:16]}\r\nTo: <{uri}>\r\n"
        f"{policy_queue.CALL_HEADER}: {call_id}\r\nContent-Type: text/plain\r\n"
    )
    apply.send_request("MESSAGE", uri, headers, what)


def hold(state: CallState, seconds: float, first: bool) -> tuple[CallState, bool]:
    """The call waits in its group's queue: at the media server with the group's music where it can, else
    suspended (ringing)."""
    wait = call.waiting_music(state, SNAPSHOTS.get(), bool(SETTINGS.media_server), SETTINGS.prompt_language, seconds)
    if wait is None or state.queue is None:
        return groups.hold(state, seconds, first)
    waiting = call.held(state, "", seconds, music=True)
    attempt = call.media_attempt(waiting)
    key = policy_queue.music_key(state.queue.group_id, attempt, state.record.call_id)
    assert waiting.queue is not None
    waiting = waiting._replace(queue=waiting.queue._replace(key=key))
    uri = policy_queue.target_uri(wait, SETTINGS.media_server, state.record.call_id, SETTINGS.media_workers, attempt)
    return groups.hold_with_music(state, waiting, seconds, uri)


def acd_resume() -> int:
    """A waiting call's turn (run by t_continue): offer it; when nobody can be, wait on, overflow or 480."""
    state = context.load()
    if state is None or state.queue is None:
        return 1
    q = state.queue
    planned = groups.planned(q.key)  # the timer planned it a moment ago, in this process
    groups.leave_queue(q.key, q.group_id)
    take_turn(state, planned)
    return 1


def take_turn(state: CallState, planned=None) -> None:
    """A waiting call's turn (its queue entry left already): offer it; when nobody can be, wait on, overflow or 480."""
    q = state.queue
    assert q is not None
    snap, now = SNAPSHOTS.get(), time.time()
    state, action = call.on_queue_turn(state, planned, snap, LIVE, now)
    if action is not None:
        state, offered = groups.start_offer(state, action, SETTINGS.device_timeout_ms, snap, LIVE)
        if offered:
            groups.note_wait(q.group_id, now - q.since)
            state = state.traced(f"a member is free after {now - q.since:.1f} s of waiting")
            if apply.relay_branch(state):
                return
    state, effects = call.when_unplaced(state, q.group_id, False, snap, LIVE, now)
    effect = effects[-1]
    if isinstance(effect, WaitAgain):
        state, held = hold(state, effect.seconds, first=False)
        if held:
            return
        state, effects = call.stop_waiting(state, q.group_id, False, snap, LIVE, now)
        effect = effects[-1]
    if isinstance(effect, Divert):
        state, ok = divert(state, effect.action)
        if ok:
            return
        state, effects = call.nowhere(state)
        effect = effects[-1]
    if isinstance(effect, Finish):
        apply.keep(state)
        dialog.reply_in_transaction(effect.code, effect.reason)


# ---------------------------------------------------------------- the end of an answered call


_STARTED = (f"$avp({AVP_RANG})", f"$dlg_var({DLG_TRACKED})", f"$dlg_var({fraud_gate.MARK})")


def dialog_started() -> None:
    rang, tracked, mark = read.several(*_STARTED)
    apply.set_dlg_var(DLG_ANSWER, f"{time.time()!r}/{rang}")  # answered at / first rang at
    groups.calls_started(tracked)
    if mark:  # a call out under the fraud limits: in progress from now
        fraud_gate.answered(mark)


def call_ended(why: str, timed_out: bool = False) -> None:
    """Everything an answered call holds is given back, once per dialog whichever comes first: its hunt-group agents
    and busy users, its count of calls out in progress, its media session, and its record is written.
    Kamailio 5.6 runs the dialog-end event of a dialog it ends itself (dlg_bye_all: timeouts, dlg.end_dlg) with the
    dialog's state read after its BYEs were sent: when a phone's 200 to a BYE is handled first, the state is already
    'deleted' and no event runs (the fraudcalls +1 of earlier notes, and a missing CDR). So every end the node makes
    runs this first (dialog:timeout, end_requested_calls) and the dialog-end event, if it still runs, finds it done."""
    end = read.dialog_end()
    if end.claims > 1:  # another process accounted this call's end already
        return
    if SETTINGS.node_count > 1 and not cluster.accounts_end(
        timed_out,
        cluster.made_here(_int(end.h_id), SETTINGS.node_index, SETTINGS.node_count),
        timed_out and vip.held(SETTINGS.sip_vip),
    ):  # a peer's copy whose timer ran out while the peer serves the call: the peer accounts its end
        return
    groups.agent_call_ended(end.agent)
    groups.calls_ended(end.tracked)
    if end.fraud_mark and SETTINGS.fraud_checks:
        fraud_gate.ended(end.fraud_mark)
    quality = dialog.dialog_media_quality(end.call_id, end.from_tag)
    if not end.state:
        return
    line = cdr.end_line(end.state, why, time.time(), cdr.end_answer(end.answer, end.start_ts), quality)
    if line is None:
        apply.warn(f"callmanager: call state unreadable, the call has no record: {end.state[:160]!a}")
        apply.count_error("call_state")
        return
    SPOOL.put_line(line)  # the control plane makes the record from it (cdr.ended_record)


def end_requested_calls() -> None:
    """Calls the control plane asked to end (htable END_REQUESTS: <h_entry>:<h_id> = JSON [Call-ID, From tag, To tag,
    reason]; the fraud monitor's spend limits): each call's end is accounted here, then the dialog module sends
    its BYEs to both sides."""
    for key, value in read.take_all(END_REQUESTS.name):
        request = cdr.end_request(value)
        if request is None:
            apply.warn(f"callmanager: request to end call {key!r} unreadable: {value[:200]!r}")
            continue
        call_id, from_tag, to_tag, reason = request
        if not dialog.select_dialog(call_id, from_tag, to_tag):
            continue  # over already: its own end did the accounting
        call_ended(f"answered; ended by the node: {reason}"[:300])
        dialog.bye_all()


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
