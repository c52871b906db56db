"""Users' status in Kamailio's shared memory (htable `status`), kept in step with the database.

The database keeps the status across restarts; Kamailio's htable is what every worker reads on
a call. A change is pushed at once (best effort); every `interval` seconds the sync looks whether
Kamailio restarted (empty htable) or a push failed since, and only then pushes the whole set again,
so a restarted Kamailio is repaired within that time without anyone acting.

Not more often: a phone's feature code (DND, group log-in/out) changes the htable at once and
reaches the database a moment later; a full push in between would put the database's older value
back over the phone's change (seen: an agent's log-in by phone undone, the next call not offered
to them).
"""

from __future__ import annotations

import logging
import random
import threading

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controlplane.adapters.kamailio_rpc import KamailioRpc, KamailioRpcError, RestartWatch
from controlplane.db.models import AgentLogin, HuntGroup, User
from controlplane.services.periodic import Periodic
from kemi.policy.live import LIVE_VERSION
from kemi import contract as shm

log = logging.getLogger("callmanager.live")
# One writer at a time into Kamailio's live state: the periodic sync holds it from reading the database to its last
# push, so an API change committed meanwhile is pushed after the sync's (older) values, never overwritten by them.
PUSH_LOCK = threading.RLock()
# Set when a push did not reach Kamailio: the next sync pushes the whole set again.
_MISSED = threading.Event()


def bump_version(kamailio: KamailioRpc) -> None:
    """Tell Kamailio's workers that statuses or log-ins changed (they read them again on the next group call).
    A random value, not a count: Kamailio's feature codes increment the same key, and any change will do."""
    kamailio.call("htable.seti", shm.ACD.name, LIVE_VERSION, random.randrange(1, 2**31))


def push_status(kamailio: KamailioRpc, user_id: int, status: str, key: str | None = None) -> bool:
    """Set one user's status in Kamailio; False when Kamailio is not reachable (the sync will repeat it)."""
    key = key or f"u{user_id}"
    with PUSH_LOCK:
        return _push_status(kamailio, key, status)


def _push_status(kamailio: KamailioRpc, key: str, status: str, bump: bool = True) -> bool:
    try:
        if status == "online":
            try:
                kamailio.call("htable.delete", shm.STATUS.name, key)
            except KamailioRpcError as exc:
                if "not found" not in str(exc).lower():
                    raise
        else:
            kamailio.call("htable.sets", shm.STATUS.name, key, status)
        if bump:
            bump_version(kamailio)
        return True
    except KamailioRpcError as exc:
        _MISSED.set()
        log.info("status %s not pushed now (%s); the periodic sync will", key, exc)
        return False


def push_group_status(kamailio: KamailioRpc, group_id: int, status: str) -> bool:
    """A hunt group's own status (night service: away / dnd), key g<group>."""
    return push_status(kamailio, group_id, status, key=f"g{group_id}")


def push_login(kamailio: KamailioRpc, group_id: int, user_id: int, logged_in: bool) -> bool:
    """An agent's log-in state in Kamailio's htable `acd` (out:g<group>:u<user> present = logged out)."""
    with PUSH_LOCK:
        return _push_login(kamailio, group_id, user_id, logged_in)


def _push_login(kamailio: KamailioRpc, group_id: int, user_id: int, logged_in: bool, bump: bool = True) -> bool:
    key = f"out:g{group_id}:u{user_id}"
    try:
        if logged_in:
            try:
                kamailio.call("htable.delete", shm.ACD.name, key)
            except KamailioRpcError as exc:
                if "not found" not in str(exc).lower():
                    raise
        else:
            kamailio.call("htable.seti", shm.ACD.name, key, 1)
        if bump:
            bump_version(kamailio)
        return True
    except KamailioRpcError as exc:
        _MISSED.set()
        log.info(
            "log-in state of user %s in group %s not pushed now (%s); the periodic sync will", user_id, group_id, exc
        )
        return False


class LiveStateSync:
    def __init__(self, engine: Engine, kamailio: KamailioRpc, interval: float = 10.0):
        self.engine, self.kamailio, self.interval = engine, kamailio, interval
        self._restarts = RestartWatch(kamailio)
        self._loop = Periodic("live-state-sync", self.sync, interval, log, "live state sync failed")

    def sync(self) -> int:
        """Push every non-online status and log-out when Kamailio restarted or a push failed since the last sync;
        returns how many were pushed."""
        with PUSH_LOCK:
            try:
                restarted = self._restarts.restarted()
            except KamailioRpcError as exc:
                log.debug("live state: Kamailio not reachable (%s)", exc)
                return 0
            if not (restarted or _MISSED.is_set()):
                return 0
            _MISSED.clear()
            return self._sync()

    def _sync(self) -> int:
        with Session(self.engine) as s:
            rows = s.exec(select(User.id, User.status).where(User.status != "online")).all()
            logins = s.exec(select(AgentLogin.group_id, AgentLogin.user_id).where(AgentLogin.logged_in == False)).all()  # noqa: E712
            groups = s.exec(select(HuntGroup.id, HuntGroup.status).where(HuntGroup.status != "online")).all()
        pushed = 0
        try:
            for user_id, status in rows:
                if not _push_status(self.kamailio, f"u{user_id}", status, bump=False):
                    return pushed  # _MISSED is set: the whole set again next time
                pushed += 1
            for group_id, user_id in logins:
                if not _push_login(self.kamailio, group_id, user_id, False, bump=False):
                    return pushed
                pushed += 1
            for group, status in groups:
                if not _push_status(self.kamailio, f"g{group}", status, bump=False):
                    return pushed
                pushed += 1
            return pushed
        finally:
            if pushed:  # once per round (a restarted Kamailio gets its statuses back; its workers read them)
                try:
                    bump_version(self.kamailio)
                except KamailioRpcError as exc:
                    log.info("live-state version not changed now (%s)", exc)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
