"""What RTPengine itself says about a call (its ng protocol): the packets it relayed on each leg, and whether its
session is gone — the tests' check that media flowed through the node and nothing was left behind."""

from __future__ import annotations

import time

from controlplane.adapters.rtpengine_ng import NgClient


def ng(node) -> NgClient:
    return NgClient(node.settings.rtpengine_address, node.settings.rtpengine_ng_port)


def legs(node, call_id: str) -> list[int]:
    """RTP packets RTPengine received on each leg of the call."""
    tags = ng(node).query(call_id).get("tags", {})
    return [
        sum(int(s.get("stats", {}).get("packets", 0)) for m in t.get("medias", []) for s in m.get("streams", []))
        for t in tags.values()
    ]


def gone(node, call_id: str, timeout: float = 5.0) -> bool:
    """RTPengine has no session of the call (within `timeout`)."""
    deadline = time.monotonic() + timeout
    while call_id in ng(node).list_calls():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
