"""The JSON-RPC admin API: every method's success and errors, tenant isolation, bad input changes nothing."""
import json
import time

import httpx

from kemi.policy.auth import ha1


def snapshot(server, timeout=3.0):
    """The published snapshot once it has caught up with the database's config version."""
    from controlplane.db.models import ConfigState
    from sqlmodel import Session

    with Session(server.app.engine) as s:
        want = s.get(ConfigState, 1).version
    deadline = time.time() + timeout
    while True:
        doc = json.loads(server.settings.snapshot_path.read_text())
        if doc["version"] >= want or time.time() > deadline:
            return doc
        time.sleep(0.05)


def test_tenant_crud(api, server):
    t = api.ok("tenant.create", name="Beta", sip_domain="Beta.Example")
    assert t["sip_domain"] == "beta.example"
    assert api.ok("tenant.get", id=t["id"])["name"] == "Beta"
    assert api.ok("tenant.update", id=t["id"], name="Beta AG")["name"] == "Beta AG"
    assert [x["name"] for x in api.ok("tenant.list")["items"]] == ["Beta AG"]
    assert api.ok("tenant.delete", id=t["id"])["deleted"]
    assert api.err("tenant.get", id=t["id"])[0] == "not_found"


def test_tenant_conflicts_and_bad_domain(api):
    api.ok("tenant.create", name="Acme", sip_domain="acme.example")
    assert api.err("tenant.create", name="Acme", sip_domain="x.example")[0] == "conflict"
    assert api.err("tenant.create", name="Other", sip_domain="acme.example")[0] == "conflict"
    eid, e = api.err("tenant.create", name="Bad", sip_domain="not a domain")
    assert eid == "invalid_params" and e["data"]["details"]["errors"][0]["field"] == "sip_domain"
    assert api.ok("tenant.list")["total"] == 1


def test_a_tenants_language_is_one_of_the_prompt_sets_and_reaches_the_snapshot(api, server):
    t = api.ok("tenant.create", name="Lang", sip_domain="lang.example")
    assert t["language"] == ""  # the node's prompt_language
    eid, e = api.err("tenant.update", id=t["id"], language="fr")
    assert eid == "invalid_params" and e["data"]["details"]["errors"][0]["field"] == "language"
    assert api.err("tenant.create", name="Fr", sip_domain="fr.example", language="fr")[0] == "invalid_params"
    assert api.ok("tenant.get", id=t["id"])["language"] == ""  # nothing changed
    assert api.ok("tenant.update", id=t["id"], language="de")["language"] == "de"
    assert [x.get("language") for x in snapshot(server)["tenants"]] == ["de"]


def test_user_sip_account_and_extension_lifecycle_reaches_the_snapshot(api, server, acme):
    admin, bob = acme["admin"], acme["bob"]
    acc = api.ok("sip_account.create", token=admin, user_id=bob["id"], username="bob")
    assert len(acc["password"]) >= 12 and "ha1" not in acc and acc["aor"] == "sip:bob@acme.example"
    assert "password" not in api.ok("sip_account.get", token=admin, id=acc["id"])
    ext = api.ok("extension.create", token=admin, number="202", user_id=bob["id"])
    snap = snapshot(server)
    [a] = [a for a in snap["accounts"] if a["username"] == "bob"]
    assert a["ha1"] == ha1("bob", "acme.example", acc["password"])
    assert {"tenant_id": acme["tenant"]["id"], "number": "202", "user_id": bob["id"]} in snap["extensions"]
    v1 = snap["version"]
    api.ok("sip_account.update", token=admin, id=acc["id"], password="new-password-1")
    assert snapshot(server)["version"] > v1
    assert [a for a in snapshot(server)["accounts"] if a["username"] == "bob"][0]["ha1"] == ha1("bob", "acme.example", "new-password-1")
    assert api.ok("extension.update", token=admin, id=ext["id"], user_id=acme["alice"]["id"])["user_id"] == acme["alice"]["id"]
    assert api.ok("extension.list", token=admin)["total"] == 1
    assert api.ok("user.update", token=admin, id=bob["id"], role="agent")["role"] == "agent"
    assert api.ok("user.delete", token=admin, id=bob["id"])["deleted"]
    assert api.err("sip_account.get", token=admin, id=acc["id"])[0] == "not_found"  # deleted with the user
    assert all(a["username"] != "bob" for a in snapshot(server)["accounts"])


