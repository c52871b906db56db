"""The Ansible side as Ansible users check it: ansible-lint (production profile) and the example inventory."""
import json
import subprocess
import sys
from pathlib import Path

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent


def test_ansible_lint_passes_on_the_production_profile():
    r = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"], cwd=ANSIBLE, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def example_inventory(tmp_path) -> dict:
    pw = tmp_path / "pw"
    pw.write_text("example-only-make-your-own\n")  # the example's documented vault password
    r = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(ANSIBLE / "inventories" / "example"), "--list", "--vault-password-file", str(pw)],
                       capture_output=True, text=True, timeout=120, env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_example_inventory_has_a_group_per_data_center_and_per_function(tmp_path):
    inv = example_inventory(tmp_path)
    for group in ("dc_fra", "dc_ber", "sip_nodes", "media_nodes", "db_nodes", "monitoring"):
        assert inv[group]["hosts"], group
    hostvars = inv["_meta"]["hostvars"]
    assert all(v["callmanager_datacenter"] in v["callmanager_datacenters"] for v in hostvars.values())
    assert len({v["callmanager_node_id"] for v in hostvars.values()}) == len(hostvars)  # node ids are unique


def test_secrets_come_from_the_vault_and_none_sits_in_git_in_clear(tmp_path):
    import re

    for f in ANSIBLE.rglob("*.yml"):
        if f.name == "vault.yml":
            assert f.read_text().startswith("$ANSIBLE_VAULT;"), f  # encrypted
            continue
        for line in f.read_text().splitlines():
            m = re.match(r"\s*(\w*(password|secret|token)\w*):\s*(.+)$", line)
            if m and not line.lstrip().startswith("#"):
                assert "{{ vault_" in m.group(3) or m.group(3).strip() in ("true", "false"), (f, line)
    hostvars = example_inventory(tmp_path)["_meta"]["hostvars"]
    assert all(len(v["vault_postgresql_password"]) >= 12 and v["vault_redis_password"] for v in hostvars.values())
