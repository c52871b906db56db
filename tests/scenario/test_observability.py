"""What the NOC sees, against a real node (Kamailio, RTPengine, control plane) and a real Prometheus (issue 6):
the collectors move with real traffic, every metric the dashboards and rules name exists, Prometheus scrapes the
node and fires an alert when a component dies, and a dead component never breaks a scrape.

The node's Prometheus evaluates the shipped rules with their `for:` durations cut to seconds (same expressions)."""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from prometheus_client import CollectorRegistry, generate_latest

from controlplane.adapters.kamailio_rpc import KamailioRpc
from controlplane.adapters.rtpengine_ng import NgClient
from controlplane.metrics.kamailio import KamailioCollector
from controlplane.metrics.rtpengine import RtpengineCollector
from tests.harness.node import TestNode
from tests.harness.rtcp import report_quality
from tests.harness.sipp import Sipp

from .conftest import assert_clean_log, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "grafana" / "prometheus" / "rules.yml"
sys.path.insert(0, str(ROOT / "grafana"))
import dashboards  # noqa: E402  (grafana/dashboards.py)

PROMETHEUS_OWN = {"up", "ALERTS", "time", "vector"}
# Exposed only by a node in a cluster, and checked there: a SIP pair's node (tests/lab/test_failover.py), a control plane
# on a PostgreSQL primary with a replica (tests/api/test_cluster_database.py)
CLUSTER_ONLY = {"callmanager_vip_held", "callmanager_database_replicas", "callmanager_database_replica_lag_seconds",
                "callmanager_database_replica_lag_bytes",
                # a node with its media server (the test nodes run without): tests/scenario/test_announcements.py
                "callmanager_media_server_up"}
DOMAIN = "noc.example"


def fast_rules(path: Path) -> Path:
    text = re.sub(r"^(\s+)for: \S+", r"\1for: 2s", RULES.read_text(), flags=re.M)
    text = re.sub(r"^(\s+)interval: 30s", r"\1interval: 1s", text, flags=re.M)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def obs_node(tmp_path_factory, real_components):
    tmp = tmp_path_factory.mktemp("noc")
    n = TestNode(tmp / "var", prometheus=True, prometheus_scrape_interval_s=2,
                 prometheus_rule_files=str(fast_rules(tmp / "rules.yml"))).start()
    yield n
    n.stop()
    assert_clean_log(n)


@pytest.fixture(scope="module")
def sipp(obs_node, tmp_path_factory):
    return Sipp(obs_node.sip, tmp_path_factory.mktemp("sipp"))


@pytest.fixture(scope="module")
def phones(obs_node, sipp):
    """A tenant with two phones, 701 and 702 (registered): (tenant, caller, callee)."""
    tenant = obs_node.rpc("tenant.create", name="NOC GmbH", sip_domain=DOMAIN)
    out = []
    for i in (1, 2):
        user = obs_node.rpc("user.create", tenant_id=tenant["id"], name=f"N{i}")
        obs_node.rpc("sip_account.create", user_id=user["id"], username=f"n{i}", password=f"pw-n{i}-secret")
        obs_node.rpc("extension.create", number=f"70{i}", user_id=user["id"])
        out.append(sipp.phone(f"n{i}", DOMAIN, f"pw-n{i}-secret"))
    time.sleep(0.5)
    assert sipp.register(out[1]).ok
    return tenant, out[0], out[1]


def scrape(node) -> dict[tuple[str, tuple], float]:
    r = httpx.get(f"http://{node.settings.api_address}:{node.settings.api_port}/metrics", timeout=10)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def private_scrape(node) -> dict[tuple[str, tuple], float]:
    """The Kamailio and RTPengine collectors in a registry of this test, reading the node's real daemons."""
    registry = CollectorRegistry()
    registry.register(KamailioCollector(KamailioRpc(node.settings.kamailio_rpc_url, secret=node.settings.rpc_secret_path.read_text().strip())))
    registry.register(RtpengineCollector(NgClient(node.settings.rtpengine_address, node.settings.rtpengine_ng_port)))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples, name: str, **labels) -> float:
    want = tuple(sorted(labels.items()))
    return sum(v for (n, lbl), v in samples.items() if n == name and set(want) <= set(lbl))


def exposed_names(node) -> set[str]:
    """Every sample name the node exposes, from the TYPE lines (families with no samples yet included)."""
    text = httpx.get(f"http://{node.settings.api_address}:{node.settings.api_port}/metrics", timeout=10).text
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)", text, re.M):
        name = name.removesuffix("_total") if kind == "counter" else name  # the text format names counters with _total
        names |= {"counter": {name + "_total", name + "_created"}, "histogram": {name + "_bucket", name + "_sum", name + "_count"},
                  "summary": {name, name + "_sum", name + "_count"}}.get(kind, {name})
    return names


def prom(node, path: str, **params) -> dict:
    r = httpx.get(f"http://{node.settings.prometheus_address}:{node.settings.prometheus_port}/api/v1/{path}", params=params, timeout=10)
    body = r.json()
    assert body.get("status") == "success", body
    return body["data"]


