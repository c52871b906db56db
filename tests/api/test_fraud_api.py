"""Fraud controls over JSON-RPC and the CLI (no Kamailio): policy, tariff, locks, spend, tenant scope."""
from __future__ import annotations

import time

from kemi.policy.fraud import HARD_CAPS


def test_policy_defaults_set_and_hard_caps(api, acme):
    tid, admin = acme["tenant"]["id"], acme["admin"]
    p = api.ok("fraud.policy_get", token=admin, tenant_id=tid)
    assert p["hard_caps"] == HARD_CAPS and p["spend_level"] == 3 and p["user"]["spend_day"] > 0
    p = api.ok("fraud.policy_set", token=admin, tenant_id=tid, user={"spend_day": 20, "max_concurrent": 2}, spend_level=2)
    assert p["user"]["spend_day"] == 20 and p["user"]["max_concurrent"] == 2 and p["spend_level"] == 2
    assert p["user"]["attempts_per_minute"] > 0  # what was not given keeps its value
    code, err = api.err("fraud.policy_set", token=admin, tenant_id=tid, user={"spend_day": HARD_CAPS["user"]["spend_day"] + 1})
    assert code == "invalid_params" and "hard caps" in str(err)
    assert api.ok("fraud.policy_get", token=admin, tenant_id=tid)["user"]["spend_day"] == 20  # unchanged
    other = api.ok("tenant.create", name="Other", sip_domain="other.example")
    assert api.err("fraud.policy_get", token=admin, tenant_id=other["id"])[0] in ("forbidden", "not_found")


def test_sample_tariff_ships_and_imports_are_all_or_nothing(api, acme):
    page = api.ok("fraud.tariff_list", prefix="+49", limit=1000)
    assert page["total"] >= 5 and any(r["prefix"] == "+49900" for r in page["items"])
    code, err = api.err("fraud.tariff_import", csv="prefix,rate_per_min\n+49,0.01\nabc,1\n")
    assert code == "invalid_params" and err["data"]["details"]["errors"][0]["line"] == 3
    assert api.ok("fraud.tariff_list", prefix="+49", limit=1000)["total"] == page["total"]
    assert api.err("fraud.tariff_import", token=acme["admin"], csv="prefix,rate_per_min\n+49,0.01\n")[0] == "forbidden"  # platform only
    assert api.ok("fraud.tariff_import", csv="prefix,rate_per_min,currency\n+,0.1,EUR\n+49,0.01,EUR\n")["imported"] == 2
    assert api.ok("fraud.tariff_list")["total"] == 2
    assert api.err("fraud.tariff_import", csv="prefix,rate_per_min,currency\n+44,0.1,USD\n", replace=False)[0] == "conflict"


def test_locks_set_by_an_admin_listed_lifted_once_and_in_the_snapshot(api, acme, server):
    admin, alice = acme["admin"], acme["alice"]["id"]
    assert api.err("fraud.lock", token=admin, user_id=alice, level=2, reason="x")[0] == "invalid_params"  # level 2 names a class
    lock = api.ok("fraud.lock", token=admin, user_id=alice, level=2, dest_class="international", reason="suspicious calls")
    assert lock["active"] and lock["set_by"].startswith("admin")
    snap = server.app.current_snapshot()
    assert [lk.dest_class for lk in snap.locks_for(acme["tenant"]["id"], alice)] == ["international"]
    assert [x["id"] for x in api.ok("fraud.locks", token=admin)["items"]] == [lock["id"]]
    lifted = api.ok("fraud.lift_lock", token=admin, id=lock["id"], reason="checked with Alice")
    assert not lifted["active"] and lifted["lift_reason"] == "checked with Alice"
    assert api.err("fraud.lift_lock", token=admin, id=lock["id"], reason="again")[0] == "conflict"
    assert api.ok("fraud.locks", token=admin)["items"] == [] and len(api.ok("fraud.locks", token=admin, active=None)["items"]) == 1
    assert server.app.current_snapshot().locks_for(acme["tenant"]["id"], alice) == ()


