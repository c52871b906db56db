"""Ansible against the lab (issue 19): site.yml from bare lab hosts, idempotent, verify.yml, bad inventories refused
before any host changes, an unreachable host reported while the others finish."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.deployed import GROUPS, LAYOUT, api, inventory, play, vault_secrets, node_health, wait_until
from tests.lab.netlab import Lab, leftovers

# two runs of site.yml over five hosts: on a loaded 2-core machine that alone can take most of the default 300 s
pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.build(LAYOUT, wan_delay_ms=5, base_dir=tmp_path_factory.mktemp("rollout")) as lab:
        yield lab
    assert leftovers(lab.state.lab_id) == []


def test_site_deploys_bare_hosts_into_working_nodes_and_a_second_run_changes_nothing(lab, tmp_path):
    inv = inventory(lab, tmp_path / "hosts.yml")
    first = play("site", inv, tmp_path)
    assert first.ok, first.failures
    assert set(first.hosts) == set(lab.state.hosts) and all(h.changed > 0 for h in first.hosts.values())
    for name, h in lab.state.hosts.items():
        node = json.loads(lab.ssh(name, "cat /etc/callmanager/node.json").stdout)
        assert node["node_name"] == name and node["datacenter"] == h.dc and node["address"] == h.address
        peers = {x.address for n, x in lab.state.hosts.items() if x.dc == h.dc and n != name}
        assert set(node["peers"]) == peers
        assert lab.ssh(name, "stat -c %a /etc/callmanager/node.json").stdout.strip() == "600"
        settings = json.loads(lab.ssh(name, "cat /etc/callmanager/node-settings.json").stdout)
        assert settings["sip_address"] == h.address and settings["datacenter"] == h.dc and settings["node_name"] == name
        others = [f"{lab.address(n)}:5090" for n in sorted(GROUPS["sip_nodes"]) if n != name]
        assert settings.get("dmq_peers") == (others if name in GROUPS["sip_nodes"] else None), settings
    # what runs where follows from the groups; each program under the host's own supervisord
    for name, expected in (("fra-sip1", {"controlplane", "kamailio", "mediaserver"}), ("fra-sip2", {"controlplane", "kamailio", "mediaserver"}),
                           ("fra-media1", {"rtpengine", "prometheus", "postgresql", "redis"}), ("ber1", {"postgresql", "redis"})):
        status = lab.ssh(name, "supervisorctl -c /etc/callmanager/supervisord.conf status", check=False).stdout
        running = {line.split()[0].removeprefix("callmanager-") for line in status.splitlines() if " RUNNING " in f" {line} "}
        assert running == expected, (name, status)
    for sip in GROUPS["sip_nodes"]:  # the node's control plane reaches its Kamailio and the data center's RTPengine
        assert wait_until(lambda: all(node_health(lab, sip).values()), 30, f"{sip} healthy")
    # one cluster database: both control planes on ber1's PostgreSQL (the replica on fra-media1 named after it), each
    # with the vault's platform token, and a change made through one node's API seen through the other's — and on the
    # replica, which streams from the primary as a hot standby
    vault = vault_secrets(inv.parent)
    for sip in GROUPS["sip_nodes"]:
        settings = json.loads(lab.ssh(sip, "cat /etc/callmanager/node-settings.json").stdout)
        assert f"@/callmanager?host={lab.address('ber1')}:5432&host={lab.address('fra-media1')}:5432&" in settings["database_url"]
        assert lab.ssh(sip, "cat /var/lib/callmanager/admin.token").stdout.strip() == vault["vault_admin_token"]
        assert lab.ssh(sip, "stat -c %a /etc/callmanager/secret.key").stdout.strip() == "600"
    api(lab, "fra-sip1", "tenant.create", name="Shared", sip_domain="shared.example")
    assert any(t["sip_domain"] == "shared.example" for t in api(lab, "fra-sip2", "tenant.list")["items"])
    local = "runuser -u postgres -- psql -X -tA -h /run/callmanager-postgresql -d callmanager -c "
    assert lab.ssh("fra-media1", local + "'select pg_is_in_recovery()'").stdout.strip() == "t"
    assert lab.ssh("ber1", local + "'select pg_is_in_recovery()'").stdout.strip() == "f"
    wait_until(lambda: lab.ssh("fra-media1", local + "\"select count(*) from tenant where sip_domain = 'shared.example'\"")
               .stdout.strip() == "1", 10, "the tenant on the replica")
    # the cluster database and the live-state store take the SIP nodes' logins with the vault's passwords, and no one else's
    db = lab.address("ber1")
    login = (f"PGPASSWORD={vault['vault_postgresql_password']} psql -X -tA -h {db} -U callmanager -d callmanager "
             "-c 'select current_user'")
    assert lab.ssh("fra-sip1", login).stdout.strip() == "callmanager"
    assert lab.ssh("fra-media1", login, check=False).returncode != 0  # not a SIP node: pg_hba refuses it
    operator = f"redis-cli -h {db} --no-auth-warning --user callmanager --pass {vault['vault_redis_password']} "
    assert lab.ssh("fra-sip2", operator + "set x 1").stdout.strip() == "OK"
    assert "NOPERM" in lab.ssh("fra-sip2", f"redis-cli -h {db} get x", check=False).stdout  # without it: the counters only
    # each SIP node counts the fraud limits in its data center's Redis (fra-media1's), which takes its scripts
    fra_redis = f"{lab.address('fra-media1')}:6379"
    for sip in GROUPS["sip_nodes"]:
        assert json.loads(lab.ssh(sip, "cat /etc/callmanager/node-settings.json").stdout)["redis_address"] == fra_redis
        assert lab.ssh(sip, f"redis-cli -h {lab.address('fra-media1')} eval \"return redis.call('incr', KEYS[1])\" 1 cm:f:lab",
                       check=False).stdout.strip().isdigit()
    assert vault["vault_postgresql_password"] not in (inv.parent / "group_vars" / "all" / "vault.yml").read_text()
    # Prometheus on the monitoring host scrapes every SIP node, labelled with node and data center
    import httpx

    def scraped():
        targets = httpx.get(f"http://{lab.address('fra-media1')}:9090/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {(t["labels"]["node"], t["labels"]["datacenter"]) for t in targets if t["health"] == "up"}

    assert wait_until(lambda: scraped() == {(n, "dc_fra") for n in GROUPS["sip_nodes"]}, 30, "Prometheus scrapes both SIP nodes")
    second = play("site", inv, tmp_path)
    assert second.ok and second.changed == 0, {h: r.changed for h, r in second.hosts.items()}
    assert play("verify", inv, tmp_path).ok
    assert Path(second.artifacts, "artifacts").is_dir()  # the full event log is kept


def test_phones_register_and_call_through_each_deployed_node(lab, tmp_path):
    """SIPp phones on the machine register at each SIP node and call each other; the media goes through the data
    center's RTPengine on the media host."""
    from tests.harness.rtp import RtpReceiver
    from tests.harness.sipp import Sipp

    machine = lab.address("fra-sip1").rsplit(".", 1)[0] + ".1"
    registered_at_first: list = []
    for n, sip in enumerate(GROUPS["sip_nodes"]):
        tenant = api(lab, sip, "tenant.create", name=f"Lab {n}", sip_domain=f"lab{n}.example")
        phones = []
        for i in (1, 2):
            user = api(lab, sip, "user.create", tenant_id=tenant["id"], name=f"Lab user {i}")
            api(lab, sip, "sip_account.create", user_id=user["id"], username=f"lab{i}", password=f"pw-lab-{i}-secret")
            api(lab, sip, "extension.create", number=f"20{i}", user_id=user["id"])
        sipp = Sipp((lab.address(sip), 5060), tmp_path / sip)
        phones = [sipp.phone(f"lab{i}", tenant["sip_domain"], f"pw-lab-{i}-secret", ip=machine) for i in (1, 2)]
        wait_until(lambda: sipp.register(phones[1]).ok, 15, f"registration at {sip}")  # the snapshot reaches Kamailio
        callee = sipp.callee(phones[1], "answer")
        call = sipp.caller(phones[0], "202", hold_ms=1500)
        assert call.ok, call.output[-2000:]
        assert sipp.wait(callee).ok
        # this node's call (the cluster database holds the other node's records too, the refusal below among them)
        cdr = wait_until(lambda: [c for c in api(lab, sip, "cdr.list", tenant_id=tenant["id"])["items"]
                                  if c["callee"] == "202"], 10, f"CDR at {sip}")[0]
        assert cdr["disposition"] == "answered", cdr
        # the node's media server runs (the roles start it next to Kamailio): a number not in service is said first
        with RtpReceiver(machine) as heard:
            refused = sipp.announced_caller(phones[0], "299", 404, heard.port)
        assert refused.ok, refused.output[-2000:]
        assert heard.seconds() > 1.0, f"no announcement heard through {sip}"
        registered_at_first = registered_at_first or phones
    # the SIP nodes replicate registrations (DMQ, callmanager_dmq_port): the phone registered through fra-sip1 is
    # called through fra-sip2
    other = Sipp((lab.address(GROUPS["sip_nodes"][1]), 5060), tmp_path / "across")
    callee = other.callee(registered_at_first[1], "answer")
    call = other.caller(registered_at_first[0], "202", hold_ms=500)
    assert call.ok, call.output[-2000:]
    assert other.wait(callee).ok


