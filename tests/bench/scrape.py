"""Scrape benchmark (issue 6): time and size of a node's /metrics with 20,000 registered users and 1,000 calls in
progress, next to the same node idle (the baseline, same run) and the raw Kamailio/RTPengine reads the collectors make.

One KEMI node (RTPengine, control plane, Kamailio) with N users (the call benchmark's provisioning, hunt group
included, so the wallboard figures are computed too); the scrapes are HTTP GETs of /metrics as Prometheus makes them,
sequential, 20 per state; the median and the worst count. Loopback only; every loop bounded in count and time.
"""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from controlplane.adapters.kamailio_rpc import KamailioRpc
from controlplane.adapters.rtpengine_ng import NgClient
from controlplane.metrics.kamailio import KamailioCollector, parse_statistics
from controlplane.metrics.rtpengine import RtpengineCollector
from tests.harness.node import TestNode
from tests.harness.ports import free_port, free_port_block

from .run import CALLEE, CALLER, HERE, auth_line, csv, provision_kemi, registration_storm, stop

SCRAPES = 20


def scrapes(url: str, n: int = SCRAPES) -> dict:
    times, sizes = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            t = time.perf_counter()
            r = client.get(url)
            times.append(time.perf_counter() - t)
            r.raise_for_status()
            sizes.append(len(r.content))
    return {"median_ms": round(statistics.median(times) * 1000, 1), "max_ms": round(max(times) * 1000, 1),
            "bytes": int(statistics.median(sizes)), "samples": sum(1 for line in r.text.splitlines() if line and not line.startswith("#"))}


def timed(fn, n: int = SCRAPES) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def parts(node: TestNode) -> dict:
    """The collectors' own reads, in this process: what a scrape costs Kamailio and RTPengine."""
    rpc = KamailioRpc(node.settings.kamailio_rpc_url, timeout=30, secret=node.settings.rpc_secret_path.read_text().strip())
    ng = NgClient(node.settings.rtpengine_address, node.settings.rtpengine_ng_port)
    return {
        "kamailio_collector_ms": timed(lambda: list(KamailioCollector(rpc).collect())),
        "rtpengine_collector_ms": timed(lambda: list(RtpengineCollector(ng).collect())),
        "kamailio_stats_rpc_ms": timed(lambda: rpc.call("stats.get_statistics", "all")),
        "ul_dump_rpc_ms": timed(lambda: rpc.call("ul.dump", "brief"), n=5),
        "dlg_list_rpc_ms": timed(lambda: rpc.call("dlg.list"), n=5),
    }


def hold_calls(node: TestNode, calls: int, hold_s: int, work: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    """`calls` calls from CALLER to CALLEE, answered and held for hold_s seconds (SIPp UAC and UAS in the background)."""
    port = node.settings.sip_port
    callee_port, media = free_port(), free_port_block(4)
    reg = csv(work / "hold-callee.csv", [auth_line(CALLEE, "3600")])
    subprocess.run(["sipp", f"127.0.0.1:{port}", "-sf", str(HERE.parents[1] / "tests" / "scenario" / "sipp" / "register.xml"),
                    "-inf", str(reg), "-m", "1", "-i", "127.0.0.1", "-p", str(callee_port), "-timeout", "20s", "-nostdin"],
                   cwd=work, capture_output=True, timeout=30)
    uas = subprocess.Popen(["sipp", "-sf", str(HERE / "uas_answer_load.xml"), "-i", "127.0.0.1", "-p", str(callee_port), "-mi", "127.0.0.1",
                            "-mp", str(media), "-buff_size", "4194304", "-nostdin", "-timeout", f"{hold_s + 120}s"],
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    uac = subprocess.Popen(["sipp", f"127.0.0.1:{port}", "-sf", str(HERE / "uac_call_hold.xml"), "-inf",
                            str(csv(work / "hold-caller.csv", [auth_line(CALLER, CALLEE)])), "-i", "127.0.0.1", "-p", str(free_port()),
                            "-m", str(calls), "-r", "100", "-l", str(calls), "-d", str(hold_s * 1000), "-mi", "127.0.0.1",
                            "-mp", str(free_port_block(4)), "-buff_size", "4194304", "-nostdin", "-timeout", f"{hold_s + 120}s"],
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return uac, uas


def run(users: int = 20000, calls: int = 1000) -> list[dict]:
    import os
    import platform
    from datetime import datetime, timezone

    work = Path(tempfile.mkdtemp(prefix="cm-bench-scrape-"))
    print(f"scrape benchmark: {users} users, {calls} calls, work dir {work}", flush=True)
    node = TestNode(work / "var", rtp_ports=max(400, calls * 4 + 400), kamailio_shm_mb=1024, kamailio_log_level=1, rtpengine_log_level=3,
                    edge_exempt="127.0.0.1")
    node.start()
    url = f"http://{node.settings.api_address}:{node.settings.api_port}/metrics"
    uac = uas = None
    try:
        provision_kemi(node, users)
        idle = {**scrapes(url), **parts(node)}
        print(f"  idle: {idle}", flush=True)
        storm = registration_storm(node.settings.sip_port, users, 5000, work)
        print(f"  registered {storm['ok']} users ({storm['per_s']}/s)", flush=True)
        hold_s = 120
        uac, uas = hold_calls(node, calls, hold_s, work)
        deadline = time.monotonic() + 60
        rpc = KamailioRpc(node.settings.kamailio_rpc_url, timeout=30, secret=node.settings.rpc_secret_path.read_text().strip())
        active = 0
        while time.monotonic() < deadline:
            active = int(rpc.call("dlg.stats_active")["ongoing"])
            if active >= calls:
                break
            time.sleep(1)
        contacts = int(parse_statistics(rpc.call("stats.get_statistics", "all")).get("usrloc:location_contacts", 0))
        loaded = {**scrapes(url), **parts(node), "active_calls": active, "registered_contacts": contacts}
        print(f"  loaded: {loaded}", flush=True)
    finally:
        for p in (uac, uas):
            if p is not None:
                stop(p)
        node.stop()
    meta = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "date": datetime.now(timezone.utc).isoformat()}

    def rec(name, value, unit, baseline, detail):
        return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": round(value / baseline, 3) if baseline else None,
                "detail": {**meta, **detail}}

    detail = {"users": users, "calls": calls, "scrapes": SCRAPES, "goal": "well under a second", "idle": idle, "loaded": loaded}
    return [rec(f"scrape_time_{users}_registered_{calls}_calls", loaded["median_ms"], "ms (median)", idle["median_ms"], detail),
            rec(f"scrape_size_{users}_registered_{calls}_calls", loaded["bytes"], "bytes", idle["bytes"], detail)]
