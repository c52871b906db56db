"""Durable hand-off of CDRs to the control plane: one JSON file per record, maildir style.

A record is written to `tmp/` and renamed into `new/` (atomic on one filesystem), so the
control plane never sees half a record; it ingests idempotently by record id and then deletes
the file. Records wait here for as long as the control plane is down.
"""
from __future__ import annotations

import json
import os


class CdrSpool:
    def __init__(self, directory: str):
        self.directory = directory
        self.tmp = os.path.join(directory, "tmp")
        self.new = os.path.join(directory, "new")
        os.makedirs(self.tmp, exist_ok=True)
        os.makedirs(self.new, exist_ok=True)

    def put(self, record: dict) -> str:
        name = f"{record['id']}.json"
        tmp_path = os.path.join(self.tmp, name)
        with open(tmp_path, "w", encoding="utf-8") as fh:
            json.dump(record, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        final = os.path.join(self.new, name)
        os.rename(tmp_path, final)
        return final
