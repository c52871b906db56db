"""Hunt groups on Kamailio: offers without double offers, the answering agent, wrap-up, busy
agents, and the queue of callers waiting for a free member. What to offer, when to wait and where to
overflow is decided in kemi.policy.call; this module claims, rings, holds and counts.

Shared state (htables, seen by every worker; names and keys in kemi/contract.py):
- acdoffer u<user>: offers in progress; a member is offered a call only when this call's
  increment made it 1 (no double offers across workers);
- acdbusy u<user>: answered calls of the agent in progress;
- acd end:u<user> = <end of the last group call>:<end of wrap-up> (longest idle, wrap-up), one key
  so that the live-state read takes one value for both;
- acdq g<group>:<tindex>:<tlabel> = priority:since:until, one per waiting call (a suspended
  transaction), and n:g<group>, how many wait;
- acdreg u<user> = 1: the agent has a registered device (refreshed by the timer, for the queue monitor);
- acdans <Call-ID>: answers of a group call handled (only the first one marks the agent and releases the claims).

A waiting call's transaction is suspended (tm answers the caller 180 Ringing first); its wait
is tm's timer on the suspended branch, so when nobody frees up in time the failure route runs
and the call overflows. The acd timer (`tick`, every 20 ms in its own process; with nobody
waiting it reads one counter) offers the waiting calls of a group, best priority then longest
wait first, as members become free.
"""

from __future__ import annotations

import time

import KSR

from kemi import contract as shm
from kemi.contract import ACD, ANSWERED, BUSY, DLG_AGENT, AVP_GROUP_MARK, OFFERS, QUEUE, QUEUE_WAITING, REGISTERED
from kemi.policy import call
from kemi.policy import queue as policy_queue
from kemi.policy.callstate import CallState, GroupOffer
from kemi.policy.decision import RouteToGroup
from kemi.policy.routing import offer_waiting

from . import barrier
from . import context
from . import ksr_apply as apply
from . import ksr_read as read

REGISTERED_EVERY_S = 5.0  # between refreshes of the agents' registration marks
SCAN_EVERY_S = 0.5  # the queue is looked at this often even when no call is counted waiting (a count put right)
RESUME = "ksr_acd_resume"
# The timer process's own pacing and hand-over (not shared state: only that process runs tick and,
# through t_continue, the resumed calls' route in the same process)
_next = {"registered": 0.0, "scan": 0.0}
_planned: dict[str, tuple] = {}  # a waiting call's key -> (its offer, the plan's trace), planned by tick for resume


# ---------------------------------------------------------------- offers


def start_offer(
    state: CallState, action: RouteToGroup, device_timeout_ms: int, snapshot, live
) -> tuple[CallState, bool]:
    """Point the request at the group's first step with a member to ring; False when nobody can be. When every
    planned member was just claimed by simultaneous calls, the policy plans again on the live state of now."""
    attempt = 0
    while True:
        contested = state.contested
        state, ok = next_step(call.offering(state, action), device_timeout_ms)
        if ok:
            return state, True
        state, again = call.replan(state, action, contested, attempt, snapshot, live)
        if again is None:
            return state, False
        action, attempt = again, attempt + 1


def next_step(state: CallState, device_timeout_ms: int) -> tuple[CallState, bool]:
    """Point the request at the next step's members with a registered device; False when no step is left."""
    group = state.group
    assert group is not None
    steps = group.steps
    while steps:
        step, steps = steps[0], steps[1:]
        state, members = claim(state, step.members)
        if not members:
            continue
        aors = tuple(a for _, member_aors in members for a in member_aors)
        offered = ", ".join(str(m) for m, _ in members)
        if aors and apply.lookup_aors(aors):
            state = state._replace(group=group._replace(steps=steps, offered=members)).traced(
                f"offering to user(s) {offered} for {step.seconds} s"
            )
            if step.circular >= 0:  # the next call of this ring starts after the member offered now
                KSR.htable.sht_seti(ACD.name, shm.ring_pointer_key(group.group_id, step.circular), members[-1][0])
            # what the answer needs, without parsing the call's state: group, wrap-up, who is offered
            apply.set_avp(AVP_GROUP_MARK, f"{group.group_id}:{group.wrapup_s}:{','.join(str(m) for m, _ in members)}")
            KSR.tm.t_set_fr(step.seconds * 1000, device_timeout_ms)
            return state, True
        state = state.traced(f"user(s) {offered}: no registered device")
    release(state.claimed)
    return state._replace(claimed=(), group=GroupOffer(group.group_id, (), (), group.wrapup_s)), False


