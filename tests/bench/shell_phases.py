"""The KEMI shell's own Python per call, phase by phase, this tree against an earlier commit — on the fake KSR of
tests/harness/fake_ksr.py (no Kamailio: what it shows is the Python the shell runs, not Kamailio's work).

    python -m tests.bench.shell_phases [--before REV] [--calls N] [--turns T]

A call is INVITE (authenticated, to a registered user), 180, 200, dialog start, ACK, BYE, dialog end. Each tree runs
in its own process (the earlier one checked out with `git worktree`, removed afterwards), in turns; per phase the
figure is the 25th percentile of the per-call times in µs (the quietest quarter: this machine is shared), and the
crossings into KSR per call are counted on both sides (they should match when only Python changed).
Used for docs/benchmarks.md §10; issue 21's profile inside Kamailio is the judge of where Kamailio's CPU goes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("invite", "r180", "r200", "start", "ack", "bye", "end")

# Runs inside the child process: `tree` first on sys.path, the fake KSR installed before the shell is imported.
CHILD = r'''
import importlib.util, json, os, sys, tempfile, time
tree, n, fake = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, tree)
spec = importlib.util.spec_from_file_location("fake_ksr", fake)
fk = importlib.util.module_from_spec(spec); spec.loader.exec_module(fk)
KSR = fk.FakeKSR().install()
var = tempfile.mkdtemp(prefix="cm-shell-phases-")
os.environ["CALLMANAGER_VAR"] = var
from kemi.policy.auth import ha1
doc = {"format": 1, "version": 3, "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example"}],
       "accounts": [{"username": u, "realm": "acme.example", "ha1": ha1(u, "acme.example", "pw"), "user_id": i, "tenant_id": 1}
                    for i, u in ((1, "alice"), (2, "bob"))],
       "users": [{"id": i, "tenant_id": 1, "name": u, "extension": e, "aors": [f"sip:{u}@acme.example"]}
                 for i, u, e in ((1, "alice", "201"), (2, "bob", "202"))],
       "extensions": [{"tenant_id": 1, "number": "201", "user_id": 1}, {"tenant_id": 1, "number": "202", "user_id": 2}]}
os.makedirs(os.path.join(var, "snapshot"))
with open(os.path.join(var, "snapshot", "current.json"), "w") as fh:
    json.dump(doc, fh)
from kemi.shell import routes
BASE = {"$rU": "202", "$rd": "acme.example", "$fU": "alice", "$fd": "acme.example", "$tU": "202", "$td": "acme.example",
        "$si": "192.0.2.10", "$sp": 5060, "$Rp": 5060, "$au": "alice", "$ar": "acme.example", "$ua": "Yealink", "$rz": "sip",
        "$pr": "udp"}
RET = {"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "auth.pv_auth_check": 1, "registrar.lookup_uri": 1,
       "rr.loose_route": 1, "nathelper.nat_uac_test": -1, "tm.t_is_canceled": -1}
crossings = [0]
for obj in (KSR.pv, KSR.htable):
    for name in [m for m in dir(obj) if not m.startswith("_")]:
        def counted(*a, _f=getattr(obj, name)):
            crossings[0] += 1
            return _f(*a)
        setattr(obj, name, counted)
pc = time.perf_counter_ns
times = {p: [] for p in ("invite", "r180", "r200", "start", "ack", "bye", "end")}
def timed(phase, fn, *a):
    t = pc(); fn(*a); times[phase].append(pc() - t)
per_call = 0
for i in range(n):
    KSR.reset(); KSR.returns.update(RET); crossings[0] = 0
    KSR.pv_values.update(BASE); KSR.pv_values.update({"$rm": "INVITE", "$ci": f"call-{i}", "$tt": None})
    timed("invite", routes.request_route)
    KSR.pv_values.update({"$rs": 180, "$bf": 0, "$cT": ""}); timed("r180", routes.branch_reply_route)
    KSR.pv_values.update({"$rs": 200, "$cT": "application/sdp"}); timed("r200", routes.branch_reply_route)
    timed("start", routes.dialog_event, "dialog:start")
    KSR.pv_values.update({"$rm": "ACK", "$tt": "tag-b"}); timed("ack", routes.request_route)
    KSR.pv_values.update({"$rm": "BYE"}); timed("bye", routes.request_route)
    timed("end", routes.dialog_event, "dialog:end")
    per_call = crossings[0] + len(KSR.calls)
warm = n // 5
out = {p: sorted(v[warm:])[len(v[warm:]) // 4] / 1000 for p, v in times.items()}
print(json.dumps({"phases_us": out, "crossings_per_call": per_call}))
'''


def measure(tree: Path, calls: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(calls), str(ROOT / "tests" / "harness" / "fake_ksr.py")],
                       capture_output=True, text=True, timeout=600, cwd=tree)
    if r.returncode != 0:
        raise SystemExit(f"{tree}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="f8f3823", help="the earlier commit (default: main before issue 20)")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cm-before-") as tmp:
        before = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before], check=True)
        try:
            runs: dict[str, list[dict]] = {"before": [], "this": []}
            for _ in range(args.turns):
                runs["before"].append(measure(before, args.calls))
                runs["this"].append(measure(ROOT, args.calls))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    print(f"  shell Python per call phase (µs, 25th percentile; best of {args.turns} turns), fake KSR, this vs {args.before}:")
    totals = {}
    for label, rs in runs.items():
        best = {p: min(r["phases_us"][p] for r in rs) for p in PHASES}
        totals[label] = best
        print(f"    {label:7} " + "  ".join(f"{p} {best[p]:6.1f}" for p in PHASES)
              + f"   total {sum(best.values()):6.1f}   crossings/call {rs[-1]['crossings_per_call']}")
    print(f"    difference: {sum(totals['this'].values()) - sum(totals['before'].values()):+.1f} µs per call")


if __name__ == "__main__":
    main()
