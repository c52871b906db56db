"""`make bench ARGS=--only-cluster`: what replicating registrations costs (issue 22). Three nodes of this tree on one
machine: A replicates every registration to B by DMQ; C is a single node. Loaded at the same moments:

- Kamailio CPU per registration, A against C at a fixed rate, in paired rounds (the median of the per-round ratios)
  — and B's CPU per registration it receives;
- the registration storm (the most a node takes), A and C in turns, three each (median) — the issue's goal is
  replication on ≥ 0.8× off; on this 2-core machine B's work competes with A's, which a real cluster does not have;
- the replication lag: one REGISTER through A at a time, until B's usrloc has it (p50/p99; polled over Kamailio's
  RPC every millisecond, so the figures include up to a poll's time). Loopback, no WAN delay: the lab's 20 ms link
  adds its one-way delay.
Only loopback; every load bounded in count and time.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.before_after import NodeProcess, paired
from tests.bench.fraud import tree_cpu_s
from tests.bench.run import DOMAIN, REGISTER, ROOT, auth_line, csv, provision_kemi, registration_storm
from tests.harness.ports import free_port


def _ul_has(node: NodeProcess, aor: str) -> bool:
    from controlplane.adapters.kamailio_rpc import KamailioRpc
    from controlplane.sealed import shared_secret

    rpc = getattr(node, "_rpc", None) or KamailioRpc(node.settings.kamailio_rpc_url, secret=shared_secret(node.settings.rpc_secret_path))
    node._rpc = rpc  # type: ignore[attr-defined]
    try:
        return bool(rpc.call("ul.lookup", "location", aor))
    except Exception:  # noqa: BLE001 - not there (yet): usrloc answers 404
        return False


def run(users: int = 6000, rounds: int = 5, reg_rate: int = 3000, storms: int = 3, lag_samples: int = 60) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-cluster-"))
    dmq_a, dmq_b = free_port(), free_port()
    nodes: dict[str, NodeProcess] = {}
    try:
        nodes["a"] = NodeProcess(ROOT, work / "a", node_name="a", dmq_port=dmq_a, dmq_node_index=1,
                                  dmq_peers=[f"127.0.0.1:{dmq_b}"])
        nodes["b"] = NodeProcess(ROOT, work / "b", node_name="b", dmq_port=dmq_b, dmq_node_index=2,
                                  dmq_peers=[f"127.0.0.1:{dmq_a}"])
        nodes["c"] = NodeProcess(ROOT, work / "c", node_name="c")
        for label in ("a", "c"):  # A has lag_samples users more, registered only by the lag samples (new to B each)
            provision_kemi(nodes[label], users + (lag_samples if label == "a" else 0))
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        cpu: dict[str, list[float]] = {"a": [], "c": [], "b": []}

        def measured(label: str, n: NodeProcess, out: dict) -> None:
            where = work / f"{label}-fixed"
            where.mkdir(exist_ok=True)
            out[label] = registration_storm(n.settings.sip_port, users, reg_rate, where)

        for round_no in range(rounds + 1):  # round 0 warms up (snapshot load, first registrations): not counted
            pids = {k: n.kamailio_pid() for k, n in nodes.items()}
            before = {k: tree_cpu_s(p) for k, p in pids.items()}
            done: dict = {}
            threads = [threading.Thread(target=measured, args=(k, nodes[k], done)) for k in ("a", "c")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(1.5)  # B finishes what A sent
            used = {k: tree_cpu_s(p) - before[k] for k, p in pids.items()}
            if round_no:
                for k, src in (("a", "a"), ("c", "c"), ("b", "a")):
                    cpu[k].append(round(used[k] / max(done[src]["ok"], 1) * 1e6, 1))
                print(f"  round {round_no}: µs Kamailio CPU per registration A {cpu['a'][-1]}, C {cpu['c'][-1]}, B {cpu['b'][-1]}",
                      flush=True)
        replicated = sum(_ul_has(b, f"b{i}@{DOMAIN}") for i in range(0, users, max(1, users // 50)))

        storm: dict[str, list[float]] = {"a": [], "c": []}
        for i in range(storms * 2):
            label = ("a", "c")[i % 2] if (i // 2) % 2 == 0 else ("c", "a")[i % 2]
            where = work / f"{label}-storm{i}"
            where.mkdir()
            storm[label].append(registration_storm(nodes[label].settings.sip_port, users, 30000, where)["per_s"])
            time.sleep(1.5)

        lag_ms = []
        for i in range(lag_samples):
            # a user the storms never registered: B cannot have it before this REGISTER (an earlier version unregistered
            # a stormed user first — from another port, so another contact: B kept the old one and the lag read ~0)
            user = f"b{users + i}"
            aor = f"{user}@{DOMAIN}"
            assert not _ul_has(b, aor), f"{aor} on B before it registered"
            again = csv(work / f"lag{i}.csv", [auth_line(user, "3600")])
            t0 = time.monotonic()
            subprocess.run(["sipp", f"127.0.0.1:{a.settings.sip_port}", "-sf", str(REGISTER), "-inf", str(again), "-m", "1",
                            "-timeout", "10s", "-nostdin"], cwd=work, capture_output=True, timeout=20)
            sent = time.monotonic()
            while not _ul_has(b, aor) and time.monotonic() - t0 < 5:
                time.sleep(0.001)
            lag_ms.append(round((time.monotonic() - sent) * 1000, 2))
    finally:
        for n in nodes.values():
            n.stop()
        shutil.rmtree(work, ignore_errors=True)
    p = paired(cpu, "a", "c")
    lag_ms.sort()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    storm_ratio = round(statistics.median(storm["a"]) / statistics.median(storm["c"]), 3)
    print(f"  CPU per registration: A {cpu['a']}, C {cpu['c']}, B {cpu['b']}; paired A/C {p['ratios']}", flush=True)
    print(f"  storms (registrations/s): A {storm['a']}, C {storm['c']}; ratio of medians {storm_ratio}", flush=True)
    print(f"  replication lag: p50 {lag_ms[len(lag_ms) // 2]} ms, p99 {lag_ms[int(len(lag_ms) * 0.99)]} ms; sampled on B {replicated}/50", flush=True)
    return [
        {"name": "kamailio_cpu_per_registration_replicating_vs_single", "value": sorted(cpu["a"])[len(cpu["a"]) // 2],
         "unit": "µs Kamailio CPU per registration", "baseline": sorted(cpu["c"])[len(cpu["c"]) // 2], "ratio": p["median"],
         "detail": {"paired_ratios": p["ratios"], "replicating": cpu["a"], "single": cpu["c"], "peer_receiving": cpu["b"],
                    "rounds": rounds, "users": users, "rate": reg_rate, "replicated_sampled": f"{replicated}/50", "date": date}},
        {"name": "registration_storm_replicating_vs_single", "value": statistics.median(storm["a"]), "unit": "registrations/s",
         "baseline": statistics.median(storm["c"]), "ratio": storm_ratio,
         "detail": {"replicating": storm["a"], "single": storm["c"], "users": users, "date": date}},
        {"name": "registration_replication_lag", "value": lag_ms[len(lag_ms) // 2], "unit": "ms (p50; loopback)", "baseline": None,
         "ratio": None,
         "detail": {"p99_ms": lag_ms[int(len(lag_ms) * 0.99)], "max_ms": lag_ms[-1], "samples": len(lag_ms), "date": date}},
    ]
