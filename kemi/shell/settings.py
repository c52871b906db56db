"""Node settings the shell needs, from the environment Kamailio was started with."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from kemi.policy.edge import EdgeSettings


@dataclass(frozen=True)
class ShellSettings:
    snapshot_path: str
    spool_dir: str
    rpc_port: int
    snapshot_check_interval: float = 0.25
    trunk_timeout_ms: int = 3000  # a trunk that does not answer at all within this is skipped
    device_timeout_ms: int = 5000  # devices that send nothing back within this are unreachable (backup routing)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    fraud_checks: bool = True  # count and limit calls out (kemi/shell/fraud.py)
    call_max_s: int = (
        43200  # no call lives longer (kamailio.cfg default_timeout); a session timer's lifetime stays below
    )
    dialog_keepalive: bool = True  # in-dialog OPTIONS to both sides of every call (kamailio.cfg ka_interval)
    fault_header: str = ""  # tests only: a request with this header raises in the request route (the barrier answers)
    drain_retry_after_s: int = 120  # the Retry-After of the 503 a draining node answers new requests with
    dmq_port: int = (
        0  # the cluster's DMQ listener (0: a single node): only KDMQ from the cluster's nodes is taken there
    )
    dmq_sources: frozenset[str] = frozenset()  # the other nodes' addresses (dmq_peers): the only sources taken there
    node_name: str = "node"  # names this node's calls in the data center's shared counters
    node_index: int = 0  # this node's place among the cluster's SIP nodes (1..node_count; 0: a single node)
    node_count: int = 1  # the cluster's SIP nodes: a dialog's h_id modulo this names the node that made it
    sip_vip: str = ""  # the data center's virtual address this node shares with the other of its pair ('' : none)
    shared_counters: bool = False  # the fraud limits count in the data center's Redis (redis_address; ndb_redis)
    media_server: str = ""  # "address:port" of the media server refusals are announced through ('' : none)
    prompt_language: str = "en"
    media_workers: int = 1  # media server processes on consecutive ports from media_server's
    music_file: str = ""  # what a party on hold hears (RTPengine plays it; '' : no music on hold)
    rpc_secret: str = field(
        default="", repr=False
    )  # the RPC listener answers only requests carrying it ('' : none at all)
    ws_ports: frozenset[int] = frozenset()  # the WS and WSS listeners: an HTTP upgrade there becomes a SIP connection

    @classmethod
    def from_env(cls) -> "ShellSettings":
        var = os.environ.get("CALLMANAGER_VAR", os.path.join(os.getcwd(), "var"))
        return cls(
            snapshot_path=os.environ.get("CALLMANAGER_SNAPSHOT", os.path.join(var, "snapshot", "current.json")),
            spool_dir=os.environ.get("CALLMANAGER_SPOOL", os.path.join(var, "spool", "cdr")),
            rpc_port=int(os.environ.get("CALLMANAGER_KAMAILIO_RPC_PORT", "5071")),
            snapshot_check_interval=float(os.environ.get("CALLMANAGER_SNAPSHOT_CHECK_S", "0.25")),
            trunk_timeout_ms=int(os.environ.get("CALLMANAGER_TRUNK_TIMEOUT_MS", "3000")),
            device_timeout_ms=int(os.environ.get("CALLMANAGER_DEVICE_TIMEOUT_MS", "5000")),
            edge=_edge(os.environ.get("CALLMANAGER_EDGE") or "{}", os.environ.get("CALLMANAGER_DMQ_SOURCES", "")),
            fraud_checks=os.environ.get("CALLMANAGER_FRAUD_CHECKS", "1") != "0",
            call_max_s=int(os.environ.get("CALLMANAGER_CALL_MAX_S", "43200")),
            dialog_keepalive=os.environ.get("CALLMANAGER_DIALOG_KEEPALIVE", "1") != "0",
            fault_header=os.environ.get("CALLMANAGER_FAULT_HEADER", ""),
            drain_retry_after_s=int(os.environ.get("CALLMANAGER_DRAIN_RETRY_AFTER_S", "120")),
            dmq_port=int(os.environ.get("CALLMANAGER_DMQ_PORT", "0")),
            dmq_sources=frozenset(a for a in os.environ.get("CALLMANAGER_DMQ_SOURCES", "").split(",") if a),
            node_name=os.environ.get("CALLMANAGER_NODE_NAME", "node"),
            node_index=_place(os.environ.get("CALLMANAGER_DMQ_NODE", ""))[0],
            node_count=_place(os.environ.get("CALLMANAGER_DMQ_NODE", ""))[1],
            sip_vip=os.environ.get("CALLMANAGER_SIP_VIP", ""),
            shared_counters=os.environ.get("CALLMANAGER_SHARED_COUNTERS", "0") == "1",
            media_server=os.environ.get("CALLMANAGER_MEDIA_SERVER", ""),
            prompt_language=os.environ.get("CALLMANAGER_PROMPT_LANGUAGE", "en"),
            music_file=os.environ.get("CALLMANAGER_MUSIC_FILE", ""),
            media_workers=max(1, int(os.environ.get("CALLMANAGER_MEDIA_WORKERS", "1") or "1")),
            rpc_secret=_read_secret(os.environ.get("CALLMANAGER_RPC_SECRET_FILE", "")),
            ws_ports=frozenset(int(p) for p in os.environ.get("CALLMANAGER_WS_PORTS", "").split(",") if p.isdigit()),
        )


def _edge(doc: str, peers: str) -> EdgeSettings:
    """The edge's settings; the cluster's other SIP nodes are exempt (their relayed calls and in-dialog requests are
    the cluster's own traffic, never a flood or a scan)."""
    known = json.loads(doc)
    extra = [a for a in peers.split(",") if a]
    if extra:
        known["exempt"] = [*(known.get("exempt") or ()), *extra]
    return EdgeSettings.from_doc(known)


def _place(text: str) -> tuple[int, int]:
    """ "<index>/<count>" (CALLMANAGER_DMQ_NODE) -> (index, count); (0, 1) for a single node or anything else."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        return 0, 1
    return (i, n) if 1 <= i <= n else (0, 1)


def _read_secret(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""  # no secret: the RPC listener refuses every request
