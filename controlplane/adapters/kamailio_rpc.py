"""Kamailio's JSON-RPC (jsonrpcs over HTTP). All RPC to Kamailio goes through `call`."""

from __future__ import annotations

import time

import httpx
from jsonrpcclient import Error, Ok, parse, request

from kemi.policy.cluster import made_here


class KamailioRpcError(RuntimeError):
    pass


RPC_KEY_HEADER = "X-Callmanager-Rpc-Key"  # Kamailio's RPC listener answers only requests that carry the node's secret


class KamailioRpc:
    def __init__(self, url: str, timeout: float = 2.0, secret: str = "", node_index: int = 0, node_count: int = 1):
        self.url = url
        self.timeout = timeout
        self.node = (node_index, node_count)  # this node's place among the cluster's SIP nodes: which dialogs it made
        # one client, kept: a new one per call built an SSL context each time (measured: a third of the
        # fraud monitor's CPU). httpx clients may be shared between threads.
        self._client = httpx.Client(timeout=timeout, headers={RPC_KEY_HEADER: secret} if secret else None)

    def call(self, method: str, *params):
        try:
            resp = self._client.post(
                self.url, json=request(method, params=tuple(params)) if params else request(method)
            )
            resp.raise_for_status()
            parsed = parse(resp.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise KamailioRpcError(f"Kamailio RPC {method} at {self.url} failed: {exc}") from exc
        if isinstance(parsed, Error):
            raise KamailioRpcError(f"Kamailio RPC {method} failed: {parsed.message}")
        assert isinstance(parsed, Ok)
        return parsed.result

    def dialogs(self, copies: bool = False) -> list[dict]:
        """The node's dialogs; in a cluster only those it made, unless `copies` (the other nodes' dialogs replicated
        here by DMQ, which this node serves only after taking over its pair's address): each call is counted by the
        node that made it."""
        result = [d for d in (self.call("dlg.list") or []) if isinstance(d, dict)]
        if copies or self.node[1] <= 1:
            return result
        return [d for d in result if made_here(_number(d.get("h_id")), *self.node)]

    def htable_items(self, table: str) -> dict[str, object]:
        """All items of one of Kamailio's htables, {name: value}, in one RPC (htable.dump nests them in slots)."""
        items: dict[str, object] = {}
        stack = [self.call("htable.dump", table)]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "name" in node and "value" in node:
                    items[str(node["name"])] = node["value"]
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return items

    def dmq_peers(self) -> list[dict]:
        """The other nodes DMQ knows, [{"address": "host:port", "state": "active" | "pending" | ...}] (not itself)."""
        out = []
        for n in self.call("dmq.list_nodes") or []:
            if isinstance(n, dict) and not n.get("local"):
                out.append(
                    {"address": f"{n.get('host', '')}:{n.get('port', '')}", "state": str(n.get("status", "unknown"))}
                )
        return sorted(out, key=lambda n: n["address"])

    def instance(self) -> tuple[int, float]:
        """Which run of Kamailio answers: its main process's PID and when it started (epoch seconds, from core.uptime;
        whole seconds, so it moves by a second or so between calls)."""
        try:
            ps = self.call("core.ps") or []
            return int(ps[0]), time.time() - float((self.call("core.uptime") or {}).get("uptime", 0))
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise KamailioRpcError(f"Kamailio RPC core.ps/core.uptime answered something unreadable: {exc}") from exc

    def registrations(self) -> list[dict]:
        out = []
        for dom in (self.call("ul.dump", "brief") or {}).get("Domains", []):
            for aor in dom.get("Domain", {}).get("AoRs", []):
                out.append(aor)
        return out


def _number(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class RestartWatch:
    """Tells whether Kamailio restarted (lost its shared memory) since the last look: True on the first look. A new
    main process or a start time moved by more than `slack_s` is a restart (the PID alone could come round again)."""

    def __init__(self, kamailio: KamailioRpc, slack_s: float = 5.0):
        self.kamailio, self.slack_s = kamailio, slack_s
        self._seen: tuple[int, float] | None = None

    def restarted(self) -> bool:
        """Raises KamailioRpcError when Kamailio does not answer (nothing learnt: asked again next time)."""
        pid, started = self.kamailio.instance()
        new = self._seen is None or pid != self._seen[0] or abs(started - self._seen[1]) > self.slack_s
        self._seen = (pid, started)
        return new
