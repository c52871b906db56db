"""Permissions by role (ACC-03/04), as a matrix: every method × every role × own tenant / another tenant.

1. The gate: every method called by every role (empty params) is refused `forbidden` exactly when the role lacks the
   method's permission (controlplane/api/permissions.py).
2. Own tenant: every method with real parameters (someone else's objects, where a method takes a user) succeeds or
   fails for a reason other than `forbidden` exactly when the role may do it.
3. Another tenant: every role of tenant A, every method, tenant B's objects: refused (`forbidden` or `not_found`), and
   nothing of B changed.
"""
from __future__ import annotations

import itertools
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

import controlplane.features  # noqa: F401  (registers the methods)
from controlplane.api.permissions import ROLE_PERMS
from controlplane.api.rpc import REGISTRY
from controlplane.db.models import Role
from controlplane.node.settings import load_settings
from controlplane.server import ControlPlaneServer
from tests.api.conftest import Api
from tests.harness.ports import free_port

TENANT_ROLES = [r for r in Role if r is not Role.PLATFORM]
_n = itertools.count(10)

# Lists filter what a `self` token sees instead of refusing: they are never `forbidden` in the tenant.
FILTERING_LISTS = {"cdr.list", "call.list", "forwarding.list", "profile.list", "caller_list.list", "voicemail.box_list"}


def build_world(api: Api, name: str) -> SimpleNamespace:
    """A tenant with one user (and token bound to them) per role, a target user with everything a method can touch."""
    i = next(_n)
    t = api.ok("tenant.create", name=name, sip_domain=f"{name.lower()}.example")
    w = SimpleNamespace(tenant=t["id"], name=name, i=i, tokens={})
    admin = api.ok("token.create", name="setup", role="admin", tenant_id=t["id"])["token"]
    w.site = api.ok("site.create", token=admin, name="HQ", area_code="30", street="Hauptstr.", house_number="1")["id"]
    w.spare_site = api.ok("site.create", token=admin, name="Spare")["id"]
    w.target = api.ok("user.create", token=admin, name="Target", site_id=w.site)["id"]
    w.spare_user = api.ok("user.create", token=admin, name="Spare")["id"]
    users = {}
    for r in TENANT_ROLES:
        u = api.ok("user.create", tenant_id=t["id"], name=f"{r.value} person", role=r.value)  # the platform grants every role
        users[r] = u["id"]
        w.tokens[r] = api.ok("token.create", name=r.value, role=r.value, tenant_id=t["id"], user_id=u["id"])["token"]
    w.users = users
    w.ext = api.ok("extension.create", token=admin, number="301", user_id=w.target)["id"]
    w.spare_ext = api.ok("extension.create", token=admin, number="302", user_id=w.spare_user)["id"]
    w.acc = api.ok("sip_account.create", token=admin, user_id=w.target, username=f"target{i}", password="target-secret-1")["id"]
    w.spare_acc = api.ok("sip_account.create", token=admin, user_id=w.spare_user, username=f"spare{i}", password="spare-secret-1")["id"]
    w.block = api.ok("number_block.create", tenant_id=t["id"], first=f"+4930{i}00000", size=100)["id"]
    w.number = api.ok("number.assign", token=admin, e164=f"+4930{i}00001", user_id=w.target)["id"]
    w.spare_number = api.ok("number.assign", token=admin, e164=f"+4930{i}00002")["id"]
    w.free_number = f"+4930{i}00050"
    w.tp = api.ok("time_plan.create", token=admin, name="office", ranges=[{"days": ["mon"], "start": "08:00", "end": "18:00"}])["id"]
    w.spare_tp = api.ok("time_plan.create", token=admin, name="spare", ranges=[{"days": ["tue"], "start": "08:00", "end": "18:00"}])["id"]
    w.rule = api.ok("dialplan.create", token=admin, pattern="^8(\\d+)$", replacement="\\1")["id"]
    w.spare_rule = api.ok("dialplan.create", token=admin, pattern="^7(\\d+)$", replacement="\\1")["id"]
    w.fwd = api.ok("forwarding.create", token=admin, user_id=w.target, kind="busy", target_user_id=users[Role.ADMIN])["id"]
    w.spare_fwd = api.ok("forwarding.create", token=admin, user_id=w.target, kind="no_answer", target_user_id=users[Role.ADMIN])["id"]
    w.profile = api.ok("profile.create", token=admin, user_id=w.target, name="meeting", clir=True)["id"]
    w.spare_profile = api.ok("profile.create", token=admin, user_id=w.target, name="spare")["id"]
    w.entry = api.ok("caller_list.create", token=admin, kind="vip", user_id=w.target, number="+4989111111")["id"]
    w.spare_entry = api.ok("caller_list.create", token=admin, kind="vip", user_id=w.target, number="+4989222222")["id"]
    members = [{"user_id": users[Role.AGENT]}, {"user_id": users[Role.SUPERVISOR]}, {"user_id": w.target}]
    w.group = api.ok("group.create", token=admin, name="Desk", extension="600", rings=[{"members": members}])["id"]
    w.spare_group = api.ok("group.create", token=admin, name="Spare", extension="601", rings=[{"members": [{"user_id": w.target}]}])["id"]
    w.lock = api.ok("fraud.lock", token=admin, user_id=w.target, level=2, dest_class="international", reason="matrix")["id"]
    w.spare_token = api.ok("token.create", name="spare", role="user", tenant_id=t["id"])["id"]
    w.trunk = api.ok("trunk.create", name=f"trunk-{name}", host="198.51.100.7", tenant_ids=[t["id"]])["id"]
    w.box = api.ok("voicemail.box_create", token=admin, user_id=w.target, pin="1234")["id"]
    w.spare_box = api.ok("voicemail.box_create", token=admin, group_id=w.spare_group)["id"]
    w.menu = api.ok("ivr.create", token=admin, name="main", extension="500",
                    actions=[{"key": "1", "kind": "extension", "target": "301"}])["id"]
    w.spare_menu = api.ok("ivr.create", token=admin, name="spare")["id"]
    return w


