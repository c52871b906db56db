"""Voicemail's records (issue 23, VM-01..07): the messages the media server recorded, stored exactly once; e-mailed;
kept as long as their mailbox's retention says; gone with their mailbox (GDPR).

The media server leaves each message as `<spool>/new/<id>.wav` plus its description `<id>.json`, the description
last (mediaserver/voicemail.py). Each pass here, for every description: the recording is checked (a readable WAV
file), a message shorter than its mailbox's minimum is discarded (VM-07), the WAV is moved to
`<store>/<tenant>/<mailbox>/<id>.wav` and the row inserted — then the description is removed. A pass that stops
anywhere in between (a crash, the database away) does the rest on the next pass and never stores a message twice:
the row's key is the media server's id. A description that cannot be read goes to `<spool>/bad/` with a log line and
never holds up the others.

Each change of a mailbox's messages (stored, heard, deleted) is handed to `on_change(mailbox_id)` — message waiting
(controlplane/services/mwi.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import smtplib
import time
import uuid
import wave
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import delete as sa_delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controlplane.db.models import FraudEvent, Mailbox, Tenant, VoicemailMessage
from controlplane.db.session import database_away
from controlplane.services.periodic import Periodic
from controlplane.services.shared_store import SharedStore, stage, write_whole
from kemi.policy import ivr
from kemi.policy.voicemail import pin_hash_form

log = logging.getLogger("callmanager.voicemail")

MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RETENTION_EVERY_S = 300.0  # how often old messages and the files of deleted mailboxes are cleared
EMAIL_RETRY_S = 60.0  # a failed e-mail is tried again this often ...
EMAIL_GIVE_UP_S = 86400.0  # ... for a day after the message came
SETTLE_S = 10.0  # a recording that cannot be read yet is given this long before it goes to bad/
MAX_PIN_FAILURES = 3  # wrong PINs in a row (over any number of calls) that lock listening by phone


def wav_seconds(path: Path) -> float:
    """The length of a WAV recording (ValueError: not one)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            if rate <= 0:
                raise ValueError("no sample rate")
            return w.getnframes() / float(rate)
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"not a readable WAV file: {exc}") from exc


BOX_NUMBERS = "boxes/numbers.json"  # {tenant: {number: mailbox}}: remote access (mediaserver/listen.py)


def box_numbers(doc: dict) -> dict:
    """By tenant, the numbers a caller may name a mailbox by from anywhere: its own extension, its user's extensions,
    its hunt group's extension (from a routing snapshot's document; a mailbox that takes no calls is not there)."""
    user_ext: dict[int, list[str]] = {}
    for e in doc.get("extensions", ()):
        user_ext.setdefault(int(e["user_id"]), []).append(str(e["number"]))
    group_ext = {int(g["id"]): str(g.get("extension", "")) for g in doc.get("groups", ())}
    out: dict[str, dict[str, int]] = {}
    for m in doc.get("mailboxes", ()):
        numbers = [m.get("extension", "")]
        numbers += user_ext.get(int(m["user_id"]), []) if m.get("user_id") else []
        numbers += [group_ext.get(int(m["group_id"]), "")] if m.get("group_id") else []
        for n in numbers:
            if n:
                out.setdefault(str(m["tenant_id"]), {})[n] = int(m["id"])
    return out


def numbered(folder: Path) -> list[Path]:
    """The sub-folders of `folder` named by a number (a tenant's, a mailbox's)."""
    return [d for d in folder.iterdir() if d.is_dir() and d.name.isdigit()] if folder.is_dir() else []


