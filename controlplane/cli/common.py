"""What every `cm` verb shares: the Typer app, the consoles, the global options, the RPC call and the table output.
The verbs live in main.py and the *_cli.py modules, which all import this one (and main imports them)."""

from __future__ import annotations

from typing import Any, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from . import client

app = typer.Typer(help="callmanager admin CLI (talks to the control plane's JSON-RPC API)", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
STATE: dict[str, Any] = {"json": False, "url": None, "token": None}


@app.callback()
def main(
    json_out: bool = typer.Option(False, "--json", help="print raw JSON results"),
    url: Optional[str] = typer.Option(None, help="API URL (default: $CM_URL or the node settings)"),
    token: Optional[str] = typer.Option(None, help="API token (default: $CM_TOKEN or var/admin.token)"),
):
    STATE.update(json=json_out, url=url, token=token)


def rpc(method: str, **params):
    try:
        return client.call(method, params, url=STATE["url"], token=STATE["token"])
    except client.RpcError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        details = (exc.error.get("data") or {}).get("details")
        if details:
            err_console.print_json(data=details)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err_console.print(f"[red]error:[/red] cannot reach the control plane: {exc}")
        raise typer.Exit(2) from None


def show(result, columns: list[str] | None = None, title: str = ""):
    if STATE["json"] or columns is None:
        console.print_json(data=result)
        return
    items = result["items"] if isinstance(result, dict) and "items" in result else [result]
    table = Table(title=title or None)
    for c in columns:
        table.add_column(c)
    for it in items:
        table.add_row(*["" if it.get(c) is None else str(it.get(c)) for c in columns])
    console.print(table)
    if isinstance(result, dict) and "total" in result:
        console.print(f"{len(items)} of {result['total']} shown (offset {result['offset']})")


def _area(name: str, help_: str) -> typer.Typer:
    sub = typer.Typer(help=help_, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub
