"""The store shared by a cluster's nodes (controlplane/services/shared_store.py): what one control plane writes or
removes through its store reaches the others' disks, a mailbox's change reaches the others' message waiting, a node that
never shared (or was away longer than the feed is kept) reconciles the whole store — on one database, as the cluster's
control planes do. SQLite here; the ordering of concurrent writers on PostgreSQL at the end."""

import os
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from controlplane.db.models import ClusterChange, StoredFile
from controlplane.db.session import make_engine, migrate
from controlplane.services import shared_store
from controlplane.services.shared_store import SharedStore, safe_key
from controlplane.services.voicemail import Store


class Node:
    """One control plane's view: its store on its own disk, shared through the common database."""

    def __init__(self, engine, root, name):
        self.mailboxes: list[int] = []
        self.reconciled = 0
        self.store = Store(root)
        self.shared = SharedStore(engine, root, name, on_mailbox=self.mailboxes.append, on_reconciled=self._all)
        self.store.shared = self.shared

    def _all(self):
        self.reconciled += 1


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'cm.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def nodes(engine, tmp_path):
    a, b = Node(engine, tmp_path / "a", "sip1"), Node(engine, tmp_path / "b", "sip2")
    a.shared.poll(), b.shared.poll()  # first looks: nothing to share yet
    return a, b


def test_a_recording_written_through_one_node_is_on_the_others_disk_after_its_next_look(nodes):
    a, b = nodes
    greeting = a.store.greeting(7, "busy")
    a.store.save(greeting, b"RIFF-busy-1")
    assert greeting.read_bytes() == b"RIFF-busy-1"
    assert not b.store.greeting(7, "busy").exists()
    assert b.shared.poll() == 1
    assert b.store.greeting(7, "busy").read_bytes() == b"RIFF-busy-1"
    a.store.save(greeting, b"RIFF-busy-2")  # replaced
    b.shared.poll()
    assert b.store.greeting(7, "busy").read_bytes() == b"RIFF-busy-2"
    assert a.shared.poll() == 0  # its own changes are not applied again
    assert b.store.remove(b.store.greeting(7, "busy")) is True  # removed through the other node
    a.shared.poll()
    assert not greeting.exists()
    with Session(a.shared.engine) as s:
        assert s.exec(select(StoredFile)).all() == []


def test_a_mailbox_removed_on_one_node_goes_with_its_recordings_everywhere(nodes):
    a, b = nodes
    for i in range(3):
        a.store.save(a.store.message(1, 5, f"m{i}"), b"RIFF%d" % i)
    a.store.save(a.store.message(1, 6, "other"), b"RIFF-other")
    b.shared.poll()
    assert len(list(b.store.mailbox_dir(1, 5).glob("*.wav"))) == 3
    a.store.remove_mailbox(1, 5)
    b.shared.poll()
    assert not b.store.mailbox_dir(1, 5).exists()
    assert b.store.message(1, 6, "other").read_bytes() == b"RIFF-other"  # a mailbox named alike is untouched
    with Session(a.shared.engine) as s:
        assert [r.path for r in s.exec(select(StoredFile)).all()] == ["1/6/other.wav"]


def test_a_mailbox_changed_on_one_node_is_told_to_the_others_not_to_itself(nodes):
    a, b = nodes
    a.shared.mailbox_changed(5)
    a.shared.mailbox_changed(9)
    a.shared.poll(), b.shared.poll()
    assert b.mailboxes == [5, 9] and a.mailboxes == []


def test_a_file_shared_in_a_transaction_that_fails_is_shared_nowhere(nodes):
    a, b = nodes
    with Session(a.shared.engine) as s:
        a.store.save(a.store.music(3), b"RIFF-music", s)
        s.rollback()
    assert b.shared.poll() == 0
    assert not b.store.music(3).exists()
    assert a.shared.read_mark() == b.shared.read_mark()  # the feed did not move


