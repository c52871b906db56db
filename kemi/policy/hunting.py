"""Hunt groups (ACD): which members a group call is offered to, in which order, and when.

Pure functions of (group, live agent states, now). A group has rings (stages); each ring has
members, a strategy and a wait time. The result is a `HuntPlan`: a sequence of steps, each a
set of members offered at once for some seconds, then the overflow target. The shell plays the
steps as serial forks (the next step when a step's time is up or all its members fail).

Strategies:
- broadcast: every available member of the ring at once, for the ring's wait time;
- top_down: one member at a time in list order, always from the top;
- circular: one at a time, starting after the member who was offered the group's last call;
- longest_idle: one at a time, the member whose last call ended longest ago first.

Waiting: with a queue time, a call nobody can take now waits (the shell holds it) and is offered
when a member becomes free, VIP and priority calls first, then in arrival order; a call that
arrives while others wait queues behind them. Nobody present (logged in, registered, not DND):
overflow at once.

Availability: a member is offered a call only when logged in, not in wrap-up, not DND, not
already offered another call (no double offers across workers), and — per the ring's setting
— not busy. With required skills, qualified members come first, best level first.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

STRATEGIES = ("broadcast", "top_down", "circular", "longest_idle")
SEQUENTIAL = frozenset({"top_down", "circular", "longest_idle"})


class Ring(NamedTuple):
    members: tuple[int, ...]  # user ids, in list order
    strategy: str = "broadcast"
    wait_s: int = 20  # how long this ring is tried before the next one starts
    member_s: int = 10  # sequential strategies: how long each member rings
    keep_previous: bool = False  # the previous ring's members go on ringing during this one
    busy_members: str = "skip"  # skip | ring (an agent on a call: skipped, or offered anyway — call waiting)
    delays: Mapping[int, int] | None = None  # member -> seconds before they are offered (delay of ring signalling)
    dnd_members: str = "skip"  # skip | ring (the group's calls ring through a member's DND)


class Group(NamedTuple):
    id: int
    tenant_id: int
    name: str
    rings: tuple[Ring, ...]
    overflow: object | None = None  # a ForwardRule-like target (user / number / group), None: 480
    max_waiting: int = 0  # more calls than this waiting: overflow at once (0: no limit)
    presentation: str = "caller"  # caller | group | clir
    number: str | None = None  # the group's public number (E.164), presented with presentation=group
    skills: Mapping[str, int] | None = None  # required skill -> minimum level
    skills_fallback: bool = True  # no qualified member available: offer to the others
    wrapup_s: int = 0  # after a group call the agent is unavailable this long
    callback_window_s: int = 0  # a caller ringing back within this reaches the agent who called them first
    # nobody free: the caller waits (hears ringing) up to this long for a member, then overflow (0: overflow at once)
    queue_s: int = 0
    # where the node has a media server: the waiting caller hears the group's greeting, music and their place in the
    # queue every `queue_announce_s` seconds (0: never) instead of ringing (ACD-16/17)
    queue_music: bool = True
    queue_announce_s: int = 30
    extension: str = ""
    anonymous: str = "allow"  # allow | reject (433) callers without a number
    vip: frozenset[str] = frozenset()  # caller keys ('+49...' or 'u<id>') that wait ahead of everyone else
    blocked: Mapping[str, Any] | None = None  # caller key -> divert ForwardRule, None: reject
    # ForwardRules: unconditional, dnd, away (the group's own status); time plans for night service
    forwarding: tuple = ()
    all_members: tuple[int, ...] = ()  # every ring's members once, in order (computed when the snapshot is read)
    devices: Mapping[int, tuple[str, ...]] | None = None  # members added as one SIP account: only these AORs ring
    levels: Mapping[int, int] | None = (
        None  # with required skills: the qualified members' levels (computed when the snapshot is read)
    )


class GroupLive(NamedTuple):
    """What a group call reads from the live state, in one go."""

    states: dict  # member -> AgentState
    pointers: dict  # ring index -> circular pointer
    waiting: int = 0  # calls waiting in the group's queue
    status: str = "online"  # the group's own status (online, away, dnd: night service / closed)


class AgentState(NamedTuple):
    logged_in: bool = True
    status: str = "online"  # online | away | dnd | unreachable
    busy: bool = False  # on a call now
    wrapup: bool = False  # in wrap-up after a group call
    offered: bool = False  # being offered another call right now (claimed by some worker)
    last_end: float = 0.0  # when their last group call ended (0: never)
    registered: bool = True


FREE = AgentState()  # a member nobody reported anything about


class Step(NamedTuple):
    members: tuple[int, ...]
    seconds: int
    ring: int  # index of the ring this step belongs to


class HuntPlan(NamedTuple):
    steps: tuple[Step, ...]
    overflow: bool  # True when nothing can be offered and the overflow target takes the call now
    trace: tuple[str, ...]


def why_not(state: AgentState, skip_busy: bool, skip_dnd: bool = True) -> str:
    """Why this member is not offered a call now ('' when they are)."""
    if state is FREE:
        return ""
    if not state.logged_in:
        return "logged out"
    if not state.registered:
        return "no registered device"
    if state.wrapup:
        return "in wrap-up"
    if (state.status == "dnd" and skip_dnd) or state.status == "unreachable":
        return state.status
    if state.offered:
        return "being offered another call"
    if state.busy and skip_busy:
        return "on a call"
    return ""


def available(state: AgentState, ring: Ring) -> tuple[bool, str]:
    why = why_not(state, ring.busy_members == "skip", ring.dnd_members == "skip")
    return not why, why


def qualified_levels(
    skills: Mapping[int, Mapping[str, int]], candidates, required: Mapping[str, int]
) -> dict[int, int]:
    """The qualified candidates and their level (the lowest of their required skills)."""
    out = {}
    for m in candidates:
        have = skills.get(m)
        if not have:
            continue
        level = 99
        for name, minimum in required.items():
            got = have.get(name, -1)
            if got < minimum:
                break
            if got < level:
                level = got
        else:
            out[m] = level
    return out


def order(ring: Ring, candidates: list[int], states: Mapping[int, AgentState], pointer: int | None) -> list[int]:
    """Candidates (given in list order) in the order the ring's strategy offers them."""
    if ring.strategy == "longest_idle":  # a stable sort: equal idle times keep list order
        get = states.get
        return sorted(candidates, key=lambda m: get(m, FREE).last_end)
    if ring.strategy == "circular" and pointer in ring.members:
        start = ring.members.index(pointer) + 1
        wanted = set(candidates)
        return [m for m in ring.members[start:] + ring.members[:start] if m in wanted]
    return candidates  # broadcast and top_down: list order


