"""The one function through which the CLI calls the JSON-RPC API."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import httpx

from controlplane.node.settings import load_settings

_ids = itertools.count(1)


class RpcError(Exception):
    def __init__(self, error: dict):
        self.error = error
        data = error.get("data") or {}
        super().__init__(f"{error.get('message')} [{data.get('error_id', error.get('code'))}]")


def node_settings():
    """The settings of the node running from this checkout: the ones it wrote when it started (var/run/node-
    settings.json,
    so a node started on another port is found), else this environment's."""
    here = load_settings()
    started = here.run_dir / "node-settings.json"
    if started.exists():
        try:
            return load_settings(started)
        except (OSError, ValueError):
            pass
    return here


def default_url() -> str:
    return os.environ.get("CM_URL") or node_settings().api_url


def default_token() -> str | None:
    if os.environ.get("CM_TOKEN"):
        return os.environ["CM_TOKEN"]
    path = Path(node_settings().var_dir) / "admin.token"
    return path.read_text().strip() if path.exists() else None


def call(
    method: str, params: dict | None = None, *, url: str | None = None, token: str | None = None, timeout: float = 10.0
):
    body = {
        "jsonrpc": "2.0",
        "method": method,
        "params": {k: v for k, v in (params or {}).items() if v is not None},
        "id": next(_ids),
    }
    headers = {}
    tok = token or default_token()
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    resp = httpx.post(url or default_url(), json=body, headers=headers, timeout=timeout)
    resp.raise_for_status()
    data = resp.json()
    if "error" in data:
        raise RpcError(data["error"])
    return data["result"]
