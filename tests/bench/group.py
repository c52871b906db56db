"""Hunt-group calls vs the node's plain calls (issue 4), alone: `make bench ARGS="--only-group"`.

One KEMI node provisioned as in `make bench` (20,000 users, a third with rules, the 50-agent group,
longest idle, a required skill). In turns, on the same node:
1. both at a fixed rate (default 300 calls/s), several rounds: Kamailio's and the control plane's
   CPU per call, and each round's group/plain ratio (measured back to back, the least disturbed
   by the shared machine's drift);
2. (unless --group-cpu-only) the highest rate each sustains, searched in turns as in `make bench`.
After every step the node's replies by code that changed in it are recorded (a 480 is a group call
nobody could be offered: every agent was being offered another call).
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from controlplane.metrics.kamailio import parse_statistics
from tests.bench.fraud import tree_cpu_s
from tests.bench.run import AGENTS, BENCH_NODE, CALLEE, GROUP_EXT, call_step, in_turns, provision_kemi, report_step, searches_in_turns
from tests.harness.node import TestNode

CODES = ("sl:", "tmx:")  # stateless replies by code, transactions by final class


def replies(node: TestNode) -> dict[str, int]:
    """Kamailio's counters of final replies by class (stateless and by transaction)."""
    stats = parse_statistics(node.kamailio_rpc("stats.get_statistics", "all"))
    return {name: int(v) for name, v in stats.items() if name.startswith(CODES)}


def run(users: int = 20000, duration: int = 20, start_rate: int = 200, max_rate: int = 5000, search: bool = True,
        cpu_rounds: int = 5, cpu_seconds: int = 10, rate: int = 300) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-group-"))
    node = TestNode(work / "var", **BENCH_NODE)
    node.start()
    agents = tuple(f"b{i}" for i in range(AGENTS))
    targets = {"plain": (CALLEE, (CALLEE,)), "group": (GROUP_EXT, agents)}
    cpu: dict = {label: {"kamailio_ms": [], "controlplane_ms": [], "failed": [], "replies": []} for label in targets}
    steps: dict = {label: [] for label in targets}
    best: dict = {label: (None, None) for label in targets}
    try:
        provision_kemi(node, users)
        port = node.settings.sip_port
        kam, cp = node.component("kamailio").proc.pid, node.component("controlplane").proc.pid
        for label, (dial, callees) in targets.items():  # warm-up (workers load the snapshot), not counted
            call_step(port, rate, 3, work, dial, callees)
        for round_no in range(cpu_rounds):
            for label, (dial, callees) in in_turns(list(targets.items()), round_no):
                r0, k0, c0 = replies(node), tree_cpu_s(kam), tree_cpu_s(cp)
                st = call_step(port, rate, cpu_seconds, work, dial, callees)
                calls = max(st["ok"], 1)
                cpu[label]["kamailio_ms"].append(round((tree_cpu_s(kam) - k0) / calls * 1000, 3))
                cpu[label]["controlplane_ms"].append(round((tree_cpu_s(cp) - c0) / calls * 1000, 3))
                cpu[label]["failed"].append(st["failed"])
                cpu[label]["replies"].append({k: v - r0.get(k, 0) for k, v in replies(node).items() if v != r0.get(k, 0)})
                time.sleep(2)
        for label, o in cpu.items():
            o["total_ms"] = [round(k + c, 3) for k, c in zip(o["kamailio_ms"], o["controlplane_ms"])]
            o["median_ms"] = sorted(o["total_ms"])[cpu_rounds // 2]
            print(f"  CPU per call {label:>6}: Kamailio {o['kamailio_ms']} ms, control plane {o['controlplane_ms']} ms, failed {o['failed']}",
                  flush=True)
        ratios = sorted(round(g / p, 3) for g, p in zip(cpu["group"]["total_ms"], cpu["plain"]["total_ms"]))
        print(f"  CPU per call group / plain per round: {ratios}", flush=True)
        def run_step(label: str, rate: int) -> dict:
            dial, callees = targets[label]
            r0 = replies(node)
            st = call_step(port, rate, duration, work, dial, callees)
            st["replies"] = {k: v - r0.get(k, 0) for k, v in replies(node).items() if v != r0.get(k, 0)}
            steps[label].append(st)
            report_step(f"calls {label:>6}", st, str(st["replies"]))
            return st

        if search:
            best.update(searches_in_turns(list(targets), start_rate, max_rate, run_step))
    finally:
        node.stop()
    meta = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "date": datetime.now(timezone.utc).isoformat(), "users": users}
    g, p = cpu["group"]["median_ms"], cpu["plain"]["median_ms"]
    records = [{"name": "cpu_per_call_group_vs_plain", "value": g,
                "unit": f"ms CPU per call (Kamailio + control plane, median of {cpu_rounds} rounds of {cpu_seconds} s at {rate}/s)",
                "baseline": p, "ratio": round(g / p, 3) if p else None,
                "detail": {**meta, "paired_ratios": ratios, "paired_ratio_median": ratios[len(ratios) // 2], **cpu}}]
    if search:
        records.append({"name": f"group_call_rate_{AGENTS}_agents_vs_plain_alone", "value": best["group"][0], "unit": "calls/s",
                        "baseline": best["plain"][0], "ratio": round(best["group"][0] / best["plain"][0], 3) if best["plain"][0] else None,
                        "detail": {**meta, "goal": ">= 0.7 of the node's plain calls", "group_steps": steps["group"],
                                   "plain_steps": steps["plain"]}})
    return records
