"""`rpc.discover`: the API as an OpenRPC document, generated from the method registry."""

from __future__ import annotations

from controlplane.api.errors import ALL_ERRORS
from controlplane.api.rpc import REGISTRY, method


def openrpc_document() -> dict:
    methods = []
    for spec in sorted(REGISTRY.methods.values(), key=lambda m: m.name):
        schema = spec.params.model_json_schema()
        required = set(schema.get("required", []))
        defs = schema.get("$defs", {})
        params = []
        for name, prop in schema.get("properties", {}).items():
            p = {"name": name, "required": name in required, "schema": dict(prop, **({"$defs": defs} if defs else {}))}
            if prop.get("description"):
                p["description"] = prop["description"]
            params.append(p)
        errs = [e for e in ALL_ERRORS if e.error_id in spec.errors]
        methods.append(
            {
                "name": spec.name,
                "summary": spec.summary,
                "description": (
                    "needs no token"
                    if spec.public
                    else f"needs a token with the permission {spec.perm.value}"
                    if spec.perm
                    else "any token"
                ),
                "paramStructure": "by-name",
                "params": params,
                "result": {"name": "result", "schema": {"type": "object"}},
                "errors": [{"code": e.code, "message": e.message, "data": {"error_id": e.error_id}} for e in errs],
            }
        )
    return {
        "openrpc": "1.2.6",
        "info": {
            "title": "callmanager admin API",
            "version": "1",
            "description": "JSON-RPC 2.0 over HTTP POST /rpc; token in 'Authorization: Bearer <token>'. "
            "Every error carries data.error_id.",
        },
        "servers": [{"name": "this node", "url": "/rpc"}],
        "methods": methods,
    }


@method("rpc.discover", public=True, perm=None)
def discover(ctx, p):
    """This API as an OpenRPC document."""
    return openrpc_document()
