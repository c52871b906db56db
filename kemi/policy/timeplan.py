"""Time plans: weekly time ranges, minus holidays and custom dates, in the plan's time zone.

The control plane expands holidays (library `holidays`, national and regional) and custom
dates into plain ISO dates when it compiles the snapshot, so the policy core needs only the
standard library. The caller passes `now` (the policy core never reads the clock).
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeRange(NamedTuple):
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive; 1440 = midnight


class TimePlan(NamedTuple):
    id: int
    name: str
    tz: str
    ranges: tuple[TimeRange, ...]
    closed_dates: frozenset[str] = frozenset()  # ISO dates on which the plan never applies (holidays, custom)

    def active(self, now: float) -> bool:
        """Is `now` (epoch seconds) inside the plan: in a range of its weekday, and not a closed date?"""
        local = datetime.fromtimestamp(now, _zone(self.tz))
        if local.date().isoformat() in self.closed_dates:
            return False
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        return any(day in r.days and r.start <= minute < r.end for r in self.ranges)

    def why(self, now: float) -> str:
        local = datetime.fromtimestamp(now, _zone(self.tz))
        state = "inside" if self.active(now) else "outside"
        closed = " (a holiday or closed date)" if local.date().isoformat() in self.closed_dates else ""
        return f"{local:%a %Y-%m-%d %H:%M} {self.tz} is {state} time plan {self.name!r}{closed}"


@functools.lru_cache(maxsize=64)
def _zone(name: str):
    return timezone.utc if name in ("UTC", "") else ZoneInfo(name)


def parse_minutes(hhmm: str) -> int:
    """'08:30' -> 510; '24:00' -> 1440."""
    h, _, m = hhmm.partition(":")
    value = int(h) * 60 + int(m or 0)
    if not (0 <= int(m or 0) < 60 and 0 <= value <= 1440):
        raise ValueError(f"{hhmm!r} is not a time of day")
    return value
