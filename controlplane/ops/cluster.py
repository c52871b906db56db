"""Rolling out with Ansible, driven from Python (ansible-runner): the playbooks in ansible/playbooks/ against an
inventory, with live events for a progress view, per-host results, and the full event log kept on disk.

`cm cluster deploy|verify INVENTORY` is built on `run_playbook`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOKS = {"deploy": "site.yml", "site": "site.yml", "verify": "verify.yml", "upgrade": "upgrade.yml"}


@dataclass
class HostResult:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass
class RunResult:
    playbook: str
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, HostResult] = field(default_factory=dict)
    artifacts: str = ""  # the directory with the full event log
    failures: list[str] = field(default_factory=list)  # "host: task: message"

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())


def run_playbook(
    playbook: str,
    inventory: str | Path,
    *,
    extra_vars: dict | None = None,
    limit: str | None = None,
    on_event: Callable[[dict], None] | None = None,
    artifacts_dir: str | Path | None = None,
    vault_password_file: str | Path | None = None,
    timeout_s: int = 3600,
) -> RunResult:
    """Run one of ansible/playbooks/ against `inventory`; never raises for a failed run (see `RunResult.ok`)."""
    import ansible_runner

    path = ANSIBLE_DIR / "playbooks" / PLAYBOOKS.get(playbook, playbook)
    if not path.is_file():
        raise FileNotFoundError(f"no playbook {playbook!r} in {ANSIBLE_DIR / 'playbooks'}")
    base = Path(artifacts_dir or Path(os.environ.get("CALLMANAGER_VAR_DIR", ANSIBLE_DIR.parent / "var")) / "cluster")
    private = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.stem}-{os.getpid()}"
    private.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []

    def handler(event: dict) -> bool:
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            res = data.get("res") or {}
            why = (
                res.get("stderr")
                if res.get("msg") == "non-zero return code" and res.get("stderr")
                else res.get("msg") or res.get("stderr")
            )
            failures.append(f"{data.get('host')}: {data.get('task')}: {(why or '')[:300]}")
        if on_event is not None:
            on_event(event)
        return True

    cmdline = f"--vault-password-file {vault_password_file}" if vault_password_file else None
    # this environment's ansible-playbook first
    path_env = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    r = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(path),
        inventory=str(Path(inventory).resolve()),
        extravars=extra_vars or {},
        limit=limit,
        quiet=True,
        event_handler=handler,
        timeout=timeout_s,
        cmdline=cmdline,
        envvars={
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": path_env,
        },
    )
    hosts: dict[str, HostResult] = {}
    stats = r.stats or {}
    for key, attr in (
        ("ok", "ok"),
        ("changed", "changed"),
        ("failures", "failed"),
        ("dark", "unreachable"),
        ("skipped", "skipped"),
    ):
        for host, n in (stats.get(key) or {}).items():
            setattr(hosts.setdefault(host, HostResult()), attr, n)
    if r.rc != 0 and not failures:  # refused before any host ran (a playbook or role Ansible cannot load): say why
        try:
            out = r.stdout.read()
        except (AttributeError, OSError, ValueError):
            out = ""
        errors = [
            ln.strip()
            for ln in out.splitlines()
            if ln.startswith("ERROR!") or "appears to be in" in ln or "Syntax Error" in ln
        ]
        failures.append(f"ansible: {(' '.join(errors[:3]) if errors else out.strip()[-300:]) or f'exit code {r.rc}'}")
    return RunResult(path.name, r.status, r.rc, hosts, str(private), failures)
