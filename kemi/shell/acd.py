"""Hunt groups on Kamailio: offers without double offers, the answering agent, wrap-up, busy
agents, and the queue of callers waiting for a free member.

Shared state (htables, seen by every worker):
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

from kemi.policy import queue as policy_queue
from kemi.policy.decision import RouteToGroup
from kemi.policy.routing import offer_waiting

from . import barrier
from . import ksr_apply as apply
from . import ksr_read as read
from .context import load_context, store_context

AGENT = "cm_agent"  # dialog variable: group:wrap-up seconds:user of the agent who answered a group call
GROUP_MARK = "cm_grp"  # AVP: group:wrap-up seconds:members offered now, read with every reply of a group call
QUEUE = "acdq"
ANSWERED = "acdans"  # Call-ID -> answers handled (the first one counts), expires by itself
REGISTERED = "acdreg"
REGISTERED_EVERY_S = 5.0  # between refreshes of the agents' registration marks
SCAN_EVERY_S = 0.5  # the queue is looked at this often even when no call is counted waiting (a count put right)
WAITING = "n:all"  # acdq: calls waiting in any group (the timer runs every 20 ms; with none waiting it reads only this)
RESUME = "ksr_acd_resume"
# The timer process's own pacing and hand-over (not shared state: only that process runs tick and,
# through t_continue, the resumed calls' route in the same process)
_next = {"registered": 0.0, "scan": 0.0}
_planned: dict[str, tuple] = {}  # a waiting call's key -> (its offer, the plan's trace), planned by tick for resume


# ---------------------------------------------------------------- offers


REPLANS = 2  # every planned member was just claimed by simultaneous calls: plan again (the live state shows them taken now)


def start_offer(ctx: dict, action: RouteToGroup, device_timeout_ms: int, snapshot=None, live=None) -> bool:
    """Point the request at the group's first step with a member to ring; False when nobody can be."""
    for attempt in range(REPLANS + 1):
        steps = [[list(map(list, st.members)), st.seconds, st.circular] for st in action.steps]
        contested = ctx.get("contested", 0)
        ctx["wrap"] = action.wrapup_s
        if next_step(ctx, steps, action.group_id, device_timeout_ms):
            return True
        if ctx.get("contested", 0) == contested or snapshot is None or attempt == REPLANS:
            return False
        again = offer_waiting(snapshot, action.group_id, live, ctx["trace"])
        if again is None:
            return False
        ctx["trace"].append("every planned member was taken by simultaneous calls: planned again")
        action = again._replace(wrapup_s=action.wrapup_s)
    return False


def next_step(ctx: dict, steps: list, group_id: int, device_timeout_ms: int) -> bool:
    """Point the request at the next step's members with a registered device; False when no step is left."""
    while steps:
        members, seconds, circular = steps.pop(0)
        members = claim(members, ctx)
        aors = tuple(a for _, member_aors in members for a in member_aors)
        if not members:
            continue
        if aors and apply.lookup_aors(aors):
            ctx["group"] = {"id": group_id, "steps": steps, "current": members}
            ctx["trace"].append(f"offering to user(s) {', '.join(str(m) for m, _ in members)} for {seconds} s")
            if circular >= 0:  # the next call of this ring starts after the member offered now
                KSR.htable.sht_seti("acd", f"ptr:g{group_id}:r{circular}", members[-1][0])
            # what the answer needs, without parsing the call context: group, wrap-up, who is offered
            apply.set_avp(GROUP_MARK, f"{group_id}:{ctx.get('wrap', 0)}:{','.join(str(m) for m, _ in members)}")
            KSR.tm.t_set_fr(seconds * 1000, device_timeout_ms)
            return True
        ctx["trace"].append(f"user(s) {', '.join(str(m) for m, _ in members)}: no registered device")
    release_all(ctx)
    ctx["group"] = {"id": group_id, "steps": []}
    return False


def claim(members: list, ctx: dict) -> list:
    """No double offers: a member is offered only if this call is the only one offering to them now
    (an atomic counter in shared memory, across all workers); the others are left out of this step.
    Members this call already holds (a ring that keeps ringing) stay held; the rest are let go."""
    held = set(ctx.get("claimed", []))
    wanted = {m[0] for m in members}
    release([[u] for u in held - wanted])
    won = []
    for member in members:
        if member[0] in held or KSR.htable.sht_inc("acdoffer", f"u{member[0]}") == 1:
            won.append(member)
        else:
            KSR.htable.sht_dec("acdoffer", f"u{member[0]}")
            ctx["trace"].append(f"user {member[0]} is being offered another call: skipped")
            ctx["contested"] = ctx.get("contested", 0) + 1
    ctx["claimed"] = [m[0] for m in won]
    return won