def test_uniqueness_is_reported_as_conflict(api, acme):
    admin = acme["admin"]
    api.ok("extension.create", token=admin, number="201", user_id=acme["alice"]["id"])
    eid, e = api.err("extension.create", token=admin, number="201", user_id=acme["bob"]["id"])
    assert eid == "conflict" and e["data"]["details"]["field"] == "number"
    api.ok("sip_account.create", token=admin, user_id=acme["alice"]["id"], username="alice", password="secret-pw-1")
    assert api.err("sip_account.create", token=admin, user_id=acme["bob"]["id"], username="alice", password="secret-pw-2")[0] == "conflict"
    assert api.err("user.create", token=admin, name="Dup", email="alice@acme.example")[0] == "conflict"


def test_sip_domain_cannot_change_under_existing_accounts(api, acme):
    api.ok("sip_account.create", token=acme["admin"], user_id=acme["alice"]["id"], username="alice", password="secret-pw-1")
    assert api.err("tenant.update", id=acme["tenant"]["id"], sip_domain="new.example")[0] == "conflict"


def test_wrong_types_and_unknown_fields_are_invalid_params_and_change_nothing(api, acme):
    admin = acme["admin"]
    before = api.ok("user.list", token=admin)["total"]
    for params in ({"name": 5}, {"name": "X", "role": "emperor"}, {"name": "X", "colour": "red"}, {"name": ""}):
        eid, _ = api.err("user.create", token=admin, **params)
        assert eid == "invalid_params"
    assert api.err("extension.create", token=admin, number="12ab", user_id=acme["alice"]["id"])[0] == "invalid_params"
    assert api.err("sip_account.create", token=admin, user_id=acme["alice"]["id"], username="a b", password="secret-pw-1")[0] == "invalid_params"
    assert api.err("sip_account.create", token=admin, user_id=acme["alice"]["id"], username="short", password="123")[0] == "invalid_params"
    assert api.ok("user.list", token=admin)["total"] == before


def test_malformed_json_and_invalid_requests(api, acme):
    r = api.raw(b'{"jsonrpc": "2.0", "method": "user.create", "params": {"name": "X"')
    assert r["error"]["code"] == -32700 and r["error"]["data"]["error_id"] == "parse_error"
    assert api.raw({"method": "tenant.list", "id": 1})["error"]["data"]["error_id"] == "invalid_request"
    assert api.raw([])["error"]["data"]["error_id"] == "invalid_request"
    assert api.call("no.such")["error"]["data"]["error_id"] == "method_not_found"
    assert api.raw({"jsonrpc": "2.0", "method": "user.create", "params": ["X"], "id": 3})["error"]["data"]["error_id"] == "invalid_params"
    assert api.ok("user.list", token=acme["admin"])["total"] == 2


def test_batch_requests_and_notifications(api, acme):
    admin = acme["admin"]
    batch = [
        {"jsonrpc": "2.0", "method": "user.get", "params": {"id": acme["alice"]["id"]}, "id": "a"},
        {"jsonrpc": "2.0", "method": "user.get", "params": {"id": 999999}, "id": "b"},
        {"jsonrpc": "2.0", "method": "token.whoami", "params": {}},  # notification: no response
        {"foo": "bar"},
    ]
    r = api.raw(batch, token=admin)
    assert len(r) == 3
    by_id = {x.get("id"): x for x in r}
    assert by_id["a"]["result"]["name"] == "Alice"
    assert by_id["b"]["error"]["data"]["error_id"] == "not_found"
    assert by_id[None]["error"]["data"]["error_id"] == "invalid_request"