def test_events_are_tenant_scoped_and_acknowledged_all_or_nothing(api, acme, server):
    import uuid
    from datetime import datetime, timezone

    from controlplane.db.models import FraudEvent

    other = api.ok("tenant.create", name="Other", sip_domain="other.example")
    with server.app.write(changes_routing=False) as s:
        mine, theirs, edge = (str(uuid.uuid4()) for _ in range(3))
        now = datetime.now(timezone.utc)
        s.add(FraudEvent(id=mine, tenant_id=acme["tenant"]["id"], time=now, kind="spend_warning", reason="80 % of the day"))
        s.add(FraudEvent(id=theirs, tenant_id=other["id"], time=now, kind="spend_warning", reason="theirs"))
        s.add(FraudEvent(id=edge, tenant_id=None, time=now, kind="ban", source="192.0.2.9", reason="flood"))
    seen = [e["id"] for e in api.ok("fraud.events", token=acme["admin"])["items"]]
    assert seen == [mine]
    assert {e["id"] for e in api.ok("fraud.events")["items"]} == {mine, theirs, edge}  # platform
    assert api.err("fraud.acknowledge", token=acme["admin"], ids=[mine, theirs])[0] == "not_found"
    assert api.ok("fraud.events", acknowledged=False)["total"] == 3  # nothing acknowledged
    assert api.ok("fraud.acknowledge", token=acme["admin"], ids=[mine])["acknowledged"] == 1
    assert [e["id"] for e in api.ok("fraud.events", acknowledged=True)["items"]] == [mine]
    assert api.err("fraud.events", source="not-an-ip")[0] == "invalid_params"


def test_cm_fraud_verbs(api, acme, server, tmp_path):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    base = ["--url", server.settings.api_url, "--token", acme["admin"], "--json"]
    out = CliRunner().invoke(app, base + ["fraud", "policy", str(acme["tenant"]["id"])])
    assert out.exit_code == 0 and '"spend_level"' in out.output
    out = CliRunner().invoke(app, base + ["fraud", "lock", str(acme["bob"]["id"]), "3", "phone stolen"])
    assert out.exit_code == 0 and '"level": 3' in out.output
    out = CliRunner().invoke(app, base + ["fraud", "locks"])
    assert out.exit_code == 0 and "phone stolen" in out.output
    csv = tmp_path / "tariff.csv"
    csv.write_text("prefix,rate_per_min\n+49,0.02\n")
    platform = ["--url", server.settings.api_url, "--token", server.token_file.read_text().strip(), "--json"]
    out = CliRunner().invoke(app, platform + ["fraud", "tariff-import", str(csv)])
    assert out.exit_code == 0 and '"imported": 1' in out.output


def test_notifications_reach_the_webhook_and_the_smtp_relay(api, acme, server):
    """What the fraud controls send a tenant's contact: a JSON POST and an e-mail through the node's relay."""
    import socket
    import threading

    from tests.harness.sinks import WebhookSink

    from controlplane.services.notify import Notifier
    from kemi.policy.fraud import Response

    mails: list[str] = []
    smtp = socket.socket()
    smtp.bind(("127.0.0.1", 0))
    smtp.listen(1)

    def relay():  # a minimal SMTP relay: enough of RFC 5321 for smtplib
        conn, _ = smtp.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 test relay\r\n")
        data = []
        while True:
            line = f.readline().decode()
            if not line:
                break
            cmd = line.strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                conn.sendall(b"250 test relay\r\n")
            elif cmd == "DATA":
                conn.sendall(b"354 go on\r\n")
                while (body := f.readline().decode()) not in (".\r\n", ""):
                    data.append(body)
                mails.append("".join(data))
                conn.sendall(b"250 queued\r\n")
            elif cmd == "QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()

    threading.Thread(target=relay, daemon=True).start()
    hook = WebhookSink().start()
    posted = hook.posted
    tid = acme["tenant"]["id"]
    settings = server.settings.model_copy(update=dict(smtp_relay=f"127.0.0.1:{smtp.getsockname()[1]}", smtp_from="pbx@example.net",
                                   webhook_private_ok=True))
    server.app.settings = settings  # this lab's webhook is on loopback: allowed by the platform operator's setting
    api.ok("fraud.policy_set", token=acme["admin"], tenant_id=tid, notify_email="security@acme.example")
    api.ok("fraud.policy_set", tenant_id=tid, notify_webhook=hook.url)  # the platform operator's
    notifier = Notifier(server.app.engine, settings)
    notifier(Response(3, tid, acme["alice"]["id"], "spend_day", 61.0, 50.0, end_calls=("1:2",)))
    assert notifier.drain()
    notifier.stop()
    hook.stop()
    assert posted == [{"tenant_id": tid, "user_id": acme["alice"]["id"], "level": 3, "action": "outgoing calls locked", "limit": "spend_day",
                       "spent": 61.0, "allowed": 50.0, "dest_class": "", "calls_ended": 1,
                       "reason": f"spend per day of user {acme['alice']['id']}: 61.00 of 50.00"}]
    assert mails and "To: security@acme.example" in mails[0] and "outgoing calls locked" in mails[0] and "61.00 of 50.00" in mails[0]