def test_a_wrong_variable_fails_before_any_host_changes_naming_it(lab, tmp_path):
    before = {n: lab.ssh(n, "ls -l --time-style=+%s.%N /etc/callmanager/ 2>/dev/null; cat /etc/callmanager/node.json 2>/dev/null").stdout
              for n in lab.state.hosts}
    inv = inventory(lab, tmp_path / "bad.yml", ber1={"callmanager_datacenter": "dc_nowhere"}, **{"fra-sip1": {"callmanager_node_id": 0}})
    r = play("site", inv, tmp_path)
    assert not r.ok
    text = "\n".join(r.failures)
    assert "dc_nowhere" in text or "callmanager_datacenter" in text, text
    after = {n: lab.ssh(n, "ls -l --time-style=+%s.%N /etc/callmanager/ 2>/dev/null; cat /etc/callmanager/node.json 2>/dev/null").stdout
             for n in lab.state.hosts}
    assert after == before  # nothing written anywhere, not even on the hosts whose variables were right


@pytest.mark.long  # a whole deployment again (~75 s): the long tier keeps make test under 30 minutes
def test_a_port_clash_or_a_bad_address_fails_before_any_host_changes_naming_the_setting(lab, tmp_path):
    assert play("site", inventory(lab, tmp_path / "good.yml"), tmp_path).ok
    snapshot = "ls -l --time-style=+%s.%N /etc/callmanager/; cat /etc/callmanager/*.json"
    before = {n: lab.ssh(n, snapshot).stdout for n in lab.state.hosts}
    for bad, named in (({"callmanager_api_port": 5060}, "api_port 5060 clashes with sip_port"),
                       ({"ansible_host": "198.18.300.1"}, "198.18.300.1"),
                       ({"callmanager_sip_port": 70000}, "sip_port 70000 is not a port")):
        r = play("site", inventory(lab, tmp_path / "bad.yml", **{"fra-sip2": bad}), tmp_path)
        assert not r.ok and named in "\n".join(r.failures), (bad, r.failures)
        assert {n: lab.ssh(n, snapshot).stdout for n in lab.state.hosts} == before, bad  # no host changed