def release(members: list) -> None:
    for member in members:
        KSR.htable.sht_dec("acdoffer", f"u{member[0]}")


def release_all(ctx: dict) -> None:
    release([[u] for u in ctx.get("claimed", [])])
    ctx["claimed"] = []


# ---------------------------------------------------------------- answered, ended


def note_answering_agent(group_mark: str) -> None:
    """A group call was answered: which member took it (busy now; wrap-up and idle time when it ends);
    the claims of this call are released. One member offered (sequential strategies): no lookup.
    Once per call: the mark is removed from the transaction, so a retransmitted 200 (the ACK was slow),
    a second member's 200 or a 200 that arrives after its branch timed out finds no mark — without
    this, each released the claims again (the offer counts went negative: nobody could be offered a
    call any more) and counted the agent busy once more (for good)."""
    KSR.pv.unset(f"$avp({GROUP_MARK})")
    if KSR.htable.sht_inc(ANSWERED, read.call_id()) != 1:
        return  # two 200s handled at the same moment by two workers (both read the mark): the first one counts
    group, wrapup, offered = (group_mark.split(":") + ["", ""])[:3]
    members = [int(m) for m in offered.split(",") if m.isdigit()]
    if len(members) == 1:
        _answered_by(group, wrapup, members[0])
        release([[m] for m in members])
        return
    ctx = load_context() or {}
    contact = read.answering_contact()
    for user_id, aors in (ctx.get("group") or {}).get("current", []):
        if any(contact in read.contacts_of(aor) for aor in aors):
            _answered_by(group, wrapup, user_id)
            break
    release_all(ctx)  # the others are cancelled; the agent counts as busy already (no gap another call could use)
    store_context(ctx)


def _answered_by(group: str, wrapup: str, user_id: int) -> None:
    KSR.htable.sht_inc("acdbusy", f"u{user_id}")
    apply.set_dlg_var(AGENT, f"{group}:{wrapup}:{user_id}")  # group:wrap-up seconds:user


def agent_call_ended() -> None:
    mark = read.dlg_var(AGENT)
    if mark:
        _group, wrapup, user_id = mark.split(":")
        now = int(time.time())
        KSR.htable.sht_dec("acdbusy", f"u{user_id}")
        # longest idle counts from now; unavailable (wrap-up) until now + wrap-up
        KSR.htable.sht_sets("acd", f"end:u{user_id}", f"{now}:{now + int(wrapup)}")


def calls_started(user_ids: str) -> None:
    """Tracked users (agents among them) are on a call from the answer on: counted for the groups' busy handling."""
    for u in filter(None, user_ids.split(",")):
        KSR.htable.sht_inc("acdbusy", f"u{u}")


def calls_ended(user_ids: str) -> None:
    for u in filter(None, user_ids.split(",")):
        KSR.htable.sht_dec("acdbusy", f"u{u}")


# ---------------------------------------------------------------- the queue of waiting calls


def queue_place(ctx: dict, action: RouteToGroup) -> None:
    """A call to a group with a queue: its place (priority, arrival, latest end of its wait), held or not."""
    if action.queue_s:
        now = time.time()
        ctx["queue"] = {"g": action.group_id, "p": action.priority, "since": round(now, 3), "until": round(now + action.queue_s, 3),
                        "holds": 0, "held": False}


def hold(ctx: dict, action: RouteToGroup | None, first: bool) -> bool:
    """Nobody free: the call waits in the group's queue (transaction suspended; the caller hears
    ringing). `first`: from the request route (answer 180 first); otherwise from a failure route,
    a call whose offers went unanswered waits again with the time it has left. False: cannot wait."""
    if not ctx.get("queue") and action is not None:
        queue_place(ctx, action)
    q = ctx.get("queue")
    if not q:
        return False
    ok, left = policy_queue.may_wait(q["until"], q["holds"], time.time())
    if not ok:
        return False
    if first:
        if KSR.tm.t_newtran() < 0:
            return False
        KSR.tm.t_reply(180, "Ringing")
    index, label = read.transaction_id()
    q["key"] = f"g{q['g']}:{index}:{label}"
    q["holds"] += 1
    q["held"] = True
    ctx["queue"] = q
    ctx["trace"].append(f"waiting in the queue of group {q['g']} (priority {q['p']}), at most {left:.0f} s more")
    store_context(ctx)
    KSR.tm.t_on_failure("ksr_failure_route")
    KSR.tm.t_on_reply("ksr_branch_reply")
    KSR.tm.t_set_fr(int(left * 1000), int(left * 1000))
    if KSR.tmx.t_suspend() < 0:
        q["held"] = False
        store_context(ctx)
        return False
    barrier.settled()  # held: the queue answers it later
    KSR.htable.sht_sets(QUEUE, q["key"], policy_queue.entry_value(q["p"], q["since"], q["until"]))
    KSR.htable.sht_inc(QUEUE, f"n:g{q['g']}")
    KSR.htable.sht_inc(QUEUE, WAITING)
    return True