def test_a_node_that_never_shared_sends_its_files_and_fetches_the_others(engine, tmp_path, nodes):
    a, _ = nodes
    a.store.save(a.store.tenant_prompt(1, "de", "busy"), b"RIFF-prompt")
    c = Node(engine, tmp_path / "c", "sip3")  # an upgraded node: recordings of its own, never shared
    own = c.store.message(2, 8, "old-message")
    own.parent.mkdir(parents=True)
    own.write_bytes(b"RIFF-old")
    (c.store.root / "boxes").mkdir()
    (c.store.root / "boxes" / "8.json").write_text("{}")  # derived files are not shared
    c.shared.poll()
    assert c.reconciled == 1
    assert c.store.tenant_prompt(1, "de", "busy").read_bytes() == b"RIFF-prompt"
    a.shared.poll()
    assert a.store.message(2, 8, "old-message").read_bytes() == b"RIFF-old"
    assert not (a.store.root / "boxes" / "8.json").exists()
    assert c.shared.poll() == 0 and c.reconciled == 1  # from now on it follows the feed


def test_a_node_away_longer_than_the_feed_is_kept_reconciles_the_whole_store(engine, nodes, monkeypatch):
    a, b = nodes
    kept = b.store.group_greeting(4)
    a.store.save(a.store.group_greeting(4), b"RIFF-group")
    a.store.save(a.store.message(1, 5, "gone"), b"RIFF-gone")
    b.shared.poll()
    reconciled = b.reconciled
    old = time.time() - 3600
    os.utime(b.store.message(1, 5, "gone"), (old, old))
    a.store.remove(a.store.message(1, 5, "gone"))  # while b is away ...
    a.store.save(a.store.music(1), b"RIFF-new-music")
    with Session(engine) as s:  # ... and the feed of that time is pruned
        s.execute(update(ClusterChange).values(at=datetime.now(timezone.utc) - timedelta(days=30)))
        s.commit()
    a.shared._last_prune = float("-inf")
    a.shared.poll()
    with Session(engine) as s:
        assert s.exec(select(ClusterChange)).all() == []
    assert b.shared.poll() == 0 and b.reconciled == reconciled + 1
    assert not b.store.message(1, 5, "gone").exists()
    assert b.store.music(1).read_bytes() == b"RIFF-new-music"
    assert kept.read_bytes() == b"RIFF-group"


def test_the_other_nodes_content_is_readable_before_this_node_fetched_it(nodes):
    a, b = nodes
    a.store.save(a.store.message(1, 5, "fresh"), b"RIFF-fresh")
    assert b.store.read(b.store.message(1, 5, "fresh")) == b"RIFF-fresh"  # download through b at once
    with pytest.raises(OSError):
        b.store.read(b.store.message(1, 5, "never"))


def test_a_change_naming_a_path_outside_the_store_is_skipped(engine, nodes, tmp_path):
    a, b = nodes
    with Session(engine) as s:
        a.shared._change(s, shared_store.FILE, "../../outside.wav")
        a.shared._change(s, shared_store.TREE, "/etc")
        s.commit()
    (tmp_path / "outside.wav").write_bytes(b"keep")
    b.shared.poll()
    assert (tmp_path / "outside.wav").read_bytes() == b"keep"
    for bad in ("../x.wav", "/abs.wav", "a//b.wav", "a/./b.wav", "", "x" * 256):
        assert not safe_key(bad), bad
    with pytest.raises(ValueError):
        a.store.save(tmp_path / "elsewhere.wav", b"RIFF")


