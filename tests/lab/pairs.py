"""The data center pairs in the lab (issue 22): Frankfurt with a SIP pair and a media pair behind their virtual
addresses (keepalived), Berlin with the database's primary — deployed by the real site playbook. Shared by the failure
tests (tests/lab/test_failover.py) and the failover benchmark (tests/bench/failover.py): the deployment, who holds an
address, a callee's media end that records when audio arrives, and the provisioning of phones."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.deployed import api, inventory, play, wait_until
from tests.lab.netlab import Lab

PAIR = ("fra-sip1", "fra-sip2")
MEDIA = ("fra-media1", "fra-media2")
# Frankfurt: a SIP pair and a media pair (the pair's Redis, the database's replica and the monitoring on fra-media1);
# Berlin: the database's primary
LAYOUT = {"dc_fra": [*PAIR, *MEDIA], "dc_ber": ["ber1"]}
GROUPS = {"sip_nodes": list(PAIR), "media_nodes": list(MEDIA), "monitoring": ["fra-media1"], "db_nodes": ["ber1", "fra-media1"]}


@dataclass
class Pairs:
    lab: Lab
    vip: str  # the SIP pair's address
    media_vip: str  # the media pair's address
    inventory: Path

    @property
    def machine(self) -> str:
        """The machine's address on Frankfurt's link: where the tests' phones send from."""
        return self.vip.rsplit(".", 1)[0] + ".1"

    def holder(self, address: str, hosts) -> list[str]:
        return [h for h in hosts if f" {address}/" in self.lab.ssh(h, "ip -o -4 addr show dev eth0", check=False).stdout]

    def one_holder(self, address: str, hosts) -> str:
        return wait_until(lambda: (h := self.holder(address, hosts)) and len(h) == 1 and h[0], 30, f"one holder of {address}")


def deploy(lab: Lab, work: Path) -> Pairs:
    subnet = lab.address(PAIR[0]).rsplit(".", 1)[0]
    vip, media_vip = f"{subnet}.10", f"{subnet}.20"
    dc = {"callmanager_media_vip": f"{media_vip}/24"}
    sip = {**dc, "keepalived_enabled": True, "keepalived_vip": f"{vip}/24", "keepalived_router_id": 51}
    inv = inventory(lab, work / "hosts.yml", groups=GROUPS, **{name: sip for name in PAIR}, **{name: dc for name in MEDIA})
    run = play("site", inv, work)
    if not run.ok:
        raise AssertionError(f"site.yml failed: {run.failures}")
    return Pairs(lab, vip, media_vip, inv)


def cli(lab: Lab, host: str, command: str = "list numsessions") -> str:
    """RTPengine's CLI on a media node's own address."""
    with socket.create_connection((lab.address(host), 9901), timeout=3) as sock:
        sock.sendall(command.encode() + b"\n")
        out = b""
        while chunk := sock.recv(4096):
            out += chunk
    return out.decode()


def provision(pairs: Pairs, through: str, domain: str, users: dict[str, str]) -> None:
    """A tenant with users {username: extension} (password pw-<username>-secret), made through one SIP node's API."""
    tenant = api(pairs.lab, through, "tenant.create", name=domain.split(".")[0].title(), sip_domain=domain)
    for username, extension in users.items():
        user = api(pairs.lab, through, "user.create", tenant_id=tenant["id"], name=f"User {username}")
        api(pairs.lab, through, "sip_account.create", user_id=user["id"], username=username, password=f"pw-{username}-secret")
        api(pairs.lab, through, "extension.create", number=extension, user_id=user["id"])


class RtpSink:
    """The callee's media end: takes the RTP RTPengine relays to it (arrival times kept) and sends each packet back
    the way it came, so media flows both ways through the relay."""

    def __init__(self, ip: str):
        from tests.harness.ports import free_port

        self.port = free_port(ip)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, self.port))
        self.sock.settimeout(0.2)
        self.arrivals: list[float] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            self.arrivals.append(time.monotonic())
            self.sock.sendto(data, peer)

    def gap_after(self, moment: float) -> tuple[float | None, int]:
        """(the longest silence from `moment` on — how long the audio took to resume —, packets after `moment`)."""
        after = [t for t in self.arrivals if t > moment]
        gaps = [b - a for a, b in zip([moment, *after], after)]
        return (max(gaps) if gaps else None), len(after)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()