def claim(state: CallState, members: tuple) -> tuple[CallState, tuple]:
    """No double offers: a member is offered only if this call is the only one offering to them now
    (an atomic counter in shared memory, across all workers); the others are left out of this step.
    Members this call already holds (a ring that keeps ringing) stay held; the rest are let go."""
    held = set(state.claimed)
    wanted = {m[0] for m in members}
    release(tuple(held - wanted))
    won, skipped = [], []
    for member in members:
        if member[0] in held or KSR.htable.sht_inc(OFFERS.name, shm.user_key(member[0])) == 1:
            won.append(member)
        else:
            KSR.htable.sht_dec(OFFERS.name, shm.user_key(member[0]))
            skipped.append(f"user {member[0]} is being offered another call: skipped")
    state = state._replace(claimed=tuple(m[0] for m in won), contested=state.contested + len(skipped)).traced(*skipped)
    return state, tuple(won)


def release(user_ids: tuple[int, ...]) -> None:
    for user_id in user_ids:
        KSR.htable.sht_dec(OFFERS.name, shm.user_key(user_id))


# ---------------------------------------------------------------- answered, ended


def note_answering_agent(group_mark: str) -> None:
    """A group call was answered: which member took it (busy now; wrap-up and idle time when it ends);
    the claims of this call are released. One member offered (sequential strategies): no lookup.
    Once per call: the mark is removed from the transaction, so a retransmitted 200 (the ACK was slow),
    a second member's 200 or a 200 that arrives after its branch timed out finds no mark — without
    this, each released the claims again (the offer counts went negative: nobody could be offered a
    call any more) and counted the agent busy once more (for good)."""
    KSR.pv.unset(f"$avp({AVP_GROUP_MARK})")
    if KSR.htable.sht_inc(ANSWERED.name, read.call_id()) != 1:
        return  # two 200s handled at the same moment by two workers (both read the mark): the first one counts
    group, wrapup, offered = (group_mark.split(":") + ["", ""])[:3]
    members = [int(m) for m in offered.split(",") if m.isdigit()]
    if len(members) == 1:
        _answered_by(group, wrapup, members[0])
        release((members[0],))
        return
    state = context.load()
    if state is None:
        return
    contact = read.answering_contact()
    for user_id, aors in state.group.offered if state.group else ():
        if any(contact in read.contacts_of(aor) for aor in aors):
            _answered_by(group, wrapup, user_id)
            break
    release(state.claimed)  # the others are cancelled; the agent counts as busy already (no gap another call could use)
    context.store(state._replace(claimed=()))


def _answered_by(group: str, wrapup: str, user_id: int) -> None:
    KSR.htable.sht_inc(BUSY.name, shm.user_key(user_id))
    apply.set_dlg_var(DLG_AGENT, f"{group}:{wrapup}:{user_id}")  # group:wrap-up seconds:user


def agent_call_ended(mark: str) -> None:
    """The agent who answered (the dialog's DLG_AGENT mark, read with the dialog's end) is free, in wrap-up."""
    if mark:
        _group, wrapup, user_id = mark.split(":")
        now = int(time.time())
        KSR.htable.sht_dec(BUSY.name, shm.user_key(user_id))
        # longest idle counts from now; unavailable (wrap-up) until now + wrap-up
        KSR.htable.sht_sets(ACD.name, shm.agent_end_key(user_id), f"{now}:{now + int(wrapup)}")


def calls_started(user_ids: str) -> None:
    """Tracked users (agents among them) are on a call from the answer on: counted for the groups' busy handling."""
    for u in filter(None, user_ids.split(",")):
        KSR.htable.sht_inc(BUSY.name, shm.user_key(u))