def referenced_names() -> set[str]:
    exprs = [e for _, _, e in _dashboard_exprs()] + re.findall(r"expr: (.+)", RULES.read_text())
    exprs += [block for block in re.findall(r"expr: \|\n((?:\s{10}.*\n)+)", RULES.read_text())]
    return {n for e in exprs for n in re.findall(r"\bcallmanager_[a-z0-9_]+", e)}


def _dashboard_exprs():
    for name, text in dashboards.render().items():
        for panel in json.loads(text)["panels"]:
            for t in panel.get("targets", []):
                yield name, panel["title"], t["expr"]


def test_a_call_moves_the_kamailio_rtpengine_and_call_figures(obs_node, sipp, phones):
    tenant, caller, callee_phone = phones
    before, private_before = scrape(obs_node), private_scrape(obs_node)
    assert value(before, "callmanager_kamailio_up") == 1 and value(before, "callmanager_rtpengine_up") == 1
    assert sipp.register(callee_phone).ok  # a registration inside the window, counted below
    callee = sipp.callee(callee_phone, "answer")
    assert sipp.caller(caller, "702", hold_ms=1500).ok
    assert sipp.wait(callee).ok
    private_after = private_scrape(obs_node)
    for name, labels, least in (("callmanager_kamailio_requests_total", {"method": "INVITE"}, 2), ("callmanager_kamailio_requests_total", {"method": "BYE"}, 1),
                                ("callmanager_rtpengine_sessions_managed_total", {}, 1), ("callmanager_rtpengine_packets_relayed_total", {}, 50)):
        assert value(private_after, name, **labels) - value(private_before, name, **labels) >= least, name
    after = wait_for(lambda: (s := scrape(obs_node)) and value(s, "callmanager_calls_total", disposition="answered") >= 1 and s, timeout=10)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("callmanager_kamailio_requests_total", method="INVITE") >= 2  # the challenged INVITE and the authenticated one
    assert moved("callmanager_kamailio_requests_total", method="BYE") >= 1
    assert moved("callmanager_kamailio_transaction_replies_total", **{"class": "2xx"}) >= 2
    assert value(after, "callmanager_kamailio_registered_contacts") >= 1 and value(after, "callmanager_kamailio_registered_users") >= 1
    assert moved("callmanager_kamailio_registrations_total", outcome="accepted") >= 1
    assert value(after, "callmanager_kamailio_dialogs", state="active") == 0  # the call is over
    assert moved("callmanager_rtpengine_sessions_managed_total") == 1
    assert moved("callmanager_rtpengine_packets_relayed_total") > 50  # 1.5 s of PCMU, both ways
    assert moved("callmanager_rtpengine_bytes_relayed_total") > 50 * 160
    assert value(after, "callmanager_rtpengine_ports") == 400 and value(after, "callmanager_rtpengine_ports_used") == 0
    assert moved("callmanager_calls_total", tenant=str(tenant["id"]), disposition="answered") == 1
    assert moved("callmanager_call_duration_seconds_count", tenant=str(tenant["id"])) == 1
    assert 1.0 <= moved("callmanager_call_duration_seconds_sum", tenant=str(tenant["id"])) <= 6.0
    assert moved("callmanager_call_post_dial_delay_seconds_count", tenant=str(tenant["id"])) == 1
    assert value(after, "callmanager_kamailio_processes", role="udp_receiver") == obs_node.settings.kamailio_children
    assert value(after, "callmanager_kamailio_cpu_seconds_total") > 0  # read from /proc: Kamailio runs on this host
    assert value(after, "callmanager_kamailio_shm_used_bytes") > 0
    assert value(after, "callmanager_config_version") == value(after, "callmanager_snapshot_version") > 0
    # a phone with a wrong password: a failed registration, counted
    assert sipp.register(caller.with_password("wrong-password"), wrong=True).ok
    failed = scrape(obs_node)
    assert value(failed, "callmanager_registrations_failed_total") - value(after, "callmanager_registrations_failed_total") == 1
    assert value(failed, "callmanager_fraud_auth_failures_total") - value(after, "callmanager_fraud_auth_failures_total") == 1


def scored_call(node, sipp, caller, callee, dial, **quality) -> dict:
    """A call whose parties report `quality` over RTCP while it is up; returns its CDR."""
    ng = NgClient(node.settings.rtpengine_address, node.settings.rtpengine_ng_port)
    proc = sipp.callee(callee, "answer")
    done = sipp.caller_in_background(caller, dial, hold_ms=3000)
    call_id = wait_for(lambda: ng.list_calls(), timeout=5)[0]
    report_quality(ng, call_id, **quality)
    assert done.result(timeout=40).ok and sipp.wait(proc).ok
    return wait_for(lambda: node.rpc("cdr.list", call_id=call_id)["items"], timeout=10)[0]