def test_tokens_authenticate_and_roles_authorise(api, acme):
    assert api.err("tenant.list", token=None)[0] == "unauthorized"
    assert api.err("tenant.list", token="cm_wrong")[0] == "unauthorized"
    admin = acme["admin"]
    assert api.err("tenant.create", token=admin, name="Mine", sip_domain="mine.example")[0] == "forbidden"
    assert api.err("token.create", token=admin, name="up", role="extended_admin")[0] == "forbidden"
    user_tok = api.ok("token.create", token=admin, name="alice", role="user", user_id=acme["alice"]["id"])["token"]
    assert api.ok("token.whoami", token=user_tok)["role"] == "user"
    assert api.err("user.create", token=user_tok, name="Eve")[0] == "forbidden"
    assert api.err("user.list", token=user_tok)[0] == "forbidden"
    tokens = api.ok("token.list", token=admin)["items"]
    assert all("token_hash" not in t and "token" not in t for t in tokens)
    tid = [t["id"] for t in tokens if t["name"] == "alice"][0]
    api.ok("token.delete", token=admin, id=tid)
    assert api.err("token.whoami", token=user_tok)[0] == "unauthorized"


def test_a_tenant_admin_never_sees_or_changes_another_tenant(api, acme):
    other = api.ok("tenant.create", name="Rival", sip_domain="rival.example")
    rival_admin = api.ok("token.create", name="rival", role="admin", tenant_id=other["id"])["token"]
    eve = api.ok("user.create", token=rival_admin, name="Eve")
    admin = acme["admin"]
    assert api.err("user.get", token=admin, id=eve["id"])[0] == "not_found"
    assert api.err("user.update", token=admin, id=eve["id"], name="pwned")[0] == "not_found"
    assert api.err("user.delete", token=admin, id=eve["id"])[0] == "not_found"
    assert api.err("tenant.get", token=admin, id=other["id"])[0] == "not_found"
    assert api.err("user.list", token=admin, tenant_id=other["id"])[0] == "forbidden"
    assert api.err("extension.create", token=admin, number="555", user_id=eve["id"])[0] == "not_found"
    assert api.err("sip_account.create", token=admin, user_id=eve["id"], username="evil", password="secret-pw-1")[0] == "not_found"
    assert [u["name"] for u in api.ok("user.list", token=admin)["items"]] == ["Alice", "Bob"]
    assert api.ok("user.get", token=rival_admin, id=eve["id"])["name"] == "Eve"


def write_cdr(server, **kw):
    spool = server.settings.spool_dir / "new"
    spool.mkdir(parents=True, exist_ok=True)
    rec = {"id": kw.pop("id"), "tenant_id": 1, "caller": "201", "caller_user_id": 1, "callee": "202", "callee_user_id": 2, "call_id": "c", "start_ts": time.time(), "answer_ts": None, "end_ts": time.time(), "duration_s": 0, "disposition": "busy", "sip_code": 486, "sip_reason": "Busy", "trace": ["x"]}
    rec.update(kw)
    with open(spool / f"seg-{rec['id']}.jsonl", "a") as fh:  # a closed segment, as Kamailio's workers leave them
        fh.write(json.dumps(rec) + "\n")


