"""The crossing budget (issue 21, docs/benchmarks.md §11): how many times the KEMI shell calls into Kamailio for a
REGISTER pair and for a whole call, message by message, on the fake KSR (tests/harness/fake_ksr.py). Every crossing
costs Kamailio CPU; a change that adds one to the ordinary path fails here and has to raise the budget on purpose,
with its reason in the benchmarks' table. Counts, not times: exact on any machine."""
import os
import tempfile

import pytest

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from kemi.policy.auth import ha1  # noqa: E402
from kemi.policy.snapshot import parse_snapshot  # noqa: E402
from kemi.shell import calls, routes  # noqa: E402

# The budget: crossings per message of the ordinary REGISTER pair and call (a registered user calls another).
BUDGET = {
    "REGISTER challenged": 10,  # 9 once the source's previous window is known to the worker
    "REGISTER": 11,
    "INVITE challenged": 9,
    "INVITE": 23,
    "200 to the INVITE": 3,
    "dialog start": 2,
    "ACK": 8,
    "BYE": 9,
    "dialog end": 4,
}
REGISTER_PAIR = 21
CALL = 58

DOC = {
    "format": 1, "version": 3, "tenants": [{"id": 1, "name": "Acme", "domain": "acme.example"}],
    "accounts": [{"username": u, "realm": "acme.example", "ha1": ha1(u, "acme.example", "pw"), "user_id": i, "tenant_id": 1}
                 for i, u in ((1, "alice"), (2, "bob"))],
    "users": [{"id": i, "tenant_id": 1, "name": u, "extension": e, "aors": [f"sip:{u}@acme.example"]}
              for i, u, e in ((1, "alice", "201"), (2, "bob", "202"))],
    "extensions": [{"tenant_id": 1, "number": "201", "user_id": 1}, {"tenant_id": 1, "number": "202", "user_id": 2}],
}


class Snapshots:
    def __init__(self, snapshot):
        self.snapshot = snapshot

    def get(self):
        return self.snapshot


class Spool:
    def put(self, record):
        return "spool"

    def put_line(self, line):
        return "spool"


@pytest.fixture
def counted(monkeypatch):
    """Every call into the fake KSR counted (pseudo-variables and htables, and every module function)."""
    ksr = shared()
    snaps = Snapshots(parse_snapshot(DOC))
    monkeypatch.setattr(routes, "SNAPSHOTS", snaps)
    monkeypatch.setattr(calls, "SNAPSHOTS", snaps)
    monkeypatch.setattr(calls, "SPOOL", Spool())
    n, inside = [0], [0]
    for name in ("setflag", "isflagset", "setbflag", "force_rport", "is_myself_ruri", "set_drop"):  # KSR's own functions
        fn = getattr(ksr, name)

        def top(*a, _f=fn):
            n[0] += 1
            return _f(*a)

        monkeypatch.setattr(ksr, name, top)
    for obj in (ksr.pv, ksr.htable):
        for name in [m for m in dir(obj) if not m.startswith("_")]:
            fn = getattr(obj, name)

            def wrapped(*a, _f=fn):
                n[0] += not inside[0]  # the fake's own htable work inside a $_s read is part of that one crossing
                inside[0] += 1
                try:
                    return _f(*a)
                finally:
                    inside[0] -= 1

            monkeypatch.setattr(obj, name, wrapped)
    base = {"$rd": "acme.example", "$fd": "acme.example", "$td": "acme.example", "$si": "192.0.2.10", "$sp": 5060,
            "$Rp": 5060, "$ua": "Yealink", "$rz": "sip", "$pr": "udp", "$ci": "call-1"}

    def crossings(fn, *args, **pv) -> int:
        ksr.calls.clear()
        n[0] = 0
        ksr.pv_values.update(base)
        ksr.pv_values.update(pv)
        fn(*args)
        return n[0] + len(ksr.calls)

    return ksr, crossings


def test_a_register_pair_stays_within_the_budget(counted):
    ksr, crossings = counted
    ksr.returns.update({"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1})
    reg = {"$rm": "REGISTER", "$rU": None, "$fU": "alice", "$tU": "alice", "$tt": None}
    first = crossings(routes.request_route, **reg, **{"$au": None, "$ar": None})
    assert "auth.auth_challenge" in ksr.names()
    ksr.returns["auth.pv_auth_check"] = 1
    second = crossings(routes.request_route, **reg, **{"$au": "alice", "$ar": "acme.example"})
    assert "registrar.save" in ksr.names()
    assert first <= BUDGET["REGISTER challenged"] and second <= BUDGET["REGISTER"], (first, second)
    assert first + second <= REGISTER_PAIR


def test_a_call_stays_within_the_budget(counted):
    ksr, crossings = counted
    ksr.returns.update({"tmx.t_precheck_trans": -1, "tm.t_check_trans": -1, "nathelper.nat_uac_test": -1,
                        "registrar.lookup_uri": 1, "rr.loose_route": 1, "tm.t_is_canceled": -1})
    invite = {"$rm": "INVITE", "$rU": "202", "$fU": "alice", "$tU": "202", "$tt": None}
    used = {"INVITE challenged": crossings(routes.request_route, **invite, **{"$au": None, "$ar": None})}
    assert "auth.auth_challenge" in ksr.names()
    ksr.returns["auth.pv_auth_check"] = 1
    used["INVITE"] = crossings(routes.request_route, **invite, **{"$au": "alice", "$ar": "acme.example"})
    assert "tm.t_relay" in ksr.names() and "rtpengine.rtpengine_manage" in ksr.names()
    used["200 to the INVITE"] = crossings(routes.branch_reply_route, **{"$rs": 200, "$bf": 0, "$cT": "application/sdp"})
    used["dialog start"] = crossings(routes.dialog_event, "dialog:start")
    used["ACK"] = crossings(routes.request_route, **{**invite, "$rm": "ACK", "$tt": "tag-b", "$au": None, "$cT": None})
    assert "tm.t_relay" in ksr.names()
    used["BYE"] = crossings(routes.request_route, **{**invite, "$rm": "BYE", "$tt": "tag-b", "$au": None})
    used["dialog end"] = crossings(routes.dialog_event, "dialog:end", **{"$dlg(callid)": "call-1", "$dlg(from_tag)": "tag-a"})
    assert "rtpengine.rtpengine_delete" in ksr.names()
    over = {k: (v, BUDGET[k]) for k, v in used.items() if v > BUDGET[k]}
    assert not over, f"over the budget (used, budget): {over}; all: {used}"
    assert sum(used.values()) <= CALL, used