def test_rtpengine_scores_each_calls_media_onto_its_cdr_the_histograms_and_the_mos_alert(obs_node, sipp, phones):
    _, caller, callee = phones
    before = scrape(obs_node)
    good = scored_call(obs_node, sipp, caller, callee, "702", loss=0.0, jitter_ms=5, rtt_ms=20)
    bad = scored_call(obs_node, sipp, caller, callee, "702", loss=0.15, jitter_ms=60, rtt_ms=300)
    for cdr in (good, bad):
        assert 1.0 <= cdr["mos"] <= 5.0 and cdr["rtt_ms"] > 0 and cdr["jitter_ms"] is not None and cdr["loss_pct"] is not None, cdr
    assert bad["mos"] < 4.0 <= good["mos"], (good, bad)  # RTPengine's E-model: loss, jitter and delay cost MOS
    assert bad["loss_pct"] > good["loss_pct"] and bad["jitter_ms"] > good["jitter_ms"]
    worst = obs_node.rpc("cdr.list", order="worst_media", limit=1)["items"][0]
    assert worst["call_id"] == bad["call_id"]
    assert [c["call_id"] for c in obs_node.rpc("cdr.list", max_mos=bad["mos"])["items"]] == [bad["call_id"]]
    after = wait_for(lambda: (s := scrape(obs_node)) and value(s, "callmanager_media_mos_count") - value(before, "callmanager_media_mos_count") >= 2 and s,
                     timeout=10)
    assert value(after, "callmanager_media_mos_sum") - value(before, "callmanager_media_mos_sum") == pytest.approx(good["mos"] + bad["mos"])
    assert value(after, "callmanager_media_round_trip_seconds_count") - value(before, "callmanager_media_round_trip_seconds_count") == 2
    # the SLA alert: the average MOS of the last 5 minutes is below 4.3
    alerts = wait_for(lambda: [a for a in prom(obs_node, "alerts")["alerts"] if a["labels"]["alertname"] == "CallmanagerMosLow"
                               and a["state"] == "firing"], timeout=40, interval=0.5)
    assert alerts, prom(obs_node, "alerts")


def test_every_metric_the_dashboards_and_rules_name_exists_on_a_live_node(obs_node):
    missing = referenced_names() - exposed_names(obs_node) - PROMETHEUS_OWN - CLUSTER_ONLY
    assert not missing, f"named by grafana/ but not exposed by the node: {sorted(missing)}"


def test_prometheus_scrapes_the_node_and_runs_every_dashboard_query(obs_node):
    s = obs_node.settings
    target = wait_for(lambda: [t for t in prom(obs_node, "targets")["activeTargets"] if t["health"] == "up"], timeout=20)
    assert target[0]["labels"]["node"] == s.node_name and target[0]["labels"]["datacenter"] == s.datacenter
    up = wait_for(lambda: prom(obs_node, "query", query=f'callmanager_kamailio_up{{node="{s.node_name}"}}')["result"], timeout=20)
    assert up[0]["value"][1] == "1"
    for name, title, expr in _dashboard_exprs():
        for var in ("$datacenter", "$node", "$tenant", "$group"):
            expr = expr.replace(var, ".*")
        prom(obs_node, "query", query=expr)  # asserts status success: it parses and evaluates
    rules = prom(obs_node, "rules")["groups"]
    assert {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"} >= {"CallmanagerRtpengineDown", "CallmanagerKamailioDown"}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [r for g in rules for r in g["rules"] if r["health"] != "ok"]


def test_a_dead_component_shows_as_down_fires_its_alert_and_never_breaks_a_scrape(obs_node):
    obs_node.component("rtpengine").stop()
    samples = scrape(obs_node)
    assert value(samples, "callmanager_rtpengine_up") == 0 and value(samples, "callmanager_kamailio_up") == 1
    private = private_scrape(obs_node)  # the collectors alone: no exception, up 0, nothing else of RTPengine's
    assert value(private, "callmanager_rtpengine_up") == 0 and value(private, "callmanager_kamailio_up") == 1
    assert not [k for k in private if k[0].startswith("callmanager_rtpengine_") and k[0] != "callmanager_rtpengine_up"]

    def firing(alert):
        return [a for a in prom(obs_node, "alerts")["alerts"] if a["labels"]["alertname"] == alert and a["state"] == "firing"]

    alert = wait_for(lambda: firing("CallmanagerRtpengineDown"), timeout=40, interval=0.5)
    assert alert, prom(obs_node, "alerts")
    assert alert[0]["labels"]["node"] == obs_node.settings.node_name and alert[0]["labels"]["severity"] == "critical"
    assert not firing("CallmanagerKamailioDown")

    obs_node.component("kamailio").stop()
    samples = scrape(obs_node)  # answers (200), within its 10 s timeout
    assert value(private_scrape(obs_node), "callmanager_kamailio_up") == 0
    assert value(samples, "callmanager_kamailio_up") == 0
    assert value(samples, "callmanager_queue_up") == 0 and value(samples, "callmanager_fraud_edge_up") == 0
    assert value(samples, "callmanager_config_version") > 0  # the control plane's own figures are still there
    assert wait_for(lambda: firing("CallmanagerKamailioDown"), timeout=40, interval=0.5), prom(obs_node, "alerts")
