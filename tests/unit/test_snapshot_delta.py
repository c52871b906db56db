"""Incremental snapshot updates: a parsed snapshot brought up to date with the change between two documents is the
snapshot of the new document, whatever changed (kemi.policy.snapshot_delta)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi.policy.snapshot import SnapshotError, parse_snapshot
from kemi.policy.snapshot_delta import MAX_ROWS, apply, diff

DOMAIN = "d.example"


def base_doc(n: int = 12) -> dict:
    users = [
        {
            "id": i,
            "tenant_id": 1 + i % 2,
            "name": f"u{i}",
            "extension": str(100 + i),
            "aors": [f"sip:u{i}@{DOMAIN}"] if i % 5 else [],
            "number": f"+49301000{i:03d}",
            "forwarding": [{"id": i, "kind": "busy", "target_user": 1 + (i + 1) % n}] if i % 3 == 0 else [],
            "vip": [f"u{1 + (i + 2) % n}"] if i % 4 == 0 else [],
        }
        for i in range(1, n + 1)
    ]
    return {
        "format": 1,
        "version": 1,
        "generated_at": "t1",
        "tenants": [
            {"id": 1, "name": "A", "domain": DOMAIN},
            {"id": 2, "name": "B", "domain": "b.example", "dialplan": [{"pattern": "0(.*)", "replacement": r"\1"}]},
        ],
        "users": users,
        "accounts": [
            {
                "username": f"u{u['id']}",
                "realm": DOMAIN,
                "ha1": "0" * 32,
                "user_id": u["id"],
                "tenant_id": u["tenant_id"],
            }
            for u in users
        ],
        "extensions": [{"tenant_id": u["tenant_id"], "number": u["extension"], "user_id": u["id"]} for u in users],
        "numbers": [{"e164": u["number"], "tenant_id": u["tenant_id"], "user_id": u["id"]} for u in users],
        "groups": [
            {
                "id": 1,
                "tenant_id": 1,
                "name": "g",
                "extension": "700",
                "skills": {"de": 2},
                "callback_window_s": 60,
                "rings": [{"members": [1, 3, 5], "strategy": "longest_idle"}],
            },
        ],
        "skills": {"1": {"de": 3}, "3": {"de": 1}},
        "trunks": [{"id": 1, "name": "t", "host": "192.0.2.1", "port": 5060, "transport": "udp", "priority": 1}],
        "time_plans": [{"id": 1, "name": "office", "ranges": [{"days": [0, 1], "start": 480, "end": 1020}]}],
        "sites": [{"id": 1, "tenant_id": 1, "region": "DE", "city": "Berlin"}],
        "trusted": [],
        "fraud": {"policies": {}, "tariff": {"currency": "EUR", "rates": {"+49": 0.01}}, "locks": []},
    }


# One change to a document each: hypothesis draws a list of them.
def _user(doc, i, **fields):
    for u in doc["users"]:
        if u["id"] == i:
            u.update(fields)


MUTATIONS = {
    "disable user": lambda doc, i: _user(doc, i, enabled=False),
    "forward user": lambda doc, i: _user(
        doc, i, forwarding=[{"id": 99, "kind": "unconditional", "target_number": "+4930999"}]
    ),
    "user loses devices": lambda doc, i: _user(doc, i, aors=[]),
    "rename user": lambda doc, i: _user(doc, i, name=f"renamed{i}", region="AT", area_code="1"),
    "remove user": lambda doc, i: doc.update(users=[u for u in doc["users"] if u["id"] != i]),
    "add user": lambda doc, i: doc["users"].append({"id": 1000 + i, "tenant_id": 1, "name": f"n{i}", "aors": []}),
    "disable account": lambda doc, i: [a.update(enabled=False) for a in doc["accounts"] if a["user_id"] == i],
    "remove account": lambda doc, i: doc.update(accounts=[a for a in doc["accounts"] if a["user_id"] != i]),
    "add account": lambda doc, i: doc["accounts"].append(
        {
            "username": f"x{i}",
            "realm": DOMAIN.upper(),
            "ha1": "1" * 32,
            "user_id": i,
            "tenant_id": 1,
            "allowed": ["198.18.0.0/15"],
        }
    ),
    "new password": lambda doc, i: [a.update(ha1=f"{i:032d}") for a in doc["accounts"] if a["user_id"] == i],
    "move extension": lambda doc, i: [e.update(user_id=1 + (i % 3)) for e in doc["extensions"] if e["user_id"] == i],
    "remove extension": lambda doc, i: doc.update(extensions=[e for e in doc["extensions"] if e["user_id"] != i]),
    "remove number": lambda doc, i: doc.update(numbers=[n for n in doc["numbers"] if n["user_id"] != i]),
    "number to group": lambda doc, i: doc["numbers"].append(
        {"e164": f"+4940{i}", "tenant_id": 1, "user_id": None, "group_id": 1}
    ),
    "disable tenant": lambda doc, i: doc["tenants"][i % 2].update(enabled=False),
    "group member": lambda doc, i: doc["groups"][0]["rings"][0]["members"].append(i),
    "skill": lambda doc, i: doc["skills"].update({str(i): {"de": 1 + i % 5}}),
    "new group": lambda doc, i: doc["groups"].append(
        {"id": 10 + i, "tenant_id": 1, "name": f"g{i}", "extension": f"8{i}", "rings": [{"members": [i]}]}
    ),
    "trunk": lambda doc, i: doc["trunks"].append(
        {"id": 10 + i, "name": "u", "host": "192.0.2.9", "port": 5060, "transport": "tcp", "priority": 0}
    ),
    "time plan": lambda doc, i: doc["time_plans"][0].update(closed_dates=[f"2027-01-{1 + i % 28:02d}"]),
    "site": lambda doc, i: doc["sites"].append({"id": 10 + i, "tenant_id": 2, "region": "AT"}),
    "trusted": lambda doc, i: doc.update(trusted=[f"198.18.{i}.0/24"]),
    "lock": lambda doc, i: doc["fraud"]["locks"].append({"id": i, "tenant_id": 1, "user_id": i, "level": 2}),
    "default realm": lambda doc, i: doc.update(default_realm=f"r{i}"),
    "extras": lambda doc, i: doc.update(extras={"k": i}),
}


def changed(doc: dict, steps: list[tuple[str, int]], version: int) -> dict:
    new = copy.deepcopy(doc)
    for name, i in steps:
        MUTATIONS[name](new, i)
    new["version"], new["generated_at"] = version, f"t{version}"
    return new


steps = st.lists(st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(1, 12)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(first=steps, second=steps)
def test_a_snapshot_brought_up_to_date_equals_the_new_documents_snapshot(first, second):
    a = base_doc()
    b = changed(a, first, 2)
    c = changed(b, second, 3)
    snap_a = parse_snapshot(a)
    d1, d2 = diff(a, b, "A", "B"), diff(b, c, "B", "C")
    snap_b = apply(snap_a, json.loads(json.dumps(d1)))  # as the worker reads it: through JSON
    assert snap_b == parse_snapshot(b)
    assert apply(snap_b, json.loads(json.dumps(d2))) == parse_snapshot(c)


def test_the_change_carries_only_what_changed():
    a = base_doc()
    b = changed(a, [("forward user", 3)], 2)
    d = diff(a, b, "A", "B")
    assert d["rows"] == {"users": {"upsert": [u for u in b["users"] if u["id"] == 3], "remove": []}}
    assert d["whole"] == {}
    assert (d["base"], d["digest"], d["base_version"], d["version"]) == ("A", "B", 1, 2)
    assert len(json.dumps(d)) < 600  # a one-user change is a few hundred bytes, not the whole document


def test_the_unchanged_parts_are_shared_not_rebuilt():
    a = base_doc()
    snap = parse_snapshot(a)
    after = apply(snap, diff(a, changed(a, [("forward user", 3)], 2), "A", "B"))
    assert after.accounts is snap.accounts and after.groups is snap.groups and after.trunks is snap.trunks
    assert after.users[3].forwarding != snap.users[3].forwarding and after.users[4] is snap.users[4]


def test_a_skill_change_carries_the_groups_whose_levels_derive_from_it():
    a = base_doc()
    b = changed(a, [("skill", 5)], 2)
    d = diff(a, b, "A", "B")
    assert set(d["whole"]) == {"skills", "groups"}
    assert apply(parse_snapshot(a), d).groups[1].levels == parse_snapshot(b).groups[1].levels


def test_a_change_of_many_rows_is_left_to_a_whole_reload():
    a = base_doc()
    b = copy.deepcopy(a)
    b["users"] += [{"id": 5000 + k, "tenant_id": 1, "name": f"m{k}"} for k in range(MAX_ROWS + 1)]
    assert diff(a, b, "A", "B") is None
    assert diff({"format": 0}, b, "A", "B") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["rows"].update(users={"upsert": [{"id": "x"}], "remove": []}),
        lambda d: d["rows"].update(accounts={"upsert": [{"username": "a"}], "remove": []}),
        lambda d: d["whole"].update(tenants=[{"id": 1}]),
        lambda d: d.pop("version"),
        lambda d: d["whole"].update(trunks=[{"id": 1}]),
    ],
)
def test_a_damaged_change_raises_and_leaves_the_snapshot_as_it_was(damage):
    a = base_doc()
    snap = parse_snapshot(a)
    before = copy.deepcopy(snap.users)
    d = diff(a, changed(a, [("forward user", 3)], 2), "A", "B")
    damage(d)
    with pytest.raises(SnapshotError):
        apply(snap, d)
    assert snap.users == before and snap.version == 1