class Store:
    """Where messages and greetings live on disk. In a cluster (`shared`: controlplane/services/shared_store.py) every
    file written or removed through `save` / `share` / `remove` / `remove_tree` is also a change for the other nodes;
    given a `session`, the change is part of that transaction."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.shared: SharedStore | None = None

    def save(self, path: Path, data: bytes, session: Session | None = None) -> None:
        """Write a file whole (a reader never sees half of it): written under a temporary name first (a full disk
        fails here, before the cluster hears of it), then recorded for the other nodes, then renamed into place (a
        refused record leaves nothing). Given a session, the record commits with it, after the rename."""
        tmp = stage(path, data)
        try:
            if self.shared is not None:
                self.shared.put(path, data, session)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)

    def read(self, path: Path) -> bytes:
        """A file's content: here, or (in a cluster) from the database when this node has not fetched it yet.
        OSError when there is none."""
        try:
            return path.read_bytes()
        except OSError:
            data = self.shared.content(path) if self.shared is not None else None
            if data is None:
                raise
            return data

    def share(self, path: Path, session: Session | None = None) -> None:
        """A file already written here, for the other nodes."""
        if self.shared is not None:
            self.shared.put(path, path.read_bytes(), session)

    def remove(self, path: Path, session: Session | None = None) -> bool:
        """Remove a file; True if it was here."""
        if self.shared is not None:
            self.shared.remove(path, session)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def forget(self, path: Path, session: Session) -> None:
        """The file's removal for the other nodes, in `session`; the caller removes it here once that is committed."""
        if self.shared is not None:
            self.shared.remove(path, session)

    def remove_tree(self, folder: Path, session: Session | None = None) -> None:
        if self.shared is not None:
            self.shared.remove_tree(folder, session)
        shutil.rmtree(folder, ignore_errors=True)

    def message(self, tenant_id: int, mailbox_id: int, message_id: str) -> Path:
        return self.root / str(tenant_id) / str(mailbox_id) / f"{message_id}.wav"

    def mailbox_dir(self, tenant_id: int, mailbox_id: int) -> Path:
        return self.root / str(tenant_id) / str(mailbox_id)

    def greeting(self, mailbox_id: int, kind: str) -> Path:
        """A mailbox's own greeting, where the media server looks for it (`--greetings <root>/greetings`)."""
        return self.root / "greetings" / str(mailbox_id) / f"{kind}.wav"

    def tenant_prompt(self, tenant_id: int, language: str, prompt: str) -> Path:
        """A tenant's own recording of an announcement (controlplane/features/prompts.py), where the media server
        looks for it first."""
        return self.root / "prompts" / str(tenant_id) / language / f"{prompt}.wav"

    def box_file(self, mailbox_id: int) -> Path:
        """What the media server knows of a mailbox for listening by phone (mediaserver/listen.py)."""
        return self.root / "boxes" / f"{mailbox_id}.json"

    def ivr_recording(self, menu_id: int, key: str | None = None) -> Path:
        """A menu's recording (key None) or one of its actions' (kemi.policy.ivr.recording: the media server's view)."""
        return self.root / ivr.recording(("menu", menu_id) if key is None else ("action", menu_id, key))

    def group_greeting(self, group_id: int) -> Path:
        """What a hunt group's waiting callers hear first (mediaserver/queue.py)."""
        return self.root / "groups" / str(int(group_id)) / "greeting.wav"

    def music(self, tenant_id: int) -> Path:
        """A tenant's own queue music (mediaserver/queue.py)."""
        return self.root / "music" / f"{int(tenant_id)}.wav"

    def remove_menu(self, menu_id: int) -> None:
        self.remove_tree(self.root / "ivr" / str(int(menu_id)))

    def after_snapshot(self, doc: dict) -> None:
        """What the media server reads from a routing snapshot: the IVR menus, and the mailboxes' numbers."""
        self.write_json(ivr.MENUS_FILE, doc.get("ivr_menus", []))
        self.write_json(BOX_NUMBERS, box_numbers(doc))

    def write_json(self, name: str, value) -> None:
        """A file of the store for the media server (written only when it changed; renamed into place)."""
        path = self.root / name
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        write_whole(path, data)

    def remove_mailbox(self, tenant_id: int, mailbox_id: int) -> None:
        self.remove_tree(self.mailbox_dir(tenant_id, mailbox_id))
        self.remove_tree(self.root / "greetings" / str(mailbox_id))
        self.box_file(mailbox_id).unlink(missing_ok=True)


