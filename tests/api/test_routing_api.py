"""The routing-policy API: sites, numbers, trunks, dial plans, time plans, forwarding, route.simulate."""


def public_setup(api, acme):
    admin = acme["admin"]
    site = api.ok("site.create", token=admin, name="Berlin", area_code="30", street="Hauptstr. 1", postal_code="10115", city="Berlin")
    block = api.ok("number_block.create", tenant_id=acme["tenant"]["id"], first="+49 30 1234 500", size=100)
    api.ok("sip_account.create", token=admin, user_id=acme["alice"]["id"], username="alice", password="pw-alice-1")
    api.ok("sip_account.create", token=admin, user_id=acme["bob"]["id"], username="bob", password="pw-bob-12")
    api.ok("extension.create", token=admin, number="201", user_id=acme["alice"]["id"])
    api.ok("extension.create", token=admin, number="202", user_id=acme["bob"]["id"])
    a = api.ok("number.assign", token=admin, e164="030 1234501".replace("030", "+4930"), user_id=acme["alice"]["id"])
    b = api.ok("number.assign", token=admin, e164="+49 30 1234 502", user_id=acme["bob"]["id"])
    trunk = api.ok("trunk.create", name="carrier", host="198.51.100.7", priority=1)
    return site, block, a, b, trunk


def test_number_blocks_are_aligned_and_never_overlap(api, acme):
    tid = acme["tenant"]["id"]
    block = api.ok("number_block.create", tenant_id=tid, first="+49 30 1234 500", size=100)
    assert block["first"] == "+49301234500" and block["last"] == "+49301234599" and block["first_national"] == "030 1234500"
    assert api.err("number_block.create", tenant_id=tid, first="+49301234550", size=10)[0] == "conflict"
    assert api.err("number_block.create", tenant_id=tid, first="+49301234505", size=10)[0] == "invalid_params"  # not aligned
    assert api.err("number_block.create", tenant_id=tid, first="+49301239999", size=1)[0] == "invalid_params"  # only ported singles
    assert api.ok("number_block.create", tenant_id=tid, first="+49301239999", size=1, ported=True)["ported"]
    assert api.err("number_block.create", tenant_id=tid, first="not a number", size=10)[0] == "invalid_params"
    assert api.err("number_block.create", token=acme["admin"], tenant_id=tid, first="+49401234500", size=100)[0] == "forbidden"


def test_numbers_only_from_the_tenants_blocks(api, acme):
    api.ok("number_block.create", tenant_id=acme["tenant"]["id"], first="+49301234500", size=100)
    n = api.ok("number.assign", token=acme["admin"], e164="+49 30 1234 501", user_id=acme["alice"]["id"])
    assert n["e164"] == "+49301234501" and n["national"] == "030 1234501"
    eid, err = api.err("number.assign", token=acme["admin"], e164="+49301239999", user_id=acme["alice"]["id"])
    assert eid == "invalid_params" and "not in a number block" in err["message"]
    assert [x["e164"] for x in api.ok("number.list", token=acme["admin"])["items"]] == ["+49301234501"]
    assert api.err("number_block.delete", id=n["block_id"])[0] == "conflict"  # in use
    api.ok("number.release", token=acme["admin"], id=n["id"])
    api.ok("number_block.delete", id=n["block_id"])


def test_trunks_are_platform_objects_and_validated(api, acme):
    t = api.ok("trunk.create", name="carrier-a", host="192.0.2.10", sources=["192.0.2.0/28"], prefixes=["+49"], tenant_ids=[acme["tenant"]["id"]])
    assert t["transport"] == "udp" and t["sources"] == ["192.0.2.0/28"]
    assert api.err("trunk.create", name="carrier-a", host="192.0.2.11")[0] == "conflict"
    assert api.err("trunk.create", name="b", host="bad host!")[0] == "invalid_params"
    assert api.err("trunk.create", name="b", host="192.0.2.11", sources=["not-an-ip"])[0] == "invalid_params"
    assert api.err("trunk.create", name="b", host="192.0.2.11", tenant_ids=[999])[0] == "invalid_params"
    assert api.err("trunk.list", token=acme["admin"])[0] == "forbidden"
    assert api.ok("trunk.update", id=t["id"], priority=5)["priority"] == 5
    assert len(api.ok("trunk.list")["items"]) == 1


