"""`cm group` and `cm agent`: hunt groups, their rings and members, agents logging in and out.

Rings are given as `--ring STRATEGY:WAIT:USER,USER,...` (in order); everything else the API
takes is reachable with `cm rpc group.update id=7 key=value key:=json`.
"""

from __future__ import annotations

from typing import Optional

import typer

from .common import _area, rpc, show

group = _area("group", "hunt groups: rings, members, queue, screening, status")
agent = _area("agent", "agents: log in to / out of hunt groups")

G_COLS = ["id", "tenant_id", "name", "extension", "queue_s", "max_waiting", "presentation", "wrapup_s", "status"]


def _rings(specs: list[str]) -> list[dict]:
    rings = []
    for spec in specs:
        try:
            strategy, wait, members = spec.split(":", 2)
            rings.append(
                {
                    "strategy": strategy,
                    "wait_s": int(wait),
                    "members": [{"user_id": int(u)} for u in members.split(",") if u],
                }
            )
        except ValueError:
            raise typer.BadParameter(f"{spec!r}: expected STRATEGY:WAIT_S:USER,USER (e.g. top_down:20:7,8,9)") from None
    return rings


@group.command("create")
def group_create(
    name: str,
    extension: str,
    ring: list[str] = typer.Option(..., "--ring", help="STRATEGY:WAIT_S:USER,USER — repeat for each ring, in order"),
    tenant_id: Optional[int] = None,
    queue_s: Optional[int] = None,
    overflow_user_id: Optional[int] = None,
    overflow_number: Optional[str] = None,
    overflow_group_id: Optional[int] = None,
    wrapup_s: Optional[int] = None,
    presentation: Optional[str] = typer.Option(None, help="caller, group or clir"),
):
    """Create a group with its rings."""
    show(
        rpc(
            "group.create",
            tenant_id=tenant_id,
            name=name,
            extension=extension,
            rings=_rings(ring),
            queue_s=queue_s,
            overflow_user_id=overflow_user_id,
            overflow_number=overflow_number,
            overflow_group_id=overflow_group_id,
            wrapup_s=wrapup_s,
            presentation=presentation,
        ),
        G_COLS,
    )


@group.command("rings")
def group_rings(
    id: int, ring: list[str] = typer.Option(..., "--ring", help="STRATEGY:WAIT_S:USER,USER — the new rings, in order")
):
    """Replace a group's rings (members and strategies)."""
    show(rpc("group.update", id=id, rings=_rings(ring)), G_COLS)


@group.command("list")
def group_list(tenant_id: Optional[int] = None, limit: int = 100, offset: int = 0):
    show(rpc("group.list", tenant_id=tenant_id, limit=limit, offset=offset), G_COLS)


@group.command("get")
def group_get(id: int):
    show(rpc("group.get", id=id))


@group.command("status")
def group_status(
    id: int,
    value: str = typer.Argument(..., help="online, away or dnd (night service: the group's forwarding applies)"),
):
    """Set the group's own status; live at once."""
    show(rpc("group.update", id=id, status=value), G_COLS)


@group.command("preview")
def group_preview(id: int):
    """Which rings and members a call would reach now, and why."""
    show(rpc("group.preview", id=id))


@group.command("delete")
def group_delete(id: int):
    show(rpc("group.delete", id=id))


@agent.command("login")
def agent_login(group_id: int, user_id: int):
    show(rpc("agent.login", group_id=group_id, user_id=user_id))


@agent.command("logout")
def agent_logout(group_id: int, user_id: int):
    show(rpc("agent.logout", group_id=group_id, user_id=user_id))
