"""IVR menus through the API (ivr.*): a whole menu is checked before anything is written, numbers lead into menus,
recordings are checked like greetings, and route.simulate follows the keys a caller presses."""

from tests.api.test_permissions import GREETING


def _menus(api, admin):
    return api.ok("ivr.list", token=admin)["items"]


def test_menus_with_submenus_a_number_a_recording_and_the_simulated_path(api, acme):
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    api.ok("extension.create", token=admin, number="202", user_id=bob)
    api.ok("sip_account.create", token=admin, user_id=alice, username="alice", password="alice-secret-1")
    api.ok("sip_account.create", token=admin, user_id=bob, username="bob", password="bob-secret-12")
    support = api.ok("ivr.create", token=admin, name="support", actions=[
        {"key": "1", "kind": "extension", "target": "202"}, {"key": "#", "kind": "back"}])
    main = api.ok("ivr.create", token=admin, name="main", extension="500", timeout_s=5, actions=[
        {"key": "1", "kind": "extension", "target": "201"},
        {"key": "2", "kind": "menu", "target": str(support["id"])},
        {"key": "9", "kind": "hangup", "target": "ignored"},
    ])
    assert main["extension"] == "500" and main["actions"][2] == {"key": "9", "kind": "hangup", "target": ""}
    assert main["recordings"] == {}
    api.ok("number_block.create", tenant_id=acme["tenant"]["id"], first="+4930555000", size=10)
    n = api.ok("number.assign", token=admin, e164="+4930555001", ivr_id=main["id"])
    assert n["ivr_id"] == main["id"] and api.ok("ivr.get", token=admin, id=main["id"])["numbers"] == ["+4930555001"]
    rec = api.ok("ivr.recording_upload", token=admin, id=main["id"], data_base64=GREETING)
    assert rec["recordings"] == {"menu": 1.0}
    api.ok("ivr.recording_upload", token=admin, id=main["id"], key="9", data_base64=GREETING)
    assert api.ok("ivr.get", token=admin, id=main["id"])["recordings"] == {"menu": 1.0, "9": 1.0}

    sim = api.ok("route.simulate", token=admin, dialled="500", caller_user_id=alice,
                 events=[{"kind": "keys", "digits": "2#2"}, {"kind": "keys", "digits": "1"}])
    assert sim["decision"] == {"type": "ivr", "menu_id": main["id"], "language": ""}  # the node's
    assert sim["timeline"][1]["outcome"] == f"in the menus: 2: menu {support['id']}; #: menu {main['id']}; 2: menu {support['id']}"
    assert sim["timeline"][2]["outcome"].startswith("forward: ring user " + str(bob))
    sim = api.ok("route.simulate", token=admin, dialled="500", caller_user_id=alice, events=[{"kind": "keys", "digits": "9"}])
    assert sim["timeline"][-1]["ended"] and "the menu ended the call" in sim["timeline"][-1]["outcome"]


