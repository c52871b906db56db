"""Record ids (kemi/shell/ids.py): unique within a process, and a process forked from one that drew its prefix draws
its own (Kamailio's workers are forks of the main process; app_python3 runs Python's after-fork handlers in each)."""

from __future__ import annotations

import os
import uuid

from kemi.shell import ids


def test_ids_are_uuids_and_unique_within_a_process():
    made = [ids.record_id() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(str(uuid.UUID(i)) == i for i in made)
    assert len({i[:24] for i in made}) == 1  # one prefix per process, a counter after it


def test_a_forked_process_draws_its_own_prefix():
    parent = ids.record_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, written back to the parent
        try:
            os.write(write_end, ids.record_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child and child[:24] != parent[:24]
    assert ids.record_id()[:24] == parent[:24]  # the parent keeps its own
