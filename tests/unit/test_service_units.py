"""Every service the roles define becomes a systemd unit that systemd itself accepts (systemd-analyze verify), with
the settings the issue asks of a carrier's units: the process group killed, restarted on failure, limits, a user."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "ansible" / "roles"


def services() -> list[tuple[str, dict]]:
    """(role, common_service) of every role that runs a service through common/tasks/service.yml."""
    found = []
    for tasks in sorted(ROLES.glob("*/tasks/main.yml")):
        for task in yaml.safe_load(tasks.read_text()) or []:
            inc = task.get("ansible.builtin.include_role") or {}
            if inc.get("tasks_from") == "service":
                found.append((tasks.parents[1].name, task["vars"]["common_service"]))
    return found


def render(service: dict, tmp: Path) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)  # as Ansible's template module
    context = {"callmanager_python": "/usr/bin/python3", "callmanager_root": "/", "callmanager_settings_file": "/etc/callmanager/node-settings.json",
               "callmanager_etc_dir": "/etc/callmanager", "callmanager_lib_dir": "/var/lib/callmanager", "callmanager_user": "root",
               "ansible_host": "198.18.1.11", "prometheus_port": 9090, "prometheus_retention": "15d", "postgresql_port": 5432,
               "postgresql_bin": "/usr/lib/postgresql/15/bin", "redis_port": 6379, "callmanager_run_dir": "/run/callmanager"}
    concrete = yaml.safe_load(env.from_string(yaml.safe_dump(service)).render(**context))
    return env.from_string((ROLES / "common" / "templates" / "systemd.service.j2").read_text()).render(common_service=concrete, **context)


@pytest.fixture(autouse=True)
def systemd_analyze():
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is not installed — `make test` installs it (package systemd)", pytrace=False)


def test_every_role_service_is_a_unit_systemd_accepts(tmp_path):
    found = services()
    assert {role for role, _ in found} >= {"rtpengine", "kamailio", "controlplane", "prometheus"}
    for role, service in found:
        text = render(service, tmp_path)
        for line in ("KillMode=control-group", "Restart=on-failure", "LimitNOFILE=", "User=", "TimeoutStopSec="):
            assert line in text, (role, line)
        unit = tmp_path / f"callmanager-{service['name']}.service"
        unit.write_text(text)
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        complaints = [ln for ln in (done.stdout + done.stderr).splitlines() if str(unit) in ln]
        assert done.returncode == 0 and not complaints, (role, done.stdout + done.stderr)


def test_the_check_can_fail(tmp_path):
    unit = tmp_path / "callmanager-x.service"
    unit.write_text(render({"name": "x", "description": "x", "command": "/usr/bin/true"}, tmp_path).replace("KillMode=control-group", "KillMode=sometimes"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert "kill mode" in (done.stdout + done.stderr)
