"""Rolling upgrade under load (issue 19, a long tier: `make test ARGS=--long`): phones call through both SIP nodes
at a steady rate while upgrade.yml drains, restarts and checks one node after the other. No call that was up is cut,
and a phone that retries the other node on 503 (as phones with two DNS SRV targets do) loses no call."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.ports import free_port
from tests.harness.sipp import Sipp
from tests.lab.deployed import GROUPS, LAYOUT, api, inventory, play, wait_until
from tests.lab.netlab import Lab, leftovers

pytestmark = [pytest.mark.lab, pytest.mark.long, pytest.mark.timeout(900)]

SCENARIO = Path(__file__).parent / "sipp" / "uac_call_failover.xml"
RATE, HOLD_MS, CALLS = 4, 2000, 600  # per node: 150 s of calls, longer than the upgrade of both nodes
DOMAIN = "upgrade.example"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.build(LAYOUT, wan_delay_ms=5, base_dir=tmp_path_factory.mktemp("upgrade")) as lab:
        yield lab
    assert leftovers(lab.state.lab_id) == []


def provision(lab: Lab, sip: str) -> None:
    """The tenant and users, made through the first node that does not have them yet: the SIP nodes share the cluster
    database (the site's PostgreSQL), so the second finds them there."""
    if any(t["sip_domain"] == DOMAIN for t in api(lab, sip, "tenant.list")["items"]):
        return
    tenant = api(lab, sip, "tenant.create", name="Upgrade GmbH", sip_domain=DOMAIN)
    for i in range(1, 6):
        user = api(lab, sip, "user.create", tenant_id=tenant["id"], name=f"Caller {i}")
        api(lab, sip, "sip_account.create", user_id=user["id"], username=f"up{i}", password=f"pw-up-{i}-secret")
        api(lab, sip, "extension.create", number=f"30{i}", user_id=user["id"])


def load(lab: Lab, workdir: Path, first: str, other: str, machine: str) -> tuple[subprocess.Popen, Path, Path]:
    inf = workdir / f"callers-{first}.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"up{i};{DOMAIN};[authentication username=up{i} password=pw-up-{i}-secret];305\n" for i in (1, 2, 3, 4)))
    stat, logs = workdir / f"stat-{first}.csv", workdir / f"log-{first}.log"
    argv = ["sipp", f"{lab.address(first)}:5060", "-sf", str(SCENARIO), "-inf", str(inf), "-set", "other", lab.address(other),
            "-i", machine, "-p", str(free_port(machine)), "-mi", machine, "-r", str(RATE), "-m", str(CALLS), "-l", "100", "-d", str(HOLD_MS),
            "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_logs", "-log_file", str(logs), "-trace_err",
            "-error_file", str(workdir / f"err-{first}.log"), "-timeout", "400s", "-recv_timeout", "10s"]
    return subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), stat, logs


def stats(stat: Path) -> dict[str, int]:
    rows = stat.read_text().splitlines()
    head, last = rows[0].split(";"), rows[-1].split(";")
    return {k: int(last[head.index(k)]) for k in ("SuccessfulCall(C)", "FailedCall(C)", "OutgoingCall(C)")}


def kamailio_pid(lab: Lab, host: str) -> str:
    return lab.ssh(host, "supervisorctl -c /etc/callmanager/supervisord.conf pid callmanager-kamailio").stdout.strip()


def test_a_rolling_upgrade_under_load_cuts_no_call_and_a_retrying_phone_loses_none(lab, tmp_path):
    inv = inventory(lab, tmp_path / "hosts.yml")
    deployed = play("site", inv, tmp_path)
    assert deployed.ok, deployed.failures
    sip1, sip2 = GROUPS["sip_nodes"]
    machine = lab.address(sip1).rsplit(".", 1)[0] + ".1"
    for sip in (sip1, sip2):
        wait_until(lambda: api(lab, sip, "node.status")["draining"] is False, 30, f"{sip} up")
        provision(lab, sip)
    callee_sipp = {sip: Sipp((lab.address(sip), 5060), tmp_path / sip) for sip in (sip1, sip2)}
    callee = callee_sipp[sip1].phone("up5", DOMAIN, "pw-up-5-secret", ip=machine)
    for sip in (sip1, sip2):  # one phone registered at both nodes, answering every call
        wait_until(lambda: callee_sipp[sip].register(callee, expires=3600).ok, 20, f"callee registered at {sip}")
    answering = callee_sipp[sip1].answering_server(callee, timeout_s=600)
    before = {sip: kamailio_pid(lab, sip) for sip in (sip1, sip2)}
    loads = [load(lab, tmp_path, sip1, sip2, machine), load(lab, tmp_path, sip2, sip1, machine)]
    try:
        time.sleep(8)  # calls up on both nodes
        t0 = time.monotonic()
        upgraded = play("upgrade", inv, tmp_path)
        took = time.monotonic() - t0
        assert upgraded.ok, upgraded.failures
        ended = [(first, (tmp_path / f"err-{first}.log").read_text(errors="replace")[-1500:]) for (p, _, _), first in zip(loads, (sip1, sip2))
                 if p.poll() is not None]
        assert not ended, f"the load ended before the upgrade did (not an upgrade under load): {ended}"
        for p, _, _ in loads:
            p.wait(timeout=CALLS / RATE + 120)
    finally:
        for p, _, _ in loads:
            if p.poll() is None:
                p.kill()
        answering.kill()
    after = {sip: kamailio_pid(lab, sip) for sip in (sip1, sip2)}
    assert all(before[s] != after[s] for s in (sip1, sip2)), (before, after)  # each node's Kamailio was restarted
    total = {"SuccessfulCall(C)": 0, "FailedCall(C)": 0, "OutgoingCall(C)": 0}
    failovers = 0
    for _, stat, logs in loads:
        for k, v in stats(stat).items():
            total[k] += v
        failovers += sum(1 for line in logs.read_text().splitlines() if "failover" in line) if logs.exists() else 0
    print(f"upgrade of 2 nodes under load: {took:.0f} s; calls {total}; placed again at the other node after a 503: {failovers}")
    assert total["OutgoingCall(C)"] == 2 * CALLS
    assert total["FailedCall(C)"] == 0 and total["SuccessfulCall(C)"] == 2 * CALLS, total
    assert failovers > 0  # the drain was exercised: phones were sent to the other node


def test_a_node_that_fails_stops_the_roll_and_the_rest_is_untouched(lab, tmp_path):
    """The first SIP node cannot be upgraded (its platform token is gone): the run fails there and the second node is
    neither drained nor restarted."""
    inv = inventory(lab, tmp_path / "hosts.yml")
    assert play("site", inv, tmp_path).ok  # as the previous test left it, or from bare when run alone
    sip1, sip2 = GROUPS["sip_nodes"]
    before = kamailio_pid(lab, sip2)
    lab.ssh(sip1, "mv /var/lib/callmanager/admin.token /var/lib/callmanager/admin.token.away")
    try:
        r = play("upgrade", inv, tmp_path)
        assert not r.ok and any(f.startswith(f"{sip1}:") for f in r.failures), r.failures
        assert sip2 not in r.hosts or r.hosts[sip2].changed == 0, r.hosts
        assert kamailio_pid(lab, sip2) == before
        assert api(lab, sip2, "node.status")["draining"] is False
    finally:
        lab.ssh(sip1, "mv /var/lib/callmanager/admin.token.away /var/lib/callmanager/admin.token")