def test_a_call_the_monitor_ended_is_recorded_even_when_kamailio_writes_no_cdr(api, acme, server):
    """The fraud monitor keeps the context of each call it ends; if Kamailio's CDR has not arrived 10 s later
    (its dialog-end event did not run), the monitor stores one — once, and never next to Kamailio's."""
    import json
    import time

    monitor = server.app.fraud
    monitor.stop()  # its rounds are driven by this test
    alice = acme["alice"]

    def dialog(key, cdr_id):
        ctx = {"id": cdr_id, "tenant_id": acme["tenant"]["id"], "caller": "201", "caller_user_id": alice["id"], "callee": "+4930999",
               "call_id": f"call-{cdr_id}", "start_ts": time.time() - 30, "trace": ["dialled +4930999"],
               "fraud": [alice["id"], "national", 0.6]}
        h_entry, h_id = key.split(":")
        return {"h_entry": int(h_entry), "h_id": int(h_id), "state": 4,
                "variables": [{"cm_ctx": json.dumps(ctx)}, {"cm_answer_ts": f"{time.time() - 20}/"}]}

    lost, arrived = "0b1c7f4e-0000-4000-8000-000000000001", "0b1c7f4e-0000-4000-8000-000000000002"
    monitor._dialogs = {"1:1": dialog("1:1", lost), "2:2": dialog("2:2", arrived)}
    monitor._expect_record("1:1", "spend per day over the limit")
    monitor._expect_record("2:2", "spend per day over the limit")
    # Kamailio's record of the second call arrives in time
    server.app.ingestor.store_records([{**json.loads(monitor._dialogs["2:2"]["variables"][0]["cm_ctx"]), "start_ts": time.time() - 30,
                                        "end_ts": time.time(), "answer_ts": time.time() - 20, "disposition": "answered", "sip_code": 200,
                                        "sip_reason": "OK", "trace": ["Kamailio's own"]}])
    monitor._store_fallbacks(time.time())  # not due yet
    assert [c["id"] for c in api.ok("cdr.list", token=acme["admin"])["items"]] == [arrived]
    monitor._store_fallbacks(time.time() + 11)
    cdrs = {c["id"]: c for c in api.ok("cdr.list", token=acme["admin"])["items"]}
    assert set(cdrs) == {lost, arrived}
    assert cdrs[arrived]["trace"] == ["Kamailio's own"]  # not replaced
    assert cdrs[lost]["disposition"] == "answered" and 19 <= cdrs[lost]["duration_s"] <= 22 and cdrs[lost]["cost"] > 0
    assert "record made by the control plane (Kamailio's did not arrive)" in cdrs[lost]["trace"]
    monitor._store_fallbacks(time.time() + 30)  # once
    assert len(api.ok("cdr.list", token=acme["admin"])["items"]) == 2


