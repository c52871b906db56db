"""`make bench ARGS=--profile`: where the node's Kamailio CPU goes, per registration and per call, next to the native cfg.

1. **CPU account, paired.** The KEMI node (provisioned as in `make bench`), Kamailio with tests/bench/native.cfg and
   the *KEMI floor* (the same native.cfg with its routes run as tests/bench/native_kemi.py, their line-for-line KEMI
   Python translation: what Python routing costs before any of the node's behaviour) run at once; in each round all
   take the same fixed-rate load one after the other (the order reversed every round): a registration storm (REGISTER,
   401, REGISTER with credentials, 200) and calls (INVITE, 407, INVITE, 100, 200, ACK, BYE, 200, with RTPengine
   offer/answer/delete). Kamailio's CPU (all its processes, from /proc) per REGISTER pair and per call on each side;
   the figures are the medians of the per-round ratios node/native, floor/native and node/floor, with their spread.
   The node's control plane (CDR ingestion, live state) and the RTPengines are measured too, apart: they share the
   cores.
2. **Where it goes** (one more load per side, after the rounds): `perf record` (Debian's linux-perf, a software
   cpu-clock event) on each Kamailio splits its CPU into the Python interpreter, the KEMI bridge, Kamailio's core and
   modules, the C library and the kernel; `py-spy` on the node's workers gives the Python functions and lines with
   their share of samples (a call into KSR counts on the line that makes it).
3. **Crossings and parts** (a second node with CALLMANAGER_PROFILE, kemi/shell/profiling.py): every KSR call counted by
   function and by the entry point it was made from, per REGISTER pair and per call, with the Python time of each
   entry point, the garbage collector's and JSON's (the wrappers cost time themselves: counts exact, times as shares).

Only loopback; every load is bounded in count and time. Writes its records into var/bench/results.json.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.bench.fraud import tree_cpu_s
from tests.bench.run import BENCH_NODE, CALLEE, call_step, in_turns, native_node, provision_kemi, registration_storm
from tests.harness.node import TestNode

PY_SPY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy"


def children(pid: int) -> list[int]:
    """A process and its direct children (Kamailio's workers)."""
    out = [pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class Side:
    """One Kamailio under test: its SIP port, its main process, what else of it to measure."""

    def __init__(self, label: str, port: int, kamailio: int, others: dict[str, int]):
        self.label, self.port, self.kamailio, self.others = label, port, kamailio, others

    def load(self, kind: str, users: int, reg_rate: int, call_rate: int, call_s: int, work: Path) -> dict:
        where = work / f"{self.label}-{kind}"
        where.mkdir(exist_ok=True)
        if kind == "register":
            return registration_storm(self.port, users, reg_rate, where)
        return call_step(self.port, call_rate, call_s, where, CALLEE, (CALLEE,))

    def measured(self, kind: str, *load) -> dict:
        pids = {"kamailio": self.kamailio, **self.others}
        before = {name: tree_cpu_s(pid) for name, pid in pids.items()}
        step = self.load(kind, *load)
        done = max(step["ok"], 1)
        return {"ok": step["ok"], "failed": step["failed"],
                **{f"{name}_us": round((tree_cpu_s(pid) - before[name]) / done * 1e6, 1) for name, pid in pids.items()}}


def paired_rounds(sides: list[Side], rounds: int, load: tuple) -> dict:
    """Per kind, per side: the CPU per unit of each round; per kind: the per-round ratios node/native."""
    out: dict = {kind: {s.label: [] for s in sides} for kind in ("register", "call")}
    for round_no in range(rounds):
        for kind in ("register", "call"):
            for side in in_turns(sides, round_no):
                m = side.measured(kind, *load)
                out[kind][side.label].append(m)
                print(f"  round {round_no + 1}/{rounds} {kind:8} {side.label:6}: Kamailio {m['kamailio_us']:>7} µs per "
                      f"{'REGISTER pair' if kind == 'register' else 'call'} ({m['ok']} ok, {m['failed']} failed)", flush=True)
                time.sleep(2)
    return out


def ratio_summary(per_side: dict, key: str = "kamailio_us", this: str = "node", base: str = "native") -> dict:
    node, native = per_side[this], per_side[base]
    ratios = sorted(round(a[key] / b[key], 3) for a, b in zip(node, native) if b[key])
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None  # noqa: E731
    return {"node_us": med([r[key] for r in node]), "native_us": med([r[key] for r in native]), "ratios": ratios,
            "ratio": med(ratios), "spread": [ratios[0], ratios[-1]] if ratios else None}


# ---------------------------------------------------------------- perf: the C-level split


DSO_GROUPS = (
    ("libpython", "Python interpreter"),
    ("app_python3", "KEMI bridge (app_python3)"),
    ("_json", "JSON (C part)"),
    ("[kernel", "kernel"),
    ("libc.so", "C library"),
    ("kamailio", "Kamailio core"),
)


def dso_group(dso: str) -> str:
    for prefix, name in DSO_GROUPS:
        if dso.startswith(prefix):
            return name
    return f"module {dso.removesuffix('.so')}" if dso.endswith(".so") else dso


def perf_available() -> bool:
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"], capture_output=True, timeout=30)
    return r.returncode == 0


def perf_split(pids: list[int], seconds: float, data: Path, run_load) -> dict:
    """perf's samples of these processes during `run_load()`, by part (Python, kernel, Kamailio, modules) and top symbols."""
    rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499", "-o", str(data), "-p", ",".join(map(str, pids)),
                            "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    run_load()
    rec.wait(timeout=seconds + 30)
    parts: collections.Counter = collections.Counter()
    for line in _perf_report(data, "dso"):
        share, dso = line
        parts[dso_group(dso)] += share
    symbols = [{"share": s, "symbol": sym} for s, sym in _perf_report(data, "dso,sym")[:25]]
    return {"parts": {k: round(v, 2) for k, v in parts.most_common()}, "top_symbols": symbols}


def _perf_report(data: Path, sort: str) -> list[tuple[float, str]]:
    r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", sort, "-g", "none"],
                       capture_output=True, text=True, timeout=120)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
        if m and not line.lstrip().startswith("#"):
            rows.append((float(m.group(1)), re.sub(r"\s+", " ", m.group(2))))
    return rows


# ---------------------------------------------------------------- py-spy: the Python split


def py_spy(pids: list[int], seconds: float, work: Path, run_load) -> dict:
    """py-spy's samples of the node's workers during `run_load()`: shares of the project's functions (inclusive) and
    lines (self; a KSR call is the line that makes it) among all samples (those outside Python: Kamailio's C)."""
    outs = [work / f"py-spy-{p}.txt" for p in pids]
    procs = [subprocess.Popen([str(PY_SPY), "record", "--pid", str(p), "--duration", str(int(seconds)), "--rate", "200", "--format",
                               "raw", "--nonblocking", "--output", str(o)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p, o in zip(pids, outs)]
    time.sleep(1.0)
    run_load()
    for p in procs:
        try:
            p.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
    return spy_shares([o for o in outs if o.exists()])


def spy_shares(files: list[Path], top: int = 25) -> dict:
    total = outside = 0
    inclusive: collections.Counter = collections.Counter()
    lines: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()  # by function, the samples in its own lines
    for f in files:
        for raw in f.read_text(errors="replace").splitlines():
            if not raw.strip():
                continue
            stack, _, n_text = raw.rpartition(" ")
            n = int(n_text) if n_text.isdigit() else 0
            total += n
            if not stack.strip():
                outside += n
                continue
            frames = stack.split(";")
            lines[frames[-1]] += n
            own[re.sub(r":\d+\)$", ")", frames[-1])] += n
            for fn in {re.sub(r":\d+\)$", ")", fr) for fr in frames}:
                inclusive[fn] += n
    if not total:
        return {"samples": 0}
    share = lambda n: round(100 * n / total, 1)  # noqa: E731
    return {"samples": total, "outside_python_pct": share(outside),
            "functions": [{"pct": share(n), "function": k} for k, n in inclusive.most_common(top)],
            "own": [{"pct": share(n), "function": k} for k, n in own.most_common(top * 2)],
            "lines": [{"pct": share(n), "line": k} for k, n in lines.most_common(top)]}


# ---------------------------------------------------------------- counted: crossings per unit


def counted_snapshot(directory: Path) -> dict:
    tot: dict = {"entries": {}, "ksr": {}, "parts": {}, "by_entry": {}}

    def add(dst: dict, src: dict) -> None:
        for name, values in src.items():
            row = dst.setdefault(name, [0] * len(values))
            for i, v in enumerate(values):
                row[i] += v

    for f in glob.glob(str(directory / "*.json")):
        try:
            doc = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        for key in ("entries", "ksr", "parts"):
            add(tot[key], doc.get(key, {}))
        for entry, fns in doc.get("by_entry", {}).items():
            add(tot["by_entry"].setdefault(entry, {}), fns)
    return tot


def counted_delta(before: dict, after: dict, units: int) -> dict:
    def sub(b: dict, a: dict) -> dict:
        return {k: [x - y for x, y in zip(v, a.get(k, [0] * len(v)))] for k, v in b.items() if v[0] - a.get(k, [0])[0] > 0}

    per = max(units, 1)
    entries = {}
    for name, (calls, ns, ksr_ns) in sorted(sub(after["entries"], before["entries"]).items(), key=lambda x: -x[1][1]):
        if name.startswith("request OPTIONS"):  # the pings that make the workers write their figures (poke)
            continue
        fns = sub(after["by_entry"].get(name, {}), before["by_entry"].get(name, {}))
        entries[name] = {"per_unit": round(calls / per, 2), "python_us": round((ns - ksr_ns) / per / 1000, 1),
                         "ksr_us": round(ksr_ns / per / 1000, 1), "crossings": round(sum(v[0] for v in fns.values()) / per, 2),
                         "ksr": {f: round(v[0] / per, 2) for f, v in sorted(fns.items(), key=lambda x: -x[1][0])}}
    ksr = sub(after["ksr"], before["ksr"])
    for fns in [sub(after["by_entry"].get(n, {}), before["by_entry"].get(n, {})) for n in after["by_entry"] if n.startswith("request OPTIONS")]:
        for f, (c, ns) in fns.items():  # the pings' own crossings are not the load's
            if f in ksr:
                ksr[f] = [ksr[f][0] - c, ksr[f][1] - ns]
    return {"crossings_per_unit": round(sum(v[0] for v in ksr.values()) / per, 1),
            "ksr": {f: {"per_unit": round(c / per, 2), "us": round(ns / per / 1000, 1)} for f, (c, ns) in
                    sorted(ksr.items(), key=lambda x: -x[1][1])},
            "entries": entries,
            "parts": {k: {"per_unit": round(c / per, 2), "us": round(ns / per / 1000, 1)} for k, (c, ns) in
                      sub(after["parts"], before["parts"]).items()}}


def poke(port: int, n: int = 30) -> None:
    """OPTIONS pings to the node, a second after a load: each worker that handles one writes its figures (it does so
    at most once a second, after an entry point ran), so what a load did is on disk before it is read."""
    time.sleep(1.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        for i in range(n):
            s.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-poke{i}-{time.monotonic_ns()}\r\n"
                      f"Max-Forwards: 70\r\nFrom: <sip:poke@127.0.0.1>;tag=p{i}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
                      f"Call-ID: poke-{i}-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
            try:
                s.recvfrom(4096)
            except OSError:
                pass
    time.sleep(0.3)


def counting_node(work: Path, users: int, load: tuple) -> dict:
    """A node with the profiling mode: crossings and parts per REGISTER pair and per call."""
    directory = work / "counted"
    os.environ["CALLMANAGER_PROFILE"] = str(directory)
    try:
        node = TestNode(work / "var-counted", **BENCH_NODE).start()
    finally:
        del os.environ["CALLMANAGER_PROFILE"]
    side = Side("counted", node.settings.sip_port, node.component("kamailio").proc.pid, {})
    out = {}
    try:
        provision_kemi(node, users)
        side.load("register", *load)  # warm-up: the workers load the snapshot, the users register
        side.load("call", *load)
        for kind in ("register", "call"):
            poke(side.port)
            before = counted_snapshot(directory)
            step = side.load(kind, *load)
            poke(side.port)
            out[kind] = counted_delta(before, counted_snapshot(directory), step["ok"])
            print(f"  counted {kind}: {out[kind]['crossings_per_unit']} crossings per "
                  f"{'REGISTER pair' if kind == 'register' else 'call'}", flush=True)
    finally:
        node.stop()
    return out


# ---------------------------------------------------------------- the run


def run(users: int = 20000, rounds: int = 5, reg_rate: int = 4000, call_rate: int = 200, call_s: int = 8,
        counted: bool = True) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="cm-bench-profile-"))
    print(f"CPU account, work dir {work}", flush=True)
    load = (users, reg_rate, call_rate, call_s, work)
    node = TestNode(work / "var", **BENCH_NODE).start()
    comps: list = []
    result: dict = {}
    try:
        provision_kemi(node, users)
        comps, native_port = native_node(work, users)
        floor_comps, floor_port = native_node(work, users, kemi=True)
        comps += floor_comps
        sides = [Side("node", node.settings.sip_port, node.component("kamailio").proc.pid,
                      {"controlplane": node.component("controlplane").proc.pid, "rtpengine": node.component("rtpengine").proc.pid}),
                 Side("native", native_port, comps[0].proc.pid, {"rtpengine": comps[1].proc.pid}),
                 Side("floor", floor_port, floor_comps[0].proc.pid, {"rtpengine": floor_comps[1].proc.pid})]
        for side in sides:  # warm-up, not counted: the node's workers load the snapshot; everyone registers once
            side.load("register", *load)
            side.load("call", *load)
        result["rounds"] = paired_rounds(sides, rounds, load)
        has_perf = perf_available()
        result["perf"], result["py_spy"] = {}, {}
        for kind in ("register", "call"):
            seconds = call_s + 2 if kind == "call" else users / reg_rate + 3
            for side in sides:
                if has_perf:
                    result["perf"][f"{kind} {side.label}"] = perf_split(children(side.kamailio), seconds, work / f"perf-{kind}-{side.label}.data",
                                                                        lambda s=side, k=kind: s.load(k, *load))
            if PY_SPY.exists():
                result["py_spy"][kind] = py_spy(children(sides[0].kamailio)[1:], seconds, work, lambda k=kind: sides[0].load(k, *load))
        if not has_perf:
            result["perf"] = {"unavailable": "perf record failed here (linux-perf missing or perf_event_paranoid)"}
    finally:
        for c in comps:
            c.stop()
        node.stop()
    if counted:
        result["counted"] = counting_node(work, users, load)
    shutil.rmtree(work, ignore_errors=True)
    return records(result, users, rounds, reg_rate, call_rate)


def records(result: dict, users: int, rounds: int, reg_rate: int, call_rate: int) -> list[dict]:
    meta = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "date": datetime.now(timezone.utc).isoformat(), "users": users,
            "rounds": rounds}
    out = []
    for kind, unit, rate in (("register", "µs Kamailio CPU per REGISTER pair", reg_rate), ("call", "µs Kamailio CPU per call", call_rate)):
        per_side = result["rounds"][kind]
        k = ratio_summary(per_side)
        print(f"\n  {kind}: node {k['node_us']} µs, native {k['native_us']} µs; node/native per round {k['ratios']} -> median {k['ratio']}")
        detail = {**meta, "rate": rate, "paired_ratios": k["ratios"], "spread": k["spread"], "rounds_detail": per_side,
                  "node_controlplane_us": ratio_summary({"node": per_side["node"], "native": per_side["node"]}, "controlplane_us")["node_us"],
                  "rtpengine_us": {s: sorted(r["rtpengine_us"] for r in per_side[s])[len(per_side[s]) // 2] for s in per_side},
                  "perf": {s: v for s, v in result["perf"].items() if s.startswith(kind) or s == "unavailable"},
                  "py_spy": result["py_spy"].get(kind), "counted": result.get("counted", {}).get(kind)}
        out.append({"name": f"kamailio_cpu_per_{kind}_node_vs_native", "value": k["node_us"], "unit": unit, "baseline": k["native_us"],
                    "ratio": k["ratio"], "detail": detail})
        if "floor" in per_side:  # the KEMI floor: native.cfg's routing in KEMI Python (tests/bench/native_kemi.py)
            for this, base in (("floor", "native"), ("node", "floor")):
                f = ratio_summary(per_side, this=this, base=base)
                print(f"  {kind}: {this} {f['node_us']} µs, {base} {f['native_us']} µs; {this}/{base} per round {f['ratios']} -> median {f['ratio']}")
                out.append({"name": f"kamailio_cpu_per_{kind}_{this}_vs_{base}", "value": f["node_us"], "unit": unit,
                            "baseline": f["native_us"], "ratio": f["ratio"],
                            "detail": {**meta, "rate": rate, "paired_ratios": f["ratios"], "spread": f["spread"]}})
        for label, split in detail["perf"].items():
            if isinstance(split, dict):
                print(f"  perf {label}: " + ", ".join(f"{p} {v}%" for p, v in list(split["parts"].items())[:8]))
        spy = detail["py_spy"]
        if spy and spy.get("samples"):
            print(f"  py-spy {kind}: {spy['outside_python_pct']}% of samples outside Python; top functions: "
                  + "; ".join(f"{f['function']} {f['pct']}%" for f in spy["functions"][:12]))
        c = detail["counted"]
        if c:
            print(f"  crossings per unit: {c['crossings_per_unit']}; by entry: "
                  + "; ".join(f"{e} x{v['per_unit']}: {v['crossings']} crossings, Python {v['python_us']} µs" for e, v in c["entries"].items()))
    return out
