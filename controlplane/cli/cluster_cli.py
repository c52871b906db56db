"""`cm cluster`: roll callmanager out to hosts with Ansible (ansible/playbooks) — deploy, verify, status.

Runs through ansible-runner with a live view (host x task, changed and failed counts) and a summary table; the full
event log stays on disk (the path is printed); the exit code is 1 when anything failed or was unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table

from .common import _area, console, err_console

cluster = _area("cluster", "roll out to hosts with Ansible: deploy, verify, status (docs/operations.md)")


def _table(title: str, rows: dict[str, dict]) -> Table:
    t = Table(title=title)
    for col in ("host", "task", "ok", "changed", "failed", "unreachable"):
        t.add_column(col)
    for host, r in sorted(rows.items()):
        t.add_row(
            host,
            r.get("task", ""),
            str(r.get("ok", 0)),
            str(r.get("changed", 0)),
            str(r.get("failed", 0)),
            str(r.get("unreachable", 0)),
        )
    return t


def _run(playbook: str, inventory: Path, limit: Optional[str], vault_password_file: Optional[Path]) -> None:
    from controlplane.ops.cluster import run_playbook

    if not inventory.exists():
        err_console.print(f"[red]error:[/red] no inventory at {inventory}")
        raise typer.Exit(2)
    rows: dict[str, dict] = {}
    counters = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}
    with Live(_table(playbook, rows), console=console, refresh_per_second=4, transient=True) as live:

        def on_event(event: dict) -> None:
            data = event.get("event_data") or {}
            host = data.get("host")
            if not host:
                return
            row = rows.setdefault(host, {})
            row["task"] = (data.get("task") or "")[:60]
            kind = counters.get(event.get("event", ""))
            if kind:
                row[kind] = row.get(kind, 0) + 1
                if kind == "ok" and (data.get("res") or {}).get("changed"):
                    row["changed"] = row.get("changed", 0) + 1
            live.update(_table(playbook, rows))

        result = run_playbook(
            playbook, inventory, limit=limit, on_event=on_event, vault_password_file=vault_password_file
        )
    summary = {
        h: {"task": "", "ok": r.ok, "changed": r.changed, "failed": r.failed, "unreachable": r.unreachable}
        for h, r in result.hosts.items()
    }
    console.print(_table(f"{result.playbook}: {result.status}", summary))
    for line in result.failures:
        err_console.print(f"[red]failed:[/red] {line}")
    console.print(f"event log: {result.artifacts}")
    if not result.ok:
        raise typer.Exit(1)


@cluster.command("deploy")
def deploy(
    inventory: Path,
    limit: Optional[str] = typer.Option(None, help="only these hosts or groups"),
    vault_password_file: Optional[Path] = typer.Option(None, help="Ansible Vault password file"),
):
    """Bring every host of INVENTORY to what it should be (ansible/playbooks/site.yml); a second run changes nothing."""
    _run("site", inventory, limit, vault_password_file)


@cluster.command("upgrade")
def upgrade(
    inventory: Path,
    limit: Optional[str] = typer.Option(None, help="only these hosts or groups"),
    vault_password_file: Optional[Path] = typer.Option(None, help="Ansible Vault password file"),
):
    """Rolling upgrade of the SIP nodes (ansible/playbooks/upgrade.yml): one at a time drained (503 + Retry-After),
    its calls left to end (up to upgrade_drain_timeout_s), upgraded, verified, back in service; the first node that
    fails stops the roll and the rest stay untouched."""
    _run("upgrade", inventory, limit, vault_password_file)


@cluster.command("verify")
def verify(
    inventory: Path,
    limit: Optional[str] = typer.Option(None, help="only these hosts or groups"),
    vault_password_file: Optional[Path] = typer.Option(None, help="Ansible Vault password file"),
):
    """Health checks only (ansible/playbooks/verify.yml): changes nothing."""
    _run("verify", inventory, limit, vault_password_file)


@cluster.command("promote-db")
def promote_db(
    database_url: str = typer.Option(
        ...,
        help="the replica to promote, as a role allowed to promote it, e.g. "
        "postgresql://postgres@/postgres?host=/var/run/postgresql on the replica's host",
    ),
    wait_s: int = typer.Option(60, help="seconds to wait for the promotion to finish"),
):
    """Make the PostgreSQL replica the primary (after the primary is lost). The control planes follow by themselves:
    their database URL names both servers (docs/cluster.md). Never bring the old primary back as a primary: rebuild it
    as a replica of the new one."""
    from controlplane.ops.cluster_db import PromoteError, promote

    try:
        console.print(promote(database_url, wait_s))
    except PromoteError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@cluster.command("status")
def status(
    inventory: Path, vault_password_file: Optional[Path] = typer.Option(None, help="Ansible Vault password file")
):
    """The hosts of INVENTORY by data center and function (from the inventory itself)."""
    import json
    import subprocess
    import sys

    from controlplane.ops.cluster import ANSIBLE_DIR

    vault = ["--vault-password-file", str(vault_password_file)] if vault_password_file else []
    r = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list", *vault],
        capture_output=True,
        text=True,
        env={
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        },
    )
    if r.returncode != 0:
        err_console.print(f"[red]error:[/red] {r.stderr.strip()[-500:]}")
        raise typer.Exit(2)
    inv = json.loads(r.stdout)
    hostvars = inv.get("_meta", {}).get("hostvars", {})
    t = Table(title=str(inventory))
    for col in ("host", "address", "data center", "groups"):
        t.add_column(col)
    groups = {g: set(v.get("hosts", [])) for g, v in inv.items() if isinstance(v, dict) and g not in ("_meta", "all")}
    for host, v in sorted(hostvars.items()):
        t.add_row(
            host,
            str(v.get("ansible_host", "")),
            str(v.get("callmanager_datacenter", "")),
            ", ".join(sorted(g for g, members in groups.items() if host in members and not g.startswith("dc_"))),
        )
    console.print(t)
