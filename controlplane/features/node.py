"""This node's own state for operators (platform tokens): draining for maintenance, and what it carries now.

`node.drain` makes Kamailio answer every new request with 503 and Retry-After (kemi/policy/drain.py: emergency calls
are still taken, calls in progress are untouched); `upgrade.yml` drains a node, waits for its calls to end, upgrades
it and lets it take traffic again. The flag lives in Kamailio's shared memory (htable `node`): a restarted Kamailio
starts taking traffic, which is what a finished upgrade wants.
"""

from __future__ import annotations

from pydantic import Field

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.api.errors import component_down
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from kemi import contract as shm

TABLE, KEY = shm.NODE.name, shm.DRAIN


class Drain(Params):
    on: bool = Field(True, description="true: take no new calls or registrations; false: take traffic again")


def node_state(app) -> dict:
    """{draining, calls (answered), ringing, registrations, snapshot_version, ...}; KamailioRpcError when Kamailio
    does not answer."""
    items = app.kamailio.htable_items(TABLE)
    figures = {}
    for group in ("dialog:", "usrloc:"):  # one group per call: Kamailio 5.6 answers the first of several only
        stats = app.kamailio.call("stats.get_statistics", group)
        for line in stats if isinstance(stats, list) else []:
            name, _, value = str(line).partition(" = ")
            figures[name.strip()] = value.strip()

    def num(key: str) -> int:
        try:
            return int(float(figures.get(key, "0")))
        except ValueError:
            return 0

    s = app.settings
    return {
        "node": s.node_name,
        "datacenter": s.datacenter,
        "draining": str(items.get(KEY, "0")) == "1",
        "calls": num("dialog:active_dialogs"),
        "ringing": num("dialog:early_dialogs"),
        "registrations": num("usrloc:registered_users"),
        # the configuration version the node routes with (the routing snapshot it last published; in a cluster, all
        # nodes that see the same database show the same one — a node behind has not got the latest change yet)
        "snapshot_version": app.publisher.published_version,
        # a cluster's SIP node (docs/cluster.md): its DMQ peers as DMQ sees them, its data center's Redis
        "replication": {"peers_configured": len(s.dmq_peers), "peers": app.kamailio.dmq_peers()}
        if s.dmq_port
        else None,
        "shared_counters": {
            "redis": s.redis_address,
            "failures": _int(app.kamailio.htable_items(shm.SHARED.name).get(shm.SHARED_FAILURES)),
        }
        if s.redis_address
        else None,
        # recordings and mailboxes' changes shared through the cluster database (docs/cluster.md): the last change
        # applied here and how many are still to apply
        "shared_store": {"applied_to": app.shared_store.read_mark(), "behind": app.shared_store.behind}
        if app.shared_store is not None
        else None,
    }


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _state(ctx) -> dict:
    try:
        return node_state(ctx.app)
    except KamailioRpcError as exc:
        raise component_down("kamailio", exc) from None


@method("node.status", Params, errors=("forbidden", "unavailable"), perm=Perm.PLATFORM)
def status(ctx, p: Params):
    """This node now: draining or not, calls answered and ringing, registered users; in a cluster its replication
    peers and their state, and its data center's Redis for the fraud limits with the commands that failed there."""
    ctx.principal.require_platform()
    return _state(ctx)


@method("node.drain", Drain, errors=("invalid_params", "forbidden", "unavailable"), perm=Perm.PLATFORM)
def drain(ctx, p: Drain):
    """Drain this node for maintenance (on: true) or let it take traffic again (on: false). New requests are answered
    503 with Retry-After (node setting drain_retry_after_s) so phones and trunks use another server; calls in progress
    go on; emergency calls are still taken. Returns node.status."""
    ctx.principal.require_platform()
    try:
        ctx.app.kamailio.call("htable.seti", TABLE, KEY, 1 if p.on else 0)
    except KamailioRpcError as exc:
        raise component_down("kamailio", exc) from None
    return _state(ctx)