def test_users_telephony_settings(api, acme):
    admin = acme["admin"]
    u = api.ok("user.update", token=admin, id=acme["alice"]["id"], outbound="international", clir=True, locked=False)
    assert u["outbound"] == "international" and u["clir"] is True
    assert api.err("user.update", token=admin, id=u["id"], outbound="everything")[0] == "invalid_params"
    assert api.err("user.update", token=admin, id=u["id"], presented_number="+498001234567")[0] == "forbidden"
    api.ok("tenant.update", id=acme["tenant"]["id"], allow_clip_no_screening=True)
    assert api.ok("user.update", token=admin, id=u["id"], presented_number="0800 1234567".replace("0800", "+49800"))["presented_number"] == "+498001234567"
    assert api.err("extension.create", token=admin, number="112", user_id=u["id"])[0] == "invalid_params"


def test_dial_plan_rules_are_validated(api, acme):
    admin = acme["admin"]
    assert api.ok("dialplan.create", token=admin, pattern=r"0(0\d+)", replacement=r"\1")["pattern"] == r"0(0\d+)"
    assert api.err("dialplan.create", token=admin, pattern=r"(\d+)+", replacement="x")[0] == "invalid_params"  # backtracking trap
    assert api.err("dialplan.create", token=admin, pattern=r"(\d", replacement="x")[0] == "invalid_params"
    assert api.err("dialplan.create", token=admin, pattern=r"(\d)", replacement=r"\2")[0] == "invalid_params"


def test_time_plans_reject_empty_and_overlapping_ranges(api, acme):
    admin = acme["admin"]
    ok = api.ok("time_plan.create", token=admin, name="office", ranges=[{"days": ["mon", "tue"], "start": "08:00", "end": "12:00"},
                                                                       {"days": ["mon"], "start": "13:00", "end": "18:00"}],
                holidays_country="DE", holidays_subdiv="BY")
    assert ok["holidays_subdiv"] == "BY"
    assert api.err("time_plan.create", token=admin, name="empty", ranges=[{"days": ["mon"], "start": "10:00", "end": "10:00"}])[0] == "invalid_params"
    assert api.err("time_plan.create", token=admin, name="overlap", ranges=[{"days": ["mon"], "start": "08:00", "end": "12:00"},
                                                                           {"days": ["mon", "fri"], "start": "11:00", "end": "13:00"}])[0] == "invalid_params"
    assert api.err("time_plan.create", token=admin, name="tz", tz="Mars/Olympus", ranges=[{"days": ["mon"], "start": "08:00", "end": "12:00"}])[0] == "invalid_params"
    assert api.err("time_plan.create", token=admin, name="none", ranges=[])[0] == "invalid_params"
    assert [p["name"] for p in api.ok("time_plan.list", token=admin)["items"]] == ["office"]  # nothing half-written


