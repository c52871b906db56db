"""Record ids in UUID form, unique without a random read per call.

Each process draws one random UUID (version 4) when it first needs an id — after Kamailio's fork, so workers never
share it — and numbers its records in the last 12 hex digits: 74 random bits per process, a counter within it.
A fork forgets the prefix (app_python3 runs Python's after-fork handlers in every Kamailio child it starts), so no
system call is made per id. Kamailio forks every process from its main one, which never makes a record: even a child
started without those handlers draws its own prefix at its first id.
"""

from __future__ import annotations

import itertools
import os
import uuid

_OWN: list = ["", itertools.count()]  # prefix ('' : none drawn in this process yet), counter


def record_id() -> str:
    if not _OWN[0]:  # first use in this process (or since a fork): a fresh random prefix
        _OWN[:] = [str(uuid.uuid4())[:24], itertools.count()]
    return f"{_OWN[0]}{next(_OWN[1]) % 0x1000000000000:012x}"


def _forget() -> None:
    _OWN[0] = ""


os.register_at_fork(after_in_child=_forget)
