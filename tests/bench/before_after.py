"""`make bench ARGS="--only-before-after [--before REV]"`: the node of this tree against the node of an earlier commit
(default: the one before issue 17's robust message read), both running at once on the same machine, loaded at the
same fixed rates at the same moment: Kamailio's CPU per registration and per call, in paired rounds.

What it answers: does the ordinary path (one-crossing read, exception barrier, sanity checks, call-end accounting,
keep-alive properties) cost more than before? Each round's pair is measured at the same moment, so the machine's noise
falls on both; the record is the median of the per-round ratios (this / before) with their spread.
Only loopback; every load is bounded in count and time. The earlier commit is checked out with `git worktree` (removed
afterwards) and runs with this venv.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from controlplane.cli import client
from controlplane.node.processes import read_pid
from controlplane.node.settings import load_settings
from tests.bench.fraud import tree_cpu_s
from tests.bench.run import CALLEE, ROOT, call_step, provision_kemi, registration_storm
from tests.harness.ports import free_port, free_port_block

BEFORE = "8f00243"  # main before issue 17
# Run in an earlier tree (its own models and provisioning): provision its node, whose config file is argv[1].
PROVISION = r"""
import sys
from controlplane.cli import client
from controlplane.node.settings import load_settings
from tests.bench.run import provision_kemi


class Node:
    def __init__(self, settings):
        self.settings = settings

    def rpc(self, method, **params):
        token = (self.settings.var / "admin.token").read_text().strip()
        return client.call(method, params, url=self.settings.api_url, token=token)