def test_cdrs_are_ingested_once_filtered_and_paged(api, server, acme):
    t = acme["tenant"]["id"]
    a, b = acme["alice"]["id"], acme["bob"]["id"]
    write_cdr(server, id="00000000-0000-0000-0000-000000000001", tenant_id=t, caller_user_id=a, callee_user_id=b, disposition="answered", sip_code=200, start_ts=time.time() - 3600)
    write_cdr(server, id="00000000-0000-0000-0000-000000000002", tenant_id=t, caller_user_id=b, callee_user_id=a, disposition="busy")
    write_cdr(server, id="00000000-0000-0000-0000-000000000003", tenant_id=t + 1000, disposition="busy")
    (server.settings.spool_dir / "new" / "broken.jsonl").write_text("{nope\n")
    deadline = time.time() + 5
    while time.time() < deadline and server.app.ingestor.pending():
        time.sleep(0.1)
    write_cdr(server, id="00000000-0000-0000-0000-000000000001", tenant_id=t)  # the same record again: no duplicate
    time.sleep(1.0)
    admin = acme["admin"]
    assert api.ok("cdr.list", token=admin)["total"] == 2
    assert api.ok("cdr.list")["total"] == 3  # the platform sees all tenants
    assert [c["disposition"] for c in api.ok("cdr.list", token=admin, disposition="answered")["items"]] == ["answered"]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    assert api.ok("cdr.list", token=admin, since=since)["total"] == 1
    page = api.ok("cdr.list", token=admin, limit=1, offset=1)
    assert len(page["items"]) == 1 and page["total"] == 2
    assert api.err("cdr.list", token=admin, since="yesterday")[0] == "invalid_params"
    assert api.err("cdr.list", token=admin, disposition="exploded")[0] == "invalid_params"
    alice_tok = api.ok("token.create", token=admin, name="alice", role="user", user_id=a)["token"]
    assert api.ok("cdr.list", token=alice_tok)["total"] == 2
    carol = api.ok("user.create", token=admin, name="Carol")
    carol_tok = api.ok("token.create", token=admin, name="carol", role="user", user_id=carol["id"])["token"]
    assert api.ok("cdr.list", token=carol_tok)["total"] == 0
    assert (server.settings.spool_dir / "bad" / "broken.jsonl").read_text() == "{nope\n"


def test_call_list_reports_an_unreachable_kamailio_as_unavailable(api):
    eid, e = api.err("call.list")
    assert eid == "unavailable" and e["data"]["details"]["component"] == "kamailio"


def test_rpc_discover_publishes_every_method(api, server):
    from controlplane.api.rpc import REGISTRY

    doc = api.ok("rpc.discover", token=None)
    assert doc["openrpc"].startswith("1.")
    assert {m["name"] for m in doc["methods"]} == set(REGISTRY.methods)
    uc = next(m for m in doc["methods"] if m["name"] == "user.create")
    assert {p["name"] for p in uc["params"]} >= {"name", "role", "tenant_id"}


def test_odd_cdr_records_are_cut_to_size_or_quarantined_and_never_block_the_spool(api, server):
    write_cdr(server, id="00000000-0000-0000-0000-0000000000aa", caller="9" * 500, call_id="c" * 1000)
    write_cdr(server, id="00000000-0000-0000-0000-0000000000bb", tenant_id="not-a-number")
    write_cdr(server, id="00000000-0000-0000-0000-0000000000cc")
    deadline = time.time() + 5
    while time.time() < deadline and server.app.ingestor.pending():
        time.sleep(0.1)
    items = api.ok("cdr.list")["items"]
    assert {c["id"][-2:] for c in items} == {"aa", "cc"}
    assert len([c for c in items if c["id"].endswith("aa")][0]["caller"]) == 128
    assert "not-a-number" in (server.settings.spool_dir / "bad" / "seg-00000000-0000-0000-0000-0000000000bb.jsonl").read_text()


def test_a_bad_content_length_is_a_clear_http_error(server):
    import socket

    with socket.create_connection((server.settings.api_address, server.settings.api_port)) as s:
        s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n")
        assert b" 400 " in s.recv(200).split(b"\r\n")[0]


def test_hostile_bodies_get_a_json_rpc_error_or_413_and_change_nothing(api, acme, server):
    admin = acme["admin"]
    before = api.ok("user.list", token=admin)["total"]
    deep = b"[" * 200000 + b"]" * 200000
    assert api.raw(deep[: (1 << 20) - 10])["error"]["data"]["error_id"] == "parse_error"  # nested too deeply: no dropped connection
    assert api.raw(b"\xff\xfe{}")["error"]["data"]["error_id"] == "parse_error"
    r = httpx.post(api.url, content=b"x" * ((1 << 20) + 1), headers={"Authorization": f"Bearer {api.token}"}, timeout=10)
    assert r.status_code == 413  # above the documented 1 MiB (docs/api.md)
    batch = [{"jsonrpc": "2.0", "method": "tenant.list", "id": i} for i in range(1001)]
    r = api.raw(batch)
    assert r["error"]["data"]["error_id"] == "invalid_request" and r["error"]["data"]["details"]["limit"] == 1000
    for wrong in ({"jsonrpc": "2.0", "method": 5, "id": 1}, {"jsonrpc": "2.0", "method": "user.create", "params": "X", "id": 1},
                  {"jsonrpc": "2.0", "method": "user.create", "params": {"name": ["X"]}, "id": {"a": 1}}, "just a string", 17):
        r = api.raw(json.dumps(wrong), token=admin)
        assert r["error"]["data"]["error_id"] in ("invalid_request", "invalid_params"), r
        assert "Traceback" not in json.dumps(r)
    assert api.ok("user.list", token=admin)["total"] == before