def _greeting() -> str:
    import base64
    import io
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 3))) for i in range(8000)))
    return base64.b64encode(out.getvalue()).decode()


GREETING = _greeting()


def add_messages(settings, w: SimpleNamespace) -> None:
    """Two messages in the world's mailbox (as the control plane stores what the media server recorded)."""
    db = settings.db_url.split("///", 1)[1]
    w.msg, w.spare_msg = str(uuid.uuid4()), str(uuid.uuid4())
    with sqlite3.connect(db) as con:
        for mid in (w.msg, w.spare_msg):
            con.execute("insert into voicemail_message (id, tenant_id, mailbox_id, caller, call_id, received_at, duration_s, "
                        "size_bytes, heard, emailed) values (?, ?, ?, '+4930999', 'c', '2026-12-05 10:00:00', 3.0, 0, 0, 0)",
                        (mid, w.tenant, w.box))


def params_for(method: str, w: SimpleNamespace) -> dict:
    """Real parameters of every method against world `w` (someone else's objects where a method takes a user)."""
    n = next(_n)
    tid = {"tenant_id": w.tenant}
    table = {
        "agent.login": {"group_id": w.group, "user_id": w.target}, "agent.logout": {"group_id": w.group, "user_id": w.target},
        "call.list": tid, "cdr.list": tid,
        "caller_list.create": {"kind": "block", "user_id": w.target, "number": f"+4940{n:07d}"}, "caller_list.delete": {"id": w.spare_entry},
        "caller_list.list": tid,
        "dialplan.create": {**tid, "pattern": f"^6{n}(\\d+)$", "replacement": "\\1"}, "dialplan.delete": {"id": w.spare_rule},
        "dialplan.list": tid, "dialplan.update": {"id": w.rule, "description": "x"},
        "extension.create": {"number": f"7{n:03d}", "user_id": w.target}, "extension.delete": {"id": w.spare_ext},
        "extension.get": {"id": w.ext}, "extension.list": tid, "extension.update": {"id": w.ext, "number": "301"},
        "forwarding.create": {"user_id": w.target, "kind": "unreachable", "target_user_id": w.users[Role.ADMIN]},
        "forwarding.delete": {"id": w.spare_fwd}, "forwarding.list": tid, "forwarding.update": {"id": w.fwd, "timeout_s": 25},
        "fraud.acknowledge": {"ids": ["00000000-0000-0000-0000-000000000000"]}, "fraud.bans": {}, "fraud.baseline": {"user_id": w.target},
        "fraud.cooldowns": tid, "fraud.events": tid, "fraud.lift_ban": {"source": "192.0.2.1"}, "fraud.lift_cooldown": {"id": w.acc},
        "fraud.lift_lock": {"id": w.lock, "reason": "matrix"},
        "fraud.lock": {"user_id": w.target, "level": 2, "dest_class": "international", "reason": "matrix"},
        "node.drain": {"on": False}, "node.status": {}, "tls.status": {}, "tls.reload": {},
        "webrtc.credentials": {"user_id": w.target},
        "fraud.locks": tid, "fraud.policy_get": tid, "fraud.policy_set": {**tid, "warn_ratio": 0.7}, "fraud.spend": tid,
        "fraud.tariff_import": {"csv": "prefix,rate_per_min\n+49,0.01\n"}, "fraud.tariff_list": {},
        "group.create": {**tid, "name": f"G{n}", "extension": f"8{n:03d}", "rings": [{"members": [{"user_id": w.target}]}]},
        "group.delete": {"id": w.spare_group}, "group.get": {"id": w.group}, "group.list": tid, "group.preview": {"id": w.group},
        "group.update": {"id": w.group, "wrapup_s": 5},
        "number.assign": {**tid, "e164": w.free_number, "user_id": w.target}, "number.get": {"id": w.number}, "number.list": tid,
        "number.release": {"id": w.spare_number},
        "number_block.create": {**tid, "first": f"+4940{n:03d}00000", "size": 100}, "number_block.delete": {"id": w.block},
        "number_block.get": {"id": w.block}, "number_block.list": tid,
        "profile.activate": {"user_id": w.target, "profile_id": w.profile}, "profile.create": {"user_id": w.target, "name": f"p{n}"},
        "profile.delete": {"id": w.spare_profile}, "profile.list": tid, "profile.update": {"id": w.profile, "clir": False},
        "queue.status": tid, "route.simulate": {"dialled": "301", "caller_user_id": w.users[Role.ADMIN]}, "rpc.discover": {},
        "sip_account.create": {"user_id": w.target, "username": f"a{n}x{w.i}", "password": "long-enough-pw-1"},
        "sip_account.delete": {"id": w.spare_acc}, "sip_account.get": {"id": w.acc}, "sip_account.list": tid,
        "sip_account.update": {"id": w.acc, "clir": True},
        "site.create": {**tid, "name": f"S{n}"}, "site.delete": {"id": w.spare_site}, "site.get": {"id": w.site}, "site.list": tid,
        "site.update": {"id": w.site, "city": "Berlin"},
        "tenant.create": {"name": f"T{n}", "sip_domain": f"t{n}.example"}, "tenant.delete": {"id": w.tenant}, "tenant.get": {"id": w.tenant},
        "tenant.list": tid, "tenant.update": {"id": w.tenant, "name": w.name},
        "time_plan.create": {**tid, "name": f"tp{n}", "ranges": [{"days": ["wed"], "start": "08:00", "end": "18:00"}]},
        "time_plan.delete": {"id": w.spare_tp}, "time_plan.get": {"id": w.tp}, "time_plan.list": tid,
        "time_plan.update": {"id": w.tp, "tz": "Europe/Berlin"},
        "token.create": {**tid, "name": f"t{n}", "role": "user"}, "token.delete": {"id": w.spare_token}, "token.list": tid,
        "token.whoami": {},
        "trunk.create": {"name": f"tr{n}", "host": "198.51.100.8"}, "trunk.delete": {"id": w.trunk}, "trunk.get": {"id": w.trunk},
        "trunk.list": {}, "trunk.update": {"id": w.trunk, "priority": 5},
        "user.create": {**tid, "name": f"U{n}"}, "user.delete": {"id": w.spare_user}, "user.get": {"id": w.target}, "user.list": tid,
        "user.set_status": {"id": w.target, "status": "away"}, "user.update": {"id": w.target, "clir": True},
        "voicemail.box_create": {"user_id": w.spare_user}, "voicemail.box_delete": {"id": w.spare_box},
        "voicemail.box_get": {"id": w.box}, "voicemail.box_list": tid, "voicemail.box_update": {"id": w.box, "email": "t@x.example"},
        "voicemail.set_pin": {"id": w.box, "pin": "4321"}, "voicemail.list": {"mailbox_id": w.box},
        "voicemail.get": {"id": w.msg}, "voicemail.download": {"id": w.msg}, "voicemail.mark": {"id": w.msg},
        "voicemail.delete": {"id": w.spare_msg},
        "voicemail.greeting_upload": {"id": w.box, "kind": "busy", "data_base64": GREETING},
        "voicemail.greeting_delete": {"id": w.box, "kind": "busy"},
        "prompt.upload": {**tid, "prompt": "busy", "language": "en", "data_base64": GREETING},
        "prompt.delete": {**tid, "prompt": "busy", "language": "en"}, "prompt.list": tid,
        "ivr.create": {**tid, "name": f"m{n}"}, "ivr.delete": {"id": w.spare_menu}, "ivr.get": {"id": w.menu},
        "ivr.list": tid, "ivr.update": {"id": w.menu, "timeout_s": 5},
        "ivr.recording_upload": {"id": w.menu, "data_base64": GREETING}, "ivr.recording_delete": {"id": w.menu},
        "ivr.personal_set": {"user_id": w.target, "message": True}, "ivr.personal_get": {"user_id": w.target},
        "group.greeting_upload": {"id": w.group, "data_base64": GREETING}, "group.greeting_delete": {"id": w.group},
        "prompt.music_upload": {**tid, "data_base64": GREETING}, "prompt.music_delete": tid,
    }
    return table[method]


