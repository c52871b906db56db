"""The store shared by a cluster's nodes (issue 22, docs/cluster.md "Recordings and message waiting").

Each node's media server plays and records files under its own `voicemail_dir`: messages, mailboxes' greetings,
tenants' prompts and music, menus' recordings, hunt groups' greetings. A caller reaches whichever node their data
center's address leads to, and an admin whichever control plane, so every node needs every file. With a database
shared by several control planes the files are therefore also kept in it (`stored_file`), and every change is a row
of a feed (`cluster_change`): a file written or removed, a folder removed, a mailbox's messages changed. Each control
plane applies the others' changes to its own node about every second — writes or removes the file, rewrites the
mailbox's file for listening by phone and publishes its message waiting to its own Kamailio.

The feed's `seq` is taken with one atomic increment of a counter row in the writer's own transaction (the same
transaction that stores the file or the message): the row stays locked until that transaction ends, so the changes
become visible in the order of their seq, and a reader that has applied up to N never misses one below N. A control
plane remembers the last seq it applied in `<voicemail_dir>/.shared_seq`; when it has none (its first start, or an
upgrade from a node that kept its files to itself) or the feed no longer reaches back to it (changes are kept
FEED_KEEP_S), it reconciles the whole store: its own files that the database lacks go up (first start only), every
file it lacks or holds differently comes down, files the cluster removed go, and every mailbox is told again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controlplane.db.models import ChangeCounter, ClusterChange, StoredFile
from controlplane.db.session import database_away
from controlplane.services.periodic import Periodic

log = logging.getLogger("callmanager.shared_store")

MARK_FILE = ".shared_seq"
FEED_KEEP_S = 7 * 86400.0  # changes kept this long; a node away longer reconciles the whole store
PRUNE_EVERY_S = 3600.0
BATCH = 500  # changes applied per look
SETTLE_S = 60.0  # a local file younger than this is never removed by a reconciliation (it may be being stored)
FILE = "file"
TREE = "tree"
MAILBOX = "mailbox"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_key(key: str) -> bool:
    """A key names a path inside the store: relative, no `..`, no empty part."""
    return 0 < len(key) <= 255 and "\\" not in key and all(p not in ("", ".", "..") for p in key.split("/"))


def stage(path: Path, data: bytes) -> Path:
    """The content written next to `path` under a temporary name of its own (renamed into place by the caller);
    nothing is left behind when writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_whole(path: Path, data: bytes) -> None:
    """A file written whole (a reader never sees half of it)."""
    os.replace(stage(path, data), path)


def local_digest(path: Path) -> str | None:
    try:
        return digest(path.read_bytes())
    except OSError:
        return None


