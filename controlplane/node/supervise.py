"""Keep a node's components running: a component that dies is restarted on its own, the others keep running.

Kamailio routes on its last snapshot while the control plane is away, the control plane ingests what Kamailio
spooled meanwhile, RTPengine's calls end with it but new ones find it again: one component's death must cost
only what that component holds. The runner (`make run`) calls `Supervisor.check` twice a second.

Restarts back off (`RestartPolicy.backoff`: at once, then 1, 2, 4 … s); a component that failed
`max_failures` times within `window_s` is given up on loudly — the node is stopped with the reason, as a
component that cannot stay up (a bad setting, a port taken) would otherwise restart forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol


class Supervised(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def logfile(self) -> object: ...

    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    window_s: float = 60.0
    max_failures: int = 5  # failures within window_s: the next one gives up
    backoff: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)

    def delay(self, failures: list[float], now: float) -> float | None:
        """Seconds to wait before restarting after the failures at these times (the last is now's); None: give up."""
        recent = [t for t in failures if now - t < self.window_s]
        if len(recent) > self.max_failures:
            return None
        return self.backoff[min(len(recent), len(self.backoff)) - 1] if recent else 0.0


@dataclass
class _State:
    failures: list[float] = field(default_factory=list)
    restart_at: float | None = None  # dead, restarting at this time
    restarts: int = 0


class GiveUp(RuntimeError):
    """A component failed too often, too fast: the node stops (the message says which and why)."""


class Supervisor:
    def __init__(
        self,
        components: Mapping[str, Supervised],
        policy: RestartPolicy = RestartPolicy(),
        say: Callable[[str], None] = print,
    ):
        self.components = components
        self.policy = policy
        self.say = say
        self.state = {name: _State() for name in components}

    def restarts(self, name: str) -> int:
        return self.state[name].restarts

    def check(self, now: float) -> None:
        """Notice dead components and restart those whose back-off is over; raises GiveUp."""
        for name, c in self.components.items():
            st = self.state[name]
            if st.restart_at is None:
                if c.alive():
                    continue
                self._failed(name, st, now, "exited")
            if st.restart_at is not None and now >= st.restart_at:
                self._restart(name, c, st, now)

    def _failed(self, name: str, st: _State, now: float, why: str) -> None:
        st.failures = [t for t in st.failures if now - t < self.policy.window_s] + [now]
        delay = self.policy.delay(st.failures, now)
        c = self.components[name]
        if delay is None:
            raise GiveUp(
                f"{name} {why} {len(st.failures)} times within {self.policy.window_s:.0f} s; giving up (see "
                f"{c.logfile})"
            )
        st.restart_at = now + delay
        self.say(
            f"{name} {why} (see {c.logfile}); restarting it"
            + (f" in {delay:.0f} s" if delay else "")
            + ", the rest keeps running"
        )

    def _restart(self, name: str, c: Supervised, st: _State, now: float) -> None:
        st.restart_at = None
        try:
            c.stop()  # whatever is left of it (Kamailio's children hold its sockets): its own process group only
            c.start()
        except Exception as exc:  # noqa: BLE001 - a failed start is one more failure, retried with back-off
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            self._failed(name, st, now, f"did not start again ({first_line[:200]})")
            return
        st.restarts += 1
        self.say(f"{name} restarted (restart {st.restarts})")
