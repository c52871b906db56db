"""Kamailio's JSON-RPC (jsonrpcs over HTTP). All RPC to Kamailio goes through `call`."""

from __future__ import annotations

import httpx
from jsonrpcclient import Error, Ok, parse, request


class KamailioRpcError(RuntimeError):
    pass


RPC_KEY_HEADER = "X-Callmanager-Rpc-Key"  # Kamailio's RPC listener answers only requests that carry the node's secret


class KamailioRpc:
    def __init__(self, url: str, timeout: float = 2.0, secret: str = ""):
        self.url = url
        self.timeout = timeout
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

    def dialogs(self) -> list[dict]:
        result = self.call("dlg.list")
        return list(result or [])

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

    def registrations(self) -> list[dict]:
        out = []
        for dom in (self.call("ul.dump", "brief") or {}).get("Domains", []):
            for aor in dom.get("Domain", {}).get("AoRs", []):
                out.append(aor)
        return out
