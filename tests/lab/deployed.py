"""A callmanager cluster deployed into the lab by the real playbooks: the inventory the lab tests use, and the
helpers to reach a deployed node (its API as its own admin, its health)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from controlplane.node.settings import ROOT
from tests.lab.netlab import Lab

# The database's primary across the WAN (ber1), its streaming replica in the SIP nodes' data center (fra-media1)
GROUPS = {"sip_nodes": ["fra-sip1", "fra-sip2"], "media_nodes": ["fra-media1"], "monitoring": ["fra-media1"],
          "db_nodes": ["ber1", "fra-media1"]}
LAYOUT = {"dc_fra": ["fra-sip1", "fra-sip2", "fra-media1"], "dc_ber": ["ber1"]}


def inventory(lab: Lab, path: Path, groups: dict | None = None, **overrides) -> Path:
    """The lab as an Ansible inventory (YAML is a superset of JSON); `overrides`: host -> extra host variables."""
    ssh = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3"
    hosts = {name: {"ansible_host": h.address, "ansible_user": "root", "ansible_ssh_private_key_file": lab.key, "ansible_ssh_common_args": ssh,
                    "callmanager_node_id": i, **overrides.get(name, {})}
             for i, (name, h) in enumerate(lab.state.hosts.items(), start=1)}
    dcs = sorted({h.dc for h in lab.state.hosts.values()})
    children = {dc: {"hosts": {n: None for n, h in lab.state.hosts.items() if h.dc == dc}, "vars": {"callmanager_datacenter": dc}} for dc in dcs}
    children.update({g: {"hosts": {n: None for n in members}} for g, members in (GROUPS if groups is None else groups).items()})
    machine = sorted({h.address.rsplit(".", 1)[0] + ".1" for h in lab.state.hosts.values()})  # the lab's clients send from here
    doc = {"all": {"hosts": hosts, "children": children,
                   "vars": {"callmanager_datacenters": dcs, "callmanager_sip_port": 5060, "callmanager_api_port": 8080,
                            # the lab: no systemd, the machine's packages and this checkout shared by every host, root
                            "callmanager_service_manager": "supervisor", "callmanager_user": "root",
                            "callmanager_install_packages": False, "callmanager_install_release": False,
                            "callmanager_root": str(ROOT), "callmanager_python": sys.executable,
                            "callmanager_settings": {"kamailio_children": 1, "kamailio_shm_mb": 128, "snapshot_check_s": 0.1,
                                                     "rtp_port_min": 30000, "rtp_port_max": 30999, "edge_exempt": ",".join(machine)},
                            "prometheus_scrape_interval": "2s", "prometheus_scrape_timeout": "2s",
                            "grafana_enabled": False}}}  # Grafana's package repository is not reachable from here
    path.write_text(json.dumps(doc, indent=1))
    write_vault(path.parent)
    return path


def write_vault(where: Path) -> Path:
    """The lab's secrets as an operator keeps them: an Ansible Vault file in the inventory's group_vars, encrypted
    with a password file (made once per directory, owner only). Returns the password file."""
    import secrets

    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    password_file = where / "vault-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
        password_file.chmod(0o600)
        from cryptography.fernet import Fernet

        clear = "".join(f"vault_{name}_password: {secrets.token_urlsafe(18)}\n" for name in ("postgresql", "redis", "keepalived", "media_redis"))
        clear += f"vault_admin_token: cm_{secrets.token_urlsafe(32)}\nvault_secret_key: {Fernet.generate_key().decode()}\n"
        vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password_file.read_text().strip().encode()))])
        (where / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (where / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(clear))
    return password_file


def vault_secrets(where: Path) -> dict:
    """The lab vault's clear values (what the roles decrypted), for tests that log in with them."""
    import yaml
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret((where / "vault-password").read_text().strip().encode())
    return yaml.safe_load(VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)]).decrypt((where / "group_vars" / "all" / "vault.yml").read_bytes()))


def play(playbook: str, inv: Path, tmp_path: Path):
    """Run one of the playbooks against a lab inventory, with its vault."""
    from controlplane.ops.cluster import run_playbook

    return run_playbook(playbook, inv, artifacts_dir=tmp_path / "runs", vault_password_file=inv.parent / "vault-password")


def api(lab: Lab, host: str, method: str, /, **params):
    """JSON-RPC to a deployed node's API as its admin (the token the node made on its first start)."""
    from controlplane.cli import client

    token = lab.ssh(host, "cat /var/lib/callmanager/admin.token").stdout.strip()
    return client.call(method, params, url=f"http://{lab.address(host)}:8080/rpc", token=token)


def wait_until(check, timeout: float, what: str):
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except Exception as exc:  # noqa: BLE001 - not up yet
            got, last = None, exc
        else:
            last = got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(0.5)


def node_health(lab: Lab, host: str) -> dict:
    import httpx

    metrics = httpx.get(f"http://{lab.address(host)}:8080/metrics", timeout=5).text
    return {name: f"{name} 1.0" in metrics for name in ("callmanager_kamailio_up", "callmanager_rtpengine_up")}