def test_a_menu_that_cannot_be_used_is_refused_whole_and_nothing_is_written(api, acme):
    admin, alice = acme["admin"], acme["alice"]["id"]
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    other = api.ok("tenant.create", name="Other", sip_domain="other.example")
    foreign = api.ok("ivr.create", tenant_id=other["id"], name="theirs")
    a = api.ok("ivr.create", token=admin, name="a")
    refused = [
        {"name": "x", "actions": [{"key": "1", "kind": "menu", "target": str(foreign["id"])}]},  # another company's
        {"name": "x", "actions": [{"key": "1", "kind": "extension", "target": "201"}, {"key": "1", "kind": "hangup"}]},
        {"name": "x", "actions": [{"key": "x", "kind": "hangup"}]},
        {"name": "x", "actions": [{"key": "1", "kind": "dance"}]},
        {"name": "x", "actions": [{"key": "1", "kind": "mailbox", "target": "999"}]},
        {"name": "x", "actions": [{"key": "1", "kind": "menu"}]},  # no target
        {"name": "x", "actions": [{"key": k, "kind": "repeat"} for k in "1234567890*#"] + [{"key": "timeout", "kind": "hangup"}]},
        {"name": "x", "extension": "201"},  # Alice's
        {"name": "x", "extension": "112"},  # an emergency number
        {"name": "a"},  # the name is taken
        {"name": "x", "other_menu_id": a["id"]},  # without a time plan
    ]
    for params in refused:
        eid, err = api.err("ivr.create", token=admin, **params)
        assert eid in ("invalid_params", "conflict"), (params, err)
    assert [m["name"] for m in _menus(api, admin)] == ["a"]  # nothing written
    b = api.ok("ivr.create", token=admin, name="b", actions=[{"key": "1", "kind": "menu", "target": str(a["id"])}])
    eid, err = api.err("ivr.update", token=admin, id=a["id"], actions=[{"key": "1", "kind": "menu", "target": str(b["id"])}])
    assert eid == "invalid_params" and "circle" in err["message"]
    assert api.ok("ivr.get", token=admin, id=a["id"])["actions"] == []  # unchanged
    eid, err = api.err("ivr.delete", token=admin, id=a["id"])  # menu b leads to it
    assert eid == "conflict" and err["data"]["details"]["menus"] == [b["id"]]
    # the menu's extension is taken for users, groups and mailboxes too
    api.ok("ivr.update", token=admin, id=a["id"], extension="555")
    assert api.err("extension.create", token=admin, number="555", user_id=alice)[0] == "conflict"
    assert api.err("group.create", token=admin, name="G", extension="555", rings=[{"members": [{"user_id": alice}]}])[0] == "conflict"
    eid, _ = api.err("ivr.recording_upload", token=admin, id=a["id"], key="7", data_base64=GREETING)
    assert eid == "invalid_params"  # no action for 7
    eid, _ = api.err("ivr.recording_upload", token=admin, id=a["id"], data_base64="bm90IGEgd2F2")
    assert eid == "invalid_params" and api.ok("ivr.get", token=admin, id=a["id"])["recordings"] == {}
    assert api.err("ivr.get", token=admin, id=foreign["id"])[0] == "not_found"  # another company's is not there
    api.ok("ivr.delete", token=admin, id=b["id"])
    api.ok("ivr.delete", token=admin, id=a["id"])
    assert _menus(api, admin) == []


def test_the_cli_creates_lists_and_refuses_a_menu(api, acme, server):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    admin, alice = acme["admin"], acme["alice"]["id"]
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    base = ["--url", server.settings.api_url, "--token", admin]
    out = CliRunner().invoke(app, base + ["ivr", "create", "main", "--extension", "500", "-a", "1=extension:201",
                                          "-a", "9=hangup", "--timeout-s", "4"])
    assert out.exit_code == 0, out.output
    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, base + ["ivr", "list"])
    assert out.exit_code == 0 and "1=extension:201" in out.output and "9=hangup" in out.output, out.output
    out = CliRunner().invoke(app, base + ["ivr", "create", "bad", "-a", "1=menu:999"])
    assert out.exit_code != 0 and "not a menu of this company" in out.output, out.output
    out = CliRunner().invoke(app, base + ["ivr", "create", "bad", "-a", "1"])
    assert out.exit_code != 0 and "KEY=KIND" in out.output, out.output
    assert [m["name"] for m in api.ok("ivr.list", token=admin)["items"]] == ["main"]


def test_the_cli_simulates_keys_in_the_menus():
    from controlplane.cli.routing_cli import parse_event

    assert parse_event("keys:2#1@3") == {"kind": "keys", "digits": "2#1", "after_s": 3.0}
    assert parse_event("no_key") == {"kind": "no_key"}


def test_a_tenant_sets_the_language_of_callers_from_abroad_by_their_number(api, acme):  # ACD-21
    t = acme["tenant"]
    got = api.ok("tenant.update", id=t["id"], language="de", caller_languages={"+49": "de", "+": "en"})
    assert got["caller_languages"] == {"+49": "de", "+": "en"}
    for bad in ({"49": "de"}, {"+49": "fr"}, {"+4x": "de"}):
        assert api.err("tenant.update", id=t["id"], caller_languages=bad)[0] == "invalid_params"
    assert api.ok("tenant.get", id=t["id"])["caller_languages"] == {"+49": "de", "+": "en"}  # unchanged