provision_kemi(Node(load_settings(sys.argv[1], env={})), int(sys.argv[2]))
"""


class NodeProcess:
    """A node of the tree at `root`, started as `make run` starts one (the node runner), on free loopback ports."""

    def __init__(self, root: Path, var: Path, **settings):
        rtp = free_port_block(400)
        given = dict(var_dir=str(var), sip_port=free_port(), kamailio_rpc_port=free_port(), rtpengine_ng_port=free_port(),
                     rtpengine_cli_port=free_port(), api_port=free_port(), prometheus_port=free_port(), rtp_port_min=rtp,
                     rtp_port_max=rtp + 399, prometheus=False, kamailio_shm_mb=1024, kamailio_log_level=1, rtpengine_log_level=3,
                     edge_exempt="", edge_max_requests=10**9, edge_max_unauthenticated=10**9, auth_failures_source=0,
                     auth_failures_account=0, media_server=False, sip_tls_port=free_port(), sip_wss_port=free_port(),
                     sip_ws_port=free_port(), **settings)  # two trees with TLS/WebSocket listeners run at once
        self.settings = load_settings(env={}, **given)
        doc = self.settings.model_dump()
        if root != ROOT:  # an earlier tree may not know settings added since (or derive others from these): what was given
            known = set(json.loads(subprocess.run(
                [sys.executable, "-c", "import dataclasses, json; from controlplane.node.settings import NodeSettings as S; print(json.dumps("
                 "list(getattr(S, 'model_fields', None) or [f.name for f in dataclasses.fields(S)])))"], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                capture_output=True, text=True, check=True, timeout=60).stdout))  # and it knows
            doc = {k: v for k, v in doc.items() if k in given and k in known and not k.startswith(("media_server", "prompt_"))}
        config = self.config = var.parent / f"{var.name}.json"
        self.root = root
        var.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(doc))
        self.log = open(var.parent / f"{var.name}-runner.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "controlplane.node.run", "start", "--config", str(config)], cwd=root,
                                     env={**os.environ, "PYTHONPATH": str(root)}, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while "is running" not in (var.parent / f"{var.name}-runner.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # whatever of it did start
                raise RuntimeError(f"node of {root} did not start:\n{(var.parent / f'{var.name}-runner.log').read_text()[-2000:]}")
            time.sleep(0.3)

    def provision(self, users: int) -> None:
        """The benchmark's users (run.provision_kemi) — for an earlier tree by its own code: its database has its own
        schema (columns added since would not be there)."""
        if self.root == ROOT:
            provision_kemi(self, users)
            return
        subprocess.run([sys.executable, "-c", PROVISION, str(self.config), str(users)], cwd=self.root, check=True,
                       env={**os.environ, "PYTHONPATH": str(self.root)}, timeout=600)

    def rpc(self, method: str, **params):
        token = (self.settings.var / "admin.token").read_text().strip()
        return client.call(method, params, url=self.settings.api_url, token=token)

    def kamailio_pid(self) -> int:
        return read_pid(self.settings.run_dir / "kamailio.pid") or 0

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.log.close()


def paired(values: dict[str, list[float]], a: str, b: str) -> dict:
    ratios = sorted(round(x / y, 3) for x, y in zip(values[a], values[b]) if y)
    return {"ratios": ratios, "median": ratios[len(ratios) // 2] if ratios else None}


def run(before: str = BEFORE, users: int = 6000, rounds: int = 5, reg_rate: int = 3000, call_rate: int = 150, call_s: int = 8) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-before-after-"))
    tree = work / "before-tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), before], cwd=ROOT, check=True, capture_output=True)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    nodes: dict[str, NodeProcess] = {}
    try:
        nodes["this"] = NodeProcess(ROOT, work / "this")  # one at a time: one that fails to start leaves the other stopped
        nodes["before"] = NodeProcess(tree, work / "before")
        for n in nodes.values():
            n.provision(users)
        cpu = {f"{label}_{kind}": [] for label in nodes for kind in ("register_us", "call_us")}
        detail: dict = {label: {"registrations": [], "calls": []} for label in nodes}

        def measured(label: str, n: NodeProcess, kind: str) -> None:
            where = work / f"{label}-{kind}"
            where.mkdir(exist_ok=True)
            pid = n.kamailio_pid()
            before_s = tree_cpu_s(pid)
            if kind == "register":
                st = registration_storm(n.settings.sip_port, users, reg_rate, where)
            else:
                st = call_step(n.settings.sip_port, call_rate, call_s, where, CALLEE, (CALLEE,))
            used = tree_cpu_s(pid) - before_s
            cpu[f"{label}_{kind}_us"].append(round(used / max(st["ok"], 1) * 1e6, 1))
            detail[label]["registrations" if kind == "register" else "calls"].append(st)

        for round_no in range(rounds + 1):  # round 0 warms both up (snapshot load, first registrations): not counted
            for kind in ("register", "call"):
                threads = [threading.Thread(target=measured, args=(label, n, kind)) for label, n in nodes.items()]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                time.sleep(2)
            if round_no == 0:
                for key in cpu:
                    cpu[key].clear()
                for d in detail.values():
                    d["registrations"].clear()
                    d["calls"].clear()
            else:
                print(f"  round {round_no}: " + ", ".join(f"{k} {v[-1]}" for k, v in cpu.items()), flush=True)
    finally:
        for n in nodes.values():
            n.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    records = []
    for kind, unit in (("register", "µs Kamailio CPU per registration"), ("call", "µs Kamailio CPU per call")):
        p = paired({k: v for k, v in cpu.items()}, f"this_{kind}_us", f"before_{kind}_us")
        this, then = sorted(cpu[f"this_{kind}_us"]), sorted(cpu[f"before_{kind}_us"])
        print(f"  {kind}: this {cpu[f'this_{kind}_us']} µs, before {cpu[f'before_{kind}_us']} µs; paired ratios {p['ratios']}", flush=True)
        records.append({"name": f"kamailio_cpu_per_{kind}_this_vs_{before}", "value": this[len(this) // 2], "unit": unit,
                        "baseline": then[len(then) // 2], "ratio": p["median"],
                        "detail": {"paired_ratios": p["ratios"], "this": cpu[f"this_{kind}_us"], "before": cpu[f"before_{kind}_us"],
                                   "rounds": rounds, "users": users, "rate": reg_rate if kind == "register" else call_rate,
                                   "failed": {label: [s["failed"] for s in d["registrations" if kind == "register" else "calls"]] for label, d in detail.items()},
                                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}})
    return records