def test_forwarding_rules_and_route_simulate_agree_with_the_time(api, acme):
    public_setup(api, acme)
    admin = acme["admin"]
    plan = api.ok("time_plan.create", token=admin, name="office", ranges=[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}],
                  holidays_country="DE", holidays_subdiv="BE")
    api.ok("user.update", token=admin, id=acme["bob"]["id"], outbound="international")
    rule = api.ok("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="unconditional", target_number="0171 1234567",
                  time_plan_id=plan["id"], when="outside")
    assert rule["target_number"] == "+491711234567"
    assert api.err("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="busy")[0] == "invalid_params"  # no target
    assert api.err("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="busy", target_user_id=acme["bob"]["id"])[0] == "invalid_params"
    assert api.err("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="sometimes", target_user_id=acme["alice"]["id"])[0] == "invalid_params"

    def sim(at):
        return api.ok("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="202", at=at)

    office = sim("2026-11-26T10:00:00+01:00")
    assert office["decision"]["type"] == "ring_user" and office["decision"]["user_id"] == acme["bob"]["id"]
    evening = sim("2026-11-26T19:00:00+01:00")
    assert evening["decision"]["type"] == "trunk" and evening["decision"]["number"] == "+491711234567"
    christmas = sim("2026-12-25T10:00:00+01:00")  # a Friday, but a public holiday
    assert christmas["decision"]["type"] == "trunk" and any("holiday" in t for t in christmas["trace"])

    external = api.ok("route.simulate", token=admin, caller_number="0891234567", dialled="+49301234502", at="2026-11-26T10:00:00+01:00")
    assert external["decision"]["type"] == "ring_user" and external["caller"]["number"] == "+49891234567"
    out = api.ok("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="0900 1234567".replace(" ", ""))
    assert out["decision"]["type"] == "reject" and out["decision"]["code"] == 403
    emergency = api.ok("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="112")
    assert emergency["decision"]["emergency"] and emergency["decision"]["location"] == "Hauptstr. 1, 10115 Berlin, DE"


def test_a_plain_user_manages_only_their_own_forwarding(api, acme):
    public_setup(api, acme)
    bob_token = api.ok("token.create", token=acme["admin"], name="bob", role="user", user_id=acme["bob"]["id"])["token"]
    mine = api.ok("forwarding.create", token=bob_token, user_id=acme["bob"]["id"], kind="busy", target_user_id=acme["alice"]["id"])
    assert api.err("forwarding.create", token=bob_token, user_id=acme["alice"]["id"], kind="busy", target_user_id=acme["bob"]["id"])[0] == "forbidden"
    assert [r["id"] for r in api.ok("forwarding.list", token=bob_token)["items"]] == [mine["id"]]
    api.ok("forwarding.delete", token=bob_token, id=mine["id"])


def test_status_is_kept_even_when_kamailio_is_down(api, acme):
    r = api.ok("user.set_status", token=acme["admin"], id=acme["bob"]["id"], status="dnd", message="holiday")
    assert r["status"] == "dnd" and r["live"] is False  # no Kamailio in this test: pushed by the periodic sync later
    assert api.ok("user.get", token=acme["admin"], id=acme["bob"]["id"])["status_message"] == "holiday"
    assert api.err("user.set_status", token=acme["admin"], id=acme["bob"]["id"], status="sleeping")[0] == "invalid_params"
    bob = api.ok("token.create", token=acme["admin"], name="bob", role="user", user_id=acme["bob"]["id"])["token"]
    assert api.ok("user.set_status", token=bob, id=acme["bob"]["id"], status="online")["status"] == "online"
    assert api.err("user.set_status", token=bob, id=acme["alice"]["id"], status="dnd")[0] == "forbidden"


def test_vip_and_block_lists_and_simulate_uses_them(api, acme):
    public_setup(api, acme)
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("caller_list.create", token=admin, user_id=bob, kind="block", number="089 1234567")
    api.ok("caller_list.create", token=admin, kind="vip", member_user_id=alice)  # tenant-wide
    assert api.err("caller_list.create", token=admin, user_id=bob, kind="vip", number="x")[0] == "invalid_params"
    assert api.err("caller_list.create", token=admin, user_id=bob, kind="vip", number="+4989", member_user_id=alice)[0] == "invalid_params"
    blocked = api.ok("route.simulate", token=admin, caller_number="+49891234567", dialled="+49301234502")
    assert blocked["decision"]["code"] == 603
    api.ok("user.update", token=admin, id=bob, secretary_id=alice)
    to_boss = api.ok("route.simulate", token=admin, caller_number="+49301111111", dialled="+49301234502")
    assert to_boss["decision"]["user_id"] == alice  # the secretary takes it
    assert api.err("user.update", token=admin, id=bob, secretary_id=bob)[0] == "invalid_params"
    assert {e["kind"] for e in api.ok("caller_list.list", token=admin)["items"]} == {"vip", "block"}


def test_migrations_build_exactly_the_models(server):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with server.app.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_profiles_and_device_settings(api, acme):
    public_setup(api, acme)
    admin, bob = acme["admin"], acme["bob"]["id"]
    p1 = api.ok("profile.create", token=admin, user_id=bob, name="meeting", status="dnd", clir=True)
    assert p1["code"] == 1
    assert api.err("profile.create", token=admin, user_id=bob, name="meeting")[0] == "conflict"
    assert api.err("profile.create", token=admin, user_id=bob, name="x", outbound="everything")[0] == "invalid_params"
    act = api.ok("profile.activate", token=admin, user_id=bob, profile_id=p1["id"])
    assert act["status"] == "dnd" and act["active_profile_id"] == p1["id"]
    assert api.err("profile.activate", token=admin, user_id=acme["alice"]["id"], profile_id=p1["id"])[0] == "not_found"
    out = api.ok("route.simulate", token=admin, caller_user_id=bob, dialled="0309876543")
    assert out["decision"]["privacy"] is True  # the profile's CLIR
    acc = api.ok("sip_account.list", token=admin, user_id=acme["alice"]["id"])["items"][0]
    assert api.err("sip_account.update", token=admin, id=acc["id"], presented_number="+498001234567")[0] == "forbidden"
    upd = api.ok("sip_account.update", token=admin, id=acc["id"], presented_number="+49 30 1234 502", clir=False, ring=False)
    assert upd["presented_number"] == "+49301234502" and upd["ring"] is False
    sim = api.ok("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="0309876543")
    assert sim["decision"]["presented_number"] == "+49301234502"  # calls from this device present Bob's line
    to_alice = api.ok("route.simulate", token=admin, caller_user_id=bob, dialled="201")
    assert to_alice["decision"]["type"] == "reject" and to_alice["decision"]["code"] == 480  # her only device does not ring


def test_cm_route_simulate_and_rpc_pairs(api, server, acme):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    public_setup(api, acme)
    base = ["--url", server.settings.api_url, "--token", api.token]
    out = CliRunner().invoke(app, base + ["route", "simulate", "0900 1234567", "--from-user", str(acme["alice"]["id"])])
    assert out.exit_code == 0, out.output
    assert '"code": 403' in out.output and "numbers starting 0900 are not routed" in out.output
    out = CliRunner().invoke(app, base + ["rpc", "user.update", f"id={acme['bob']['id']}", "outbound=national", "clir:=true"])
    assert out.exit_code == 0, out.output
    assert api.ok("user.get", id=acme["bob"]["id"])["clir"] is True
    bad = CliRunner().invoke(app, base + ["rpc", "user.update", "id:=nope"])
    assert bad.exit_code == 1


def test_a_uk_site_dials_999_as_an_emergency_call_and_cm_route_simulate_shows_it(api, acme):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    admin = acme["admin"]
    trunk = api.ok("trunk.create", name="uk-carrier", host="198.51.100.9", priority=5)
    api.ok("trunk.create", name="any-carrier", host="198.51.100.7", priority=1)
    london = api.ok("site.create", token=admin, name="London", region="gb", area_code="20", street="Baker Street", house_number="221b",
                    postal_code="NW1 6XE", city="London", emergency_trunk_id=trunk["id"])
    assert london["region"] == "GB" and london["emergency_trunk_id"] == trunk["id"]
    api.ok("user.update", token=admin, id=acme["alice"]["id"], site_id=london["id"])
    api.ok("sip_account.create", token=admin, user_id=acme["alice"]["id"], username="alice", password="pw-alice-1")
    api.ok("user.update", token=admin, id=acme["alice"]["id"], locked=True, outbound="internal")  # neither stops an emergency call
    base = ["--url", api.url, "--token", admin, "--json"]
    out = CliRunner().invoke(app, base + ["route", "simulate", "999", "--from-user", str(acme["alice"]["id"])])
    assert out.exit_code == 0, out.output
    import json

    result = json.loads(out.output)
    d = result["decision"]
    assert d["type"] == "trunk" and d["emergency"] and d["number"] == "999" and d["trunks"] == ["uk-carrier", "any-carrier"]
    assert d["location"] == "Baker Street 221b, NW1 6XE London, GB" and "<ca:country>GB</ca:country>" in d["pidf_lo"]
    assert any("emergency number 999 in GB" in t for t in result["trace"])
    # 999 and 112 are emergency numbers there: never extensions of this tenant
    eid, err = api.err("extension.create", token=admin, number="999", user_id=acme["bob"]["id"])
    assert eid == "invalid_params" and "emergency number" in err["message"]
    assert api.err("group.create", token=admin, name="Desk", extension="112", rings=[])[0] == "invalid_params"


def test_addresses_and_names_that_could_add_sip_headers_are_refused(api, acme):
    admin = acme["admin"]
    site = api.ok("site.create", token=admin, name="Berlin", area_code="30")
    for field in ("street", "postal_code", "city", "house_number"):
        eid, err = api.err("site.update", token=admin, id=site["id"], **{field: "x\r\nP-Asserted-Identity: <sip:112@evil>"})
        assert eid == "invalid_params" and field in json_fields(err), err
    assert api.err("site.create", token=admin, name="Evil\r\nX: y")[0] == "invalid_params"
    assert api.err("group.create", token=admin, name="Desk\nWarning: 399 x", extension="600", rings=[])[0] == "invalid_params"
    assert api.ok("site.get", token=admin, id=site["id"])["street"] == ""  # nothing written
    assert api.err("site.create", token=admin, name="Nowhere", region="TK")[0] == "invalid_params"  # no known emergency numbers


def json_fields(err) -> str:
    import json

    return json.dumps(err.get("data", {}))


def test_a_user_cannot_raise_their_own_outbound_permission_with_a_profile(api, acme):
    """The review's case: a user set to `internal` made a profile with outbound=special, activated it and could call
    premium numbers. A profile only narrows what the admin allowed — refused when asked, and capped in routing anyway."""
    site, _, _, _, _ = public_setup(api, acme)
    admin, bob = acme["admin"], acme["bob"]["id"]
    api.ok("user.update", token=admin, id=bob, outbound="internal")
    bob_token = api.ok("token.create", token=admin, name="bob", role="user", user_id=bob)["token"]
    eid, err = api.err("profile.create", token=bob_token, user_id=bob, name="party", outbound="special")
    assert eid == "invalid_params" and "only narrow" in err["message"]
    assert api.ok("profile.list", token=bob_token)["total"] == 0  # nothing written
    # a profile made while the user could call more, then the admin narrowed the user: the narrower one applies
    api.ok("user.update", token=admin, id=bob, outbound="special")
    wide = api.ok("profile.create", token=bob_token, user_id=bob, name="wide", outbound="special")
    api.ok("profile.activate", token=bob_token, user_id=bob, profile_id=wide["id"])
    api.ok("user.update", token=admin, id=bob, outbound="internal")
    out = api.ok("route.simulate", token=admin, caller_user_id=bob, dialled="0891234567")
    assert out["decision"]["type"] == "reject" and out["decision"]["code"] == 403 and any("outbound permission is internal" in t for t in out["trace"])
    assert api.err("profile.update", token=bob_token, id=wide["id"], outbound="international")[0] == "invalid_params"


def test_secrets_at_rest_are_the_owners_only_and_trunk_passwords_are_encrypted(api, server):
    """HA1s are password-equivalent and a trunk password opens the carrier account: neither is readable by other users
    of the machine, and the trunk password is not in the database in clear (its key is a separate file) — on SQLite
    (a file, owner only) and on PostgreSQL alike."""
    import stat
    from pathlib import Path

    from sqlalchemy import text

    from controlplane.app import seal_stored_secrets

    api.ok("trunk.create", name="sealed", host="198.51.100.7", auth_username="pbx", auth_password="carrier-s3cret-pw")
    settings, engine = server.settings, server.app.engine
    files = [settings.secret_key_path, server.token_file, settings.snapshot_path]
    if settings.db_url.startswith("sqlite"):
        files.append(Path(settings.db_url.split("///", 1)[1]))
    for f in files:
        assert f.exists() and stat.S_IMODE(f.stat().st_mode) == 0o600, f
    with engine.connect() as con:
        stored = con.execute(text("select auth_password from trunk where name='sealed'")).scalar_one()
    assert stored.startswith("enc:v1:") and "carrier-s3cret-pw" not in stored
    if settings.db_url.startswith("sqlite"):
        assert b"carrier-s3cret-pw" not in files[-1].read_bytes()
    server.app.publisher.publish(force=True)
    assert "carrier-s3cret-pw" in settings.snapshot_path.read_text()  # Kamailio answers the carrier's challenge with it
    # a password stored in clear before sealing existed is sealed when the control plane starts
    with engine.begin() as con:
        con.execute(text("update trunk set auth_password='old-clear-pw' where name='sealed'"))
    seal_stored_secrets(engine, server.app.sealer)
    with engine.connect() as con:
        again = con.execute(text("select auth_password from trunk where name='sealed'")).scalar_one()
    assert again.startswith("enc:v1:") and server.app.sealer.unseal(again) == "old-clear-pw"


def test_a_sites_emergency_trunk_is_cleared_with_0_or_when_the_trunk_goes(api, acme):
    admin = acme["admin"]
    t1 = api.ok("trunk.create", name="em-1", host="198.51.100.7")
    t2 = api.ok("trunk.create", name="em-2", host="198.51.100.8")
    site = api.ok("site.create", token=admin, name="HQ", emergency_trunk_id=t1["id"])
    assert api.err("site.update", token=admin, id=site["id"], emergency_trunk_id=999999)[0] == "invalid_params"
    assert api.ok("site.get", token=admin, id=site["id"])["emergency_trunk_id"] == t1["id"]  # unchanged
    assert api.ok("site.update", token=admin, id=site["id"], emergency_trunk_id=0)["emergency_trunk_id"] is None
    api.ok("site.update", token=admin, id=site["id"], emergency_trunk_id=t2["id"])
    api.ok("trunk.delete", id=t2["id"])
    assert api.ok("site.get", token=admin, id=site["id"])["emergency_trunk_id"] is None  # the tenant's other trunks then


def test_route_simulate_plays_the_whole_call_through_its_events_in_the_api_and_the_cli(api, server, acme):
    """Bob forwards to Alice when busy and to his mobile when he does not answer: the admin asks what a call does
    when Bob is busy and Alice does not answer for 20 s."""
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    public_setup(api, acme)
    admin = acme["admin"]
    api.ok("user.update", token=admin, id=acme["bob"]["id"], outbound="international")
    api.ok("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="busy", target_user_id=acme["alice"]["id"])
    api.ok("forwarding.create", token=admin, user_id=acme["bob"]["id"], kind="no_answer", target_number="0171 1234567", timeout_s=15)
    sim = api.ok("route.simulate", token=admin, caller_number="0891234567", dialled="+49301234502",
                 events=[{"kind": "busy", "after_s": 2}, {"kind": "no_answer", "after_s": 20}])
    steps = [(s["event"], s["outcome"], s["at_s"]) for s in sim["timeline"]]
    assert steps[0][:2] == ("call", "ring user %d (1 address(es)), 15 s before the no-answer forwarding" % acme["bob"]["id"])
    assert steps[1] == ("busy (486 Busy Here)", "forward: ring user %d (1 address(es))" % acme["alice"]["id"], 2.0)
    assert steps[2] == ("no answer (408 Request Timeout)", "the call ends: 408 Request Timeout", 22.0)  # one forwarding per leg
    assert sim["timeline"][2]["ended"] and "486 Busy Here: busy, forwarding" in sim["timeline"][1]["trace"]
    no_answer = api.ok("route.simulate", token=admin, caller_number="0891234567", dialled="+49301234502",
                       events=[{"kind": "no_answer", "after_s": 15}, {"kind": "server_error"}, {"kind": "answer"}])
    assert [s["outcome"] for s in no_answer["timeline"]][1:] == [  # one trunk: no failover; the node's media server
        "forward: out to +491711234567 via trunk carrier",       # tells the caller (docs/media.md)
        "the call ends: 503 Service Unavailable (announced first: no_route, en)"]
    assert "announced to the caller: no_route (en)" in no_answer["timeline"][2]["trace"]
    # bad events: a clear error, nothing simulated
    assert api.err("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="202", events=[{"kind": "explodes"}])[0] == "invalid_params"
    assert api.err("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="202", events=[{"kind": "failure"}])[0] == "invalid_params"
    assert api.err("route.simulate", token=admin, caller_user_id=acme["alice"]["id"], dialled="202",
                   events=[{"kind": "busy", "after_s": -1}])[0] == "invalid_params"
    # the CLI: a readable timeline
    base = ["--url", server.settings.api_url, "--token", admin]
    out = CliRunner().invoke(app, base + ["route", "simulate", "202", "--from-user", str(acme["alice"]["id"]), "-e", "busy@2", "-e", "486@3"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any("2.0 s" in line and "busy (486 Busy Here)" in line and f"forward: ring user {acme['alice']['id']}" in line for line in lines)
    assert any("5.0 s" in line and "final answer 486" in line and "the call ends: 486" in line for line in lines)
    bad = CliRunner().invoke(app, base + ["route", "simulate", "202", "--from-user", str(acme["alice"]["id"]), "-e", "busy@soon"])
    assert bad.exit_code != 0 and "seconds" in bad.output


def test_the_central_voicemail_number_and_users_mobiles(api, acme):
    """VM-08: a number assigned as the tenant's voicemail; users' mobiles name them; route.simulate shows both."""
    public_setup(api, acme)
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    box = api.ok("voicemail.box_create", token=admin, user_id=bob, pin="2468")
    assert api.ok("user.update", token=admin, id=bob, mobile="+49 171 1234567")["mobile"] == "+491711234567"
    # another user may not have the same mobile; a mobile must be a number; nothing changes on a refusal
    assert api.err("user.update", token=admin, id=alice, mobile="+491711234567")[0] == "conflict"
    assert api.err("user.update", token=admin, id=alice, mobile="not a number")[0] == "invalid_params"
    assert api.ok("user.get", token=admin, id=alice)["mobile"] is None
    assert api.err("number.assign", token=admin, e164="+49301234580", voicemail=True, user_id=alice)[0] == "invalid_params"
    n = api.ok("number.assign", token=admin, e164="+49301234580", voicemail=True)
    assert n["voicemail"] is True and n["user_id"] is None

    def sim(**kw):
        return api.ok("route.simulate", token=admin, dialled="+49301234580", **kw)

    forwarded = sim(caller_number="+4989123456", diversion="<sip:+491711234567@mobile.example>;reason=user-busy")
    decision = forwarded["decision"]
    assert (decision["type"], decision["mailbox_id"], decision["greeting"]) == ("voicemail", box["id"], "busy"), decision
    assert forwarded["callee"]["user_id"] == bob
    from_mobile = sim(caller_number="0171 1234567")
    assert from_mobile["decision"]["greeting"] == "listen" and from_mobile["decision"]["mailbox_id"] == box["id"]
    anyone = sim(caller_number="+4989123456")
    assert anyone["decision"]["greeting"] == "listen" and anyone["decision"]["mailbox_id"] == 0
    unknown = sim(caller_number="+4989123456", diversion="<sip:+4915199999@mobile.example>")
    assert unknown["decision"]["type"] == "reject" and unknown["decision"]["code"] == 404
    # the mobile cleared: the forwarded call no longer finds bob
    api.ok("user.update", token=admin, id=bob, mobile="")
    assert sim(caller_number="+4989123456", diversion="<sip:+491711234567@m>")["decision"]["code"] == 404
