"""The call context: one JSON document per call, kept on the transaction (AVP) and the dialog.

It carries what later stages of the same call need (trace, fallbacks, group steps, queue place)
and becomes the call record at the end.
"""
from __future__ import annotations

import json

from . import ksr_apply as apply
from . import ksr_read as read

CTX = "cm_ctx"  # name of the AVP / dialog variable that carries the call context


def store_context(ctx: dict) -> None:
    blob = json.dumps(ctx, separators=(",", ":"))
    apply.set_avp(CTX, blob)
    apply.set_dlg_var(CTX, blob)


def load_context() -> dict | None:
    blob = read.avp(CTX)
    return json.loads(blob) if blob else None
