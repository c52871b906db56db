"""Hunt groups: configuration, validation, agent login and the preview from the policy core."""


def ring(*user_ids, **kw):
    return {"members": [{"user_id": u} for u in user_ids], **kw}


def test_group_lifecycle_validation_and_preview(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    g = api.ok("group.create", token=admin, name="Sales", extension="600",
               rings=[ring(alice, strategy="top_down", wait_s=20, member_s=10), ring(bob, wait_s=15, keep_previous=True)])
    assert g["rings"][0]["strategy"] == "top_down"
    prev = api.ok("group.preview", token=admin, id=g["id"])
    assert [[m["user_id"] for m in st["members"]] for st in prev["steps"]] == [[alice], [alice, bob]]
    api.ok("agent.logout", token=admin, group_id=g["id"], user_id=alice)
    prev = api.ok("group.preview", token=admin, id=g["id"])
    assert [[m["user_id"] for m in st["members"]] for st in prev["steps"]] == [[bob]]
    assert any("logged out" in t for t in prev["trace"])
    api.ok("agent.logout", token=admin, group_id=g["id"], user_id=bob)
    assert api.ok("group.preview", token=admin, id=g["id"])["overflow_now"] is True
    api.ok("agent.login", token=admin, group_id=g["id"], user_id=alice)
    assert api.ok("group.preview", token=admin, id=g["id"])["steps"][0]["members"][0]["user_id"] == alice


def test_group_errors_change_nothing(api, acme):
    admin, alice = acme["admin"], acme["alice"]["id"]
    other = api.ok("tenant.create", name="Other", sip_domain="other.example")
    stranger = api.ok("user.create", tenant_id=other["id"], name="Stranger")
    assert api.err("group.create", token=admin, name="Empty", extension="601", rings=[ring()])[0] == "invalid_params"
    assert api.err("group.create", token=admin, name="X", extension="602", rings=[ring(stranger["id"])])[0] == "invalid_params"
    assert api.err("group.create", token=admin, name="X", extension="603", rings=[ring(alice, strategy="random")])[0] == "invalid_params"
    eid, err = api.err("group.create", token=admin, name="X", extension="604", rings=[ring(alice)] * 11)  # at most 10 rings
    assert eid == "invalid_params" and err["data"]["details"]["errors"][0]["field"] == "rings"
    assert not [g for g in api.ok("group.list", token=admin)["items"] if g["extension"] == "604"]  # nothing written
    a = api.ok("group.create", token=admin, name="A", extension="610", rings=[ring(alice)])
    b = api.ok("group.create", token=admin, name="B", extension="611", rings=[ring(alice)], overflow_group_id=a["id"])
    eid, err = api.err("group.update", token=admin, id=a["id"], overflow_group_id=b["id"])
    assert eid == "invalid_params" and "cycle" in err["message"]
    assert api.ok("group.get", token=admin, id=a["id"])["overflow_group_id"] is None  # nothing written
    assert api.err("group.create", token=admin, name="A", extension="612", rings=[ring(alice)])[0] == "conflict"
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    assert api.err("group.create", token=admin, name="C", extension="201", rings=[ring(alice)])[0] == "conflict"
    assert api.err("extension.create", token=admin, number="610", user_id=alice)[0] == "conflict"
    assert api.err("agent.logout", token=admin, group_id=a["id"], user_id=acme["bob"]["id"])[0] == "invalid_params"
    assert len(api.ok("group.list", token=admin)["items"]) == 2


def test_skills_order_the_preview(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("user.update", token=admin, id=alice, skills={"de": 1})
    api.ok("user.update", token=admin, id=bob, skills={"de": 3, "en": 2})
    g = api.ok("group.create", token=admin, name="Support", extension="620", rings=[ring(alice, bob, strategy="top_down", wait_s=30)],
               skills={"de": 1})
    steps = api.ok("group.preview", token=admin, id=g["id"])["steps"]
    assert [st["members"][0]["user_id"] for st in steps] == [bob, alice]  # best level first
    assert api.err("user.update", token=admin, id=alice, skills={"de": 11})[0] == "invalid_params"


def test_queue_status_without_kamailio_is_unavailable_and_metrics_still_scrape(api, server, acme):
    import httpx

    assert api.err("queue.status", token=acme["admin"])[0] == "unavailable"
    r = httpx.get(server.settings.api_url.replace("/rpc", "/metrics"), timeout=10)
    assert r.status_code == 200 and "callmanager_queue_up 0.0" in r.text


def test_group_screening_forwarding_and_queue_are_validated_and_compiled(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    other = api.ok("tenant.create", name="Other2", sip_domain="other2.example")
    stranger = api.ok("user.create", tenant_id=other["id"], name="Stranger")
    plan = api.ok("time_plan.create", token=admin, name="Office", ranges=[{"days": ["mon"], "start": "08:00", "end": "18:00"}])
    g = api.ok("group.create", token=admin, name="Hotline", extension="630", rings=[ring(alice)], queue_s=60, anonymous="reject",
               vip=[{"number": "+49 171 1234567"}, {"user_id": bob}], blocked=[{"number": "+49 30 1234599", "divert_user_id": bob}],
               forwarding=[{"kind": "unconditional", "target_user_id": bob, "time_plan_id": plan["id"], "when": "outside"}])
    assert g["queue_s"] == 60 and g["vip"] == ["+491711234567", f"u{bob}"]
    assert g["blocked"] == [{"key": "+49301234599", "divert_user_id": bob}]
    bad = [
        {"vip": [{"user_id": stranger["id"]}]},  # another tenant's user
        {"vip": [{"number": "+49171", "user_id": bob}]},  # both
        {"vip": [{"number": "+491711234567", "divert_user_id": bob}]},  # a VIP is not diverted
        {"blocked": [{"number": "not a number"}]},
        {"forwarding": [{"kind": "unconditional"}]},  # no target
        {"forwarding": [{"kind": "busy", "target_user_id": bob}]},  # not a group kind
        {"forwarding": [{"kind": "dnd", "target_group_id": g["id"]}]},  # itself
        {"forwarding": [{"kind": "dnd", "target_user_id": bob, "time_plan_id": 99999}]},
        {"queue_s": -1}, {"status": "lunch"}, {"anonymous": "maybe"},
    ]
    for params in bad:
        assert api.err("group.update", token=admin, id=g["id"], **params)[0] == "invalid_params", params
    stored = api.ok("group.get", token=admin, id=g["id"])
    assert (stored["vip"], stored["blocked"], stored["forwarding"], stored["queue_s"]) == (g["vip"], g["blocked"], g["forwarding"], 60)
    # the time plan is in use: it cannot be deleted
    assert api.err("time_plan.delete", token=admin, id=plan["id"])[0] == "conflict"
    h = api.ok("group.create", token=admin, name="Backoffice", extension="631", rings=[ring(bob)],
               forwarding=[{"kind": "dnd", "target_group_id": g["id"]}])
    assert api.err("group.delete", token=admin, id=g["id"])[0] == "conflict"  # h forwards to it
    api.ok("group.update", token=admin, id=h["id"], forwarding=[])
    assert api.ok("group.delete", token=admin, id=g["id"])["deleted"]


def test_route_simulate_explains_which_ring_and_member_a_group_call_reaches(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("sip_account.create", token=admin, user_id=alice, username="alice", password="pw-alice-1")
    api.ok("sip_account.create", token=admin, user_id=bob, username="bob", password="pw-bob-12")
    carol = api.ok("user.create", token=admin, name="Carol")
    api.ok("sip_account.create", token=admin, user_id=carol["id"], username="carol", password="pw-carol-1")
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    g = api.ok("group.create", token=admin, name="Sales", extension="640", presentation="group", queue_s=30,
               rings=[ring(bob, strategy="top_down", wait_s=10, member_s=5), ring(carol["id"], wait_s=10)])
    sim = api.ok("route.simulate", token=admin, caller_user_id=alice, dialled="640")
    d = sim["decision"]
    assert d["type"] == "group" and [st["members"] for st in d["steps"]] == [[bob], [carol["id"]]]
    assert d["members_see"]["display"] == "Sales" and any("ring 1 (top_down)" in t for t in sim["trace"])
    api.ok("agent.logout", token=admin, group_id=g["id"], user_id=bob)
    api.ok("user.set_status", token=admin, id=carol["id"], status="dnd")
    sim = api.ok("route.simulate", token=admin, caller_user_id=alice, dialled="640")
    assert sim["decision"]["type"] == "reject" and any(f"{bob} (logged out)" in t for t in sim["trace"])
    assert any(f"{carol['id']} (dnd)" in t for t in sim["trace"])


def test_cm_group_and_agent_verbs(api, server, acme):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    alice, bob = acme["alice"]["id"], acme["bob"]["id"]
    base = ["--url", server.settings.api_url, "--token", acme["admin"], "--json"]
    out = CliRunner().invoke(app, base + ["group", "create", "Desk", "650", "--ring", f"top_down:20:{alice},{bob}", "--ring", f"broadcast:10:{bob}",
                                          "--queue-s", "45"])
    assert out.exit_code == 0, out.output
    g = api.ok("group.list", token=acme["admin"])["items"][0]
    assert g["queue_s"] == 45 and [[m["user_id"] for m in r["members"]] for r in g["rings"]] == [[alice, bob], [bob]]
    assert CliRunner().invoke(app, base + ["agent", "logout", str(g["id"]), str(alice)]).exit_code == 0
    out = CliRunner().invoke(app, base + ["group", "preview", str(g["id"])])
    assert out.exit_code == 0 and "logged out" in out.output
    assert CliRunner().invoke(app, base + ["group", "status", str(g["id"]), "dnd"]).exit_code == 0
    assert api.ok("group.get", token=acme["admin"], id=g["id"])["status"] == "dnd"
    bad = CliRunner().invoke(app, base + ["group", "rings", str(g["id"]), "--ring", "top_down:x"])
    assert bad.exit_code != 0 and api.ok("group.get", token=acme["admin"], id=g["id"])["rings"] == g["rings"]


def test_a_group_number_with_a_priority_reaches_the_snapshot(api, acme, server):
    from tests.api.test_routing_api import public_setup

    public_setup(api, acme)
    admin = acme["admin"]
    g = api.ok("group.create", token=admin, name="VIP line", extension="660", rings=[ring(acme["bob"]["id"])], queue_s=30)
    n = api.ok("number.assign", token=admin, e164="+49 30 1234 560", group_id=g["id"], priority=7)
    assert n["priority"] == 7 and n["group_id"] == g["id"]
    assert api.err("number.assign", token=admin, e164="+49 30 1234 561", group_id=g["id"], priority=10)[0] == "invalid_params"
    snap = server.app.current_snapshot()
    assert snap.numbers["+49301234560"].priority == 7 and snap.groups[g["id"]].number == "+49301234560"


def test_ring_members_can_be_sip_accounts_and_teams(api, acme, server):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    desk = api.ok("sip_account.create", token=admin, user_id=alice, username="alice-desk", password="pw-alice-desk")
    api.ok("sip_account.create", token=admin, user_id=alice, username="alice-mobile", password="pw-alice-mob")
    carol = api.ok("user.create", token=admin, name="Carol")
    team = api.ok("group.create", token=admin, name="Team B", extension="670", rings=[ring(bob, carol["id"])])
    g = api.ok("group.create", token=admin, name="Front", extension="671",
               rings=[{"members": [{"sip_account_id": desk["id"]}, {"team_id": team["id"], "delay_s": 5}]}])
    snap = server.app.current_snapshot()
    compiled = snap.groups[g["id"]]
    assert compiled.rings[0].members == (alice, bob, carol["id"])  # the team's members, as they are now
    assert compiled.devices == {alice: (f"sip:alice-desk@{acme['tenant']['sip_domain']}",)}  # only the desk phone rings
    assert compiled.rings[0].delays == {bob: 5, carol["id"]: 5}
    assert api.ok("agent.logout", token=admin, group_id=g["id"], user_id=carol["id"])["logged_in"] is False  # a member through the team
    other = api.ok("tenant.create", name="Other3", sip_domain="other3.example")
    stranger = api.ok("user.create", tenant_id=other["id"], name="S")
    foreign = api.ok("sip_account.create", user_id=stranger["id"], username="s1", password="pw-s1-s1s1")
    for bad in ([{"sip_account_id": foreign["id"]}], [{"team_id": g["id"]}], [{"user_id": bob, "team_id": team["id"]}], [{}],
                [{"sip_account_id": desk["id"]}, {"sip_account_id": desk["id"]}]):
        assert api.err("group.update", token=admin, id=g["id"], rings=[{"members": bad}])[0] == "invalid_params", bad
    assert api.ok("group.get", token=admin, id=g["id"])["rings"] == g["rings"]
    assert api.err("group.delete", token=admin, id=team["id"])[0] == "conflict"  # used as a team


def test_a_user_or_account_a_group_names_cannot_be_deleted_until_taken_out(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    desk = api.ok("sip_account.create", token=admin, user_id=alice, username="alice-desk2", password="pw-alice-desk2")
    g = api.ok("group.create", token=admin, name="Desk", extension="680", rings=[{"members": [{"sip_account_id": desk["id"]}]}],
               forwarding=[{"kind": "dnd", "target_user_id": bob}])
    assert api.err("sip_account.delete", token=admin, id=desk["id"])[0] == "conflict"
    eid, err = api.err("user.delete", token=admin, id=bob)
    assert eid == "conflict" and g["id"] in err["data"]["details"]["group_ids"]
    assert api.ok("user.get", token=admin, id=bob)["id"] == bob  # nothing deleted
    api.ok("group.update", token=admin, id=g["id"], forwarding=[], rings=[ring(bob)])
    assert api.ok("sip_account.delete", token=admin, id=desk["id"])["deleted"]
    assert api.err("user.delete", token=admin, id=bob)[0] == "conflict"  # now a ring member


def test_service_level_counts_calls_answered_within_the_groups_time_and_the_answer_rate_all_answered(api, server, acme):
    """The wallboard's "service level" was answered / offered (an answer rate). Now both: answered within the group's
    service_level_s of all offered, and answered of all offered."""
    from datetime import datetime, timedelta, timezone

    from sqlmodel import Session

    from controlplane.db.models import Cdr, HuntGroup
    from controlplane.features.queues import group_status

    admin = acme["admin"]
    g = api.ok("group.create", token=admin, name="Desk", extension="650", rings=[{"members": [{"user_id": acme["alice"]["id"]}]}],
               service_level_s=15)
    assert api.err("group.update", token=admin, id=g["id"], service_level_s=0)[0] == "invalid_params"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=0))
    with Session(server.app.engine) as s:
        for i, (disposition, answer_after) in enumerate([("answered", 5), ("answered", 14), ("answered", 40), ("cancelled", None)]):
            s.add(Cdr(id=f"sl-{i}", tenant_id=acme["tenant"]["id"], caller="+4930999", callee="650", call_id=f"sl{i}", start_time=start,
                      answer_time=start + timedelta(seconds=answer_after) if answer_after else None, end_time=start + timedelta(seconds=60),
                      disposition=disposition, sip_code=200 if answer_after else 487, sip_reason="", trace="[]"))
        s.commit()
        st = group_status(server.app, s, s.get(HuntGroup, g["id"]), [], set(), now.timestamp(), {})
    assert st["today"] == {"offered": 4, "answered": 3, "answered_in_time": 2, "abandoned": 1, "overflowed": 0}
    assert st["service_level_s"] == 15 and st["service_level"] == 0.5 and st["answer_rate"] == 0.75