# Methods that reach nothing of a tenant (the other-tenant phase has nothing to aim them at).
TENANTLESS = {"rpc.discover", "token.whoami", "fraud.tariff_list", "fraud.tariff_import", "fraud.bans", "fraud.lift_ban", "tenant.create",
              "node.drain", "node.status", "tls.status", "tls.reload",
              "trunk.create", "trunk.list", "fraud.acknowledge"}


def state_of(api: Api, w: SimpleNamespace) -> dict:
    """Everything of a tenant an API client can read (platform token)."""
    tid = {"tenant_id": w.tenant, "limit": 1000}
    out = {m: api.ok(m, **tid)["items"] for m in ("user.list", "extension.list", "sip_account.list", "site.list", "group.list", "time_plan.list",
                                                  "dialplan.list", "forwarding.list", "profile.list", "caller_list.list", "number.list",
                                                  "number_block.list", "token.list", "fraud.locks", "voicemail.box_list",
                                                  "voicemail.list", "ivr.list")}
    out["tenant"] = api.ok("tenant.get", id=w.tenant)
    out["policy"] = api.ok("fraud.policy_get", tenant_id=w.tenant)
    out["trunk"] = api.ok("trunk.get", id=w.trunk)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    var = tmp_path_factory.mktemp("perm") / "var"
    settings = load_settings(env={}, var_dir=str(var), api_port=free_port(), kamailio_rpc_port=free_port(), rtpengine_ng_port=free_port())
    srv = ControlPlaneServer(settings, start_workers=False)
    srv.app.publisher.kick = lambda: None  # no snapshot per write (route.simulate publishes what it needs itself)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    api = Api(settings.api_url, srv.token_file.read_text().strip())
    a, b = build_world(api, "Alpha"), build_world(api, "Beta")
    add_messages(settings, a)
    add_messages(settings, b)
    noc = api.ok("token.create", name="noc", role="admin")["token"]  # a platform-wide admin: every tenant, not the carrier's powers
    yield SimpleNamespace(api=api, a=a, b=b, noc=noc, server=srv)
    srv.shutdown()


