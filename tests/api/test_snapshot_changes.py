"""Incremental snapshots end to end: the control plane publishes each change next to the whole document, and a
worker's holder applies the changes instead of reading everything — ending with the same snapshot as a whole read."""

from __future__ import annotations

import json
import time

from controlplane.services.snapshot import SnapshotPublisher
from kemi.policy.snapshot import loads_snapshot
from kemi.policy.snapshot_delta import changes_path
from kemi.shell.snapshot_holder import SnapshotHolder
from tests.api.test_api import snapshot


def published(server):
    """Wait until the published snapshot has the database's version; the snapshot of the whole document."""
    snapshot(server)
    return loads_snapshot(server.settings.snapshot_path.read_bytes())


def test_every_change_reaches_a_worker_as_a_change_and_ends_as_the_whole_document(api, server, acme):
    admin, alice, bob = acme["admin"], acme["alice"], acme["bob"]
    acc = api.ok("sip_account.create", token=admin, user_id=bob["id"], username="bob")
    api.ok("extension.create", token=admin, number="202", user_id=bob["id"])
    logged: list[str] = []
    worker = SnapshotHolder(str(server.settings.snapshot_path), check_interval=0, log=logged.append)
    behind = SnapshotHolder(str(server.settings.snapshot_path), check_interval=0)
    whole = published(server)
    assert worker.get() == whole and worker.last_load[0] == "whole"
    behind.get()
    changes = [
        lambda: api.ok("user.update", token=admin, id=bob["id"], call_waiting=False),
        lambda: api.ok("sip_account.update", token=admin, id=acc["id"], password="new-password-1"),
        lambda: api.ok(
            "forwarding.create", token=admin, user_id=bob["id"], kind="unconditional", target_user_id=alice["id"]
        ),
        lambda: api.ok("sip_account.create", token=admin, user_id=alice["id"], username="alice"),
        lambda: api.ok("tenant.update", id=acme["tenant"]["id"], enabled=False),
        lambda: api.ok("tenant.update", id=acme["tenant"]["id"], enabled=True),
    ]
    for change in changes:
        version = worker.get().version
        change()
        whole = published(server)
        assert whole.version > version
        assert worker.get() == whole, "the changes applied differ from the whole document"
        assert worker.last_load[0] == "changes", logged
    assert not worker.get().active_accounts == {} and ("bob", "acme.example") in worker.get().active_accounts
    # a worker several versions behind applies the chain of changes in one go
    whole = published(server)
    assert behind.get() == whole and behind.last_load[0] == "changes"


def test_a_restarted_control_plane_chains_on_and_a_worker_without_usable_changes_reads_everything(api, server, acme):
    path = server.settings.snapshot_path
    worker = SnapshotHolder(str(path), check_interval=0)
    published(server)
    worker.get()
    # the control plane restarts: it publishes the same version again, from what it finds on disk
    server.app.publisher.stop()
    server.app.publisher = SnapshotPublisher(server.app.engine, path)
    server.app.publisher.start()
    assert worker.get() == loads_snapshot(path.read_bytes()) and worker.last_load[0] == "changes"
    api.ok("user.update", token=acme["admin"], id=acme["bob"]["id"], call_waiting=False)
    whole = published(server)
    assert worker.get() == whole and worker.last_load[0] == "changes"
    # the changes file damaged, or gone: the whole document is read, nothing is lost
    for damage in (lambda p: p.write_text("{not json"), lambda p: p.unlink()):
        api.ok("user.update", token=acme["admin"], id=acme["bob"]["id"], name=f"Bob {time.time()}")
        whole = published(server)
        damage(path.with_name(changes_path(path.name)))
        assert worker.get() == whole and worker.last_load[0] == "whole"


def test_the_published_document_names_its_version_first_and_its_changes_stay_few(api, server, acme):
    for i in range(20):
        api.ok("user.update", token=acme["admin"], id=acme["bob"]["id"], name=f"Bob {i}")
    published(server)
    head = server.settings.snapshot_path.read_bytes()[:40]
    assert head.startswith(b'{"version":')
    doc = json.loads(
        server.settings.snapshot_path.with_name(changes_path(server.settings.snapshot_path.name)).read_text()
    )
    assert (
        1 <= len(doc["changes"]) <= 16
        and doc["current"]["version"] == json.loads(head.split(b",")[0] + b"}")["version"]
    )
