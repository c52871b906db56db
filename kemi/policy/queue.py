"""The queue of a hunt group: which waiting call goes next, and whether a call may wait again.

Pure functions; the shell keeps one entry per waiting call in Kamailio's htable `acdq` as
`g<group>:<tindex>:<tlabel>` = `<priority>:<since>:<until>` and asks these what to do.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_HOLDS = 5  # a waiting call is held (and offered again) at most this often: every hold and offer is a tm branch
MIN_WAIT_S = 1.0  # less time left than this: the call does not wait again, it overflows
STALE_S = 10.0  # an entry this long past its end lost its call (caller gone, transaction ended without leaving)


class Waiting(NamedTuple):
    priority: int
    since: float
    until: float
    key: str


def entry_value(priority: int, since: float, until: float) -> str:
    return f"{priority}:{since}:{until}"


def parse_entry(key: str, value: object) -> tuple[int, Waiting] | None:
    """(group id, waiting call) from one htable entry; None for anything else (counts, garbage)."""
    if not isinstance(value, str) or not key.startswith("g"):
        return None
    try:
        group = int(key[1:].split(":", 1)[0])
        prio, since, until = value.split(":")
        return group, Waiting(int(prio), float(since), float(until), key)
    except ValueError:
        return None


def in_turn(calls: list[Waiting], now: float) -> tuple[list[Waiting], list[Waiting]]:
    """(live calls in the order they are offered — highest priority, then longest waiting —, stale entries)."""
    live = sorted((c for c in calls if c.until + STALE_S >= now), key=lambda c: (-c.priority, c.since))
    return live, [c for c in calls if c.until + STALE_S < now]


def may_wait(until: float, holds: int, now: float) -> tuple[bool, float]:
    """May this call wait (again)? With the seconds it has left."""
    left = until - now
    return left >= MIN_WAIT_S and holds < MAX_HOLDS, left
