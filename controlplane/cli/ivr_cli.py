"""`cm ivr`: IVR menus (docs/media.md). Every verb calls the `ivr.*` method of the same meaning; an action is written
KEY=KIND[:TARGET] (`1=extension:202`, `2=menu:7`, `8=mailbox:3`, `9=hangup`, `timeout=repeat`)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import List, Optional

import typer

from .common import _area, rpc, show

ivr = _area("ivr", "IVR menus: actions by key, recordings")

COLS = ["id", "name", "extension", "actions", "numbers", "recordings"]
ACTION_HELP = "KEY=KIND[:TARGET], repeatable: 1=extension:202, 2=menu:7, 8=mailbox:3, 9=hangup, #=back"


def parse_actions(specs: list[str] | None) -> list[dict] | None:
    """`1=extension:202` -> {"key": "1", "kind": "extension", "target": "202"}; the API checks the rest."""
    if not specs:
        return None
    out = []
    for spec in specs:
        key, sep, rest = spec.partition("=")
        if not sep or not key or not rest:
            raise typer.BadParameter(f"{spec!r}: write KEY=KIND[:TARGET], e.g. 1=extension:202")
        kind, _, target = rest.partition(":")
        out.append({"key": key.strip(), "kind": kind.strip(), "target": target.strip()})
    return out


def _rows(result):
    items = result["items"] if "items" in result else [result]
    for m in items:
        m["actions"] = " ".join(
            f"{a['key']}={a['kind']}" + (f":{a['target']}" if a["target"] else "") for a in m["actions"]
        )
        m["numbers"] = " ".join(m.get("numbers", []))
        m["recordings"] = " ".join(sorted(m.get("recordings", {})))
    return result


def _menu(given: dict) -> dict:
    return {k: given[k] for k in ("extension", "timeout_s", "tries", "time_plan_id", "other_menu_id", "when")}


def _send(method: str, action: list[str] | None, **params) -> None:
    show(_rows(rpc(method, actions=parse_actions(action), **params)), COLS)


@ivr.command("create")
def create(
    name: str,
    action: Optional[List[str]] = typer.Option(None, "--action", "-a", help=ACTION_HELP),
    extension: Optional[str] = typer.Option(None, help="its own extension"),
    timeout_s: Optional[int] = typer.Option(None, help="waiting for a key after the menu"),
    tries: Optional[int] = typer.Option(None, help="rounds without a choice before goodbye"),
    time_plan_id: Optional[int] = typer.Option(None, help="with --other-menu-id: which menu a call enters"),
    other_menu_id: Optional[int] = None,
    when: Optional[str] = typer.Option(None, help="out (default): the other menu outside the plan's times; in"),
    tenant_id: Optional[int] = None,
):
    _send("ivr.create", action, name=name, tenant_id=tenant_id, **_menu(locals()))


@ivr.command("update")
def update(
    id: int,
    action: Optional[List[str]] = typer.Option(None, "--action", "-a", help=ACTION_HELP + " (replaces them all)"),
    name: Optional[str] = None,
    extension: Optional[str] = None,
    timeout_s: Optional[int] = None,
    tries: Optional[int] = None,
    time_plan_id: Optional[int] = None,
    other_menu_id: Optional[int] = None,
    when: Optional[str] = None,
):
    _send("ivr.update", action, id=id, name=name, **_menu(locals()))


@ivr.command("list")
def list_(tenant_id: Optional[int] = None):
    show(_rows(rpc("ivr.list", tenant_id=tenant_id)), COLS)


@ivr.command("show")
def get(id: int):
    show(rpc("ivr.get", id=id))


@ivr.command("delete")
def delete(id: int):
    show(rpc("ivr.delete", id=id))


@ivr.command("recording")
def recording(
    id: int,
    file: Path = typer.Argument(..., help="a PCM WAV file (converted to 8 kHz mono)"),
    key: Optional[str] = typer.Option(None, help="an action's recording; none: the menu's"),
):
    data = base64.b64encode(file.read_bytes()).decode()
    show(rpc("ivr.recording_upload", id=id, key=key, data_base64=data))


@ivr.command("recording-delete")
def recording_delete(id: int, key: Optional[str] = None):
    show(rpc("ivr.recording_delete", id=id, key=key))


@ivr.command("personal")
def personal(
    user_id: int,
    message: bool = typer.Option(False, help="1: leave a message in the user's mailbox"),
    mobile: bool = typer.Option(False, help="2: the user's mobile"),
    assistant: str = typer.Option("", help="3: the assistant's extension"),
    colleague: str = typer.Option("", help="4: a colleague's extension"),
    department: str = typer.Option("", help="5: the department's extension"),
    switchboard: str = typer.Option("", help="0: the switchboard's extension"),
    show_only: bool = typer.Option(False, "--show", help="show the user's personal IVR, change nothing"),
):
    """A user's personal IVR (IVR-06): switch its standard choices on; forward calls to it with
    `cm forwarding add USER no_answer --to-menu MENU`."""
    if show_only:
        show(rpc("ivr.personal_get", user_id=user_id))
        return
    show(
        rpc(
            "ivr.personal_set",
            user_id=user_id,
            message=message,
            mobile=mobile,
            assistant=assistant,
            colleague=colleague,
            department=department,
            switchboard=switchboard,
        )
    )
