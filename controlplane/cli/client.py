"""The one function through which the CLI calls the JSON-RPC API."""

from __future__ import annotations

import itertools
import os
import ssl
from pathlib import Path

import httpx
from jsonrpcclient import Error, Ok, parse, request

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


def default_verify(url: str | None) -> str | bool:
    """What the API's certificate is checked against: CM_CA if set, else (for this node's own URL) what its settings
    say — the node's self-signed certificate itself, or its CA file — else the system's CAs."""
    if os.environ.get("CM_CA"):
        return os.environ["CM_CA"]
    settings = node_settings()
    return settings.api_verify if url in (None, settings.api_url) else True


def call(
    method: str,
    params: dict | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float = 10.0,
    verify: str | bool | None = None,
):
    """One JSON-RPC request (jsonrpcclient builds and parses it, as in the Kamailio adapter): the result, or RpcError
    with the API's error (its data names the error_id). `verify`: the CA file an HTTPS API's certificate is checked
    against (default: default_verify)."""
    body = request(method, params={k: v for k, v in (params or {}).items() if v is not None}, id=next(_ids))
    headers = {}
    tok = token or default_token()
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    check = default_verify(url) if verify is None else verify
    tls = ssl.create_default_context(cafile=check) if isinstance(check, str) else check  # httpx takes a context
    resp = httpx.post(url or default_url(), json=body, headers=headers, timeout=timeout, verify=tls)
    resp.raise_for_status()
    reply = parse(resp.json())
    if isinstance(reply, Error):
        raise RpcError({"code": reply.code, "message": reply.message, "data": reply.data})
    if not isinstance(reply, Ok):  # one request, one response: a list here is the server's mistake
        raise RpcError({"code": -32603, "message": "a batch answered a single request", "data": {}})
    return reply.result