def _outcome(r: dict) -> str:
    return "ok" if "result" in r else r["error"]["data"]["error_id"]


def test_the_gate_of_every_method_for_every_role(lab):
    api = lab.api
    callers = {r.value: lab.a.tokens[r] for r in TENANT_ROLES} | {"platform": api.token, "platform-wide admin": lab.noc}
    roles = {r.value: r for r in TENANT_ROLES} | {"platform": Role.PLATFORM, "platform-wide admin": Role.ADMIN}
    wrong = []
    for (who, token), (name, spec) in itertools.product(callers.items(), sorted(REGISTRY.methods.items())):
        got = _outcome(api.call(name, token=token))
        may = spec.public or spec.perm is None or spec.perm in ROLE_PERMS[roles[who]]
        if (got == "forbidden") == may:
            wrong.append(f"{who} {name}: {got}")
    assert not wrong, "\n".join(wrong)


def test_own_tenant_every_method_with_real_parameters(lab):
    api, w = lab.api, lab.a
    wrong = []
    for r in TENANT_ROLES:
        for name, spec in sorted(REGISTRY.methods.items()):
            if name == "tenant.delete":
                continue  # would end the world (a platform method: the gate test covers it)
            need = spec.perm if name in FILTERING_LISTS else (spec.others or spec.perm)  # the objects are someone else's
            may = spec.public or need is None or need in ROLE_PERMS[r]
            got = _outcome(api.call(name, token=w.tokens[r], **params_for(name, w)))
            if (got == "forbidden") == may or got == "unauthorized":
                wrong.append(f"{r.value} {name}: {got}")
    assert not wrong, "\n".join(wrong)


