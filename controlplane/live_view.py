"""The policy's live view, read from outside Kamailio: for `route.simulate` and previews.

Statuses, agents' log-ins and groups' statuses come from the database (which Kamailio's htables
mirror). What only Kamailio knows — agents on a call, offered a call, in wrap-up, their last call,
circular pointers, calls waiting — is read from its htables when it answers; without it those
count as "free" and the trace of a simulation says so.
"""

from __future__ import annotations

import time

from sqlmodel import Session, select

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.db.models import AgentLogin, HuntGroup, User
from kemi import contract as shm
from kemi.policy.hunting import AgentState, GroupLive


def agent_end(value) -> tuple[float, float]:
    """htable acd end:u<user> = "<end of the last group call>:<end of wrap-up>" (epoch seconds)."""
    last, _, wrap = str(value or "").partition(":")
    try:
        return float(last or 0), float(wrap or 0)
    except ValueError:
        return 0.0, 0.0


class StoredLiveView:
    def __init__(
        self,
        statuses: dict[int, str],
        logged_out: set[tuple[int, int]],
        group_statuses: dict[int, str],
        tables: dict[str, dict] | None = None,
    ):
        self._statuses, self._out, self._groups = statuses, logged_out, group_statuses
        self._t = tables or {}
        self.kamailio_read = tables is not None

    @classmethod
    def load(cls, session: Session, app=None) -> StoredLiveView:
        statuses = dict(session.exec(select(User.id, User.status).where(User.status != "online")).all())
        out = set(
            session.exec(select(AgentLogin.group_id, AgentLogin.user_id).where(AgentLogin.logged_in == False)).all()  # noqa: E712
        )
        groups = dict(session.exec(select(HuntGroup.id, HuntGroup.status).where(HuntGroup.status != "online")).all())
        tables = None
        if app is not None:
            try:
                app.kamailio.call("core.version")
                tables = {t.name: htable_items(app, t.name) for t in (shm.ACD, shm.BUSY, shm.OFFERS, shm.QUEUE)}
            except (KamailioRpcError, OSError):
                tables = None
        return cls(statuses, out, groups, tables)

    def _int(self, table: str, key: str) -> int:
        try:
            return int(self._t.get(table, {}).get(key) or 0)
        except (TypeError, ValueError):
            return 0

    def status(self, user_id: int) -> str:
        return self._statuses.get(user_id, "online")

    def busy(self, user_id: int) -> bool:
        return self._int(shm.BUSY.name, shm.user_key(user_id)) > 0

    def agents(self, group_id: int, user_ids: tuple[int, ...], rings: int) -> GroupLive:
        now = time.time()
        states = {}
        for u in user_ids:
            last_end, wrap_until = agent_end(self._t.get(shm.ACD.name, {}).get(shm.agent_end_key(u)))
            states[u] = AgentState(
                logged_in=(group_id, u) not in self._out,
                status=self.status(u),
                busy=self.busy(u),
                wrapup=wrap_until > now,
                offered=self._int(shm.OFFERS.name, shm.user_key(u)) > 0,
                last_end=last_end,
            )
        pointers = {i: p for i in range(rings) if (p := self._int(shm.ACD.name, shm.ring_pointer_key(group_id, i)))}
        return GroupLive(
            states,
            pointers,
            self._int(shm.QUEUE.name, shm.queue_count_key(group_id)),
            self._groups.get(group_id, "online"),
        )

    def callback(self, number: str):
        value = self._t.get(shm.ACD.name, {}).get(shm.callback_key(number))
        if isinstance(value, str) and ":" in value:
            agent, until = value.split(":", 1)
            if agent.isdigit() and until.isdigit():
                return int(agent), float(until)
        return None


def htable_items(app, table: str) -> dict[str, object]:
    """All items of one of Kamailio's htables, in one RPC (empty when Kamailio does not answer)."""
    try:
        return app.kamailio.htable_items(table)
    except KamailioRpcError:
        return {}


def registered_agents(app) -> set[int]:
    """Hunt-group members with a registered device, as Kamailio's acd timer marked them (one small htable read,
    not a dump of every registration of the node)."""
    return {int(k[1:]) for k in htable_items(app, shm.REGISTERED.name) if k.startswith("u") and k[1:].isdigit()}
