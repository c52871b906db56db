"""`cm`: the admin CLI. Same verbs as the JSON-RPC API (`cm <area> <verb>`), human output, `--json` for scripts.

Verbs that read configuration and verbs that ask the live node (call list) all go through the
API; nothing here touches the database.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Optional

import typer

from .common import STATE, _area, app, console, err_console, rpc, show  # noqa: F401  (app: the entry point)

from . import cluster_cli, fraud_cli, groups_cli, ivr_cli, routing_cli, tls_cli, voicemail_cli  # noqa: F401  (they register their verbs on app)

tenant = _area("tenant", "tenants (companies)")
user = _area("user", "users of a tenant")
sip = _area("sip-account", "SIP accounts (digest credentials) of users")
ext = _area("extension", "extensions routed to users")
token_cmd = _area("token", "API tokens")
call_cmd = _area("call", "calls in progress (live, from Kamailio and RTPengine)")
cdr_cmd = _area("cdr", "call detail records")

T_COLS = ["id", "name", "sip_domain", "enabled"]
U_COLS = ["id", "tenant_id", "name", "email", "role", "enabled"]
S_COLS = ["id", "user_id", "aor", "enabled", "password"]
E_COLS = ["id", "tenant_id", "number", "user_id"]


@tenant.command("create")
def tenant_create(name: str, sip_domain: str = typer.Option(..., help="the tenant's SIP domain, e.g. acme.example")):
    show(rpc("tenant.create", name=name, sip_domain=sip_domain), T_COLS)


@tenant.command("list")
def tenant_list(limit: int = 100, offset: int = 0):
    show(rpc("tenant.list", limit=limit, offset=offset), T_COLS)


@tenant.command("get")
def tenant_get(id: int):
    show(rpc("tenant.get", id=id), T_COLS)


@tenant.command("update")
def tenant_update(
    id: int,
    name: Optional[str] = None,
    sip_domain: Optional[str] = None,
    enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled"),
    require_tls: Optional[bool] = typer.Option(None, "--require-tls/--allow-plain-signalling", help="docs/tls.md"),
    require_srtp: Optional[bool] = typer.Option(None, "--require-srtp/--allow-plain-media", help="docs/tls.md"),
):
    show(
        rpc(
            "tenant.update",
            id=id,
            name=name,
            sip_domain=sip_domain,
            enabled=enabled,
            require_tls=require_tls,
            require_srtp=require_srtp,
        ),
        T_COLS,
    )


@tenant.command("delete")
def tenant_delete(id: int):
    show(rpc("tenant.delete", id=id))


@user.command("create")
def user_create(name: str, tenant_id: Optional[int] = None, email: Optional[str] = None, role: str = "user"):
    show(rpc("user.create", tenant_id=tenant_id, name=name, email=email, role=role), U_COLS)


@user.command("list")
def user_list(tenant_id: Optional[int] = None, role: Optional[str] = None, limit: int = 100, offset: int = 0):
    show(rpc("user.list", tenant_id=tenant_id, role=role, limit=limit, offset=offset), U_COLS)


@user.command("get")
def user_get(id: int):
    show(rpc("user.get", id=id), U_COLS)


@user.command("update")
def user_update(
    id: int,
    name: Optional[str] = None,
    email: Optional[str] = None,
    role: Optional[str] = None,
    enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled"),
):
    show(rpc("user.update", id=id, name=name, email=email, role=role, enabled=enabled), U_COLS)


@user.command("delete")
def user_delete(id: int):
    show(rpc("user.delete", id=id))


@sip.command("create")
def sip_create(
    user_id: int, username: str, password: Optional[str] = typer.Option(None, help="omit to generate one (shown once)")
):
    show(rpc("sip_account.create", user_id=user_id, username=username, password=password), S_COLS)


@sip.command("list")
def sip_list(tenant_id: Optional[int] = None, user_id: Optional[int] = None, limit: int = 100, offset: int = 0):
    show(rpc("sip_account.list", tenant_id=tenant_id, user_id=user_id, limit=limit, offset=offset), S_COLS)


@sip.command("get")
def sip_get(id: int):
    show(rpc("sip_account.get", id=id), S_COLS)


@sip.command("update")
def sip_update(
    id: int,
    password: Optional[str] = None,
    generate_password: bool = False,
    enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled"),
    require_tls: Optional[bool] = typer.Option(None, "--require-tls/--allow-plain-signalling", help="docs/tls.md"),
    require_srtp: Optional[bool] = typer.Option(None, "--require-srtp/--allow-plain-media", help="docs/tls.md"),
):
    show(
        rpc(
            "sip_account.update",
            id=id,
            password=password,
            generate_password=generate_password or None,
            enabled=enabled,
            require_tls=require_tls,
            require_srtp=require_srtp,
        ),
        S_COLS,
    )


@sip.command("delete")
def sip_delete(id: int):
    show(rpc("sip_account.delete", id=id))


@ext.command("create")
def ext_create(number: str, user_id: int):
    show(rpc("extension.create", number=number, user_id=user_id), E_COLS)


@ext.command("list")
def ext_list(tenant_id: Optional[int] = None, user_id: Optional[int] = None, limit: int = 100, offset: int = 0):
    show(rpc("extension.list", tenant_id=tenant_id, user_id=user_id, limit=limit, offset=offset), E_COLS)


@ext.command("get")
def ext_get(id: int):
    show(rpc("extension.get", id=id), E_COLS)


@ext.command("update")
def ext_update(id: int, number: Optional[str] = None, user_id: Optional[int] = None):
    show(rpc("extension.update", id=id, number=number, user_id=user_id), E_COLS)


@ext.command("delete")
def ext_delete(id: int):
    show(rpc("extension.delete", id=id))


@token_cmd.command("create")
def token_create(
    name: str,
    role: str = "admin",
    tenant_id: Optional[int] = None,
    user_id: Optional[int] = None,
    expires_at: Optional[str] = typer.Option(None, help="ISO time with zone when the token stops working"),
):
    made = rpc("token.create", name=name, role=role, tenant_id=tenant_id, user_id=user_id, expires_at=expires_at)
    show(made, ["id", "name", "role", "tenant_id", "user_id", "expires_at"])
    if not STATE["json"]:  # on a line of its own, never wrapped into a table cell: copied whole
        console.print(f"token (shown this once): {made['token']}", soft_wrap=True, highlight=False)


@token_cmd.command("list")
def token_list(tenant_id: Optional[int] = None):
    show(rpc("token.list", tenant_id=tenant_id), ["id", "name", "role", "tenant_id", "user_id", "created_at"])


@token_cmd.command("delete")
def token_delete(id: int):
    show(rpc("token.delete", id=id))


def _fmt_ts(ts) -> str:
    return "" if not ts else datetime.fromtimestamp(float(ts), timezone.utc).strftime("%H:%M:%S")


@call_cmd.command("list")
def call_list(tenant_id: Optional[int] = None):
    result = rpc("call.list", tenant_id=tenant_id)
    if STATE["json"]:
        show(result)
        return
    for c in result["items"]:
        c["started"] = _fmt_ts(c.get("start_ts"))
        c["answered"] = _fmt_ts(c.get("answer_ts"))
        m = c.get("media") or {}
        c["rtp_packets"] = m.get("packets") if m.get("relayed") else "no media session"
    show(
        result,
        ["call_id", "state", "tenant_id", "caller", "callee", "started", "answered", "rtp_packets"],
        "calls in progress",
    )


@cdr_cmd.command("list")
def cdr_list(
    tenant_id: Optional[int] = None,
    user_id: Optional[int] = None,
    disposition: Optional[str] = None,
    since: Optional[str] = typer.Option(None, help="ISO 8601 with zone, e.g. 2026-11-25T00:00:00Z"),
    until: Optional[str] = None,
    limit: int = 50,
    offset: int = 0,
    worst_media: bool = typer.Option(False, help="lowest MOS first (the calls RTPengine scored)"),
    max_mos: Optional[float] = typer.Option(None, help="only calls whose media scored at most this MOS"),
):
    show(
        rpc(
            "cdr.list",
            tenant_id=tenant_id,
            user_id=user_id,
            disposition=disposition,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            order="worst_media" if worst_media else "newest",
            max_mos=max_mos,
        ),
        [
            "start_time",
            "caller",
            "callee",
            "disposition",
            "sip_code",
            "duration_s",
            "pdd_s",
            "mos",
            "loss_pct",
            "jitter_ms",
            "call_id",
        ],
        "call detail records",
    )


@app.command("rpc")
def raw(
    method: str,
    params: list[str] = typer.Argument(None, help="a JSON object, or key=value (string) and key:=value (JSON) pairs"),
):
    """Call any API method: `cm rpc user.update id=7 outbound=national` or `cm rpc user.get '{"id": 7}'`."""
    try:
        p = parse_params(params or [])
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print_json(data=rpc(method, **p))


def parse_params(args: list[str]) -> dict:
    """'{...}' as one argument, or pairs: key=value is a string, key:=value is JSON (numbers, lists, true)."""
    if len(args) == 1 and args[0].lstrip().startswith("{"):
        try:
            return json.loads(args[0])
        except json.JSONDecodeError as exc:
            raise ValueError(f"params are not JSON: {exc}") from None
    out: dict = {}
    for arg in args:
        if ":=" in arg and arg.index(":=") < arg.index("=") + 1:
            key, _, value = arg.partition(":=")
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{key}:= needs a JSON value: {exc}") from None
        elif "=" in arg:
            key, _, value = arg.partition("=")
            out[key] = value
        else:
            raise ValueError(f"{arg!r} is neither key=value nor key:=json")
    return out


if __name__ == "__main__":
    app()