def test_concurrent_writers_become_visible_in_the_order_of_their_seq_on_postgresql(postgres_database, tmp_path):
    """The counter row is held until the writer commits: a second writer waits for it, so no reader ever sees seq N+1
    committed while N is not (a reader that applied N+1 would never look at N again)."""
    engine = make_engine(postgres_database)
    try:
        a, b = Node(engine, tmp_path / "a", "sip1"), Node(engine, tmp_path / "b", "sip2")
        a.shared.poll(), b.shared.poll()
        first = Session(engine)
        a.store.save(a.store.music(1), b"RIFF-first", first)  # holds the counter, not committed
        second_done = threading.Event()

        def second():
            a.store.save(a.store.music(2), b"RIFF-second")
            second_done.set()

        t = threading.Thread(target=second)
        t.start()
        assert not second_done.wait(1.0), "the second writer did not wait for the first"
        assert b.shared.poll() == 0  # nothing visible yet
        first.commit()
        first.close()
        assert second_done.wait(10)
        t.join()
        with Session(engine) as s:
            seqs = {c.key: c.seq for c in s.exec(select(ClusterChange)).all()}
        assert seqs["music/2.wav"] == seqs["music/1.wav"] + 1
        assert b.shared.poll() == 2
        assert b.store.music(1).read_bytes() == b"RIFF-first" and b.store.music(2).read_bytes() == b"RIFF-second"
    finally:
        engine.dispose()


def test_a_database_away_is_said_once_and_the_changes_are_applied_when_it_is_back(nodes, caplog, monkeypatch):
    from sqlalchemy.exc import OperationalError

    a, b = nodes
    a.store.save(a.store.music(5), b"RIFF-music")
    real = b.shared.poll

    def away():
        raise OperationalError("select", {}, Exception("connection refused"))

    monkeypatch.setattr(b.shared, "poll", away)
    with caplog.at_level("WARNING", logger="callmanager.shared_store"):
        for _ in range(5):
            assert b.shared.look() == 0
        monkeypatch.setattr(b.shared, "poll", real)
        assert b.shared.look() == 1
    said = [r.getMessage() for r in caplog.records]
    assert sum("database is away" in m for m in said) == 1 and sum("is back" in m for m in said) == 1, said
    assert b.store.music(5).read_bytes() == b"RIFF-music"


def test_two_control_planes_clearing_the_same_old_message_at_once_both_finish_on_postgresql(postgres_database, tmp_path):
    """Every control plane runs the retention: one that finds a message another deleted a moment before goes on."""
    from controlplane.db.models import Mailbox, Tenant, VoicemailMessage
    from controlplane.services.voicemail import VoicemailIngestor

    engine = make_engine(postgres_database)
    try:
        a, b = Node(engine, tmp_path / "a", "sip1"), Node(engine, tmp_path / "b", "sip2")
        with Session(engine) as s:
            tenant = Tenant(name="T", sip_domain="retention.example")
            s.add(tenant)
            s.flush()
            box = Mailbox(tenant_id=tenant.id, name="box", retention_days=1)
            s.add(box)
            s.flush()
            s.add(VoicemailMessage(id="00000000-0000-0000-0000-000000000001", tenant_id=tenant.id, mailbox_id=box.id,
                                   received_at=datetime.now(timezone.utc) - timedelta(days=3)))
            s.commit()
            tenant_id, box_id = tenant.id, box.id
        a.store.save(a.store.message(tenant_id, box_id, "00000000-0000-0000-0000-000000000001"), b"RIFF-old")
        b.shared.poll()
        ing_a = VoicemailIngestor(engine, tmp_path / "spool_a", a.store)
        ing_b = VoicemailIngestor(engine, tmp_path / "spool_b", b.store)
        real_remove = b.store.remove

        def remove_after_the_other(path, session=None):  # b has read the message; a deletes it first
            assert ing_a.clear_expired() == 1
            return real_remove(path, session)

        b.store.remove = remove_after_the_other
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not even SQLAlchemy's "0 rows matched" for a row deleted by the other
            assert ing_b.clear_expired() == 1
        with Session(engine) as s:
            assert s.exec(select(VoicemailMessage)).all() == []
        b.store.remove = real_remove
        b.shared.poll()
        assert not b.store.message(tenant_id, box_id, "00000000-0000-0000-0000-000000000001").exists()
    finally:
        engine.dispose()


