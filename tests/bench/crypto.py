"""What encryption costs (issue 24): `make bench ARGS="--only-crypto"` (also part of `make bench`).

One KEMI node as in `make bench` (20,000 users, rules). In one run, in turns:
1. Registration storms: every user registers with digest over UDP, then over TLS — SIPp is built without TLS, so it
   speaks TCP to a local stunnel that speaks TLS to the node (CONNECTIONS SIPp processes, each one TLS connection
   carrying its share of the users); the median of `storms` per side. The same storms, in the same turns, against
   Kamailio with tests/bench/native.cfg listening on TLS as the node does (the reference: what the transport and the
   load generator cost without the node's Python), through its own stunnel.
2. Calls, at a fixed rate in paired rounds: Kamailio's and RTPengine's CPU per call for plain calls (UDP, RTP/AVP), for
   calls over TLS offering SRTP (SDES; RTPengine bridges to the plain callee) and for calls offering a browser's media
   (UDP/TLS/RTP/SAVPF with ICE and a DTLS fingerprint, over UDP — SIPp has no WebSocket; RTPengine bridges DTLS-SRTP
   to the plain callee, the cost the issue asks about).
3. (unless cpu_only) the highest rate each sustains, searched in turns as in `make bench`.

stunnel runs on the same two cores; its CPU is reported apart (it is the load generator's share, not the node's).
Goals (issue 24): TLS registrations >= 0.5 x UDP, TLS+SRTP calls >= 0.7 x plain.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.bench.fraud import tree_cpu_s
from tests.bench.run import (
    BENCH_NODE,
    CALLEE,
    CALLER,
    HERE,
    MAX_FAILED,
    REGISTER,
    auth_line,
    csv,
    in_turns,
    last_stats,
    native_node,
    provision_kemi,
    report_step,
    searches_in_turns,
    stop,
)
from tests.harness.node import TestNode
from tests.harness.ports import free_port, free_port_block

CALLEE_PORT = [0]  # chosen once per run (see calls)
CALL_CALLERS = 4  # calls: this many SIPp callers at once on every side (over TLS: one connection each)
RTP_PORTS = 16000  # the bench node's RTP ports: at ~1,500 calls/s the default 400 ran out (benchmarks §19)
CONNECTIONS = 4  # TLS storms: this many SIPp processes, each on one TLS connection (through stunnel) with its share of
# the users — several phones' connections at once, each with many registrations (SIPp's one-socket-per-call mode `tn`
# stalled through stunnel after a dozen registrations: not usable here)


def stunnel(accept: int, connect: int, workdir: Path) -> subprocess.Popen:
    """A TLS client tunnel: plain TCP on 127.0.0.1:`accept`, TLS to the node's listener on `connect`."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "stunnel.conf"
    conf.write_text(
        "foreground = yes\npid =\ndebug = 3\n"
        f"[sip]\nclient = yes\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\n"
        "verifyChain = no\nsslVersionMin = TLSv1.2\n"
    )
    proc = subprocess.Popen(["stunnel4", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


TRANSPORT = {"udp": [], "tls": ["-t", "t1"]}


def storm(
    port: int, transport: str, users: int, rate: int, workdir: Path, cpu_of: dict[str, int] | None = None
) -> dict:
    """Every user registers once (401, credentials, 200); registrations/s. Over TLS: CONNECTIONS SIPp processes at once,
    each with its share of the users and of the rate. `cpu_of`: name -> pid of processes (with their children) whose
    CPU per registration is reported too, next to the SIPp processes' own (`cpu_us`)."""
    parts = CONNECTIONS if transport == "tls" else 1
    procs, stats_files = [], []
    cpu_before = {name: tree_cpu_s(pid) for name, pid in (cpu_of or {}).items()}
    sipp_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    for k in range(parts):
        inf = workdir / f"storm-{parts}-{k}.csv"
        if not inf.exists():
            csv(inf, [auth_line(f"b{i}", "3600") for i in range(k, users, parts)])
        n = len(range(k, users, parts))
        stat = workdir / f"stat-{time.monotonic_ns()}.csv"
        stats_files.append(stat)
        argv = [
            "sipp",
            f"127.0.0.1:{port}",
            "-sf",
            str(REGISTER),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-buff_size",
            "4194304",
            "-nostdin",
            "-trace_stat",
            "-stf",
            str(stat),
            "-fd",
            "1",
            "-inf",
            str(inf),
            "-m",
            str(n),
            "-r",
            str(max(1, rate // parts)),
            "-l",
            "2000",
            "-timeout",
            "150s",
            *TRANSPORT[transport],
        ]
        procs.append(subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        p.wait(timeout=180)
    elapsed = time.monotonic() - t0
    ok = failed = 0
    for stat in stats_files:
        st = last_stats(stat)
        ok, failed = ok + st["SuccessfulCall(C)"], failed + st["FailedCall(C)"]
    sipp_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the SIPp processes were waited for: theirs only
    sipp_s = sipp_after.ru_utime + sipp_after.ru_stime - sipp_before.ru_utime - sipp_before.ru_stime
    per = max(ok, 1)
    cpu_us = {name: round((tree_cpu_s(pid) - cpu_before[name]) / per * 1e6, 1) for name, pid in (cpu_of or {}).items()}
    return {
        "ok": ok,
        "failed": failed,
        "elapsed_s": round(elapsed, 2),
        "per_s": round(ok / elapsed, 1),
        "connections": parts,
        "cpu_us": {**cpu_us, "sipp": round(sipp_s / per * 1e6, 1)},
    }


def calls(
    node_port: int, caller_port: int, transport: str, scenario: str, rate: int, duration: int, workdir: Path
) -> dict:
    """`rate` calls/s for `duration` s from the caller (over `transport` to `caller_port`) to the callee, a plain UDP
    SIPp answering at once; counted like `make bench`'s steps."""
    # the callee registers from the same port every step: a new port each time left one more contact per step (expires
    # 3600), and calls that are not plain are offered per branch — one media offer per stale contact; the 2026-12-06
    # 13:46 search ran out of RTPengine's 16,000 ports and Kamailio's branches that way
    if not CALLEE_PORT[0]:
        CALLEE_PORT[0] = free_port()
    callee_port, media = CALLEE_PORT[0], free_port_block(4)
    reg = csv(workdir / "callee.csv", [auth_line(CALLEE, "3600")])
    subprocess.run(
        [
            "sipp",
            f"127.0.0.1:{node_port}",
            "-sf",
            str(REGISTER),
            "-inf",
            str(reg),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(callee_port),
            "-timeout",
            "20s",
            "-nostdin",
        ],
        cwd=workdir,
        capture_output=True,
        timeout=30,
    )
    uas = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(HERE / "uas_answer_load.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(callee_port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media),
            "-buff_size",
            "4194304",
            "-nostdin",
            "-timeout",
            f"{duration + 60}s",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        total = rate * duration
        inf = csv(workdir / "caller.csv", [auth_line(CALLER, CALLEE)])
        # CALL_CALLERS SIPp callers at once, each with its share of the rate: over TLS each is one connection (through
        # stunnel) — a PBX's calls arrive over many phones' connections, and Kamailio reads one connection in one
        # worker at a time; plain UDP gets the same number of callers, so the two sides differ only in the crypto
        procs, stat_files = [], []
        t0 = time.monotonic()
        for k in range(CALL_CALLERS):
            share = total // CALL_CALLERS + (1 if k < total % CALL_CALLERS else 0)
            stat = workdir / f"stat-{time.monotonic_ns()}.csv"
            stat_files.append(stat)
            argv = ["sipp", f"127.0.0.1:{caller_port}", "-sf", str(HERE / scenario), "-i", "127.0.0.1", "-p",
                    str(free_port()), "-buff_size", "4194304", "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1",
                    "-inf", str(inf), "-m", str(share), "-r", str(max(1, rate // CALL_CALLERS)),
                    "-l", str(max(rate * 5 // CALL_CALLERS, 50)), "-mi", "127.0.0.1", "-mp", str(free_port_block(4)),
                    "-recv_timeout", "5s", "-timeout", f"{duration + 40}s", *TRANSPORT[transport]]
            procs.append(subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in procs:
            try:
                p.wait(timeout=duration + 60)
            except subprocess.TimeoutExpired:
                stop(p)
        elapsed = time.monotonic() - t0
        stats = {"SuccessfulCall(C)": 0, "FailedCall(C)": 0}
        for stat in stat_files:
            st = last_stats(stat)
            for key in stats:
                stats[key] += st[key]
    finally:
        stop(uas)
    ok, failed = stats["SuccessfulCall(C)"], stats["FailedCall(C)"]
    kept_pace = elapsed <= duration * 1.15 + 6
    passed = ok >= total * (1 - MAX_FAILED) and failed / max(ok + failed, 1) < MAX_FAILED and kept_pace
    return {
        "rate": rate,
        "ok": ok,
        "failed": failed,
        "offered": total,
        "elapsed_s": round(elapsed, 1),
        "passed": passed,
    }


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run(
    users: int = 20000,
    reg_rate: int = 30000,
    storms: int = 3,
    duration: int = 20,
    start_rate: int = 200,
    max_rate: int = 5000,
    search: bool = True,
    cpu_rounds: int = 5,
    cpu_seconds: int = 8,
    rate: int = 150,
) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-crypto-"))
    node = TestNode(work / "var", rtp_ports=RTP_PORTS, **BENCH_NODE)
    node.start()
    tunnel = native_tunnel = None
    native: list = []
    try:
        provision_kemi(node, users)
        udp, tls_port = node.settings.sip_port, free_port()
        tunnel = stunnel(tls_port, node.settings.sip_tls_port, work)
        native_tls = free_port()
        native, native_udp = native_node(work, users, tls=(native_tls, *node.settings.tls_files))
        native_tunnel_port = free_port()
        native_tunnel = stunnel(native_tunnel_port, native_tls, work / "native-tunnel")
        pids = {
            "kamailio": node.component("kamailio").proc.pid,
            "rtpengine": node.component("rtpengine").proc.pid,
            "stunnel": tunnel.pid,
        }
        # 1. storms, in turns (a warm-up storm each first: the workers load the snapshot, TLS its sessions)
        sides = {"udp": udp, "tls": tls_port, "native_udp": native_udp, "native_tls": native_tunnel_port}
        storm_runs: dict[str, list] = {s: [] for s in sides}
        measured = {  # CPU per registration: the Kamailio that answers, and the stunnel in front of it
            "udp": {"kamailio": pids["kamailio"]},
            "tls": {"kamailio": pids["kamailio"], "stunnel": tunnel.pid},
            "native_udp": {"kamailio": native[0].proc.pid},
            "native_tls": {"kamailio": native[0].proc.pid, "stunnel": native_tunnel.pid},
        }
        for s, port in sides.items():
            storm(port, s.removeprefix("native_"), users, reg_rate, work)
            time.sleep(2)
        for i in range(storms):
            for s, port in in_turns(list(sides.items()), i):
                r = storm(port, s.removeprefix("native_"), users, reg_rate, work, measured[s])
                storm_runs[s].append(r)
                print(f"  storm {i + 1}/{storms} {s:>4}: {r['per_s']:>8} registrations/s; CPU per registration "
                      + ", ".join(f"{k} {v} µs" for k, v in r["cpu_us"].items()), flush=True)
                time.sleep(2)
        # 2. calls at a fixed rate, paired rounds
        kinds = {
            "plain": (udp, "udp", "uac_call_load.xml"),
            "tls_srtp": (tls_port, "tls", "uac_call_srtp.xml"),
            "webrtc_media": (udp, "udp", "uac_call_webrtc.xml"),
        }
        for port, transport, scenario in kinds.values():  # warm-up
            calls(udp, port, transport, scenario, rate, 3, work)
        cpu: dict = {k: {"kamailio_ms": [], "rtpengine_ms": [], "stunnel_ms": [], "failed": []} for k in kinds}
        for round_no in range(cpu_rounds):
            for label, (port, transport, scenario) in in_turns(list(kinds.items()), round_no):
                before = {name: tree_cpu_s(pid) for name, pid in pids.items()}
                st = calls(udp, port, transport, scenario, rate, cpu_seconds, work)
                n = max(st["ok"], 1)
                for name, pid in pids.items():
                    cpu[label][f"{name}_ms"].append(round((tree_cpu_s(pid) - before[name]) / n * 1000, 3))
                cpu[label]["failed"].append(st["failed"])
                time.sleep(2)
        for label, o in cpu.items():
            o["node_ms"] = [round(k + r, 3) for k, r in zip(o["kamailio_ms"], o["rtpengine_ms"])]
            print(
                f"  CPU per call {label:>12}: Kamailio {o['kamailio_ms']} ms, RTPengine {o['rtpengine_ms']} ms, "
                f"stunnel {o['stunnel_ms']} ms, failed {o['failed']}",
                flush=True,
            )
        # 3. the sustained rates, searched in turns
        steps: dict = {k: [] for k in kinds}
        best: dict = {k: (None, None) for k in kinds}
        if search:

            def run_step(label: str, r: int) -> dict:
                port, transport, scenario = kinds[label]
                st = calls(udp, port, transport, scenario, r, duration, work)
                steps[label].append(st)
                report_step(f"calls {label:>12}", st)
                return st

            best.update(searches_in_turns(list(kinds), start_rate, max_rate, run_step))
    finally:
        for t in (tunnel, native_tunnel):
            if t is not None:
                stop(t)
        for comp in native:
            comp.stop()
        node.stop()
    meta = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).isoformat(),
        "users": users,
        "tls_connections": CONNECTIONS,
        "call_callers": CALL_CALLERS,
        "rtp_ports": RTP_PORTS,
    }
    reg = {s: _median([r["per_s"] for r in runs]) for s, runs in storm_runs.items()}
    kam = {s: [r["cpu_us"]["kamailio"] for r in runs] for s, runs in storm_runs.items()}
    cpu_ratios = {  # Kamailio's CPU per registration, UDP over TLS, per round (a capacity ratio: < 1 costs more)
        side: sorted(round(u / t, 3) for u, t in zip(kam[f"{side}udp"], kam[f"{side}tls"]) if t)
        for side in ("", "native_")
    }
    records = [
        {
            "name": f"registration_storm_tls_vs_udp_{users}_users",
            "value": reg["tls"],
            "unit": "registrations/s",
            "baseline": reg["udp"],
            "ratio": round(reg["tls"] / reg["udp"], 3) if reg["udp"] else None,
            "detail": {**meta, "goal": ">= 0.5 x UDP", "runs": storm_runs},
        },
        {
            "name": f"registration_storm_tls_vs_udp_native_{users}_users",
            "value": reg["native_tls"],
            "unit": "registrations/s",
            "baseline": reg["native_udp"],
            "ratio": round(reg["native_tls"] / reg["native_udp"], 3) if reg["native_udp"] else None,
            "detail": {**meta, "what": "the reference: tests/bench/native.cfg on TLS as the node, the same stunnel "
                                       "and SIPp, in the same turns"},
        },
    ]
    for side, label in (("", "node"), ("native_", "native")):
        ratios = cpu_ratios[side]
        records.append({
            "name": f"kamailio_cpu_per_registration_udp_over_tls_{label}",
            "value": _median(kam[f"{side}tls"]),
            "unit": "µs Kamailio CPU per REGISTER pair over TLS (baseline: over UDP; ratio: UDP/TLS, the capacity "
                    "ratio the node's cores alone would give)",
            "baseline": _median(kam[f"{side}udp"]),
            "ratio": ratios[len(ratios) // 2] if ratios else None,
            "detail": {**meta, "per_round_ratios": ratios,
                       "load_generator_us": {s: [r["cpu_us"] for r in storm_runs[s]]
                                             for s in (f"{side}udp", f"{side}tls")}},
        })
    ratios = {
        k: sorted(round(a / b, 3) for a, b in zip(cpu[k]["node_ms"], cpu["plain"]["node_ms"]) if b)
        for k in ("tls_srtp", "webrtc_media")
    }
    for k in ("tls_srtp", "webrtc_media"):
        records.append(
            {
                "name": f"cpu_per_call_{k}_vs_plain",
                "value": _median(cpu[k]["node_ms"]),
                "unit": f"ms CPU per call (Kamailio + RTPengine, median of {cpu_rounds} rounds of {cpu_seconds} s "
                f"at {rate}/s)",
                "baseline": _median(cpu["plain"]["node_ms"]),
                "ratio": ratios[k][len(ratios[k]) // 2] if ratios[k] else None,
                "detail": {**meta, "paired_ratios": ratios[k], **{label: cpu[label] for label in ("plain", k)}},
            }
        )
    if search:
        for k, goal in (("tls_srtp", ">= 0.7 x plain"), ("webrtc_media", "none set")):
            b, p = best[k][0], best["plain"][0]
            records.append(
                {
                    "name": f"call_rate_{k}_vs_plain",
                    "value": b,
                    "unit": "calls/s",
                    "baseline": p,
                    "ratio": round(b / p, 3) if b is not None and p else None,
                    "detail": {**meta, "goal": goal, "steps": steps[k], "plain_steps": steps["plain"]},
                }
            )
    return records