def test_a_call_answered_this_very_moment_is_ended_by_both_its_tags(server, monkeypatch):
    """At the answer Kamailio lists a dialog in its answered state a moment before it has the callee's tag; a request
    to end it without that tag cannot be matched (Kamailio drops it). The monitor reads the listing again until the
    tag is there — and ends nothing it cannot name."""
    from controlplane.services import fraud_monitor

    monitor = server.app.fraud
    answering = {"h_entry": 1, "h_id": 2, "state": 3, "call-id": "c1", "caller": {"tag": "a"}, "callee": {"tag": ""}}
    listings = iter([[answering], [answering], [{**answering, "callee": {"tag": "b"}}]])
    monkeypatch.setattr(server.app.kamailio, "dialogs", lambda: next(listings))
    found = monitor._dialogs_to_end(("1:2",))
    assert found["1:2"]["callee"]["tag"] == "b"
    assert fraud_monitor.end_request("1:2", found["1:2"], "over")[2] == '["c1", "a", "b", "over"]'
    monkeypatch.setattr(server.app.kamailio, "dialogs", lambda: [answering])  # the tag never comes: given up after a while
    monkeypatch.setattr(monitor, "TAGS_WAIT_S", 0.2)
    started = time.monotonic()
    assert monitor._dialogs_to_end(("1:2",))["1:2"]["callee"]["tag"] == ""
    assert time.monotonic() - started < 5
    assert not fraud_monitor._both_tags(answering)


def test_carrier_level_fraud_settings_belong_to_the_platform_operator(api, acme):
    tid, admin = acme["tenant"]["id"], acme["admin"]
    before = api.ok("fraud.policy_get", token=admin, tenant_id=tid)
    for field, value in (("allow_high_risk", True), ("outbound", "international"), ("notify_webhook", "https://hooks.example.net/x")):
        eid, err = api.err("fraud.policy_set", token=admin, tenant_id=tid, spend_level=2, **{field: value})
        assert eid == "forbidden" and field in err["message"], err
    assert api.ok("fraud.policy_get", token=admin, tenant_id=tid) == before  # nothing written, not even the rest of the request
    after = api.ok("fraud.policy_set", tenant_id=tid, allow_high_risk=True, outbound="national")  # the platform operator's token
    assert after["allow_high_risk"] and after["outbound"] == "national"


def test_a_webhook_to_the_nodes_own_or_private_addresses_is_refused(api, acme):
    tid = acme["tenant"]["id"]
    for url in ("http://127.0.0.1:5060/RPC", "http://localhost:8080/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/",
                "http://[::1]/x", "http://192.168.1.1/", "ftp://hooks.example.net/", "http://0.0.0.0/"):
        eid, err = api.err("fraud.policy_set", tenant_id=tid, notify_webhook=url)
        assert eid == "invalid_params", (url, err)
    assert api.ok("fraud.policy_get", tenant_id=tid)["notify_webhook"] == ""


def test_notifications_never_hold_up_the_monitor_and_are_retried(api, acme, server):
    """The monitor's call returns at once, whatever the endpoint does; a failing endpoint is retried; a refused target
    counted. (The endpoint is held until the test lets it answer: no timing involved.)"""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from controlplane.metrics import Metrics
    from controlplane.services.notify import Notifier
    from kemi.policy.fraud import Response

    release, answers, got = threading.Event(), [500, 204], []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            release.wait(10)
            self.send_response(answers.pop(0) if answers else 204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tid = acme["tenant"]["id"]
    settings = server.settings.model_copy(update=dict(webhook_private_ok=True))
    server.app.settings = settings
    api.ok("fraud.policy_set", tenant_id=tid, notify_webhook=f"http://127.0.0.1:{srv.server_port}/hook")
    metrics = Metrics()
    notifier = Notifier(server.app.engine, settings, metrics=metrics, retries_s=(0.0, 0.1, 0.1))
    notifier(Response(3, tid, acme["alice"]["id"], "spend_day", 61.0, 50.0))
    assert not release.is_set() and notifier._queue.unfinished_tasks == 1  # returned while the endpoint still holds the request
    release.set()
    assert notifier.drain()
    assert len(got) == 2  # 500 first, then delivered
    assert metrics.notifications.labels(channel="webhook", outcome="sent")._value.get() == 1
    # a target that became private after it was set (DNS) is refused at delivery and counted
    strict = Notifier(server.app.engine, settings.model_copy(update=dict(webhook_private_ok=False)), metrics=metrics, retries_s=(0.0,))
    strict(Response(3, tid, acme["alice"]["id"], "spend_day", 61.0, 50.0))
    assert strict.drain() and len(got) == 2
    assert metrics.notifications.labels(channel="webhook", outcome="refused")._value.get() == 1
    for n in (notifier, strict):
        n.stop()
    srv.shutdown()
