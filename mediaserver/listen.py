"""Listening to a mailbox by phone (kemi.policy.voicemail LISTEN, the menu in kemi.policy.mailbox_menu): this call
drives the menu with the caller's keys (RFC 2833) and the ends of what it plays, and does what the menu says.

What it knows of the mailbox comes from the file the control plane keeps for it (`<store>/boxes/<id>.json`: the
PIN's hash, a lock, the messages with their recordings); what the caller does to it (heard, deleted, a wrong PIN)
goes back through the spool (`<spool>/actions/<id>.json`), applied by the control plane
(controlplane/services/voicemail.py) — the media server never writes the database.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
import uuid
from pathlib import Path

import pjsua2 as pj

from kemi.policy import mailbox_menu as menu
from kemi.policy.voicemail import Deposit as Target, hash_pin, pin_matches

from .server import Session, barrier
from .voicemail import FINISH_WAIT_S, wav_complete

log = logging.getLogger("callmanager.mediaserver")


def read_box(store: Path | None, mailbox_id: int) -> dict:
    """The control plane's file of a mailbox ({} when there is none: the mailbox cannot be opened)."""
    if store is None:
        return {}
    try:
        doc = json.loads((store / "boxes" / f"{mailbox_id}.json").read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def box_number(store: Path | None, tenant_id: int, number: str) -> int | None:
    """Remote access: the mailbox a caller names by its number (the control plane's file of the numbers)."""
    if store is None or not number:
        return None
    try:
        doc = json.loads((store / "boxes" / "numbers.json").read_text())
        found = doc.get(str(tenant_id), {}).get(number) if isinstance(doc, dict) else None
        return int(found) if found is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


class Listen(Session):
    """The owner listening to their mailbox — or anyone from anywhere who names a mailbox and knows its PIN."""

    def __init__(self, server, acc: pj.Account, call_id: int, target: Target):
        super().__init__(server, acc, call_id, None, "")
        self.mailbox_id = target.mailbox_id
        self.tenant_id = target.tenant_id
        self.language = target.language
        self.bound_s = 1800.0
        self.pin_hash = ""
        self.files: dict[str, str] = {}
        if target.mailbox_id:
            self.state, first = menu.start(*self.load(target.mailbox_id))
        else:  # remote access: which mailbox first
            self.state, first = menu.ask_box()
        self.queue: list = first  # what to play / do next, in order
        self.playing_until: float | None = None
        self.playing_message = False
        self.wait_until: float | None = None  # a key is waited for until then
        self.ending = False
        self.recorder: pj.AudioMediaRecorder | None = None  # a greeting being recorded by phone
        self.greeting: tuple[str, Path] | None = None  # (kind, file) of it, handed over once complete
        self.handed: list[tuple[str, Path, float]] = []  # greetings recorded, waiting for their file to be complete

    def load(self, mailbox_id: int) -> tuple[list, bool, bool]:
        """The mailbox's file: (messages, locked, has a PIN); the PIN's hash and the recordings kept for the call."""
        box = read_box(self.server.store, mailbox_id)
        self.mailbox_id = mailbox_id
        self.pin_hash = str(box.get("pin_hash", ""))
        self.files = {str(m["id"]): str(m["path"]) for m in box.get("messages", ()) if isinstance(m, dict)}
        messages = [
            menu.Message(str(m["id"]), bool(m.get("heard")), str(m.get("caller") or ""))
            for m in box.get("messages", ())
            if isinstance(m, dict)
        ]
        return messages, float(box.get("locked_until") or 0) > time.time(), bool(self.pin_hash)

    def answer_now(self) -> None:
        op = pj.CallOpParam()
        op.statusCode = 200
        self.answer(op)

    @barrier("a key")
    def onDtmfDigit(self, prm):
        self.feed(menu.Key(str(prm.digit)[:1]))

    @barrier("the phone's answer to calling back")
    def onCallTransferStatus(self, prm):
        """The phone's answer to the REFER (its own response, then NOTIFYs of its new call): accepted (2xx) ends
        this call; refused ends the attempt (the menu goes on). Nothing more is wanted after either."""
        code = int(prm.statusCode)
        prm.cont = False
        if self.state.stage == "calling" and code >= 200:
            self.feed(menu.CALLED_BACK if code < 300 else menu.NOT_CALLED_BACK)

    def feed(self, event) -> None:
        """An event for the menu: a key stops what plays (barge-in); its answer replaces what was queued."""
        if self.ending:
            return
        if isinstance(event, menu.Key) and self.playing_until is not None:
            self.player = None
            self.playing_until, self.playing_message = None, False
            self.queue = []
        self.state, actions = menu.on(self.state, event, lambda digits: pin_matches(self.pin_hash, digits))
        self.queue.extend(actions)
        self.wait_until = None

    def step(self, now: float) -> None:
        if self.media is None or self.play_at is None or now < self.play_at:
            return
        if self.playing_until is not None:
            if now < self.playing_until:
                return
            self.playing_until = None
            self.player = None
            if self.playing_message:  # a message heard to its end
                self.playing_message = False
                self.feed(menu.PLAYED)
        while self.queue and self.playing_until is None:
            self.do(self.queue.pop(0), now)
        self.hand_over(now)
        if self.playing_until is None and not self.queue:
            if self.ending:
                self.ends_at = now
            elif self.wait_until is None:
                stage = self.state.stage
                wait = menu.PIN_TIMEOUT_S if stage in menu.DIGIT_STAGES else menu.MENU_TIMEOUT_S
                wait = menu.MAX_GREETING_S if stage == "recording" else wait
                self.wait_until = now + wait
            elif now >= self.wait_until:
                self.feed(menu.TIMEOUT)

    def do(self, action, now: float) -> None:
        if isinstance(action, menu.Say | menu.SayNumber):
            name = action.prompt if isinstance(action, menu.Say) else f"n{action.n}"
            found = self.server.prompts.find(name, self.language)
            if found is not None:
                self.play(found[0])
                self.playing_until = now + found[1] + 0.05
        elif isinstance(action, menu.PlayMessage):
            found = self.server.prompts.file(Path(self.files.get(action.id, "")))
            if found is None:
                log.error("mailbox %s: message %s has no readable recording", self.mailbox_id, action.id)
                self.feed(menu.PLAYED)  # skipped, as if heard: the menu goes on
                return
            self.play(found[0])
            self.playing_until, self.playing_message = now + found[1] + 0.05, True
        elif isinstance(action, menu.Hangup):
            self.ending = True
        elif isinstance(action, menu.OpenBox):  # remote access: the mailbox the caller named
            box_id = box_number(self.server.store, self.tenant_id, action.number)
            messages, locked, has_pin = self.load(box_id) if box_id is not None else ([], False, False)
            self.state, more = menu.opened(self.state, box_id is not None, messages, locked, has_pin)
            self.queue.extend(more)
        elif isinstance(action, menu.RecordGreeting):
            self.record_greeting(action.kind)
        elif isinstance(action, menu.StopRecording):
            self.stop_greeting(now)
        elif isinstance(action, menu.CallBack):
            self.call_back(action.number)
        elif isinstance(action, menu.ChangePin):  # only its hash leaves this process
            self.pin_hash = hash_pin(action.pin)
            self.report("pin", "", pin_hash=self.pin_hash)
        elif isinstance(action, menu.Heard | menu.Delete | menu.PinFailed | menu.PinOk):
            self.report(type(action).__name__.lower(), getattr(action, "id", ""))

    def call_back(self, number: str) -> None:
        """Ask the listener's phone (REFER, RFC 3515) to call `number` in the domain it called in: its own new call,
        routed and permitted like one it dialled. A REFER that cannot be sent is a refusal."""
        host = self.getInfo().localUri.rsplit("@", 1)[-1].split(">", 1)[0].split(";", 1)[0]
        try:
            self.xfer(f"sip:{number}@{host}", pj.CallOpParam(True))
        except pj.Error as exc:
            log.warning("mailbox %s: calling back %s not possible: %s", self.mailbox_id, number, exc.info())
            self.feed(menu.NOT_CALLED_BACK)

    def record_greeting(self, kind: str) -> None:
        """Record what the caller says from now on (after the tone the menu queued first) as a greeting."""
        if self.server.spool is None or self.media is None:
            return
        folder = self.server.spool / "greetings"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4()}.wav"
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(str(path))
        self.media.startTransmit(self.recorder)
        self.greeting = (kind, path)

    def stop_greeting(self, now: float) -> None:
        if self.greeting is None:
            return
        self.recorder = None  # completed by its destruction (mediaserver/voicemail.py wav_complete)
        kind, path = self.greeting
        self.greeting = None
        self.handed.append((kind, path, now + FINISH_WAIT_S))

    def hand_over(self, now: float) -> None:
        """Greetings recorded: handed to the control plane (which checks and installs them) once their file is
        complete."""
        waiting = []
        for kind, path, deadline in self.handed:
            if wav_complete(path) or now >= deadline:
                self.report("greeting", "", kind=kind, file=path.name)
            else:
                gc.collect()
                waiting.append((kind, path, deadline))
        self.handed = waiting

    def finish(self) -> bool:
        """The call is over: a greeting being recorded ends with it and is handed over like one ended with #."""
        self.player = None
        now = time.monotonic()
        self.stop_greeting(now)
        self.hand_over(now)
        return not self.handed

    def report(self, what: str, message_id: str, **more: str) -> None:
        """Tell the control plane what the caller did (heard, delete, pinfailed, pinok, greeting), through the
        spool."""
        if self.server.spool is None:
            return
        actions = self.server.spool / "actions"
        actions.mkdir(parents=True, exist_ok=True)
        name = f"{time.time():.6f}-{uuid.uuid4()}"
        tmp = actions / f".{name}.tmp"
        doc = {"mailbox_id": self.mailbox_id, "action": what, "message_id": message_id, **more}
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, actions / f"{name}.json")