@pytest.mark.long  # a whole deployment again (~75 s): the long tier keeps make test under 30 minutes
def test_an_unreachable_host_is_reported_and_the_others_finish(lab, tmp_path):
    nobody = lab.address("fra-sip2").rsplit(".", 1)[0] + ".200"  # on the lab's own link (never off the machine), nobody there
    inv = inventory(lab, tmp_path / "hosts.yml", **{"fra-sip2": {"ansible_host": nobody}})
    lab.ssh("ber1", "rm -f /etc/callmanager/node.json")
    r = play("site", inv, tmp_path)
    assert not r.ok and r.hosts["fra-sip2"].unreachable
    assert r.hosts["ber1"].failed == 0 and r.hosts["ber1"].unreachable == 0
    assert json.loads(lab.ssh("ber1", "cat /etc/callmanager/node.json").stdout)["node_name"] == "ber1"  # the others finished


@pytest.mark.long  # a whole deployment again (~75 s): the long tier keeps make test under 30 minutes
def test_cm_cluster_deploy_shows_a_summary_keeps_the_log_and_fails_with_the_run(lab, tmp_path):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    good = inventory(lab, tmp_path / "hosts.yml")
    out = CliRunner().invoke(app, ["cluster", "deploy", str(good), "--vault-password-file", str(good.parent / "vault-password")])
    assert out.exit_code == 0, out.output
    assert "site.yml: successful" in out.output and "event log:" in out.output and "fra-sip1" in out.output
    status = CliRunner().invoke(app, ["cluster", "status", str(good), "--vault-password-file", str(good.parent / "vault-password")])
    assert status.exit_code == 0 and "198.18." in status.output and "dc_ber" in status.output
    bad = inventory(lab, tmp_path / "bad.yml", ber1={"callmanager_datacenter": "dc_nowhere"})
    out = CliRunner().invoke(app, ["cluster", "deploy", str(bad), "--vault-password-file", str(bad.parent / "vault-password")])
    assert out.exit_code == 1 and "dc_nowhere" in out.output
    assert CliRunner().invoke(app, ["cluster", "deploy", str(tmp_path / "missing.yml")]).exit_code == 2