def plan(
    group: Group,
    states: Mapping[int, AgentState],
    skills: Mapping[int, Mapping[str, int]] | None = None,
    pointers: Mapping[int, int] | None = None,
    waiting: int = 0,
) -> HuntPlan:
    """The offers of a call to this group, given every member's live state."""
    trace = [f"group {group.id} ({group.name})"]
    if group.max_waiting and waiting >= group.max_waiting:
        trace.append(f"{waiting} calls waiting, limit {group.max_waiting}: overflow")
        return HuntPlan((), True, tuple(trace))
    skills = skills or {}
    pointers = pointers or {}
    get = states.get
    steps: list[Step] = []
    previous: tuple[int, ...] = ()
    for idx, ring in enumerate(group.rings):
        n = idx + 1
        candidates, skipped = [], []
        skip_busy, skip_dnd = ring.busy_members == "skip", ring.dnd_members == "skip"
        for m in ring.members:
            st = get(m, FREE)
            if st is FREE or (
                st.logged_in
                and st.registered
                and not st.wrapup
                and not st.offered
                and not (st.status == "dnd" and skip_dnd)
                and st.status != "unreachable"
                and not (st.busy and skip_busy)
            ):
                candidates.append(m)  # the common case, without a call (why_not says the same)
            else:
                skipped.append(f"{m} ({why_not(st, skip_busy, skip_dnd)})")
        if group.skills and candidates:
            levels = group.levels if group.levels is not None else qualified_levels(skills, candidates, group.skills)
            best = [m for m in candidates if m in levels]
            if best or not group.skills_fallback:
                if ring.strategy == "broadcast":
                    best.sort(key=lambda m: -levels[m])
                    candidates = best
                else:  # best level first; within a level the strategy's order
                    candidates = sorted(order(ring, best, states, pointers.get(idx)), key=lambda m: -levels[m])
                trace.append(f"ring {n}: {len(best)} member(s) with the required skills, best level first")
            else:
                trace.append(f"ring {n}: nobody has the required skills; falling back to all members")
                candidates = order(ring, candidates, states, pointers.get(idx))
        else:
            candidates = order(ring, candidates, states, pointers.get(idx))
        if skipped:
            trace.append(f"ring {n}: not offered: " + _listed(skipped))
        if not candidates:
            trace.append(f"ring {n}: nobody available")
            continue
        trace.append(f"ring {n} ({ring.strategy}): " + _listed(candidates))
        carry = previous if ring.keep_previous else ()
        if ring.strategy in SEQUENTIAL:
            budget = ring.wait_s
            for m in candidates:
                if budget <= 0:
                    break
                secs = min(ring.member_s, budget)
                steps.append(Step(carry + (m,) if m not in carry else carry, secs, idx))
                budget -= secs
        elif not ring.delays:
            steps.append(
                Step(
                    carry + tuple(m for m in candidates if m not in carry) if carry else tuple(candidates),
                    ring.wait_s,
                    idx,
                )
            )
        else:
            delays = ring.delays
            at, budget = 0, ring.wait_s
            for when in sorted({delays.get(m, 0) for m in candidates} - {0}) + [ring.wait_s]:
                now_ringing = tuple(m for m in candidates if delays.get(m, 0) <= at)
                if when > at and now_ringing:
                    steps.append(Step(tuple(dict.fromkeys(carry + now_ringing)), min(when, ring.wait_s) - at, idx))
                at = min(when, ring.wait_s)
                if at >= budget:
                    break
        previous = tuple(candidates)
    if not steps:
        trace.append("no member can be offered the call: overflow")
        return HuntPlan((), True, tuple(trace))
    trace.append("then overflow" if group.overflow is not None else "then 480 when nobody answers")
    return HuntPlan(tuple(steps), False, tuple(trace))


TRACE_MEMBERS = 12  # members named in a trace line; a big ring's line ends with "... and N more"


def _listed(items: list) -> str:
    if len(items) <= TRACE_MEMBERS:
        return ", ".join(map(str, items))
    return ", ".join(map(str, items[:TRACE_MEMBERS])) + f" ... and {len(items) - TRACE_MEMBERS} more"


def next_pointer(plan_: HuntPlan, ring: int) -> int | None:
    """Circular: the member offered first in this ring (the next call starts after them)."""
    for step in plan_.steps:
        if step.ring == ring and step.members:
            return step.members[-1]
    return None


def anyone_present(group: Group, states: Mapping[int, AgentState]) -> bool:
    """Is there a member a waiting call could eventually be offered to (logged in, with a device, not DND)?"""
    for r in group.rings:
        for m in r.members:
            st = states.get(m, FREE)
            if st.logged_in and st.registered and st.status not in ("dnd", "unreachable"):
                return True
    return False
