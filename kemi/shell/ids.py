"""Record ids in UUID form, unique without a random read per call.

Each process draws one random UUID (version 4) when it first needs an id — after Kamailio's fork, so workers never
share it — and numbers its records in the last 12 hex digits: 74 random bits per process, a counter within it.
"""

from __future__ import annotations

import itertools
import os
import uuid

_OWN: list = [0, "", itertools.count()]  # pid, prefix, counter


def record_id() -> str:
    pid = os.getpid()
    if _OWN[0] != pid:  # first use in this process (or a fork since): a fresh random prefix
        _OWN[:] = [pid, str(uuid.uuid4())[:24], itertools.count()]
    return f"{_OWN[1]}{next(_OWN[2]) % 0x1000000000000:012x}"
