"""A control-plane task repeated on its own thread: every `interval` seconds one step, a failed step logged with its
traceback and the next one tried (a background task must outlive any one failure), stopped within one wait."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        interval: float,
        log: logging.Logger,
        failed: str,
        wait_first: bool = False,
    ):
        """`failed`: the log line of a failed step; `wait_first`: the first step after one interval, not at once."""
        self.name, self.step, self.interval, self.log, self.failed = name, step, interval, log, failed
        self.wait_first = wait_first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        if self.wait_first and self._stop.wait(self.interval):
            return
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - see the module's docstring
                self.log.exception(self.failed)
            self._stop.wait(self.interval)