def test_a_failure_to_apply_is_said_once_the_node_stays_behind_and_catches_up_after(nodes, caplog, monkeypatch):
    a, b = nodes
    a.store.save(a.store.music(6), b"RIFF-six")

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shared_store, "write_whole", full_disk)
    with caplog.at_level("WARNING", logger="callmanager.shared_store"):
        for _ in range(4):
            assert b.shared.look() == 0
        assert b.shared.behind == 1 and not b.store.music(6).exists()
        monkeypatch.undo()
        assert b.shared.look() == 1
    failures = [r for r in caplog.records if "applying the cluster's changes failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info, [r.getMessage() for r in caplog.records]
    assert b.store.music(6).read_bytes() == b"RIFF-six" and b.shared.behind == 0


def test_changes_of_unknown_kinds_or_mailboxes_are_said_and_skipped(engine, nodes, caplog):
    a, b = nodes
    with Session(engine) as s:
        a.shared._change(s, "future", "x")
        a.shared._change(s, shared_store.MAILBOX, "not-a-number")
        a.shared._change(s, shared_store.MAILBOX, "12")
        s.commit()
    with caplog.at_level("ERROR", logger="callmanager.shared_store"):
        assert b.shared.poll() == 3
    assert b.mailboxes == [12]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown kind 'future'" in said and "'not-a-number'" in said


def test_the_retention_removes_a_deleted_mailboxs_folders_everywhere_but_not_one_made_meanwhile(engine, nodes, monkeypatch):
    from controlplane.db.models import Mailbox, Tenant
    from controlplane.services import voicemail
    from controlplane.services.voicemail import VoicemailIngestor

    a, b = nodes
    with Session(engine) as s:
        tenant = Tenant(name="T", sip_domain="orphans.example")
        s.add(tenant)
        s.flush()
        kept = Mailbox(tenant_id=tenant.id, name="kept")
        s.add(kept)
        s.commit()
        tenant_id, kept_id = tenant.id, kept.id
    for box_id in (kept_id, 901, 902):  # 901: deleted long ago; 902: made while the retention looks
        a.store.save(a.store.message(tenant_id, box_id, "m"), b"RIFF")
        a.store.save(a.store.greeting(box_id, "busy"), b"RIFF")
    b.shared.poll()
    real_numbered = voicemail.numbered

    def made_meanwhile(folder):
        with Session(engine) as s:
            if s.get(Mailbox, 902) is None:
                s.add(Mailbox(id=902, tenant_id=tenant_id, name="new"))
                s.commit()
        return real_numbered(folder)

    monkeypatch.setattr(voicemail, "numbered", made_meanwhile)
    VoicemailIngestor(engine, a.store.root.parent / "spool", a.store).clear_expired()
    b.shared.poll()
    for node in (a, b):
        assert not node.store.mailbox_dir(tenant_id, 901).exists() and not node.store.greeting(901, "busy").exists()
        assert node.store.message(tenant_id, 902, "m").exists() and node.store.greeting(902, "busy").exists()
        assert node.store.message(tenant_id, kept_id, "m").exists()


def test_a_file_whose_local_write_was_lost_after_the_database_took_it_is_made_good_on_the_next_look(nodes):
    a, _ = nodes
    music = a.store.music(8)
    a.store.save(music, b"RIFF-eight")
    music.unlink()  # as if the write here had failed after the change was committed
    assert a.shared.poll() == 0  # its own change: not counted as another node's ...
    assert music.read_bytes() == b"RIFF-eight"  # ... but checked, and the file made good


def test_an_upload_the_database_refuses_leaves_no_file_and_no_temporary_one(nodes, monkeypatch):
    from sqlalchemy.exc import OperationalError

    a, b = nodes
    greeting = a.store.greeting(3, "busy")

    def refused(path, data, session=None):
        raise OperationalError("insert", {}, Exception("read-only"))

    monkeypatch.setattr(a.shared, "put", refused)
    with pytest.raises(OperationalError):
        a.store.save(greeting, b"RIFF-refused")
    assert not greeting.exists() and list(greeting.parent.iterdir()) == []
    monkeypatch.undo()
    assert b.shared.poll() == 0 and not b.store.greeting(3, "busy").exists()
