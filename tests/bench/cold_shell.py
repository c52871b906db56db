"""The shell's own Python per message on a fast fake KSR (reads memoized), with the CPU caches evicted between entry
points as Kamailio's own work and the other processes do on the node (docs/benchmarks.md §11):

    THRASH_MB=16 python -m tests.bench.cold_shell [TREE] [CALLS] [time|prof]

Prints per message the 25th percentile of its µs (one run: a diagnostic of where cold Python goes, not a paired
measurement; `make bench ARGS=--profile` is the judge)."""
import importlib.util, json, os, sys, tempfile, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
tree = sys.argv[1] if len(sys.argv) > 1 else ROOT
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
mode = sys.argv[3] if len(sys.argv) > 3 else "time"
sys.path.insert(0, tree)
spec = importlib.util.spec_from_file_location("fake_ksr", os.path.join(ROOT, "tests", "harness", "fake_ksr.py"))
fk = importlib.util.module_from_spec(spec); spec.loader.exec_module(fk)
KSR = fk.FakeKSR().install()
var = tempfile.mkdtemp(prefix="cm-fast-")
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
from kemi.shell import routes, calls
class Spool:
    def put(self, r): return "x"
    def put_line(self, r): return "x"
calls.SPOOL = Spool()
BASE = {"$rd": "acme.example", "$fd": "acme.example", "$td": "acme.example", "$si": "192.0.2.10", "$sp": 5060,
        "$Rp": 5060, "$ua": "Yealink", "$rz": "sip", "$pr": "udp", "$dlg(callid)": "c1", "$dlg(from_tag)": "ft"}
RET = {"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1, "registrar.lookup_uri": 1,
       "rr.loose_route": 1, "tm.t_is_canceled": -1}
# fast fake: every module function a cached constant-return; reads memoized per (phase, format)
memo = {}
phase = [""]
slow_gete = KSR.pv.gete
def gete(fmt):
    key = (phase[0], fmt)
    v = memo.get(key)
    if v is None:
        v = memo[key] = slow_gete(fmt)
    return v
KSR.pv.gete = gete
class FastMod:
    def __init__(self, name): self._n = name
    def __getattr__(self, fn):
        r = KSR.returns.get(f"{self._n}.{fn}", 1)
        f = (lambda *a, _r=r: _r)
        setattr(self, fn, f)
        return f
mods = {}
def ksr_getattr(name):
    m = mods.get(name)
    if m is None: m = mods[name] = FastMod(name)
    return m
for name in ("sanity", "maxfwd", "tmx", "tm", "nathelper", "auth", "registrar", "rr", "dialog", "rtpengine", "hdr", "sl", "xlog", "textops", "siputils", "uac"):
    setattr(KSR, name, ksr_getattr(name)) if False else None
KSR.returns.update(RET)
import types
fake_cls = type(KSR)
orig_getattr = fake_cls.__getattr__
def fast_getattr(self, name):
    if name.startswith("_"): raise AttributeError(name)
    return ksr_getattr(name)
fake_cls.__getattr__ = fast_getattr
for nm in ("setflag", "isflagset", "setbflag", "force_rport", "is_myself_ruri", "info", "notice", "warn", "err", "set_drop"):
    setattr(KSR, nm, lambda *a: 1)
KSR.isflagset = lambda f: False
steps = [
    ("reg401", routes.request_route, (), {"$rm": "REGISTER", "$rU": None, "$fU": "alice", "$tU": "alice", "$tt": None, "$au": None, "$ar": None, "$ci": "r1"}),
    ("reg200", routes.request_route, (), {"$rm": "REGISTER", "$rU": None, "$fU": "alice", "$tU": "alice", "$tt": None, "$au": "alice", "$ar": "acme.example", "$ci": "r1"}),
    ("inv407", routes.request_route, (), {"$rm": "INVITE", "$rU": "202", "$fU": "alice", "$tU": "202", "$tt": None, "$au": None, "$ar": None, "$ci": "c1"}),
    ("invite", routes.request_route, (), {"$rm": "INVITE", "$rU": "202", "$fU": "alice", "$tU": "202", "$tt": None, "$au": "alice", "$ar": "acme.example", "$ci": "c1"}),
    ("r200", routes.branch_reply_route, (), {"$rs": 200, "$bf": 0, "$cT": "application/sdp"}),
    ("start", routes.dialog_event, ("dialog:start",), {}),
    ("ack", routes.request_route, (), {"$rm": "ACK", "$tt": "tag-b", "$au": None, "$cT": None}),
    ("bye", routes.request_route, (), {"$rm": "BYE", "$tt": "tag-b", "$au": None}),
    ("end", routes.dialog_event, ("dialog:end",), {}),
]
pc = time.perf_counter_ns
times = {s[0]: [] for s in steps}
THRASH = bytearray(int(os.environ.get("THRASH_MB", "0")) * 1024 * 1024)
ONES = [bytes([1]) * (len(THRASH) // 64), bytes([2]) * (len(THRASH) // 64)]
def thrash():
    if THRASH:
        ONES.reverse()
        THRASH[0::64] = ONES[0]
def run_once(record):
    for name, fn, args, pv in steps:
        thrash()
        phase[0] = name
        KSR.pv_values.update(BASE); KSR.pv_values.update(pv)
        KSR.returns["auth.pv_auth_check"] = 1 if pv.get("$au") else -5
        if name == "end":
            KSR.htables.get("cmended", {}).clear()
        t = pc(); fn(*args); dt = pc() - t
        if record: times[name].append(dt)
for i in range(200): run_once(False)
if mode == "prof":
    import cProfile, pstats
    p = cProfile.Profile(); p.enable()
    for i in range(n): run_once(False)
    p.disable(); pstats.Stats(p).sort_stats(sys.argv[4] if len(sys.argv) > 4 else "tottime").print_stats(40)
else:
    for i in range(n): run_once(True)
    q = {k: sorted(v)[len(v) // 4] / 1000 for k, v in times.items()}
    print("  ".join(f"{k} {v:.1f}" for k, v in q.items()), f" call {sum(v for k, v in q.items() if not k.startswith('reg')):.1f}  reg {q['reg401'] + q['reg200']:.1f} µs")