def calls_ended(user_ids: str) -> None:
    for u in filter(None, user_ids.split(",")):
        KSR.htable.sht_dec(BUSY.name, shm.user_key(u))


# ---------------------------------------------------------------- the queue of waiting calls


def hold(state: CallState, seconds: float, first: bool) -> tuple[CallState, bool]:
    """The call waits in its group's queue (transaction suspended; the caller hears ringing) for `seconds` at most.
    `first`: from the request route (answer 180 first); otherwise from a failure or queue route. False: it cannot."""
    if state.queue is None:
        return state, False
    if first:
        if KSR.tm.t_newtran() < 0:
            return state, False
        KSR.tm.t_reply(180, "Ringing")
    index, label = read.transaction_id()
    waiting = call.held(state, shm.queue_key(state.queue.group_id, index, label), seconds)
    apply.keep(waiting)
    KSR.tm.t_set_fr(int(seconds * 1000), int(seconds * 1000))
    if KSR.tmx.t_suspend() < 0:
        apply.keep(state)
        return state, False
    barrier.settled()  # held: the queue answers it later
    _enter(waiting)
    return waiting, True


def hold_with_music(state: CallState, waiting: CallState, seconds: float, uri: str) -> tuple[CallState, bool]:
    """The call (`state`; `waiting`: as it waits, kemi.policy.call.held) waits in its group's queue at the media server
    (`uri`: greeting, music, its place) for `seconds` at most: a branch, not a suspension; its turn comes back as the
    media server's 302. False: it cannot."""
    apply.set_ruri(uri)
    if not apply.relay_branch(waiting, (int(seconds * 1000), policy_queue.FR_MS)):
        apply.keep(state)
        return state, False
    _enter(waiting)
    return waiting, True


def _enter(waiting: CallState) -> None:
    q = waiting.queue
    assert q is not None
    KSR.htable.sht_sets(QUEUE.name, q.key, policy_queue.entry_value(q.priority, q.since, q.until))
    KSR.htable.sht_inc(QUEUE.name, shm.queue_count_key(q.group_id))
    KSR.htable.sht_inc(QUEUE.name, QUEUE_WAITING)


def leave_queue(key: str, group_id: int) -> None:
    """The call no longer waits (offered, overflowed, given up)."""
    if key and KSR.htable.sht_rm(QUEUE.name, key) >= 0:
        KSR.htable.sht_dec(QUEUE.name, shm.queue_count_key(group_id))
        KSR.htable.sht_dec(QUEUE.name, QUEUE_WAITING)


def waiting_calls() -> tuple[dict[int, list[policy_queue.Waiting]], set[int]]:
    """Every waiting call by group, and the groups with a non-zero count."""
    entries: dict[int, list] = {}
    counted: set[int] = set()
    KSR.htable.sht_iterator_start("cmq", QUEUE.name)
    while KSR.htable.sht_iterator_next("cmq") >= 0:
        key = KSR.pv.get("$shtitkey(cmq)") or ""
        value = KSR.pv.get("$shtitval(cmq)")
        if key == QUEUE_WAITING:
            continue
        if key.startswith("n:g") and key[3:].isdigit():
            if value not in (0, "0", None, ""):
                counted.add(int(key[3:]))
            continue
        parsed = policy_queue.parse_entry(key, value)
        if parsed is not None:
            entries.setdefault(parsed[0], []).append(parsed[1])
    KSR.htable.sht_iterator_end("cmq")
    return entries, counted


_told_place: dict[str, tuple] = {}  # calls waiting with music: (place, with an expected wait) told last
_told_turn: dict[str, float] = {}  # ... and when their turn was told


