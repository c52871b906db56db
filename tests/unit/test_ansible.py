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


def test_the_example_inventory_has_a_group_per_data_center_and_per_function():
    r = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(ANSIBLE / "inventories" / "example"), "--list"], capture_output=True,
                       text=True, timeout=120, env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    inv = json.loads(r.stdout)
    for group in ("dc_fra", "dc_ber", "sip_nodes", "media_nodes", "db_nodes", "monitoring"):
        assert inv[group]["hosts"], group
    hostvars = inv["_meta"]["hostvars"]
    assert all(v["callmanager_datacenter"] in v["callmanager_datacenters"] for v in hostvars.values())
    assert len({v["callmanager_node_id"] for v in hostvars.values()}) == len(hostvars)  # node ids are unique
