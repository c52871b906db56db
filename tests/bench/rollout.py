"""Rollout benchmark (issue 19, `make bench ARGS=--only-rollout`): four lab hosts (two SIP nodes, a media and
monitoring host, a database host) deployed from bare by site.yml, a second run that changes nothing, and the rolling
upgrade of the two SIP nodes (no load). Baseline in the same round: Ansible merely reaching the same four hosts (the
ping module), which is the floor under any run. Each round builds a fresh lab; the median of the rounds is reported
with its spread. Goal (the issue): a no-change run of four hosts under 60 s on this machine."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def _ping(inv: Path, work: Path) -> float:
    import os
    import sys

    import ansible_runner

    from controlplane.ops.cluster import ANSIBLE_DIR

    private = work / f"ping-{time.monotonic_ns()}"
    private.mkdir(parents=True)
    t0 = time.monotonic()
    r = ansible_runner.run(private_data_dir=str(private), inventory=str(inv), host_pattern="all", module="ansible.builtin.ping",
                           quiet=True, cmdline=f"--vault-password-file {inv.parent / 'vault-password'}",
                           envvars={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                                    "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")})
    took = time.monotonic() - t0
    if r.rc != 0:
        raise RuntimeError(f"ansible ping failed ({r.status})")
    return took


def _timed(playbook: str, inv: Path, work: Path) -> tuple[float, object]:
    from tests.lab.deployed import play

    t0 = time.monotonic()
    r = play(playbook, inv, work)
    took = time.monotonic() - t0
    if not r.ok:
        raise RuntimeError(f"{playbook} failed: {r.failures[:3]}")
    return took, r


def run(rounds: int = 3) -> list[dict]:
    from tests.lab.deployed import LAYOUT, inventory
    from tests.lab.netlab import Lab

    figures: dict[str, list[float]] = {"deploy": [], "no_change": [], "upgrade_per_node": [], "ping": []}
    for n in range(rounds):
        work = Path(tempfile.mkdtemp(prefix=f"cm-bench-rollout-{n}-"))
        with Lab.build(LAYOUT, wan_delay_ms=5, base_dir=work / "lab") as lab:
            inv = inventory(lab, work / "hosts.yml")
            figures["ping"].append(_ping(inv, work))
            took, _ = _timed("site", inv, work)
            figures["deploy"].append(took)
            took, again = _timed("site", inv, work)
            if again.changed:
                raise RuntimeError(f"the second run changed {again.changed} things")
            figures["no_change"].append(took)
            took, _ = _timed("upgrade", inv, work)
            figures["upgrade_per_node"].append(took / 2)
        print(f"round {n + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in figures.items()), flush=True)

    def rec(name: str, key: str, baseline: bool) -> dict:
        values = figures[key]
        med = round(statistics.median(values), 1)
        base = round(statistics.median(figures["ping"]), 1) if baseline else None
        return {"name": name, "value": med, "baseline": base, "ratio": round(med / base, 1) if base else None, "unit": "s",
                "spread": [round(min(values), 1), round(max(values), 1)], "rounds": rounds,
                "note": "4 lab hosts; baseline: Ansible's ping module to the same hosts"}

    return [rec("rollout: site.yml from bare, 4 hosts", "deploy", True),
            rec("rollout: site.yml no-change run, 4 hosts", "no_change", True),
            rec("rollout: upgrade.yml per SIP node (no load)", "upgrade_per_node", False)]