def tick(snapshot, live, tell=None) -> None:
    """Offer waiting calls to members who became free, in the order the policy gives them.
    Each call resumed here claims its members before the next one is looked at."""
    now = time.time()
    if now >= _next["registered"]:
        _next["registered"] = now + REGISTERED_EVERY_S
        mark_registered_agents(snapshot)
    if now < _next["scan"] and (KSR.htable.sht_get(QUEUE.name, QUEUE_WAITING) or 0) <= 0:
        return  # nobody waits: one read every 20 ms
    _next["scan"] = now + SCAN_EVERY_S
    entries, counted = waiting_calls()
    for group_id in counted - entries.keys():  # nobody waits: a count left over (a missed leave) is put right
        KSR.htable.sht_seti(QUEUE.name, shm.queue_count_key(group_id), 0)
    in_turns = {}
    for group_id, calls in entries.items():
        in_turn, stale = policy_queue.in_turn(calls, now)
        for c in stale:
            KSR.htable.sht_rm(QUEUE.name, c.key)
        KSR.htable.sht_seti(QUEUE.name, shm.queue_count_key(group_id), len(in_turn))  # the count follows the entries
        in_turns[group_id] = in_turn
    KSR.htable.sht_seti(QUEUE.name, QUEUE_WAITING, sum(map(len, in_turns.values())))
    waiting_now = {w.key for calls in in_turns.values() for w in calls}
    for told in (_told_place, _told_turn):
        for key in [k for k in told if k not in waiting_now]:
            del told[key]
    for group_id, in_turn in in_turns.items():
        average: tuple | None = None  # read once per group and scan, when a caller waits with music
        for place, waiting in enumerate(in_turn, start=1):
            if tell is not None and policy_queue.parse_music_key(waiting.key) is not None:
                if average is None:
                    average = policy_queue.parse_average(
                        KSR.htable.sht_get(QUEUE.name, shm.queue_average_key(group_id))
                    )
                expected = policy_queue.expected_wait_s(average[0], place, now - waiting.since)
                if policy_queue.tell_position(_told_place, waiting.key, place, expected is not None):
                    _told_place[waiting.key] = (place, expected is not None)
                    tell(waiting.key, policy_queue.position_notice(place, expected))
        for waiting in in_turn:
            trace: list[str] = []
            action = offer_waiting(snapshot, group_id, live, trace)
            if action is None:
                break  # nobody free for this group: the others wait too (in order)
            if policy_queue.parse_music_key(waiting.key) is not None:  # at the media server: it ends its branch
                if tell is not None and policy_queue.tell_turn(_told_turn, waiting.key, now):
                    _told_turn[waiting.key] = now
                    tell(waiting.key, "turn")
                break  # one turn at a time: its members are claimed when it comes back
            _planned[waiting.key] = (action, tuple(trace))
            _g, index, label = waiting.key.split(":")
            KSR.tmx.t_continue(int(index), int(label), RESUME)
            _planned.pop(waiting.key, None)  # not resumed (the caller gave up meanwhile): planned again next time


def note_wait(group_id: int, waited_s: float) -> None:
    """A call waited this long in the group's queue before its turn: the group's average wait follows (an estimate:
    two workers updating at once may lose one call's share)."""
    key = shm.queue_average_key(group_id)
    KSR.htable.sht_sets(QUEUE.name, key, policy_queue.averaged(KSR.htable.sht_get(QUEUE.name, key), waited_s))


def planned(key: str) -> tuple | None:
    """The offer the timer planned a moment ago for this waiting call (in this process), if any."""
    return _planned.pop(key, None)


def mark_registered(user_id: int, *aors: str) -> None:
    """acdreg u<user> = 1 while one of the agent's AoRs (sip:user@realm) has a registered device (usrloc, in shared
    memory)."""
    if any(KSR.registrar.registered_uri("location", aor) > 0 for aor in aors):
        KSR.htable.sht_seti(REGISTERED.name, shm.user_key(user_id), 1)
    else:
        KSR.htable.sht_rm(REGISTERED.name, shm.user_key(user_id))


def mark_registered_agents(snapshot) -> None:
    """Every hunt-group member's mark, a few µs per agent every 5 s in the timer process, instead of the
    monitor dumping all registrations of the node on every scrape."""
    for user_id in snapshot.agents:
        user = snapshot.users.get(user_id)
        mark_registered(user_id, *(user.aors if user is not None else ()))


def set_callback(number: str, agent: int, until: int) -> None:
    """An agent calls this number out: if it calls the group back before `until`, the agent gets it first."""
    KSR.htable.sht_sets(ACD.name, shm.callback_key(number), f"{agent}:{until}")
