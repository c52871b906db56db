"""The queue of a hunt group: which waiting call goes next, and whether a call may wait again.

Pure functions; the shell keeps one entry per waiting call in Kamailio's htable `acdq` as
`g<group>:<tindex>:<tlabel>` = `<priority>:<since>:<until>` and asks these what to do.

With music (a media server on the node and the group's `queue_music`), a waiting call is not suspended: it is a
branch to the media server, which plays the group's greeting, music and the caller's place in the queue. Its entry
is `g<group>:m<attempt>:<Call-ID>` (`music_key`); the queue's timer tells the media server the call's place and, when
a member is free, its turn (a SIP MESSAGE naming the Call-ID), and the media server ends its branch with a
302 carrying TURN — the failure route then offers the call, as a suspended call's turn does. With its place the media
server is told the expected wait, from the group's average wait of the calls connected from its queue (`averaged`,
kept in `w:g<group>`).
"""

from __future__ import annotations

from typing import NamedTuple

from .announce import LANGUAGES, worker_port

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


# ---------------------------------------------------------------- waiting with music (the media server)

TURN = "queue.turn"  # the choice header of the media server's 302 (kemi.policy.ivr.CHOICE_HEADER) when it is the turn
NOTICE_HEADER = "X-Callmanager-Queue"  # the node's MESSAGE to the media server: "turn", "position=<n>[;wait=<s>]"
CALL_HEADER = "X-Callmanager-Call"  # ... and the waiting call's Call-ID
FR_MS = 2000  # the media server answers at once; then the call waits its time (the branch's INVITE timer)
TURN_AGAIN_S = 3.0  # a turn told that did not come back is told again after this (a lost MESSAGE)


def music_key(group_id: int, attempt: int, call_id: str) -> str:
    return f"g{group_id}:m{attempt}:{call_id}"


def parse_music_key(key: str) -> tuple[int, int, str] | None:
    """(group, attempt, Call-ID) of a waiting call held at the media server; None: a suspended call's key."""
    parts = key.split(":", 2)
    if len(parts) != 3 or not parts[1].startswith("m") or not parts[1][1:].isdigit() or not parts[0][1:].isdigit():
        return None
    return int(parts[0][1:]), int(parts[1][1:]), parts[2]


class Wait(NamedTuple):
    """What the media server is asked to play while a call waits: the group's greeting, music, its place every
    `announce_s` seconds (0: never), for at most `max_s`."""

    group_id: int
    language: str
    tenant_id: int
    announce_s: int
    max_s: int


def target_user(w: Wait) -> str:
    return f"queue.{w.group_id}.{w.language}.t{w.tenant_id}.a{w.announce_s}.{w.max_s}"


def target_uri(w: Wait, media_server: str, call_id: str, workers: int, attempt: int = 0) -> str:
    address, _, port = media_server.rpartition(":")
    return f"sip:{target_user(w)}@{address}:{worker_port(int(port), call_id, workers, attempt)}"


def parse_target(user: str) -> Wait | None:
    parts = user.split(".")
    if len(parts) != 6 or parts[0] != "queue" or parts[2] not in LANGUAGES:
        return None
    try:
        if not (parts[3].startswith("t") and parts[4].startswith("a")):
            return None
        w = Wait(int(parts[1]), parts[2], int(parts[3][1:]), int(parts[4][1:]), int(parts[5]))
    except ValueError:
        return None
    return w if w.group_id > 0 and 0 <= w.announce_s <= 3600 and 0 < w.max_s <= 7200 else None


# ---------------------------------------------------------------- the expected wait (said with the place)

AVERAGE_OVER = 10  # the group's average wait follows its last ~10 calls connected from the queue
SHORT_S = 60  # an expected wait under this is said as "less than a minute"


def averaged(value: object, waited_s: float) -> str:
    """The group's average wait (its entry `w:g<group>` = "<seconds>:<calls>") after a call that waited `waited_s`
    got its turn: a running mean over the first calls, then an exponentially weighted one (AVERAGE_OVER)."""
    average, calls = parse_average(value)
    n = min(calls + 1, AVERAGE_OVER)
    new = waited_s if average is None else average + (waited_s - average) / n
    return f"{max(0.0, new):.1f}:{calls + 1}"


def parse_average(value: object) -> tuple[float | None, int]:
    """(average wait in seconds or None when no call was connected from the queue yet, calls counted)."""
    try:
        seconds, calls = str(value).split(":")
        average, n = float(seconds), int(calls)
    except ValueError:
        return None, 0
    if n <= 0 or not 0.0 <= average < 86400.0:
        return None, 0
    return average, n


def expected_wait_s(average_s: float | None, place: int, waited_s: float) -> int | None:
    """How long a caller at `place` who waited `waited_s` still waits, by the group's average: as the callers before
    them took their average each (Asterisk's announce-holdtime does much the same). None: nothing to go by yet."""
    if average_s is None or place < 1:
        return None
    return max(0, round(average_s * place - waited_s))


def position_notice(place: int, expected_s: int | None) -> str:
    """The node's word to the media server: the caller's place, and the expected wait when there is one."""
    return f"position={place}" + (f";wait={expected_s}" if expected_s is not None else "")


def parse_position(what: str) -> tuple[int, int | None] | None:
    """(place, expected wait or None) from a position notice; None: not one."""
    if not what.startswith("position="):
        return None
    place_text, _, wait_text = what[len("position=") :].partition(";wait=")
    try:
        place = max(1, int(place_text))
        wait = max(0, min(int(wait_text), 86400)) if wait_text else None
    except ValueError:
        return None
    return place, wait


def wait_words(expected_s: int, numbers: int = 20) -> tuple[str, ...]:
    """The prompts saying an expected wait: "less than a minute", or "about <n> minutes" (rounded up)."""
    if expected_s < SHORT_S:
        return ("queue_wait_short",)
    minutes = -(-expected_s // 60)
    return ("queue_wait_about", f"n{minutes}" if minutes <= numbers else "vm_more_than_twenty", "queue_minutes")


WAIT_PROMPTS = ("queue_wait_short", "queue_wait_about", "queue_minutes")


def tell_position(told: dict[str, tuple], key: str, place: int, with_wait: bool = False) -> bool:
    """Tell the media server this waiting call's place now? When it changed, or when an expected wait can now be told
    with it (`told`: per key the (place, with_wait) told last)."""
    return told.get(key) != (place, with_wait)


def tell_turn(told: dict[str, float], key: str, now: float) -> bool:
    """Tell the media server it is this call's turn now? Once, and again after TURN_AGAIN_S (a MESSAGE lost)
    (`told`: per key when its turn was told)."""
    last = told.get(key)
    return last is None or now - last >= TURN_AGAIN_S
