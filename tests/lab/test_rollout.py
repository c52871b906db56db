"""Ansible against the lab (issue 19): site.yml from bare lab hosts, idempotent, verify.yml, bad inventories refused
before any host changes, an unreachable host reported while the others finish."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from controlplane.cluster import run_playbook
from tests.lab.netlab import Lab, leftovers

pytestmark = pytest.mark.lab


def inventory(lab: Lab, path: Path, **overrides) -> Path:
    """The lab as an Ansible inventory (YAML is a superset of JSON); `overrides`: host -> extra host variables."""
    ssh = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3"
    hosts = {name: {"ansible_host": h.address, "ansible_user": "root", "ansible_ssh_private_key_file": lab.key, "ansible_ssh_common_args": ssh,
                    "callmanager_node_id": i, **overrides.get(name, {})}
             for i, (name, h) in enumerate(lab.state.hosts.items(), start=1)}
    dcs = sorted({h.dc for h in lab.state.hosts.values()})
    children = {dc: {"hosts": {n: None for n, h in lab.state.hosts.items() if h.dc == dc}, "vars": {"callmanager_datacenter": dc}} for dc in dcs}
    children["sip_nodes"] = {"hosts": {n: None for n in lab.state.hosts}}
    doc = {"all": {"hosts": hosts, "children": children,
                   "vars": {"callmanager_datacenters": dcs, "common_install_packages": False, "callmanager_sip_port": 5060,
                            "callmanager_api_port": 8080, "controlplane_python": sys.executable}}}  # the lab shares this checkout
    path.write_text(json.dumps(doc, indent=1))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.build({"dc_fra": ["fra1", "fra2"], "dc_ber": ["ber1"]}, wan_delay_ms=5, base_dir=tmp_path_factory.mktemp("rollout")) as lab:
        yield lab
    assert leftovers(lab.state.lab_id) == []


def test_site_deploys_bare_hosts_and_a_second_run_changes_nothing(lab, tmp_path):
    inv = inventory(lab, tmp_path / "hosts.yml")
    first = run_playbook("site", inv, artifacts_dir=tmp_path / "runs")
    assert first.ok, first.failures
    assert set(first.hosts) == {"fra1", "fra2", "ber1"} and all(h.changed > 0 for h in first.hosts.values())
    for name, h in lab.state.hosts.items():
        node = json.loads(lab.ssh(name, "cat /etc/callmanager/node.json").stdout)
        assert node["node_name"] == name and node["datacenter"] == h.dc and node["address"] == h.address
        peers = {x.address for n, x in lab.state.hosts.items() if x.dc == h.dc and n != name}
        assert set(node["peers"]) == peers
        assert lab.ssh(name, "stat -c %a /etc/callmanager/node.json").stdout.strip() == "600"
        settings = json.loads(lab.ssh(name, "cat /etc/callmanager/node-settings.json").stdout)
        assert settings["sip_address"] == h.address and settings["datacenter"] == h.dc and settings["node_name"] == name
        check = lab.ssh(name, f"{sys.executable} -m controlplane.node.settings /etc/callmanager/node-settings.json", check=False)
        assert check.returncode == 0, check.stderr  # the node would load them
    second = run_playbook("site", inv, artifacts_dir=tmp_path / "runs")
    assert second.ok and second.changed == 0, {h: r.changed for h, r in second.hosts.items()}
    assert run_playbook("verify", inv, artifacts_dir=tmp_path / "runs").ok
    assert Path(second.artifacts, "artifacts").is_dir()  # the full event log is kept


def test_a_wrong_variable_fails_before_any_host_changes_naming_it(lab, tmp_path):
    before = {n: lab.ssh(n, "ls -l --time-style=+%s.%N /etc/callmanager/ 2>/dev/null; cat /etc/callmanager/node.json 2>/dev/null").stdout
              for n in lab.state.hosts}
    inv = inventory(lab, tmp_path / "bad.yml", ber1={"callmanager_datacenter": "dc_nowhere"}, fra1={"callmanager_node_id": 0})
    r = run_playbook("site", inv, artifacts_dir=tmp_path / "runs")
    assert not r.ok
    text = "\n".join(r.failures)
    assert "dc_nowhere" in text or "callmanager_datacenter" in text, text
    after = {n: lab.ssh(n, "ls -l --time-style=+%s.%N /etc/callmanager/ 2>/dev/null; cat /etc/callmanager/node.json 2>/dev/null").stdout
             for n in lab.state.hosts}
    assert after == before  # nothing written anywhere, not even on the hosts whose variables were right


def test_a_port_clash_or_a_bad_address_fails_before_any_host_changes_naming_the_setting(lab, tmp_path):
    assert run_playbook("site", inventory(lab, tmp_path / "good.yml"), artifacts_dir=tmp_path / "runs").ok
    snapshot = "ls -l --time-style=+%s.%N /etc/callmanager/; cat /etc/callmanager/*.json"
    before = {n: lab.ssh(n, snapshot).stdout for n in lab.state.hosts}
    for bad, named in (({"callmanager_api_port": 5071}, "api_port 5071 clashes with kamailio_rpc_port"),
                       ({"ansible_host": "198.18.300.1"}, "198.18.300.1"),
                       ({"callmanager_sip_port": 70000}, "sip_port 70000 is not a port")):
        r = run_playbook("site", inventory(lab, tmp_path / "bad.yml", fra2=bad), artifacts_dir=tmp_path / "runs")
        assert not r.ok and named in "\n".join(r.failures), (bad, r.failures)
        assert {n: lab.ssh(n, snapshot).stdout for n in lab.state.hosts} == before, bad  # no host changed


def test_an_unreachable_host_is_reported_and_the_others_finish(lab, tmp_path):
    nobody = lab.address("fra2").rsplit(".", 1)[0] + ".200"  # on the lab's own link (never off the machine), nobody there
    inv = inventory(lab, tmp_path / "hosts.yml", fra2={"ansible_host": nobody})
    lab.ssh("ber1", "rm -f /etc/callmanager/node.json")
    r = run_playbook("site", inv, artifacts_dir=tmp_path / "runs")
    assert not r.ok and r.hosts["fra2"].unreachable
    assert r.hosts["ber1"].failed == 0 and r.hosts["ber1"].unreachable == 0
    assert json.loads(lab.ssh("ber1", "cat /etc/callmanager/node.json").stdout)["node_name"] == "ber1"  # the others finished


def test_cm_cluster_deploy_shows_a_summary_keeps_the_log_and_fails_with_the_run(lab, tmp_path):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    good = inventory(lab, tmp_path / "hosts.yml")
    out = CliRunner().invoke(app, ["cluster", "deploy", str(good)])
    assert out.exit_code == 0, out.output
    assert "site.yml: successful" in out.output and "event log:" in out.output and "fra1" in out.output
    status = CliRunner().invoke(app, ["cluster", "status", str(good)])
    assert status.exit_code == 0 and "198.18." in status.output and "dc_ber" in status.output
    bad = inventory(lab, tmp_path / "bad.yml", ber1={"callmanager_datacenter": "dc_nowhere"})
    out = CliRunner().invoke(app, ["cluster", "deploy", str(bad)])
    assert out.exit_code == 1 and "dc_nowhere" in out.output
    assert CliRunner().invoke(app, ["cluster", "deploy", str(tmp_path / "missing.yml")]).exit_code == 2
