"""The NOC's files, checked with the real tools: alert rules (promtool check + promtool's rule unit tests), the
generated dashboards match their code, every PromQL expression parses, and what the expressions reference is defined.
(That the referenced metrics exist on a live node is checked in tests/scenario/test_observability.py.)"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.node.render import prometheus_yml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
RULES = GRAFANA / "prometheus" / "rules.yml"
sys.path.insert(0, str(GRAFANA))
import dashboards  # noqa: E402  (grafana/dashboards.py)

GRAFANA_VARS = {"$datacenter": ".*", "$node": ".*", "$tenant": ".*", "$group": ".*"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not installed — run `make test`, which installs Debian's prometheus package", pytrace=False)
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every query in the generated dashboards, variables included."""
    out = []
    for name, text in dashboards.render().items():
        doc = json.loads(text)
        for panel in doc["panels"]:
            for t in panel.get("targets", []):
                out.append((name, panel["title"], t["expr"]))
        for var in doc["templating"]["list"]:
            out.append((name, f"variable {var['name']}", re.sub(r"^label_values\((.*), *\w+\)$", r"\1", var["query"])))
    return out


def recorded_names() -> set[str]:
    return set(re.findall(r"^\s+- record: (\S+)", RULES.read_text(), re.M))


def test_alert_rules_are_valid_and_their_unit_tests_pass():
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    tests = promtool("test", "rules", "rules_test.yml", cwd=RULES.parent)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_rule_unit_tests_cover_every_alert():
    alerts = set(re.findall(r"^\s+- alert: (\S+)", RULES.read_text(), re.M))
    tested = set(re.findall(r"alertname: (\S+)", (RULES.parent / "rules_test.yml").read_text()))
    assert alerts and alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"


def test_generated_dashboards_match_their_code():
    assert dashboards.main(["--check"]) == 0, "run .venv/bin/python grafana/dashboards.py and commit grafana/dashboards/"


def test_every_dashboard_builds_with_panels_that_query_the_provisioned_data_source():
    provisioned = (GRAFANA / "provisioning" / "datasources" / "callmanager.yml").read_text()
    uid = re.search(r"uid: (\S+)", provisioned).group(1)
    files = dashboards.render()
    assert set(files) == {"noc-overview.json", "media-quality.json", "callcenter-wallboard.json", "fraud.json"}
    uids = set()
    for name, text in files.items():
        doc = json.loads(text)
        uids.add(doc["uid"])
        panels = [p for p in doc["panels"] if p["type"] != "row"]
        assert len(panels) >= 6, name
        for p in panels:
            assert p["title"] and p.get("description"), (name, p)
            assert p["targets"], (name, p["title"])
            assert p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"]), (name, p["title"])
        # panels do not overlap on the grid
        cells = set()
        for p in doc["panels"]:
            g = p["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, (name, p["title"])
            assert g["x"] + g["w"] <= 24
            cells |= mine
    assert len(uids) == len(files)


def test_every_promql_expression_of_the_dashboards_parses(tmp_path):
    """promtool parses each expression as a recording rule (Grafana's variables replaced by a regex)."""
    rules = []
    for i, (_, _, expr) in enumerate(dashboard_exprs()):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    check = promtool("check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_broken_expression_is_caught(tmp_path):
    """The parse check above can fail: promtool refuses a malformed expression."""
    path = tmp_path / "bad.yml"
    path.write_text(json.dumps({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (node (up)"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def test_recording_rules_the_dashboards_use_are_defined():
    used = {n for _, _, e in dashboard_exprs() for n in re.findall(r"\bcallmanager:[a-z0-9_:]+", e)}
    assert used and used <= recorded_names(), sorted(used - recorded_names())


def test_prometheus_configs_are_valid(tmp_path):
    single = prometheus_yml([{"address": "127.0.0.1:8080", "node": "node1", "datacenter": "dc1"}], rule_files=[str(RULES)])
    (tmp_path / "p.yml").write_text(single)
    check = promtool("check", "config", str(tmp_path / "p.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    cluster = promtool("check", "config", "cluster.example.yml", cwd=RULES.parent)
    assert cluster.returncode == 0, cluster.stdout + cluster.stderr
    import yaml  # PyYAML comes with ansible-core

    labels = [c["labels"] for c in yaml.safe_load((RULES.parent / "cluster.example.yml").read_text())["scrape_configs"][0]["static_configs"]]
    assert {lbl["datacenter"] for lbl in labels} == {"fra", "ber"}


def test_prometheus_scrapes_https_checking_the_nodes_certificate_when_the_api_serves_tls(tmp_path):
    import yaml

    from controlplane.node.render import _single_node_prometheus
    from controlplane.node.settings import load_settings

    plain = yaml.safe_load(_single_node_prometheus(load_settings(env={}, var_dir=str(tmp_path))))["scrape_configs"][0]
    assert "scheme" not in plain and "tls_config" not in plain
    settings = load_settings(env={}, var_dir=str(tmp_path), api_tls=True)
    text = _single_node_prometheus(settings)
    job = yaml.safe_load(text)["scrape_configs"][0]
    assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": str(settings.tls_files[0])}
    (tmp_path / "p.yml").write_text(text)
    from controlplane.node import tls

    tls.make_self_signed(*settings.tls_files, "node", ["127.0.0.1"])  # promtool reads the CA file
    check = promtool("check", "config", str(tmp_path / "p.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