def test_a_users_personal_ivr_switched_on_by_the_user_reached_by_forwarding(api, acme):
    """IVR-06: the user switches the standard choices on; each is checked first; forwarding leads callers to it."""
    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    api.ok("extension.create", token=admin, number="202", user_id=bob)
    api.ok("sip_account.create", token=admin, user_id=bob, username="bob", password="bob-secret-12")
    bob_tok = api.ok("token.create", token=admin, name="bob", role="user", user_id=bob)["token"]
    alice_tok = api.ok("token.create", token=admin, name="alice", role="user", user_id=alice)["token"]
    assert api.ok("ivr.personal_get", token=bob_tok, user_id=bob)["menu"] is None
    # refused whole: no mailbox, no mobile, no such extension, nothing on — nothing written
    for bad in ({"message": True}, {"mobile": True}, {"assistant": "299"}, {}):
        assert api.err("ivr.personal_set", token=bob_tok, user_id=bob, **bad)[0] == "invalid_params", bad
    assert _menus(api, admin) == []
    assert api.err("ivr.personal_set", token=alice_tok, user_id=bob, assistant="201")[0] == "forbidden"  # not hers
    box = api.ok("voicemail.box_create", token=admin, user_id=bob, pin="2468")
    api.ok("user.update", token=admin, id=bob, mobile="+491711234567")
    got = api.ok("ivr.personal_set", token=bob_tok, user_id=bob, message=True, mobile=True, assistant="201")
    assert (got["message"], got["mobile"], got["assistant"], got["colleague"]) == (True, True, "201", "")
    menu = got["menu"]
    assert menu["owner_user_id"] == bob and menu["actions"] == [
        {"key": "1", "kind": "mailbox", "target": str(box["id"])},
        {"key": "2", "kind": "number", "target": "+491711234567"},
        {"key": "3", "kind": "extension", "target": "201"},
    ]
    # the mobile follows the user's; switched again: the same menu
    api.ok("user.update", token=admin, id=bob, mobile="+491719999999")
    assert api.ok("ivr.get", token=admin, id=menu["id"])["actions"][1]["target"] == "+491719999999"
    again = api.ok("ivr.personal_set", token=bob_tok, user_id=bob, message=True, switchboard="201")
    assert again["menu"]["id"] == menu["id"] and [a["key"] for a in again["menu"]["actions"]] == ["1", "0"]
    # bob forwards his calls to it; route.simulate follows a caller pressing 1
    rule = api.ok("forwarding.create", token=bob_tok, user_id=bob, kind="unconditional", target_ivr_id=menu["id"])
    assert rule["target_ivr_id"] == menu["id"] and rule["target_user_id"] is None
    assert api.err("forwarding.create", token=bob_tok, user_id=bob, kind="busy", target_ivr_id=menu["id"],
                   target_user_id=alice)[0] == "invalid_params"
    api.ok("sip_account.create", token=admin, user_id=alice, username="alice", password="alice-secret-1")
    sim = api.ok("route.simulate", token=admin, dialled="202", caller_user_id=alice, events=[{"kind": "keys", "digits": "1"}])
    assert sim["decision"] == {"type": "ivr", "menu_id": menu["id"], "language": ""}, sim["decision"]
    assert any("forwarding to IVR menu" in t for t in sim["trace"]), sim["trace"]
    assert "mailbox" in sim["timeline"][-1]["outcome"], sim["timeline"]
    # the menu deleted: the forwarding to it goes with it
    api.ok("ivr.delete", token=admin, id=menu["id"])
    assert api.ok("forwarding.list", token=admin, user_id=bob)["items"] == []


def test_the_cli_sets_a_personal_ivr_and_forwards_to_it(api, acme, server):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    admin, alice, bob = acme["admin"], acme["alice"]["id"], acme["bob"]["id"]
    api.ok("extension.create", token=admin, number="201", user_id=alice)
    base = ["--url", server.settings.api_url, "--token", admin, "--json"]
    out = CliRunner().invoke(app, base + ["ivr", "personal", str(bob), "--switchboard", "201"])
    assert out.exit_code == 0, out.output
    menu = api.ok("ivr.personal_get", token=admin, user_id=bob)["menu"]
    assert menu["actions"] == [{"key": "0", "kind": "extension", "target": "201"}]
    out = CliRunner().invoke(app, base + ["forwarding", "add", str(bob), "busy", "--to-menu", str(menu["id"])])
    assert out.exit_code == 0, out.output
    assert api.ok("forwarding.list", token=admin, user_id=bob)["items"][0]["target_ivr_id"] == menu["id"]
    out = CliRunner().invoke(app, base + ["ivr", "personal", str(bob), "--message"])  # bob has no mailbox
    assert out.exit_code != 0 and "no mailbox" in out.output, out.output