class SharedStore:
    def __init__(
        self,
        engine: Engine,
        root: Path,
        node: str,
        *,
        on_mailbox: Callable[[int], None] | None = None,
        on_reconciled: Callable[[], None] | None = None,
        metrics=None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        """`node`: this control plane's name (its own changes are not applied again); `on_mailbox(id)`: another node
        changed a mailbox's messages; `on_reconciled()`: the whole store was reconciled (tell every mailbox)."""
        self.engine, self.root, self.node = engine, Path(root), node[:64]
        self.on_mailbox, self.on_reconciled, self.metrics, self.clock = on_mailbox, on_reconciled, metrics, clock
        self._last_prune = float("-inf")
        self.applied = 0
        self.behind = 0
        self._away = False
        self._failing = ""  # the last failure said (not the database being away)
        self._task = Periodic("shared-store", self.look, interval, log, "shared store: applying changes failed")

    def start(self) -> None:
        self._task.start()

    def stop(self) -> None:
        self._task.stop()

    # ---------------------------------------------------------------- writing (a change for the other nodes)

    def key(self, path: Path) -> str:
        key = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        if not safe_key(key):
            raise ValueError(f"{path} is not a file of the store")
        return key

    def record_put(self, s: Session, path: Path, data: bytes) -> None:
        """The file's content for the other nodes, in the caller's transaction."""
        key = self.key(path)
        self._change(s, FILE, key)  # first: the counter's lock orders concurrent writers of the same file
        row = s.get(StoredFile, key)
        if row is None:
            row = StoredFile(path=key, sha256="", data=b"")
        row.sha256, row.size, row.data, row.changed_at = digest(data), len(data), data, datetime.now(timezone.utc)
        s.add(row)

    def record_remove(self, s: Session, path: Path) -> None:
        key = self.key(path)
        self._change(s, FILE, key)
        s.execute(delete(StoredFile).where(StoredFile.path == key))  # type: ignore[arg-type]

    def record_remove_tree(self, s: Session, folder: Path) -> None:
        key = self.key(folder)
        self._change(s, TREE, key)
        s.execute(delete(StoredFile).where(StoredFile.path.startswith(key + "/", autoescape=True)))  # type: ignore

    def record_mailbox(self, s: Session, mailbox_id: int) -> None:
        self._change(s, MAILBOX, str(int(mailbox_id)))

    def put(self, path: Path, data: bytes, session: Session | None = None) -> None:
        self._in(session, lambda s: self.record_put(s, path, data))

    def remove(self, path: Path, session: Session | None = None) -> None:
        self._in(session, lambda s: self.record_remove(s, path))

    def remove_tree(self, folder: Path, session: Session | None = None) -> None:
        self._in(session, lambda s: self.record_remove_tree(s, folder))

    def mailbox_changed(self, mailbox_id: int, session: Session | None = None) -> None:
        self._in(session, lambda s: self.record_mailbox(s, mailbox_id))

    def content(self, path: Path) -> bytes | None:
        """The stored content of a file (a file another node wrote and this one has not fetched yet)."""
        with Session(self.engine) as s:
            data = s.exec(select(StoredFile.data).where(StoredFile.path == self.key(path))).first()
        return None if data is None else bytes(data)

    def _in(self, session: Session | None, what: Callable[[Session], None]) -> None:
        if session is not None:
            what(session)
            return
        with Session(self.engine) as s:
            what(s)
            s.commit()

    def _change(self, s: Session, kind: str, key: str) -> None:
        bumped = s.execute(
            update(ChangeCounter).where(ChangeCounter.id == 1).values(seq=ChangeCounter.seq + 1)  # type: ignore[arg-type]
        )
        if not getattr(bumped, "rowcount", 0):  # made by the migration; absent only in a schema made without it
            s.add(ChangeCounter(id=1, seq=1))
            s.flush()
        seq = s.exec(select(ChangeCounter.seq).where(ChangeCounter.id == 1)).one()
        s.add(ClusterChange(seq=seq, kind=kind, key=key, origin=self.node))

    # ---------------------------------------------------------------- applying the others' changes

    def look(self) -> int:
        """The periodic step: `poll`, with the database away said once (not every second) until it is back."""
        try:
            done = self.poll()
        except Exception as exc:
            if database_away(exc):
                if not self._away:
                    log.warning("shared store: the database is away (%s); this node keeps the files it has", exc)
                self._away = True
                return 0
            said = f"{type(exc).__name__}: {exc}"
            if said != self._failing:  # the same failure again (a full disk): said once, the NOC sees `behind`
                log.exception("shared store: applying the cluster's changes failed; tried again every look")
            self._failing = said
            return 0
        if self._away or self._failing:
            log.warning(
                "shared store: %s; applying the cluster's changes again",
                "the database is back" if self._away else "the failure is over",
            )
            self._away, self._failing = False, ""
        return done

    def poll(self) -> int:
        """One look: apply the changes made since the last one. Returns the changes applied."""
        try:
            self._prune()
        except Exception as exc:  # a read-only database (a standby): pruned by another control plane, or later
            if not database_away(exc):
                raise
        mark = self.read_mark()
        if mark is None:
            self.reconcile(first=True)
            return 0
        with Session(self.engine) as s:
            top = s.exec(select(ChangeCounter.seq).where(ChangeCounter.id == 1)).first() or 0
            self._set_behind(top - mark)
            if top == mark:
                return 0
            newer = select(ClusterChange).where(ClusterChange.seq > mark)
            rows = s.exec(newer.order_by(ClusterChange.seq).limit(BATCH)).all() if top > mark else []  # type: ignore
            if not rows or rows[0].seq != mark + 1:  # the feed no longer reaches back here (or the database is another)
                log.warning("shared store: changes after %d are gone (the feed is at %d); reconciling all", mark, top)
                self.reconcile(first=False)
                return 0
            done = 0
            for change in rows:
                own = change.origin == self.node
                if own and change.kind == MAILBOX:
                    continue  # told here when it was made
                # a file change of its own is checked too: a local write that failed after the database took the
                # change is made good here (the digests match otherwise: nothing is written)
                self._apply(s, change)
                done += 0 if own else 1
            last = rows[-1].seq
        self.write_mark(last)
        self._set_behind(top - last)
        self.applied += done
        if self.metrics is not None and done:
            self.metrics.shared_store_applied.inc(done)
        return done

    def _apply(self, s: Session, change: ClusterChange) -> None:
        if change.kind == MAILBOX:
            if not change.key.isdigit():
                log.error("shared store: change %d names mailbox %r; skipped", change.seq, change.key[:40])
            elif self.on_mailbox is not None:
                self.on_mailbox(int(change.key))
            return
        if change.kind not in (FILE, TREE):
            log.error("shared store: change %d is of an unknown kind %r; skipped", change.seq, change.kind[:20])
            return
        if not safe_key(change.key):
            log.error("shared store: change %d names %r, not a file of the store; skipped", change.seq, change.key[:80])
            return
        path = self.root / change.key
        if change.kind == TREE:
            shutil.rmtree(path, ignore_errors=True)
        elif change.kind == FILE:
            want = s.exec(select(StoredFile.sha256).where(StoredFile.path == change.key)).first()
            if want is None:
                path.unlink(missing_ok=True)
            elif local_digest(path) != want:
                self._fetch(s, change.key)

    def _fetch(self, s: Session, key: str) -> None:
        data = s.exec(select(StoredFile.data).where(StoredFile.path == key)).first()
        if data is None:  # removed since (its own change follows)
            return
        write_whole(self.root / key, bytes(data))

    # ---------------------------------------------------------------- reconciling the whole store

    def reconcile(self, first: bool) -> None:
        """Bring the whole store in line with the database (module docstring). `first`: this node has never shared
        its files: the ones the database lacks go up instead of being removed."""
        with Session(self.engine) as s:
            top = s.exec(select(ChangeCounter.seq).where(ChangeCounter.id == 1)).first() or 0
            listing = {
                k: (sha, size, changed)
                for k, sha, size, changed in s.exec(
                    select(StoredFile.path, StoredFile.sha256, StoredFile.size, StoredFile.changed_at)
                ).all()
            }
        local = {p.relative_to(self.root).as_posix(): p for p in self.root.rglob("*.wav") if p.is_file()}
        uploaded = fetched = removed = 0
        for key, path in local.items():
            if key in listing or not safe_key(key):
                continue
            if first:
                try:
                    self.put(path, path.read_bytes())
                    uploaded += 1
                except OSError:
                    continue
            elif self.clock() - path.stat().st_mtime >= SETTLE_S:
                path.unlink(missing_ok=True)
                removed += 1
        with Session(self.engine) as s:
            for key, (sha, size, changed) in listing.items():
                path = self.root / key
                if not safe_key(key) or self._same(path, sha, size, changed):
                    continue
                self._fetch(s, key)
                fetched += 1
        self.write_mark(top)
        self._set_behind(0)
        log.warning(
            "shared store reconciled at change %d: %d file(s) sent, %d fetched, %d removed",
            top,
            uploaded,
            fetched,
            removed,
        )
        if self.on_reconciled is not None:
            self.on_reconciled()

    @staticmethod
    def _same(path: Path, sha: str, size: int, changed: datetime) -> bool:
        """The local file is the stored one: same size and written after the stored change (then not hashed — a
        whole store of recordings is not read for a reconciliation), or the same digest."""
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != size:
            return False
        stamp = changed if changed.tzinfo else changed.replace(tzinfo=timezone.utc)
        if st.st_mtime >= stamp.timestamp():
            return True
        return local_digest(path) == sha

    # ---------------------------------------------------------------- the mark, pruning, the NOC

    def read_mark(self) -> int | None:
        try:
            return int((self.root / MARK_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def write_mark(self, seq: int) -> None:
        write_whole(self.root / MARK_FILE, f"{int(seq)}\n".encode())

    def _prune(self) -> None:
        """Changes older than FEED_KEEP_S go (any control plane may do it; a node further behind reconciles)."""
        now = self.clock()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        cutoff = datetime.fromtimestamp(now, timezone.utc) - timedelta(seconds=FEED_KEEP_S)
        with Session(self.engine) as s:
            s.execute(delete(ClusterChange).where(ClusterChange.at < cutoff))  # type: ignore[arg-type]
            s.commit()

    def _set_behind(self, n: int) -> None:
        self.behind = max(0, n)
        if self.metrics is not None:
            self.metrics.shared_store_behind.set(self.behind)