class VoicemailIngestor:
    def __init__(
        self,
        engine: Engine,
        spool: Path,
        store: Store,
        *,
        settings=None,
        metrics=None,
        interval: float = 1.0,
        on_change: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.engine, self.spool, self.store = engine, Path(spool), store
        self.settings, self.metrics, self.on_change, self.clock = settings, metrics, on_change, clock
        self._last_retention = 0.0
        self._last_email_retry = 0.0
        self._task = Periodic(
            "voicemail-ingest", self.run_once, interval, log, "voicemail ingestion pass failed; retrying"
        )

    def start(self) -> None:
        (self.spool / "new").mkdir(parents=True, exist_ok=True)
        try:
            self.write_all_indexes()
        except Exception:  # noqa: BLE001 - the database may be away at start: each index is written on its next change
            log.exception("voicemail: the mailboxes' files for listening by phone could not be written at start")
        self._task.start()

    def stop(self) -> None:
        self._task.stop()

    # ---------------------------------------------------------------- one pass

    def run_once(self) -> int:
        """Store every message waiting in the spool; clear old ones now and then. Returns the messages stored."""
        self.apply_actions()
        stored = 0
        new = self.spool / "new"
        for desc in sorted(new.glob("*.json")) if new.is_dir() else ():
            try:
                stored += self._one(desc)
            except DatabaseAway:
                break  # everything stays in the spool for a later pass
            except Exception as exc:  # noqa: BLE001 - one message that cannot be stored must not hold up the others
                log.exception("voicemail spool: %s could not be stored", desc.name)
                self._quarantine(desc, f"could not be stored: {type(exc).__name__}", desc.with_suffix(".wav"))
        now = self.clock()
        if now - self._last_email_retry >= EMAIL_RETRY_S:
            self._last_email_retry = now
            self._retry_emails(now)
        if now - self._last_retention >= RETENTION_EVERY_S:
            self._last_retention = now
            self.clear_expired(now)
        return stored

    def _one(self, desc: Path) -> int:
        try:
            doc = json.loads(desc.read_text())
            message_id, mailbox_id = str(doc["id"]), int(doc["mailbox_id"])
            if not MESSAGE_ID.match(message_id):
                raise ValueError(f"not a message id: {message_id!r}")
            received = float(doc.get("received_at") or desc.stat().st_mtime)
            datetime.fromtimestamp(received, timezone.utc)  # NaN, infinite or out of range: not a time
            caller, call_id = str(doc.get("caller", ""))[:128], str(doc.get("call_id", ""))[:255]
        except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
            self._quarantine(desc, f"unreadable description: {exc}")
            return 0
        wav = desc.with_suffix(".wav")
        try:
            with Session(self.engine) as s:
                box = s.get(Mailbox, mailbox_id)
                existing = s.get(VoicemailMessage, message_id)
                if existing is not None:  # stored on a pass that stopped before removing the description
                    self._drop(desc, wav if wav.exists() else None)
                    return 0
                if box is None:
                    log.warning("message %s: mailbox %s no longer exists; discarded", message_id, mailbox_id)
                    self._count("no_mailbox")
                    self._drop(desc, wav)
                    return 0
                target = self.store.message(box.tenant_id, mailbox_id, message_id)
                source = wav if wav.exists() else target  # moved on a pass that stopped before the insert
                try:
                    seconds = wav_seconds(source)
                except ValueError as exc:
                    if self.clock() - desc.stat().st_mtime < SETTLE_S:
                        return 0  # the recorder may still be completing it: looked at again on a later pass
                    self._quarantine(desc, f"message {message_id}: {exc}", wav)
                    return 0
                if seconds < box.min_message_s:
                    log.info(
                        "message %s for mailbox %s: %.1f s, under its minimum; discarded", message_id, box.id, seconds
                    )
                    self._count("too_short")
                    self._drop(desc, source)
                    return 0
                if source is wav:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(wav), str(target))
                row = VoicemailMessage(
                    id=message_id,
                    tenant_id=box.tenant_id,
                    mailbox_id=mailbox_id,
                    caller=caller,
                    call_id=call_id,
                    received_at=datetime.fromtimestamp(received, timezone.utc),
                    duration_s=round(seconds, 2),
                    size_bytes=target.stat().st_size,
                )
                s.add(row)
                self.store.share(target, s)
                s.commit()
                email = box.email if self.settings is not None and self.settings.smtp_relay else ""
                attach = box.attach_audio
        except Exception as exc:
            if database_away(exc):
                raise DatabaseAway() from exc
            raise
        desc.unlink(missing_ok=True)
        self._count("stored")
        log.info("message %s stored for mailbox %s (%.1f s, from %r)", message_id, mailbox_id, seconds, caller)
        if email:
            self._email(message_id, email, attach)
        self._changed(mailbox_id)
        return 1

    # ---------------------------------------------------------------- listening by phone

    def write_index(self, mailbox_id: int) -> None:
        """The mailbox's file for the media server: its PIN's hash, its lock, its messages (oldest first) with their
        recordings. Written whole (a reader never sees half of it); removed when the mailbox is gone."""
        path = self.store.box_file(mailbox_id)
        with Session(self.engine) as s:
            box = s.get(Mailbox, mailbox_id)
            if box is None:
                path.unlink(missing_ok=True)
                return
            rows = s.exec(
                select(VoicemailMessage)
                .where(VoicemailMessage.mailbox_id == mailbox_id)
                .order_by(VoicemailMessage.received_at, VoicemailMessage.id)  # type: ignore[arg-type]
            ).all()
            doc = {
                "id": box.id,
                "pin_hash": box.pin_hash,
                "locked_until": box.locked_until.timestamp() if box.locked_until else 0,
                "messages": [
                    {
                        "id": m.id,
                        "heard": m.heard,
                        "caller": m.caller,
                        "path": str(self.store.message(m.tenant_id, mailbox_id, m.id)),
                    }
                    for m in rows
                ],
            }
        write_whole(path, json.dumps(doc).encode())

    def write_all_indexes(self) -> None:
        with Session(self.engine) as s:
            ids = list(s.exec(select(Mailbox.id)).all())
        for box_id in ids:
            self.write_index(box_id or 0)

    def apply_actions(self) -> int:
        """What callers did by phone (mediaserver/listen.py): messages heard or deleted, PINs wrong or right. Each
        file is applied once and removed; one that cannot be read goes to bad/."""
        folder = self.spool / "actions"
        done = 0
        for f in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                doc = json.loads(f.read_text())
                box_id, what, message_id = int(doc["mailbox_id"]), str(doc["action"]), str(doc.get("message_id", ""))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._quarantine(f, f"unreadable action: {exc}")
                continue
            try:
                if what == "greeting":
                    if not self._greeting(box_id, str(doc.get("kind", "")), str(doc.get("file", "")), f):
                        continue  # its recording is not complete yet: looked at again on a later pass
                else:
                    self._apply(box_id, what, message_id, str(doc.get("pin_hash", "")))
            except Exception as exc:
                if database_away(exc):
                    return done  # the rest waits in the spool
                log.exception("voicemail spool: action %s could not be applied", f.name)
                self._quarantine(f, f"could not be applied: {type(exc).__name__}")  # never holds up the others
                continue
            f.unlink(missing_ok=True)
            done += 1
            self._changed(box_id)
        return done

    def _greeting(self, box_id: int, kind: str, name: str, action: Path) -> bool:
        """A greeting recorded by phone: checked like an upload (controlplane/services/audio.py) and installed as the
        mailbox's; one that cannot be used is dropped with a log line (the caller heard it saved: the old one stays).
        False: its file is not complete yet (the action is kept)."""
        from controlplane.services.audio import AudioRefused, telephony_wav

        folder = self.spool / "greetings"
        path = folder / name
        if (
            kind not in ("busy", "unavailable")
            or not MESSAGE_ID.match(name.removesuffix(".wav"))
            or path.parent != folder
        ):
            log.error("voicemail spool: a greeting action names %r / %r; dropped", kind, name[:60])
            return True
        try:
            wav, seconds = telephony_wav(path.read_bytes(), min_s=1.0, max_s=120.0)
        except (OSError, AudioRefused) as exc:
            if self.clock() - action.stat().st_mtime < SETTLE_S and not isinstance(exc, OSError):
                return False
            log.warning(
                "mailbox %s: the %s greeting recorded by phone cannot be used (%s); the old one stays",
                box_id,
                kind,
                exc,
            )
            path.unlink(missing_ok=True)
            return True
        with Session(self.engine) as s:
            exists = s.get(Mailbox, box_id) is not None
        if exists:
            self.store.save(self.store.greeting(box_id, kind), wav)
            log.info("mailbox %s: %s greeting recorded by phone (%.1f s)", box_id, kind, seconds)
        path.unlink(missing_ok=True)
        return True

    def _apply(self, box_id: int, what: str, message_id: str, pin_hash: str = "") -> None:
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        with Session(self.engine) as s:
            box = s.get(Mailbox, box_id)
            if box is None:
                return
            row = s.get(VoicemailMessage, message_id) if message_id else None
            if row is not None and row.mailbox_id != box_id:
                row = None  # a message of another mailbox is not this caller's to touch
            if what == "heard" and row is not None and not row.heard:
                row.heard, row.heard_at = True, now
                s.add(row)
            elif what == "delete" and row is not None:
                self.store.remove(self.store.message(row.tenant_id, box_id, row.id), s)
                s.delete(row)
            elif what == "pinok":
                box.pin_failures = 0
                s.add(box)
            elif what == "pin":  # changed by phone (after the old PIN opened the mailbox): only its hash comes here
                if not pin_hash_form(pin_hash):
                    log.error("mailbox %s: a PIN change by phone carries no usable hash; ignored", box_id)
                    return
                box.pin_hash, box.pin_failures, box.locked_until = pin_hash, 0, None
                s.add(box)
                log.info("mailbox %s: PIN changed by phone", box_id)
            elif what == "pinfailed":
                box.pin_failures += 1
                if box.pin_failures >= MAX_PIN_FAILURES:
                    lock_s = getattr(self.settings, "voicemail_pin_lock_s", 900)
                    box.locked_until, box.pin_failures = now + timedelta(seconds=lock_s), 0
                    s.add(
                        FraudEvent(
                            id=str(uuid.uuid4()),
                            tenant_id=box.tenant_id,
                            time=now,
                            kind="voicemail_pin_locked",
                            level=1,
                            user_id=box.user_id,
                            reason=f"mailbox {box.id}: {MAX_PIN_FAILURES} wrong PINs by phone; listening locked for "
                            f"{lock_s} s",
                            detail={"mailbox_id": box.id, "locked_s": lock_s},
                        )
                    )
                    log.warning("mailbox %s: %d wrong PINs, locked for %d s", box.id, MAX_PIN_FAILURES, lock_s)
                    if self.metrics is not None:
                        self.metrics.fraud_event("voicemail_pin_locked", 1)
                s.add(box)
            s.commit()

    # ---------------------------------------------------------------- e-mail (VM-04)

    def _email(self, message_id: str, to: str, attach: bool) -> bool:
        with Session(self.engine) as s:
            msg_row = s.get(VoicemailMessage, message_id)
            if msg_row is None or msg_row.emailed:
                return False
            box = s.get(Mailbox, msg_row.mailbox_id)
            path = self.store.message(msg_row.tenant_id, msg_row.mailbox_id, message_id)
            try:
                self._send(to, msg_row, box.name if box else "", path if attach else None)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("message %s: e-mail to %s failed (tried again later): %s", message_id, to, exc)
                self._count_email("failed")
                return False
            msg_row.emailed = True
            s.add(msg_row)
            s.commit()
        self._count_email("sent")
        return True

    def _send(self, to: str, row: VoicemailMessage, box_name: str, wav: Path | None) -> None:
        host, _, port = self.settings.smtp_relay.partition(":")
        mail = EmailMessage()
        mail["From"], mail["To"] = self.settings.smtp_from, to
        who = row.caller or "an unknown caller"
        mail["Subject"] = f"New voicemail from {who} ({row.duration_s:.0f} s)"
        received = row.received_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        mail.set_content(
            f"A new message in your mailbox{' ' + box_name if box_name else ''}.\n\n"
            f"From: {who}\nReceived: {received}\nLength: {row.duration_s:.1f} s\n"
            + ("\nThe recording is attached.\n" if wav is not None else "")
        )
        if wav is not None:
            mail.add_attachment(wav.read_bytes(), maintype="audio", subtype="wav", filename=f"voicemail-{row.id}.wav")
        with smtplib.SMTP(host, int(port or 25), timeout=5.0) as smtp:
            smtp.send_message(mail)

    def _retry_emails(self, now: float) -> None:
        if self.settings is None or not self.settings.smtp_relay:
            return
        since = datetime.fromtimestamp(now - EMAIL_GIVE_UP_S, timezone.utc)
        with Session(self.engine) as s:
            due = s.exec(
                select(VoicemailMessage.id, Mailbox.email, Mailbox.attach_audio)
                .join(Mailbox, Mailbox.id == VoicemailMessage.mailbox_id)  # type: ignore[arg-type]
                .where(VoicemailMessage.emailed == False, Mailbox.email != "")  # noqa: E712
                .where(VoicemailMessage.received_at >= since)
                .limit(100)
            ).all()
        for message_id, to, attach in due:
            self._email(message_id, to, attach)

    # ---------------------------------------------------------------- retention and GDPR

    def clear_expired(self, now: float | None = None) -> int:
        """Delete messages older than their mailbox's retention, and the files of mailboxes (and their messages) that
        no longer exist — a user deleted takes their messages with them. Returns the messages deleted."""
        now = self.clock() if now is None else now
        gone = 0
        touched: set[int] = set()
        with Session(self.engine) as s:
            boxes = {b.id: b for b in s.exec(select(Mailbox)).all()}
            for box in boxes.values():
                if not box.retention_days:
                    continue
                cutoff = datetime.fromtimestamp(now, timezone.utc) - timedelta(days=box.retention_days)
                old = s.exec(
                    select(VoicemailMessage).where(
                        VoicemailMessage.mailbox_id == box.id, VoicemailMessage.received_at < cutoff
                    )
                ).all()
                for m in old:
                    self.store.remove(self.store.message(m.tenant_id, m.mailbox_id, m.id), s)
                    # by statement, not the loaded row: another control plane's retention may have deleted it first
                    s.execute(sa_delete(VoicemailMessage).where(VoicemailMessage.id == m.id))  # type: ignore[arg-type]
                    gone += 1
                    touched.add(m.mailbox_id)
            s.commit()
        # the folders of mailboxes and tenants that no longer exist (in a cluster: removed on every node)
        root = self.store.root
        box_dirs = [d for t in numbered(root) for d in numbered(t)] + numbered(root / "greetings")
        prompt_dirs = numbered(root / "prompts")  # a deleted tenant's own recordings
        gone_boxes = {int(d.name) for d in box_dirs} - set(boxes)
        gone_tenants = {int(d.name) for d in prompt_dirs}
        with Session(self.engine) as s:  # asked again now: one made since `boxes` was read keeps its files
            if gone_boxes:
                gone_boxes -= set(s.exec(select(Mailbox.id).where(Mailbox.id.in_(gone_boxes))).all())  # type: ignore
            if gone_tenants:
                gone_tenants -= set(s.exec(select(Tenant.id).where(Tenant.id.in_(gone_tenants))).all())  # type: ignore
        for folder in box_dirs:
            if int(folder.name) in gone_boxes:
                self.store.remove_tree(folder)
        for folder in prompt_dirs:
            if int(folder.name) in gone_tenants:
                self.store.remove_tree(folder)
        for box_id in touched:
            self._changed(box_id)
        if gone:
            log.info("voicemail retention: %d message(s) deleted", gone)
        return gone

    # ---------------------------------------------------------------- helpers

    def _changed(self, mailbox_id: int) -> None:
        if self.on_change is not None:
            try:
                self.on_change(mailbox_id)
            except Exception:  # noqa: BLE001 - message waiting is told on its own next pass
                log.exception("mailbox %s: telling its phones failed", mailbox_id)

    def _drop(self, desc: Path, wav: Path | None) -> None:
        if wav is not None:
            wav.unlink(missing_ok=True)
        desc.unlink(missing_ok=True)

    def _quarantine(self, desc: Path, why: str, wav: Path | None = None) -> None:
        bad = self.spool / "bad"
        bad.mkdir(parents=True, exist_ok=True)
        log.error("voicemail spool: %s (%s moved to %s)", why, desc.name, bad)
        for f in (wav, desc):
            if f is not None and f.exists():
                os.replace(f, bad / f.name)
        self._count("bad")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.voicemail_messages.labels(outcome=outcome).inc()

    def _count_email(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.voicemail_emails.labels(outcome=outcome).inc()


class DatabaseAway(Exception):
    """The database cannot take the message now: it stays in the spool."""
