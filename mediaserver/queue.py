"""A call waiting in a hunt group's queue (kemi.policy.queue, ACD-16/17): this call answers 183 and plays the group's
greeting (its own recording, else the system's "please hold"), then music; every `announce_s` seconds the caller's
place ("you are caller number 3") with the expected wait when the group has an average ("about 4 minutes") and the
music again. The node's queue timer tells it the place and, when a member is free, the turn — SIP MESSAGEs naming the
waiting call's Call-ID — and on the turn it ends its branch with 302 and kemi.policy.queue.TURN; the node then offers
the call. The node's branch timer ends a wait whose time is up.

The group's greeting: `<store>/groups/<group>/greeting.wav`; the music: `<store>/music/<tenant>.wav` if the tenant has
its own, else the system's (`<prompts>/music/default.wav`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pjsua2 as pj

from kemi.policy import ivr
from kemi.policy import queue as policy_queue
from kemi.policy.mailbox_menu import NUMBERS

from .server import Session

log = logging.getLogger("callmanager.mediaserver")

WELCOME, PLACE, MORE = "queue_welcome", "queue_place", "vm_more_than_twenty"


class QueueWait(Session):
    """A caller waiting for a member of a hunt group."""

    def __init__(self, server, acc: pj.Account, call_id: int, target: policy_queue.Wait, sip_call_id: str):
        super().__init__(server, acc, call_id, None, "")
        self.wait = target
        self.sip_call_id = sip_call_id
        self.bound_s = float(target.max_s) + 30.0  # the node's branch timer ends it first
        self.place: int | None = None  # told by the node
        self.expected: tuple[int, float] | None = None  # (the expected wait told by the node, when it was told)
        self.said_place: int | None = None
        self.queue: list[Path] = []  # files still to play before the music
        self.playing_until: float | None = None
        self.music = False
        self.next_announce: float | None = None
        greeting = server.store / "groups" / str(target.group_id) / "greeting.wav" if server.store else None
        if greeting is not None and greeting.exists():
            self.queue.append(greeting)
        else:
            found = server.prompts.find(WELCOME, target.language, target.tenant_id)
            if found is not None:
                self.queue.append(found[0])

    def answer_now(self) -> None:
        op = pj.CallOpParam()
        op.statusCode = 183
        self.answer(op)

    def notice(self, what: str, now: float) -> None:
        """What the node says: "turn" (a member is free: back to the node), or "position=<n>[;wait=<s>]"."""
        if what == "turn":
            if self.ends_at is None:
                self.status, self.headers = 302, [(ivr.CHOICE_HEADER, policy_queue.TURN)]
                self.ends_at = now
            return
        told = policy_queue.parse_position(what)
        if told is not None:
            self.place, wait = told
            self.expected = (wait, now) if wait is not None else None
            if self.said_place is None and self.next_announce is None and self.wait.announce_s:
                self.next_announce = now  # its first place: said as soon as the greeting is over

    def step(self, now: float) -> None:
        if self.media is None or self.play_at is None or now < self.play_at or self.ends_at is not None:
            return
        if self.playing_until is not None and now < self.playing_until:
            return
        if self.playing_until is not None:  # a prompt played to its end
            self.player, self.playing_until = None, None
        if not self.queue and self.next_announce is not None and now >= self.next_announce and self.place:
            self.queue = self.place_prompts(self.place, now)
            self.said_place = self.place
            self.next_announce = now + self.wait.announce_s if self.wait.announce_s else None
        if self.queue:
            path = self.queue.pop(0)
            found = self.server.prompts.file(path)
            if found is not None:
                self.music = False
                self.play(found[0])
                self.playing_until = now + found[1] + 0.05
            return
        if not self.music:
            music = self.music_file()
            if music is not None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(str(music), 0)  # looped
                self.player.startTransmit(self.media)
            self.music = True
            if self.next_announce is None and self.wait.announce_s:
                self.next_announce = now + self.wait.announce_s

    def place_prompts(self, place: int, now: float) -> list[Path]:
        """The caller's place, and the expected wait as the node told it, less the time since."""
        names = [PLACE, f"n{place}" if place <= NUMBERS else MORE]
        if self.expected is not None:
            told_s, told_at = self.expected
            names += policy_queue.wait_words(max(0, round(told_s - (now - told_at))), NUMBERS)
        out = []
        for name in names:
            found = self.server.prompts.find(name, self.wait.language, self.wait.tenant_id)
            if found is not None:
                out.append(found[0])
        return out

    def music_file(self) -> Path | None:
        store = self.server.store
        own = store / "music" / f"{self.wait.tenant_id}.wav" if store is not None else None
        if own is not None and own.exists():
            return own
        system = self.server.prompts.root / "music" / "default.wav"
        return system if system.exists() else None
