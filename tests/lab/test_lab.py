"""The rollout lab itself (issue 19): hosts reachable by ssh as real ones are, their own files, a WAN between data
centers, and nothing left behind whatever happens."""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.lab.netlab import NET, PRIVATE_DIRS, ROOT, Lab, LabError, leftovers

pytestmark = pytest.mark.lab

# The lowest of three TCP connects from a host to another host's sshd, in ms (the round trip of a SYN).
PROBE = ("python3 -c \"import socket,sys,time\nts=[]\nfor _ in range(3):\n t=time.monotonic()\n"
         " try:\n  s=socket.create_connection((sys.argv[1],22),timeout=2); s.close(); ts.append(time.monotonic()-t)\n"
         " except OSError: pass\nprint(round(min(ts)*1000,2) if ts else -1)\" ")


def connect_ms(lab: Lab, src: str, dst: str) -> float:
    return float(lab.ssh(src, PROBE + lab.address(dst)).stdout.strip())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.build({"dc_fra": ["fra1", "fra2"], "dc_ber": ["ber1"]}, wan_delay_ms=20, base_dir=tmp_path_factory.mktemp("lab")) as lab:
        yield lab
    assert leftovers(lab.state.lab_id) == []


def test_each_host_answers_ssh_on_its_own_benchmarking_range_address(lab):
    for name, host in lab.state.hosts.items():
        assert ipaddress.ip_address(host.address) in NET
        out = lab.ssh(name, "hostname -I; echo $CALLMANAGER_LAB_HOST").stdout.split()
        assert out == [host.address, name]  # one address, its own; the session knows which lab host it is on


def test_each_host_has_its_own_callmanager_directories(lab):
    for path in PRIVATE_DIRS + ("/run/callmanager",):
        lab.ssh("fra1", f"echo fra1 > {path}/owner")
        assert lab.ssh("fra2", f"cat {path}/owner 2>/dev/null || echo none").stdout.strip() == "none", path
        assert not os.path.exists(f"{path}/owner"), path  # nor on the machine itself
        assert lab.ssh("fra1", f"cat {path}/owner").stdout.strip() == "fra1"


def test_data_centers_are_joined_by_a_wan_that_delays_each_way(lab):
    across = connect_ms(lab, "fra1", "ber1")
    assert across >= 2 * 20 - 1, across  # a SYN and its answer each cross the 20 ms link once
    assert connect_ms(lab, "ber1", "fra2") >= 39
    within = connect_ms(lab, "fra1", "fra2")
    assert 0 <= within < across  # the same data center: no WAN


def test_a_lossy_wan_drops_what_crosses_it_only(tmp_path):
    with Lab.build({"dc_a": ["a1", "a2"], "dc_b": ["b1"]}, wan_loss_pct=100, base_dir=tmp_path) as lab:
        assert connect_ms(lab, "a1", "b1") == -1  # every frame across is lost
        assert connect_ms(lab, "a1", "a2") >= 0


def test_an_exception_inside_the_lab_still_removes_everything(tmp_path):
    with pytest.raises(RuntimeError):
        with Lab.build({"dc_a": ["x1"], "dc_b": ["y1"]}, base_dir=tmp_path) as lab:
            lab_id = lab.state.lab_id
            raise RuntimeError("the test failed")
    assert leftovers(lab_id) == [] and not (tmp_path / lab_id).exists()


def test_a_build_that_fails_half_way_removes_what_it_made(tmp_path, monkeypatch):
    made = {}

    def broken(self, name, timeout=15.0):
        made["id"] = self.state.lab_id
        raise LabError(f"{name} never answered")

    monkeypatch.setattr(Lab, "_wait_ssh", broken)
    with pytest.raises(LabError):
        Lab.build({"dc_a": ["x1", "x2"], "dc_b": ["y1"]}, base_dir=tmp_path)
    assert leftovers(made["id"]) == [] and not (tmp_path / made["id"]).exists()


def test_a_lab_whose_process_is_killed_leaves_nothing(tmp_path):
    script = ("import sys, time\nfrom tests.lab.netlab import Lab\n"
              f"lab = Lab.build({{'dc_a': ['k1'], 'dc_b': ['k2']}}, base_dir={str(tmp_path)!r})\n"
              "print(lab.state.lab_id, flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        lab_id = proc.stdout.readline().strip()
        assert lab_id and leftovers(lab_id)  # it is up: namespaces, links, sshd
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while leftovers(lab_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(lab_id) == []


def test_bad_layouts_are_refused_before_anything_is_made(tmp_path):
    for layout in ({}, {"dc_a": []}, {"dc_a": ["x"], "dc_b": ["x"]}):
        with pytest.raises(LabError):
            Lab.build(layout, base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