def test_a_client_that_stops_sending_is_disconnected_and_errors_name_no_internals(tmp_path):
    """No request timeout meant a connection that never finished its request held a server thread forever; database and
    Kamailio error texts (tables, columns, internal URLs) went to API clients."""
    import socket
    import threading
    import time

    from controlplane.node.settings import load_settings
    from controlplane.server import ControlPlaneServer
    from tests.api.conftest import Api
    from tests.harness.ports import free_port

    settings = load_settings(env={}, var_dir=str(tmp_path / "var"), api_port=free_port(), kamailio_rpc_port=free_port(),
                             rtpengine_ng_port=free_port(), api_request_timeout_s=1.0)
    srv = ControlPlaneServer(settings, start_workers=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        def stalled(first_bytes: bytes) -> tuple[bytes, float]:
            """What the server sends on a connection that sends `first_bytes` and then nothing, until it closes."""
            s = socket.create_connection((settings.api_address, settings.api_port))
            s.settimeout(10)
            started = time.monotonic()
            if first_bytes:
                s.sendall(first_bytes)
            got = b""
            while chunk := s.recv(4096):  # a socket.timeout here: never closed by the server
                got += chunk
            s.close()
            return got, time.monotonic() - started

        # half a body: told so (408) and closed ...
        got, took = stalled(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert got.startswith(b"HTTP/1.1 408 ") and b"did not arrive in time" in got and took < 9, got
        # ... half a request line or nothing at all: closed (uvicorn alone kept these for ever)
        for first in (b"POST /rp", b""):
            got, took = stalled(first)
            assert got == b"" and took < 9, (first, got)
        api = Api(settings.api_url, srv.token_file.read_text().strip())
        r = api.call("call.list")  # Kamailio is not running
        assert r["error"]["data"]["error_id"] == "unavailable"
        assert "127.0.0.1" not in str(r) and "RPC" not in str(r) and str(settings.kamailio_rpc_port) not in str(r)
    finally:
        srv.shutdown()


def test_a_database_constraint_is_a_conflict_without_the_databases_text():
    from sqlalchemy.exc import IntegrityError

    from controlplane.api.rpc import Dispatcher, Principal, Registry
    from controlplane.db.models import Role

    reg = Registry()

    @reg.method("x.write", perm=None)
    def write(ctx, p):
        raise IntegrityError("INSERT INTO user", {}, Exception("UNIQUE constraint failed: user.tenant_id, user.email"))

    d = Dispatcher(app=None, authenticate=lambda t: Principal(1, Role.ADMIN, 1), registry=reg)
    r = d.handle_body(b'{"jsonrpc": "2.0", "method": "x.write", "id": 1}', "t")
    assert r["error"]["data"]["error_id"] == "conflict" and r["error"]["data"]["details"] == {"constraint": "unique"}
    assert "user.email" not in str(r) and "UNIQUE" not in str(r)


def test_cm_token_create_prints_the_token_whole_at_any_width(api, server):
    """A token wrapped into a narrow table cell could not be copied; it has a line of its own."""
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    base = ["--url", server.settings.api_url, "--token", api.token]
    out = CliRunner(env={"COLUMNS": "50"}).invoke(app, base + ["token", "create", "narrow-terminal", "--role", "admin"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("token (shown this once): "))
    token = line.split(": ", 1)[1].strip()
    assert api.ok("token.whoami", token=token)["role"] == "admin"
