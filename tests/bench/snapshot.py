"""`make bench ARGS=--only-snapshot` (and part of `make bench`): what a one-user change costs each Kamailio worker.

A worker holds the routing snapshot of 20,000 users (tests/bench/policy.py's document, with forwarding rules, VIP
lists, 500 hunt groups with skills) in `kemi.shell.snapshot_holder.SnapshotHolder`, exactly as on the node. The control
plane's publisher side is played by the same functions it calls (`snapshot_delta.diff`, the changes file, the document
written version first). In each round one user's forwarding changes; the time the holder takes to be up to date is
measured twice, paired: applying the published change, and reading the whole document (as every worker did before
incremental snapshots, and still does when it is too far behind). Median and spread over the rounds; goal < 10 ms.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from kemi.policy import snapshot_delta
from kemi.policy.snapshot_delta import changes_path, digest
from kemi.shell.snapshot_holder import SnapshotHolder
from tests.bench.policy import build

GOAL_MS = 10.0


class Publisher:
    """The control plane's side, by the functions it uses (controlplane/services/snapshot.py)."""

    def __init__(self, path: Path, doc: dict):
        self.path, self.doc, self.changes = path, doc, []
        self.data = self._write(doc)

    def _write(self, doc: dict) -> bytes:
        data = json.dumps({"version": doc["version"], **doc}, separators=(",", ":")).encode()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)
        return data

    def publish(self, doc: dict) -> None:
        data = json.dumps({"version": doc["version"], **doc}, separators=(",", ":")).encode()
        change = snapshot_delta.diff(self.doc, doc, digest(self.data), digest(data))
        self.changes = (self.changes + [change])[-16:] if change else []
        changes = Path(changes_path(str(self.path)))
        changes.with_suffix(".tmp").write_text(
            json.dumps({"current": {"version": doc["version"], "digest": digest(data)}, "changes": self.changes})
        )
        os.replace(changes.with_suffix(".tmp"), changes)
        self.doc, self.data = doc, self._write(doc)


def run(users: int = 20000, rounds: int = 15) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-snapshot-"))
    path = work / "current.json"
    doc = build(users, rules=True)
    publisher = Publisher(path, doc)
    worker = SnapshotHolder(str(path), check_interval=0)
    worker.get()
    by_change, whole = [], []
    for r in range(rounds):
        new = copy.deepcopy(publisher.doc) if r == 0 else publisher.doc
        new = {**new, "version": new["version"] + 1, "users": list(new["users"])}
        i = (r * 7919) % users
        new["users"][i] = {
            **new["users"][i],
            "forwarding": [{"id": 10**6 + r, "kind": "unconditional", "target_number": f"+4930{r:07d}"}],
        }
        publisher.publish(new)
        time.sleep(0.01)  # a new mtime
        worker.get()
        how, seconds = worker.last_load
        assert how == "changes" and worker.get().users[i + 1].forwarding[0].target_number == f"+4930{r:07d}"
        by_change.append(seconds * 1000)
        fresh = SnapshotHolder(str(path), check_interval=0)  # the same document read whole, as before
        fresh.get()
        assert fresh.last_load[0] == "whole" and fresh.get() == worker.get()
        whole.append(fresh.last_load[1] * 1000)
    change_size = len(json.dumps(publisher.changes[-1]))
    result = {
        "change_ms": round(statistics.median(by_change), 2),
        "change_spread_ms": [round(min(by_change), 2), round(max(by_change), 2)],
        "whole_ms": round(statistics.median(whole), 1),
        "whole_spread_ms": [round(min(whole), 1), round(max(whole), 1)],
        "document_bytes": len(publisher.data),
        "change_bytes": change_size,
    }
    print(
        f"snapshot update per worker, {users} users, {rounds} rounds: one-user change {result['change_ms']} ms "
        f"({result['change_spread_ms'][0]}–{result['change_spread_ms'][1]}), whole document {result['whole_ms']} ms "
        f"({result['whole_spread_ms'][0]}–{result['whole_spread_ms'][1]}); document {len(publisher.data)} bytes, "
        f"change {change_size} bytes",
        flush=True,
    )
    meta = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).isoformat(),
        "users": users,
        "rounds": rounds,
        "goal": f"< {GOAL_MS} ms per worker for a one-user change",
    }
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return [
        {
            "name": f"snapshot_one_user_change_{users}_users",
            "value": result["change_ms"],
            "unit": "ms per worker",
            "baseline": result["whole_ms"],
            "ratio": round(result["change_ms"] / result["whole_ms"], 4),
            "detail": {**meta, **result},
        }
    ]


if __name__ == "__main__":
    run()