def test_no_role_of_one_tenant_reads_or_changes_anything_of_another(lab):
    api, a, b = lab.api, lab.a, lab.b
    before = state_of(api, b)
    leaks = []
    for r in TENANT_ROLES:
        for name in sorted(REGISTRY.methods):
            if name in TENANTLESS:
                continue
            resp = api.call(name, token=a.tokens[r], **params_for(name, b))
            got = _outcome(resp)
            if got not in ("forbidden", "not_found"):
                leaks.append(f"{r.value} of {a.name} {name} on {b.name}: {got} {str(resp.get('result'))[:120]}")
    assert not leaks, "\n".join(leaks)
    assert state_of(api, b) == before


def test_a_token_bound_to_a_user_never_exceeds_the_users_role(lab):
    api, w = lab.api, lab.a
    strong = api.ok("token.create", name="too strong", role="admin", tenant_id=w.tenant, user_id=w.users[Role.USER])["token"]
    assert _outcome(api.call("user.list", token=strong, tenant_id=w.tenant)) == "forbidden"
    assert _outcome(api.call("profile.list", token=strong)) == "ok"  # what the user may, the token may


def test_supervisor_and_operator_are_not_each_other(lab):
    """The review's case: with a straight ranking, an Operator passed Supervisor checks and the other way round."""
    api, w = lab.api, lab.a
    sup, op = w.tokens[Role.SUPERVISOR], w.tokens[Role.OPERATOR]
    assert _outcome(api.call("agent.logout", token=op, group_id=w.group, user_id=w.users[Role.AGENT])) == "forbidden"
    assert _outcome(api.call("agent.logout", token=sup, group_id=w.group, user_id=w.users[Role.AGENT])) == "ok"
    for name, params in (("user.list", {}), ("route.simulate", {"dialled": "301", "caller_user_id": w.target}),
                         ("user.set_status", {"id": w.target, "status": "away"})):
        assert _outcome(api.call(name, token=sup, **params)) == "forbidden", name
        assert _outcome(api.call(name, token=op, **params)) != "forbidden", name
    assert _outcome(api.call("fraud.lift_ban", token=lab.noc, source="192.0.2.1")) == "forbidden"  # a platform-wide admin


