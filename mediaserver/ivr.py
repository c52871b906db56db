"""IVR menus (kemi.policy.ivr): this call plays the menus as early media (183), moves through them with the caller's
keys (RFC 2833) as the policy's pure functions say, and hands a choice that leaves the menus back to the node in a
302 (kemi.policy.ivr.CHOICE_HEADER) — the node decides where the call goes. No choice after the menu's tries: goodbye
and 480.

The menus come from the file the control plane writes with every routing snapshot (`<store>/ivr/menus.json`), read
again when it changed; a menu's recordings from `<store>/ivr/<menu>/` (a menu without one plays the system's "please
make your choice", a personal IVR its choices in standard words: kemi.policy.ivr.spoken; an action without one plays
nothing).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pjsua2 as pj

from kemi.policy import ivr

from .server import Session, barrier

log = logging.getLogger("callmanager.mediaserver")


class MenuFile:
    """The menus of every tenant, read again when the file changed."""

    def __init__(self, store: Path | None):
        self.path = store / ivr.MENUS_FILE if store is not None else None
        self._seen: tuple[int, dict[int, ivr.Menu]] = (-1, {})

    def menus(self, tenant_id: int) -> dict[int, ivr.Menu]:
        if self.path is None:
            return {}
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return {}
        if mtime != self._seen[0]:
            try:
                self._seen = (mtime, ivr.parse_menus(json.loads(self.path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("IVR menus %s unreadable: %s", self.path, exc)
                return {}
        return {i: m for i, m in self._seen[1].items() if m.tenant_id == tenant_id}


class Menus(Session):
    """A caller in IVR menus."""

    bound_s = float(ivr.MAX_MENU_S)
    default_status = ivr.ENDED.code  # a call that overstays its bound: as without a choice

    def __init__(self, server, acc: pj.Account, call_id: int, target: ivr.Target):
        super().__init__(server, acc, call_id, None, ivr.ENDED.warning)
        self.language = target.language
        self.tenant_id = target.tenant_id
        self.menus = server.menu_file.menus(target.tenant_id)
        self.pos, first = ivr.enter(self.menus, target.menu_id)
        self.queue: list[tuple] = []  # prompts still to play
        self.playing_until: float | None = None
        self.wait_until: float | None = None
        self.wait_s = 0.0
        self.leaving: ivr.Leave | ivr.End | None = None
        self.follow(first)

    def answer_now(self) -> None:
        op = pj.CallOpParam()
        op.statusCode = 183
        self.answer(op)

    def follow(self, step: ivr.Step) -> None:
        """What the menus say to do next: play and wait for a key, or play and leave."""
        self.queue = list(step.prompts)
        self.wait_until = None
        if isinstance(step, ivr.Play):
            self.wait_s = step.wait_s
        else:
            self.leaving = step

    @barrier("a key")
    def onDtmfDigit(self, prm):
        key = str(prm.digit)[:1]
        if self.leaving is not None or not key:
            return
        self.player, self.playing_until = None, None  # a key stops what plays
        self.pos, step = ivr.press(self.menus, self.pos, key)
        self.follow(step)

    def step(self, now: float) -> None:
        if self.media is None or self.play_at is None or now < self.play_at or self.ends_at is not None:
            return
        if self.playing_until is not None:
            if now < self.playing_until:
                return
            self.player, self.playing_until = None, None
        while self.queue and self.playing_until is None:
            self.say(self.queue.pop(0), now)
        if self.playing_until is not None or self.queue:
            return
        if self.leaving is not None:
            self.leave(now)
        elif self.wait_until is None:
            self.wait_until = now + self.wait_s
        elif now >= self.wait_until:
            self.pos, step = ivr.waited(self.menus, self.pos)
            self.follow(step)

    def say(self, prompt: tuple, now: float) -> None:
        if prompt[0] == "system":
            found = self.server.prompts.find(prompt[1], self.language, self.tenant_id)
        else:
            path = self.server.store / ivr.recording(prompt) if self.server.store is not None else None
            found = self.server.prompts.file(path) if path is not None and path.exists() else None
            if found is None and prompt[0] == "menu":  # no recording: the system's words (a personal IVR's choices)
                first, *rest = ivr.spoken(self.menus.get(prompt[1]))
                self.queue[0:0] = [("system", name) for name in rest]
                found = self.server.prompts.find(first, self.language, self.tenant_id)
        if found is not None:
            self.play(found[0])
            self.playing_until = now + found[1] + 0.05

    def leave(self, now: float) -> None:
        """The choice goes back to the node (302 with the choice), or no choice: 480."""
        if isinstance(self.leaving, ivr.Leave):
            self.status, self.warning = 302, ""
            self.headers = [(ivr.CHOICE_HEADER, ivr.choice_value(self.leaving.menu, self.leaving.key))]
        else:
            self.status = ivr.ENDED.code
        self.ends_at = now
