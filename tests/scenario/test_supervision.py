"""A component that dies is restarted, not the whole node (issue 17): the node runner of `make run`, started as a user
starts it, and each component killed with SIGKILL under call load (Kamailio: its whole process group)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from controlplane.cli import client
from controlplane.node.processes import read_pid
from controlplane.node.settings import ROOT
from tests.harness.node import TestNode
from tests.harness.sipp import Sipp

from .conftest import wait_for

DOMAIN = "supervised.example"


class Runner:
    """`python -m controlplane.node.run start --config FILE` in the background, its output kept."""

    def __init__(self, var: Path):
        self.settings = TestNode(var, prometheus=True, prometheus_scrape_interval_s=1.0).settings
        self.config = var.parent / "node.json"
        self.config.write_text(self.settings.to_json())
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "controlplane.node.run", "start", "--config", str(self.config)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        assert wait_for(lambda: any("is running" in x for x in self.lines) or self.proc.poll() is not None, timeout=60), self.output()
        assert self.proc.poll() is None, self.output()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def pid(self, name: str) -> int | None:
        return read_pid(self.settings.run_dir / f"{name}.pid")

    def rpc(self, method: str, **params):
        token = (self.settings.var / "admin.token").read_text().strip()
        return client.call(method, params, url=self.settings.api_url, token=token)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for name in ("prometheus", "kamailio", "controlplane", "rtpengine"):  # anything left (it should not be)
            pid = self.pid(name)
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def runner(tmp_path_factory, real_components):
    r = Runner(tmp_path_factory.mktemp("supervised") / "var")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def phones(runner, tmp_path_factory):
    sipp = Sipp((runner.settings.sip_address, runner.settings.sip_port), tmp_path_factory.mktemp("sipp"))
    tenant = runner.rpc("tenant.create", name="Supervised AG", sip_domain=DOMAIN)
    made = []
    for i, ext in enumerate(("701", "702")):
        user = runner.rpc("user.create", tenant_id=tenant["id"], name=f"Sup {i}")
        runner.rpc("sip_account.create", user_id=user["id"], username=f"sup{i}", password=f"sup-secret-{i}")
        runner.rpc("extension.create", number=ext, user_id=user["id"])
        made.append((user, sipp.phone(f"sup{i}", DOMAIN, f"sup-secret-{i}")))
    time.sleep(1.0)
    return sipp, made


def _kill(runner: Runner, name: str) -> int:
    pid = runner.pid(name)
    assert pid
    if name == "kamailio":
        os.killpg(pid, signal.SIGKILL)  # the whole process group: main process and every worker
    else:
        os.kill(pid, signal.SIGKILL)
    return pid


def _restarted(runner: Runner, name: str, old: int, timeout: float = 40.0) -> bool:
    return bool(wait_for(lambda: runner.pid(name) not in (None, old) and f"{name} restarted" in "\n".join(runner.lines), timeout=timeout))


def _others(runner: Runner, name: str) -> dict[str, int | None]:
    return {n: runner.pid(n) for n in ("rtpengine", "controlplane", "kamailio", "prometheus") if n != name}


def _callee_answering(sipp, callee):
    assert sipp.register(callee).ok
    return sipp.answering_server(callee, timeout_s=120)


def _total_cdrs(runner, user_id: int) -> int:
    return runner.rpc("cdr.list", user_id=user_id, limit=1)["total"]


def test_the_control_plane_killed_under_load_is_restarted_calls_go_on_and_every_cdr_is_stored_once(runner, phones):
    sipp, ((caller, caller_phone), (callee, callee_phone)) = phones
    uas = _callee_answering(sipp, callee_phone)
    try:
        before = _total_cdrs(runner, callee["id"])
        others = _others(runner, "controlplane")
        result = {}
        load = threading.Thread(target=lambda: result.setdefault("r", sipp.load([caller_phone], "702", calls=300, rate=30, timeout_s=60)))
        load.start()
        time.sleep(2.0)
        old = _kill(runner, "controlplane")
        assert _restarted(runner, "controlplane", old), runner.output()
        load.join(90)
        assert result["r"].ok, result["r"].output[-1500:]  # Kamailio routed every call while the control plane was away
        assert runner.proc.poll() is None and _others(runner, "controlplane") == others
        # the calls' records, spooled while nobody ingested them, are stored once each
        assert wait_for(lambda: _total_cdrs(runner, callee["id"]) - before >= 300, timeout=20)
        time.sleep(1.0)
        assert _total_cdrs(runner, callee["id"]) - before == 300
    finally:
        uas.terminate()
        uas.wait(10)


@pytest.mark.parametrize("name", ["rtpengine", "prometheus", "kamailio"])
def test_a_killed_component_is_restarted_alone_and_new_calls_succeed(runner, phones, name):
    sipp, ((caller, caller_phone), (callee, callee_phone)) = phones
    uas = _callee_answering(sipp, callee_phone)
    try:
        others = _others(runner, name)
        load = threading.Thread(target=lambda: sipp.load([caller_phone], "702", calls=100, rate=20, timeout_s=40))
        load.start()
        time.sleep(1.5)
        old = _kill(runner, name)
        assert _restarted(runner, name, old), runner.output()
        load.join(60)
        assert runner.proc.poll() is None, runner.output()
        assert _others(runner, name) == others  # nobody else was restarted
        if name == "kamailio":  # its registrations lived in its memory: the phone registers again, as phones do
            uas.terminate()
            uas.wait(10)
            uas = _callee_answering(sipp, callee_phone)

        def call_ok():
            return sipp.load([caller_phone], "702", calls=1, rate=1, timeout_s=10).ok
        assert wait_for(call_ok, timeout=30, interval=1.0), runner.output()  # RTPengine: Kamailio takes it back within 10 s
    finally:
        uas.terminate()
        uas.wait(10)
    if name == "kamailio":  # media sessions of the calls that ended are gone (their BYEs were relayed by the new Kamailio)
        from controlplane.adapters.rtpengine_ng import NgClient

        ng = NgClient(runner.settings.rtpengine_address, runner.settings.rtpengine_ng_port)
        assert wait_for(lambda: not ng.list_calls(), timeout=70, interval=2.0), ng.list_calls()[:5]