def leave_queue(ctx: dict) -> None:
    """The call no longer waits (offered, overflowed, given up)."""
    q = ctx.get("queue")
    if q and q.get("held"):
        q["held"] = False
        if KSR.htable.sht_rm(QUEUE, q["key"]) >= 0:
            KSR.htable.sht_dec(QUEUE, f"n:g{q['g']}")
            KSR.htable.sht_dec(QUEUE, WAITING)


def waiting_calls() -> tuple[dict[int, list[policy_queue.Waiting]], set[int]]:
    """Every waiting call by group, and the groups with a non-zero count."""
    entries: dict[int, list] = {}
    counted: set[int] = set()
    KSR.htable.sht_iterator_start("cmq", QUEUE)
    while KSR.htable.sht_iterator_next("cmq") >= 0:
        key = KSR.pv.get("$shtitkey(cmq)") or ""
        value = KSR.pv.get("$shtitval(cmq)")
        if key == WAITING:
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


def tick(snapshot, live) -> None:
    """Offer waiting calls to members who became free, in the order the policy gives them.
    Each call resumed here claims its members before the next one is looked at."""
    now = time.time()
    if now >= _next["registered"]:
        _next["registered"] = now + REGISTERED_EVERY_S
        mark_registered_agents(snapshot)
    if now < _next["scan"] and (KSR.htable.sht_get(QUEUE, WAITING) or 0) <= 0:
        return  # nobody waits: one read every 20 ms
    _next["scan"] = now + SCAN_EVERY_S
    entries, counted = waiting_calls()
    for group_id in counted - entries.keys():  # nobody waits: a count left over (a missed leave) is put right
        KSR.htable.sht_seti(QUEUE, f"n:g{group_id}", 0)
    in_turns = {}
    for group_id, calls in entries.items():
        in_turn, stale = policy_queue.in_turn(calls, now)
        for c in stale:
            KSR.htable.sht_rm(QUEUE, c.key)
        KSR.htable.sht_seti(QUEUE, f"n:g{group_id}", len(in_turn))  # the count follows the entries (each leave decrements it)
        in_turns[group_id] = in_turn
    KSR.htable.sht_seti(QUEUE, WAITING, sum(map(len, in_turns.values())))
    for group_id, in_turn in in_turns.items():
        for call in in_turn:
            trace: list[str] = []
            action = offer_waiting(snapshot, group_id, live, trace)
            if action is None:
                break  # nobody free for this group: the others wait too (in order)
            _planned[call.key] = (action, trace)
            _g, index, label = call.key.split(":")
            KSR.tmx.t_continue(int(index), int(label), RESUME)
            _planned.pop(call.key, None)  # not resumed (the caller gave up meanwhile): planned again next time


def mark_registered(user_id: int, *aors: str) -> None:
    """acdreg u<user> = 1 while one of the agent's AoRs (sip:user@realm) has a registered device (usrloc, in shared memory)."""
    if any(KSR.registrar.registered_uri("location", aor) > 0 for aor in aors):
        KSR.htable.sht_seti(REGISTERED, f"u{user_id}", 1)
    else:
        KSR.htable.sht_rm(REGISTERED, f"u{user_id}")


def mark_registered_agents(snapshot) -> None:
    """Every hunt-group member's mark, a few µs per agent every 5 s in the timer process, instead of the
    monitor dumping all registrations of the node on every scrape."""
    for user_id in snapshot.agents:
        user = snapshot.users.get(user_id)
        mark_registered(user_id, *(user.aors if user is not None else ()))


def resume(ctx: dict, snapshot, live, device_timeout_ms: int) -> bool:
    """A waiting call's turn (run by t_continue): offer it, or let it wait on if someone was quicker.
    False: it can wait no longer (the caller decides: overflow)."""
    q = ctx.get("queue")
    if not q:
        return False
    planned = _planned.pop(q.get("key", ""), None)  # tick planned it a moment ago, in this process
    leave_queue(ctx)
    trace = ctx["trace"]
    if planned is not None:
        action = planned[0]
        trace.extend(planned[1])
    else:
        action = offer_waiting(snapshot, q["g"], live, trace)
    waited = time.time() - q["since"]
    if action is not None and start_offer(ctx, action, device_timeout_ms, snapshot, live):
        trace.append(f"a member is free after {waited:.1f} s of waiting")
        store_context(ctx)
        KSR.tm.t_on_failure("ksr_failure_route")
        KSR.tm.t_on_reply("ksr_branch_reply")
        if KSR.tm.t_relay() > 0:
            return True
    return hold(ctx, None, False)