def test_tokens_expire_and_cannot_be_revoked_above_ones_own_role(lab):
    api, w = lab.api, lab.a
    admin = w.tokens[Role.ADMIN]
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    t = api.ok("token.create", token=admin, name="temp", role="user", user_id=w.users[Role.USER], expires_at=soon)
    assert t["expires_at"] and _outcome(api.call("token.whoami", token=t["token"])) == "ok"
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert _outcome(api.call("token.create", token=admin, name="x", role="user", expires_at=past)) == "invalid_params"
    db = lab.server.settings.db_url.split("///", 1)[1]
    with sqlite3.connect(db) as con:  # the hour has passed
        con.execute("update api_token set expires_at = '2020-01-01 00:00:00' where id = ?", (t["id"],))
    r = api.call("token.whoami", token=t["token"])
    assert _outcome(r) == "unauthorized" and "expired" in r["error"]["message"]
    xadm = api.ok("token.create", name="xadm", role="extended_admin", tenant_id=w.tenant)  # only the platform operator grants it
    assert _outcome(api.call("token.create", token=admin, name="up", role="extended_admin")) == "forbidden"
    assert _outcome(api.call("token.delete", token=admin, id=xadm["id"])) == "forbidden"
    assert any(x["id"] == xadm["id"] for x in api.ok("token.list", tenant_id=w.tenant, limit=1000)["items"])  # still there
    assert _outcome(api.call("token.create", token=admin, name="p", role="platform")) == "forbidden"
    assert _outcome(api.call("user.update", token=admin, id=w.target, role="platform")) == "forbidden"


def test_the_table_in_docs_api_is_the_one_the_code_enforces():
    from pathlib import Path

    from controlplane.api.permissions import BEGIN, END, permission_table

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert text.split(BEGIN)[1].split(END)[0].strip() == permission_table(REGISTRY).strip(), \
        "docs/api.md is out of date: run python -m controlplane.api.permissions"


def test_a_platform_wide_token_sees_cdrs_by_its_role_not_all_of_them(lab):
    """The review's case: any platform token saw every tenant's CDRs whatever its role."""
    from sqlmodel import Session

    from controlplane.db.models import Cdr

    api, w = lab.api, lab.a
    now = datetime.now(timezone.utc)
    with Session(lab.server.app.engine) as s:
        s.add(Cdr(id="cdr-matrix-1", tenant_id=w.tenant, caller="201", caller_user_id=w.target, callee="202", call_id="m1",
                  start_time=now, end_time=now, disposition="answered", sip_code=200, sip_reason="OK", trace="[]"))
        s.commit()
    platform_user = api.ok("token.create", name="platform user", role="user")["token"]
    platform_operator = api.ok("token.create", name="platform operator", role="operator")["token"]
    assert api.ok("cdr.list", token=platform_user)["items"] == []
    assert [c["id"] for c in api.ok("cdr.list", token=platform_operator)["items"]] == ["cdr-matrix-1"]
    assert api.ok("cdr.list", token=w.tokens[Role.USER])["items"] == []  # someone else's call
    assert [c["id"] for c in api.ok("cdr.list", token=w.tokens[Role.SUPERVISOR])["items"]] == ["cdr-matrix-1"]
