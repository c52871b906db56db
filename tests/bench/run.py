"""`make bench`: the KEMI node vs a native-language Kamailio doing the same SIP work, same run.

Measured now: a registration storm of N users with digest auth (default 20,000).
Writes var/bench/results.json (records {name, value, unit, baseline, ratio}) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import Session

from controlplane.adapters.kamailio_rpc import KamailioRpc
from controlplane.db.models import SipAccount, Tenant, User
from controlplane.db.session import make_engine
from controlplane.node import processes
from kemi.policy.auth import ha1, ha1b
from tests.harness.node import TestNode
from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "tests" / "scenario" / "sipp" / "register.xml"
DOMAIN = "bench.example"


def users_csv(path: Path, n: int) -> Path:
    lines = ["SEQUENTIAL"] + [f"b{i};{DOMAIN};[authentication username=b{i} password=pw{i}];3600" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def storm(port: int, csv: Path, n: int, rate: int, workdir: Path) -> dict:
    stat = workdir / f"storm-{port}.csv"
    argv = ["sipp", f"127.0.0.1:{port}", "-sf", str(SCEN), "-inf", str(csv), "-m", str(n), "-r", str(rate), "-l", "2000",
            "-i", "127.0.0.1", "-p", str(free_port()), "-buff_size", "4194304", "-timeout", "120s", "-nostdin",
            "-trace_stat", "-stf", str(stat), "-fd", "1"]
    t0 = time.monotonic()
    subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=180)
    elapsed = time.monotonic() - t0
    rows = stat.read_text().splitlines()
    head, last = rows[0].split(";"), rows[-1].split(";")
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
    return {"ok": ok, "failed": failed, "elapsed_s": elapsed, "per_s": ok / elapsed}


def provision(node: TestNode, n: int) -> None:
    engine = make_engine(node.settings.db_url)
    with Session(engine) as s:
        t = Tenant(name="Bench", sip_domain=DOMAIN)
        s.add(t)
        s.flush()
        users = [User(tenant_id=t.id, name=f"b{i}") for i in range(n)]
        s.add_all(users)
        s.flush()
        s.add_all(SipAccount(tenant_id=t.id, user_id=u.id, username=f"b{i}", realm=DOMAIN, ha1=ha1(f"b{i}", DOMAIN, f"pw{i}"), ha1b=ha1b(f"b{i}", DOMAIN, f"pw{i}")) for i, u in enumerate(users))
        s.commit()
    engine.dispose()
    node.rpc("tenant.create", name="bump", sip_domain="bump.example")  # bumps the version: publishes all
    time.sleep(3)


def native_kamailio(workdir: Path, n: int):
    sip, rpc = free_port(), free_port()
    comp = processes.Component(
        "kamailio-native",
        ["kamailio", "-DD", "-E", "-f", str(Path(__file__).with_name("native.cfg")), "-A", f"SIP_PORT={sip}", "-A", f"RPC_PORT={rpc}",
         "-A", f"CTL_SOCK={workdir}/native_ctl", "-P", str(workdir / "native.pid.own"), "-Y", str(workdir), "-m", "512", "-x", "tlsf", "-w", str(workdir)],
        workdir / "native.pid", workdir / "native.log", ready=[("udp", "127.0.0.1", sip), ("tcp", "127.0.0.1", rpc)])
    comp.start()
    k = KamailioRpc(f"http://127.0.0.1:{rpc}/RPC", timeout=10)
    for i in range(n):
        k.call("htable.sets", "ha1", f"b{i}@{DOMAIN}", ha1(f"b{i}", DOMAIN, f"pw{i}"))
    return comp, sip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=4000, help="offered REGISTER rate per second")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cm-bench-"))
    csv = users_csv(work / "users.csv", args.users)
    node = TestNode(work / "var", kamailio_shm_mb=512, kamailio_log_level=1, rtpengine_log_level=3)
    node.start()
    try:
        provision(node, args.users)
        kemi = storm(node.settings.sip_port, csv, args.users, args.rate, work)
    finally:
        node.stop()
    native, port = native_kamailio(work, args.users)
    try:
        base = storm(port, csv, args.users, args.rate, work)
    finally:
        native.stop()
    ratio = kemi["per_s"] / base["per_s"] if base["per_s"] else 0.0
    records = [{"name": f"registration_storm_{args.users}_users_digest", "value": round(kemi["per_s"], 1), "unit": "registrations/s",
                "baseline": round(base["per_s"], 1), "ratio": round(ratio, 3),
                "detail": {"kemi": kemi, "native": base, "offered_rate": args.rate, "machine": f"{platform.node()} {os.cpu_count()} cores",
                           "date": datetime.now(timezone.utc).isoformat()}}]
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    names = {r["name"] for r in records}
    out.write_text(json.dumps([r for r in old if r["name"] not in names] + records, indent=2))
    print(f"{'benchmark':45} {'KEMI node':>12} {'native':>12} {'ratio':>7}")
    for r in records:
        print(f"{r['name']:45} {r['value']:>12} {r['baseline']:>12} {r['ratio']:>7}")
    print(f"failed: KEMI {kemi['failed']}, native {base['failed']}; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
