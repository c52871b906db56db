"""Kamailio's JSON-RPC (jsonrpcs over HTTP). All RPC to Kamailio goes through `call`."""
from __future__ import annotations

import httpx
from jsonrpcclient import Error, Ok, parse, request


class KamailioRpcError(RuntimeError):
    pass


class KamailioRpc:
    def __init__(self, url: str, timeout: float = 2.0):
        self.url = url
        self.timeout = timeout

    def call(self, method: str, *params):
        try:
            resp = httpx.post(self.url, json=request(method, params=list(params)) if params else request(method), timeout=self.timeout)
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

    def registrations(self) -> list[dict]:
        out = []
        for dom in (self.call("ul.dump", "brief") or {}).get("Domains", []):
            for aor in dom.get("Domain", {}).get("AoRs", []):
                out.append(aor)
        return out
