"""The live view: state that changes by the second and is shared by all Kamailio workers.

The policy core reads it through this small interface; the shell implements it on Kamailio's
shared memory (htable `status` for users' status, dialog profile `calls` for who is on a call),
tests implement it with dictionaries. Only what a decision needs is asked, so a call to a user
without busy-on-busy never pays for a busy check.
"""

from __future__ import annotations

from typing import Protocol

# htable acd key changed after every write of a user's status or an agent's log-in (by the control plane's pushes
# and the phone feature codes): Kamailio's workers keep the values they read until it changes
from kemi.contract import LIVE_VERSION  # noqa: F401

from .hunting import AgentState, GroupLive

STATUSES = ("online", "away", "dnd", "unreachable")


class LiveView(Protocol):
    def status(self, user_id: int) -> str:
        """online, away, dnd (do not disturb) or unreachable."""
        ...

    def busy(self, user_id: int) -> bool:
        """Is the user on a call right now (only tracked for users with busy-on-busy)?"""
        ...

    def agents(self, group_id: int, user_ids: tuple[int, ...], rings: int):
        """Hunt groups: a hunting.GroupLive (members' states, circular pointers, calls waiting, the group's status),
        read in one go."""
        ...

    def callback(self, number: str) -> tuple[int, float] | None:
        """Callback recognition: (agent, until) when an agent called this number out recently."""
        ...


class Quiet:
    """Everyone online and free: the live view of simulations that name no state."""

    def __init__(
        self,
        status: dict[int, str] | None = None,
        busy: set[int] | None = None,
        callbacks: dict | None = None,
        waiting: dict[int, int] | None = None,
    ):
        self._waiting = waiting or {}
        self._status = status or {}
        self._busy = busy or set()
        self._callbacks = callbacks or {}

    def status(self, user_id: int) -> str:
        return self._status.get(user_id, "online")

    def busy(self, user_id: int) -> bool:
        return user_id in self._busy

    def agents(self, group_id: int, user_ids: tuple[int, ...], rings: int):
        return GroupLive(
            {u: AgentState(status=self.status(u), busy=u in self._busy) for u in user_ids},
            {},
            self._waiting.get(group_id, 0),
            self._status.get(-group_id, "online"),
        )

    def callback(self, number: str) -> tuple[int, float] | None:
        return self._callbacks.get(number)


QUIET = Quiet()
