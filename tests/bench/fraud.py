"""Fraud controls' cost and speed (issue 5), part of `make bench` (or alone: `python -m tests.bench.fraud`).

1. Calls out with every check on vs off, in turns: two KEMI nodes, the same 1,000 callers
   calling out through a trunk to a SIPp carrier (on 127.0.0.2) that answers; one node with edge
   protection (every request counted and judged, limits above the load) and the checks on calls
   out (attempts counted per minute and hour per user and tenant, calls in progress counted, the
   spend monitor pricing them), the other with both off. The highest rate each sustains.
   Then both at a fixed 150 calls/s each, loaded at the same moment, several rounds: CPU per call of
   Kamailio, the control plane and RTPengine (the cost of the checks, apart from how busy the shared
   machine is: whatever else runs falls on both sides alike).
2. How fast a flood is stopped: unauthenticated INVITEs from one address as fast as they are
   answered; requests answered before the ban and how long it took. The same for a password
   guesser: guesses answered before the ban.
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import Session

from controlplane.db.models import SipAccount, Tenant, User
from controlplane.db.session import make_engine
from kemi.policy.auth import ha1, ha1b
from tests.bench.run import HERE, csv, in_turns, offer_calls, password, report_step, searches_in_turns, stop
from tests.harness.node import TestNode
from tests.harness.ports import free_port, free_port_block
from tests.harness.raw_sip import DigestClient, request

DOMAIN = "fraud.example"
CARRIER_IP = "127.0.0.2"
CALLERS = 1000  # attempts per user are capped (120 a minute): the load is spread over many callers
DIAL = "0301234567"


CPU_RATE = 150  # calls out/s per node in the fixed-rate comparison, both nodes at once (300 together: well below the limit)
TENANTS = 4  # ... and over several tenants (a tenant's attempts are capped too: 1,000 a second)


def provision(node: TestNode, carrier_port: int) -> None:
    engine = make_engine(node.settings.db_url)
    with Session(engine) as s:
        tenants = [Tenant(name=f"Fraud bench {k}", sip_domain=f"t{k}.{DOMAIN}") for k in range(TENANTS)]
        s.add_all(tenants)
        s.flush()
        users = [User(tenant_id=tenants[i % TENANTS].id, name=f"f{i}", outbound="international") for i in range(CALLERS)]
        s.add_all(users)
        s.flush()
        for i, u in enumerate(users):
            realm = f"t{i % TENANTS}.{DOMAIN}"
            s.add(SipAccount(tenant_id=u.tenant_id, user_id=u.id, username=u.name, realm=realm, ha1=ha1(u.name, realm, password(u.name)),
                             ha1b=ha1b(u.name, realm, password(u.name))))
        s.commit()
        ids = [t.id for t in tenants]
    engine.dispose()
    node.rpc("trunk.create", name="bench-carrier", host=CARRIER_IP, port=carrier_port, transport="udp", priority=1, tenant_ids=ids)
    for tid in ids:  # the limits sit above the load (nothing refused): every check is made, none refuses
        node.rpc("fraud.policy_set", tenant_id=tid, user={"max_concurrent": 50, "attempts_per_minute": 120, "attempts_per_hour": 2000,
                                                          "spend_day": 10000, "spend_month": 100000},
                 tenant={"max_concurrent": 5000, "attempts_per_minute": 60000, "attempts_per_hour": 1000000})
    time.sleep(1.5)


def carrier(port: int, duration: int, workdir: Path) -> subprocess.Popen:
    media = free_port_block(4)
    return subprocess.Popen(["sipp", "-sf", str(HERE / "uas_answer_load.xml"), "-i", CARRIER_IP, "-p", str(port), "-mi", CARRIER_IP,
                             "-mp", str(media), "-buff_size", "4194304", "-nostdin", "-timeout", f"{duration + 60}s"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def step(node: TestNode, carrier_port: int, rate: int, duration: int, workdir: Path) -> dict:
    uas = carrier(carrier_port, duration, workdir)
    try:
        time.sleep(0.3)
        inf = csv(workdir / "callers.csv", [f"f{i};t{i % TENANTS}.{DOMAIN};[authentication username=f{i} password={password(f'f{i}')}];{DIAL}"
                                            for i in range(CALLERS)])
        return offer_calls(node.settings.sip_port, inf, rate, duration, workdir)
    finally:
        stop(uas)


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of a process and its direct children (Kamailio's workers)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == root or int(st[1]) == root:
            total += int(st[11]) + int(st[12])
    return total / tick


def cpu_per_call(nodes: dict, ports: dict, work: Path, rate: int = 300, seconds: int = 8, rounds: int = 3,
                 together: bool = True) -> dict:
    """Both nodes at the same fixed rate: CPU per call of Kamailio, of the control plane and of RTPengine (ms).
    Separates what the checks cost from how busy the shared machine is (the capacity search cannot).
    together: both nodes loaded at the same moment (each round), so whatever else the shared machine does
    falls on both sides alike; otherwise in turns, alternating which goes first.
    The checks run in Kamailio and the control plane (their ratio is the record's); the node's call rate is
    bounded by all three (RTPengine's share is the same on both sides), so the node ratio is reported too."""
    parts = ("kamailio", "controlplane", "rtpengine")
    out: dict = {label: {**{f"{p}_ms": [] for p in parts}, "failed": []} for label in nodes}

    def measured(label: str, n: TestNode, results: dict) -> None:
        pids = {p: n.node.components[p].proc.pid for p in parts}
        before = {p: tree_cpu_s(pid) for p, pid in pids.items()}
        where = work / label.replace(" ", "-")
        where.mkdir(exist_ok=True)
        st = step(n, ports[label], rate, seconds, where)
        after = {p: tree_cpu_s(pid) for p, pid in pids.items()}
        results[label] = (st, {p: after[p] - before[p] for p in parts})

    for round_no in range(rounds):
        results: dict = {}
        if together:
            threads = [threading.Thread(target=measured, args=(label, n, results)) for label, n in nodes.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for label, n in in_turns(list(nodes.items()), round_no):
                measured(label, n, results)
                time.sleep(2)
        for label, (st, used) in results.items():
            calls = max(st["ok"], 1)
            for p in parts:
                out[label][f"{p}_ms"].append(round(used[p] / calls * 1000, 3))
            out[label]["failed"].append(st["failed"])
        time.sleep(3)
    for label, o in out.items():
        o["total_ms"] = [round(k + c, 3) for k, c in zip(o["kamailio_ms"], o["controlplane_ms"])]
        o["node_ms"] = [round(t + r, 3) for t, r in zip(o["total_ms"], o["rtpengine_ms"])]
        o["median_ms"] = sorted(o["total_ms"])[rounds // 2]
        o["node_median_ms"] = sorted(o["node_ms"])[rounds // 2]
        print(f"  CPU per call out {label:>10}: Kamailio {o['kamailio_ms']} ms, control plane {o['controlplane_ms']} ms, "
              f"RTPengine {o['rtpengine_ms']} ms, failed {o['failed']}", flush=True)
    labels = list(nodes)
    if len(labels) == 2:  # each round's pair measured at once (or back to back): its ratio is the least disturbed by the machine
        a, b = (out[x] for x in labels)
        for key, name in (("total_ms", "paired_ratios"), ("node_ms", "paired_node_ratios")):
            out[name] = sorted(round(x / y, 3) for x, y in zip(a[key], b[key]))
            out[f"{name[:-1]}_median"] = out[name][len(out[name]) // 2]
        print(f"  CPU per call {labels[0]} / {labels[1]} per round, Kamailio + control plane: {out['paired_ratios']}; "
              f"the node (and RTPengine): {out['paired_node_ratios']}", flush=True)
    out["together"] = together
    return out


def flood(node: TestNode, ip: str, limit: int = 500) -> dict:
    """Unauthenticated INVITEs from ip, each sent when the previous one was answered: how many were answered, how long."""
    c = DigestClient(node.sip, ip, timeout=0.5)
    answered, t0 = 0, time.monotonic()
    for i in range(limit):
        if c.send_raw(request("INVITE", f"sip:{1000 + i}@{DOMAIN}").replace("127.0.0.1:{port}", "{ip}:{port}")) is None:
            break
        answered += 1
    elapsed = time.monotonic() - t0 - 0.5  # the last, unanswered request waited for the timeout
    c.close()
    return {"answered_before_ban": answered, "seconds_to_ban": round(max(elapsed, 0.0), 3)}


def guesser(node: TestNode, ip: str, limit: int = 200) -> dict:
    c = DigestClient(node.sip, ip, timeout=0.5)
    answered = 0
    for g in range(limit):
        first, second = c.attempt("f7", DOMAIN, f"{g:04d}")
        if first is None or second is None:
            break
        answered += 1
    c.close()
    return {"guesses_answered_before_ban": answered, "of": limit}


def run(duration: int = 20, start_rate: int = 200, max_rate: int = 5000, search: bool = True, cpu_rounds: int = 3,
        cpu_seconds: int = 8) -> list[dict]:
    """search=False: only the fixed-rate CPU comparison (and the flood figures), with `cpu_rounds` rounds of `cpu_seconds`."""
    work = Path(tempfile.mkdtemp(prefix="cm-bench-fraud-"))
    common = dict(kamailio_shm_mb=1024, kamailio_log_level=1, rtpengine_log_level=3, edge_exempt="", fraud_monitor_interval_s=2.0)
    on = TestNode(work / "on", edge_max_requests=10**9, edge_max_unauthenticated=10**9, **common)
    off = TestNode(work / "off", edge_protection=False, fraud_checks=False, **common)
    ports = {"checks on": free_port(), "checks off": free_port()}
    nodes = {"checks on": on, "checks off": off}
    out: dict = {}
    try:
        # first the flood figures, on a node with the default edge settings (before the load has used up ports)
        edge = TestNode(work / "edge", **{**common, "kamailio_shm_mb": 256}).start()
        try:
            tid = edge.rpc("tenant.create", name="Edge", sip_domain=DOMAIN)["id"]
            u = edge.rpc("user.create", tenant_id=tid, name="f7")
            edge.rpc("sip_account.create", user_id=u["id"], username="f7", password="a-long-password")
            time.sleep(1)
            out["flood"] = flood(edge, "127.0.0.66")
            out["guess"] = guesser(edge, "127.0.0.67")
        finally:
            edge.stop()
        for label, n in nodes.items():
            n.start()
            provision(n, ports[label])
        best: dict[str, tuple] = {label: (None,) for label in nodes}
        steps: dict[str, list] = {label: [] for label in nodes}

        def run_step(label: str, rate: int) -> dict:
            st = step(nodes[label], ports[label], rate, duration, work)
            steps[label].append(st)
            report_step(f"calls out {label:>10}", st)
            return st

        if search:
            best.update(searches_in_turns(list(nodes), start_rate, max_rate, run_step))
        out["cpu"] = cpu_per_call(nodes, ports, work, rate=CPU_RATE, seconds=cpu_seconds, rounds=cpu_rounds)
    finally:
        for n in nodes.values():
            try:
                n.stop()
            except Exception:  # noqa: BLE001 - not started, or stopped already
                pass
    meta = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "date": datetime.now(timezone.utc).isoformat(), "callers": CALLERS}
    on_best, off_best = best["checks on"][0], best["checks off"][0]
    print(f"  flood: {out['flood']}; password guessing: {out['guess']}", flush=True)
    cpu_on, cpu_off = out["cpu"]["checks on"]["median_ms"], out["cpu"]["checks off"]["median_ms"]
    node_on, node_off = out["cpu"]["checks on"]["node_median_ms"], out["cpu"]["checks off"]["node_median_ms"]
    records = [
        {"name": "cpu_per_call_out_fraud_checks_on_vs_off", "value": cpu_on,
         "unit": f"ms CPU per call (Kamailio + control plane, median of {cpu_rounds} rounds of {cpu_seconds} s, both nodes at once)",
         "baseline": cpu_off, "ratio": round(cpu_on / cpu_off, 3) if cpu_off else None,
         "detail": {**meta, "goal": "checks cost <= 10 % (ratio <= 1.1)", "rate_per_node": CPU_RATE, **{k.replace(" ", "_"): v for k, v in out["cpu"].items()}}},
        {"name": "node_cpu_per_call_out_fraud_checks_on_vs_off", "value": node_on,
         "unit": f"ms CPU per call (Kamailio + control plane + RTPengine, median of {cpu_rounds} rounds of {cpu_seconds} s, both nodes at once)",
         "baseline": node_off, "ratio": round(node_on / node_off, 3) if node_off else None,
         "detail": {**meta, "goal": "checks cost <= 10 % (ratio <= 1.1)", "rate_per_node": CPU_RATE,
                    "paired_node_ratios": out["cpu"].get("paired_node_ratios"), "paired_node_ratio_median": out["cpu"].get("paired_node_ratio_median")}},
        {"name": "call_rate_out_fraud_checks_on_vs_off", "value": on_best, "unit": "calls/s", "baseline": off_best,
         "ratio": round(on_best / off_best, 3) if off_best else None,
         "detail": {**meta, "goal": "checks cost <= 10 % (ratio >= 0.9)", "on_steps": steps["checks on"], "off_steps": steps["checks off"]}},
        {"name": "flood_requests_answered_before_ban", "value": out["flood"]["answered_before_ban"], "unit": "requests", "baseline": None,
         "ratio": None, "detail": {**meta, **out["flood"], "limit": "edge_max_unauthenticated 50 (default)"}},
        {"name": "password_guesses_answered_before_ban", "value": out["guess"]["guesses_answered_before_ban"], "unit": "guesses",
         "baseline": None, "ratio": None, "detail": {**meta, **out["guess"], "limit": "auth_failures_source 10 (default)"}},
    ]
    return records if search else [r for r in records if r["name"] != "call_rate_out_fraud_checks_on_vs_off"]


if __name__ == "__main__":
    from tests.bench.run import save

    save(run())
