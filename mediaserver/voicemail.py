"""A deposit (kemi.policy.voicemail): answer, greet, record the caller's message into the voicemail spool.

The greeting is the mailbox's own (`<store>/greetings/<mailbox>/<busy|unavailable>.wav`, from the control plane),
else the system's (`vm_busy` / `vm_unavailable` in the call's language); then the tone (`vm_beep`); then what the
caller says is recorded (8 kHz 16-bit mono WAV) until they hang up or the mailbox's longest message is reached (then
the media server hangs up). The message is recorded into `<spool>/tmp/<id>.wav`; when the call is over, its
description `<id>.json` is written next to it and both are moved to `<spool>/new/` — the WAV first, the description
last, so the control plane (controlplane/services/voicemail_ingest.py), which acts on descriptions only, never reads
half a message. Which messages are too short to keep (VM-07) is the control plane's decision, by the mailbox's settings.
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

from kemi.policy.voicemail import CALLER_HEADER, Deposit as Target

from .server import Session, header

log = logging.getLogger("callmanager.mediaserver")

GRACE_S = 30.0  # beyond greeting, tone and the longest message: no deposit call stays longer
FINISH_WAIT_S = 5.0  # how long a finished message waits for its recorder to complete the file


def wav_complete(path: Path) -> bool:
    """Has the recorder completed this WAV file (its RIFF size matches the file)?"""
    try:
        with path.open("rb") as f:
            head = f.read(8)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 8 and head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") == size - 8


def unquoted(value: str) -> str:
    """The node's quoted-string (kemi.policy.sip_text.quoted) as plain text."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


class Deposit(Session):
    """One caller leaving a message."""

    def __init__(self, server, acc: pj.Account, call_id: int, target: Target, invite: str):
        super().__init__(server, acc, call_id, None, "")
        self.deposit = target
        self.bound_s = target.max_s + 60.0 + GRACE_S  # greeting and tone take well under a minute
        self.message_id = str(uuid.uuid4())
        self.caller = unquoted(header(invite, CALLER_HEADER))[:128]
        self.sip_call_id = header(invite, "Call-ID")[:255]
        self.received_at = time.time()
        self.stage = "media"  # media -> greeting -> tone -> recording -> over
        self.next_at: float | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.recording: Path | None = None
        self.recorded_s = 0.0
        self.record_started = 0.0
        self.finish_deadline: float | None = None

    def answer_now(self) -> None:
        op = pj.CallOpParam()
        op.statusCode = 200
        self.answer(op)

    def greeting(self) -> tuple[Path, float] | None:
        d = self.deposit
        own = self.server.greetings / str(d.mailbox_id) / f"{d.greeting}.wav" if self.server.greetings else None
        if own is not None and own.exists():
            found = self.server.prompts.file(own)
            if found is not None:
                return found
        return self.server.prompts.find(f"vm_{d.greeting}", d.language)

    def step(self, now: float) -> None:
        if self.stage == "media" and self.play_at is not None and now >= self.play_at:
            self.stage, self.next_at = "greeting", now
            found = self.greeting()
            if found is not None:
                self.play(found[0])
                self.next_at = now + found[1] + 0.1
        elif self.stage == "greeting" and self.next_at is not None and now >= self.next_at:
            self.stage, self.next_at = "tone", now
            found = self.server.prompts.find("vm_beep", self.deposit.language)
            if found is not None:
                self.play(found[0])
                self.next_at = now + found[1] + 0.1
        elif self.stage == "tone" and self.next_at is not None and now >= self.next_at:
            self.player = None
            self.start_recording(now)
        elif self.stage == "recording" and now - self.record_started >= self.deposit.max_s:
            log.info("call %s: mailbox %s's longest message reached", self.getId(), self.deposit.mailbox_id)
            self.stop_recording(now)
            self.ends_at = now  # the media server hangs up (a BYE: the call is answered)

    def start_recording(self, now: float) -> None:
        if self.server.spool is None:
            log.error("call %s: no voicemail spool configured; nothing recorded", self.getId())
            self.status, self.ends_at = 500, now
            return
        tmp = self.server.spool / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.recording = tmp / f"{self.message_id}.wav"
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(str(self.recording))
        self.media.startTransmit(self.recorder)
        self.stage, self.record_started = "recording", now

    def stop_recording(self, now: float) -> None:
        if self.stage == "recording":
            self.recorded_s = now - self.record_started
            self.stage = "over"
        self.recorder = None  # its destructor completes the WAV file's header

    def finish(self) -> bool:
        """The call is over: the message (whatever was recorded) goes to the spool for the control plane — once the
        recorder has completed the file (its header written at its destruction, which pjsua2 may do a moment after
        the object is dropped: measured, a file moved at once was read with an empty header). False: not yet, the loop
        asks again."""
        self.player = None
        self.stop_recording(time.monotonic())
        if self.recording is None or not self.recording.exists():
            return True  # the caller left before the tone: no message
        if not wav_complete(self.recording):
            if self.finish_deadline is None:
                self.finish_deadline = time.monotonic() + FINISH_WAIT_S
            if time.monotonic() < self.finish_deadline:
                gc.collect()  # a recorder held in a reference cycle is destroyed now
                return False
            log.warning(
                "call %s: message %s: its file was not completed; handed over as it is", self.getId(), self.message_id
            )
        new = self.server.spool / "new"
        new.mkdir(parents=True, exist_ok=True)
        description = {
            "id": self.message_id,
            "mailbox_id": self.deposit.mailbox_id,
            "caller": self.caller,
            "call_id": self.sip_call_id,
            "received_at": self.received_at,
            "greeting": self.deposit.greeting,
        }
        os.replace(self.recording, new / self.recording.name)
        tmp_json = self.recording.with_suffix(".json")
        tmp_json.write_text(json.dumps(description))
        os.replace(tmp_json, new / tmp_json.name)
        log.info(
            "call %s: message %s for mailbox %s (%.1f s)",
            self.getId(),
            self.message_id,
            self.deposit.mailbox_id,
            self.recorded_s,
        )
        return True
