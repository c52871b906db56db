"""A release installed from the controller's checkout on bare hosts (issue 19, long tier): `site.yml` with
callmanager_install_release packs HEAD, unpacks it under /opt/callmanager/releases/<commit> on each host (private per
lab host), makes its venv on Debian's Python and installs it from a wheelhouse (hosts without internet, as a carrier's
often are); the node then runs from that release, not from the controller's checkout."""
from __future__ import annotations

import subprocess
import sys

import pytest

from controlplane.node.settings import ROOT
from tests.lab.deployed import api, inventory, play, wait_until
from tests.lab.netlab import Lab, leftovers

pytestmark = [pytest.mark.lab, pytest.mark.long]

WHEELHOUSE = ROOT / "var" / "wheelhouse"


@pytest.fixture(scope="module")
def wheelhouse():
    """Every wheel the release needs, built on the controller (which reaches PyPI); kept under var/ for later runs."""
    if not (WHEELHOUSE / ".complete").exists():
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip"]
        subprocess.run([*pip, "wheel", "-q", "--wheel-dir", str(WHEELHOUSE), str(ROOT)], check=True, timeout=900)
        subprocess.run([*pip, "download", "-q", "--no-deps", "-d", str(WHEELHOUSE), "setuptools>=68", "wheel"], check=True, timeout=300)
        (WHEELHOUSE / ".complete").write_text("built by tests/lab/test_release.py\n")
    return WHEELHOUSE


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.build({"dc_fra": ["fra-sip1", "fra-media1"]}, base_dir=tmp_path_factory.mktemp("release")) as lab:
        yield lab
    assert leftovers(lab.state.lab_id) == []


def test_bare_hosts_run_the_release_installed_from_the_checkout(lab, wheelhouse, tmp_path):
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    release = {"callmanager_install_release": True, "callmanager_root": "/opt/callmanager/current",
               "callmanager_python": "/opt/callmanager/current/.venv/bin/python", "callmanager_wheelhouse": str(wheelhouse)}
    groups = {"sip_nodes": ["fra-sip1"], "media_nodes": ["fra-media1"]}
    inv = inventory(lab, tmp_path / "hosts.yml", groups=groups, **{h: release for h in lab.state.hosts})
    first = play("site", inv, tmp_path)
    assert first.ok, first.failures
    for host in lab.state.hosts:
        assert lab.ssh(host, "readlink /opt/callmanager/current").stdout.strip() == f"/opt/callmanager/releases/{commit}"
    # the processes run the release's code and venv, not the controller's checkout
    ps = lab.ssh("fra-sip1", "cat /proc/$(supervisorctl -c /etc/callmanager/supervisord.conf pid callmanager-controlplane)/cmdline | tr '\\0' ' '").stdout
    assert ps.startswith(f"/opt/callmanager/releases/{commit}/.venv/bin/python -m controlplane.server"), ps
    assert wait_until(lambda: api(lab, "fra-sip1", "node.status")["draining"] is False, 30, "the node answers")
    second = play("site", inv, tmp_path)
    assert second.ok and second.changed == 0, {h: r.changed for h, r in second.hosts.items()}
