"""A SIP node of a data center's pair fails (issue 22, failure test 1): the pair shares a virtual address (keepalived,
role keepalived), each node listens on it and record-routes calls on it, and dialogs are replicated (DMQ). When the
node holding the address dies, the other takes the address over: registrations made before are still routable, new
REGISTERs and calls succeed within seconds, a call established before goes on and ends through the survivor, and every
call has exactly one record."""
from __future__ import annotations

import time

import pytest

from controlplane.adapters.rtpengine_ng import NgClient
from tests.harness.sipp import Sipp
from tests.lab.deployed import api, wait_until
from tests.lab.netlab import ROOT, Lab, leftovers
from tests.lab.pairs import LAYOUT, MEDIA, PAIR, RtpSink, cli, deploy

# the multi-data-center failover matrix (~3.5 min): a long tier, make test ARGS=--long (keeps make test under 30 min)
pytestmark = [pytest.mark.lab, pytest.mark.long, pytest.mark.timeout(900)]

TAKEOVER_S = 5.0  # issue 22: new REGISTER/INVITE succeed within 5 s of the node's death; audio resumes within 5 s


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with Lab.build(LAYOUT, wan_delay_ms=5, base_dir=tmp_path_factory.mktemp("failover")) as lab:
        pairs = deploy(lab, tmp_path_factory.mktemp("failover-inventory"))
        lab.media_vip = pairs.media_vip
        yield lab, pairs.vip, pairs.inventory
    assert leftovers(lab.state.lab_id) == []


def holder(lab: Lab, vip: str, hosts=PAIR) -> list[str]:
    return [h for h in hosts if f" {vip}/" in lab.ssh(h, "ip -o -4 addr show dev eth0", check=False).stdout]


def test_the_pair_shares_one_address_each_node_ready_to_take_it(pair):
    lab, vip, _ = pair
    assert wait_until(lambda: len(holder(lab, vip)) == 1, 30, "one node holds the virtual address")
    for name in PAIR:
        assert lab.ssh(name, "sysctl -n net.ipv4.ip_nonlocal_bind").stdout.strip() == "1"
        listening = lab.ssh(name, "ss -Hlun").stdout
        assert f"{vip}:5060" in listening and f"{lab.address(name)}:5060" in listening, listening
        status = lab.ssh(name, "supervisorctl -c /etc/callmanager/supervisord.conf status callmanager-keepalived",
                         check=False).stdout
        assert " RUNNING " in f" {status} ", status
    # the NOC sees who holds it
    [first] = holder(lab, vip)
    for name in PAIR:
        assert wait_until(lambda: vip_held(lab, name, vip) == (name == first), 10, f"{name}'s callmanager_vip_held")


def vip_held(lab: Lab, host: str, vip: str) -> bool | None:
    import httpx

    metrics = httpx.get(f"http://{lab.address(host)}:8080/metrics", timeout=5).text
    for value in ("1.0", "0.0"):
        if f'callmanager_vip_held{{address="{vip}"}} {value}' in metrics:
            return value == "1.0"
    return None


def kamailio_group(lab: Lab, host: str, signal: str) -> None:
    """Send a signal to Kamailio's whole process group on a lab host (its main process and every child)."""
    pid = lab.ssh(host, "cat /var/lib/callmanager/run/kamailio.pid.own").stdout.strip()
    lab.ssh(host, f"kill -{signal} -- -$(ps -o pgid= -p {pid} | tr -d ' ')")


def test_a_sip_node_whose_kamailio_hangs_or_dies_is_replaced_within_seconds(pair, tmp_path):
    """keepalived's check (a SIP OPTIONS to the node every second, two failures) at work. A Kamailio that hangs (its
    process group stopped): the node gives the address up and the other serves. A Kamailio whose process group is
    killed: its supervisor starts it again at once, before the check fails twice — service resumes on the same node.
    Either way a new REGISTER through the address succeeds within seconds, and the address does not move back."""
    lab, vip, _ = pair
    [first] = wait_until(lambda: holder(lab, vip) if len(holder(lab, vip)) == 1 else None, 30, "an address holder")
    [second] = [h for h in PAIR if h != first]
    tenant = api(lab, second, "tenant.create", name="Check", sip_domain="check.example")
    user = api(lab, second, "user.create", tenant_id=tenant["id"], name="Check user")
    api(lab, second, "sip_account.create", user_id=user["id"], username="check1", password="pw-check1-secret")
    sipp = Sipp((vip, 5060), tmp_path / "phones")
    phone = sipp.phone("check1", "check.example", "pw-check1-secret", ip=lab.address(first).rsplit(".", 1)[0] + ".1")
    wait_until(lambda: sipp.register(phone, timeout_s=1).ok, 20, "a REGISTER through the address")

    kamailio_group(lab, first, "STOP")
    hung = time.monotonic()
    try:
        wait_until(lambda: holder(lab, vip) == [second], 10, "the address on the other node")
        wait_until(lambda: sipp.register(phone, timeout_s=1).ok, 10, "a REGISTER through the other node")
        took = time.monotonic() - hung
    finally:
        kamailio_group(lab, first, "CONT")
    print(f"{first}'s Kamailio hung: a REGISTER through {second} succeeded {took:.2f} s later")
    assert took <= TAKEOVER_S, took
    probe = f"/usr/bin/python3 -I {ROOT}/controlplane/node/probe.py sip {lab.address(first)} 5060"
    wait_until(lambda: lab.ssh(first, probe, check=False).returncode == 0, 30, f"{first}'s Kamailio answering again")
    assert holder(lab, vip) == [second]  # no preemption: the address stays where it went

    kamailio_group(lab, second, "KILL")
    killed = time.monotonic()
    wait_until(lambda: sipp.register(phone, timeout_s=1).ok, 15, "a REGISTER after Kamailio was killed")
    took = time.monotonic() - killed
    print(f"{second}'s Kamailio killed: a REGISTER through the address succeeded {took:.2f} s later "
          f"(address on {holder(lab, vip)})")
    assert took <= TAKEOVER_S, took
    assert "terminated by SIGKILL" in lab.ssh(second, "cat /var/log/callmanager/supervisord.log").stdout


def test_the_media_pair_shares_one_address_and_its_calls(pair):
    lab, _, _ = pair
    assert wait_until(lambda: len(holder(lab, lab.media_vip, MEDIA)) == 1, 30, "one media node holds the media address")
    for name in MEDIA:
        assert lab.ssh(name, "sysctl -n net.ipv4.ip_nonlocal_bind").stdout.strip() == "1"
        assert "Current sessions own: 0" in cli(lab, name)  # keepalived's check: RTPengine's CLI on the node's own address
    assert NgClient(lab.media_vip, 2223).ping()  # the SIP nodes' way in: the node holding the address
    redis = lab.ssh("fra-media1", "supervisorctl -c /etc/callmanager/supervisord.conf status callmanager-rtpengine-redis",
                    check=False).stdout
    assert " RUNNING " in f" {redis} ", redis
    for name in PAIR:  # the SIP nodes send RTPengine's commands to the media address
        assert f'"rtpengine_address": "{lab.media_vip}"' in lab.ssh(name, "cat /etc/callmanager/node-settings.json").stdout


def test_the_active_media_node_dies_and_the_audio_goes_on_through_the_other(pair, tmp_path):
    """Issue 22, failure test 2: RTP flows through the media address; the media node holding it crashes mid-call; the
    other, which follows the pair's calls, relays the same call on the same ports once keepalived moved the address."""
    from tests.harness.sipp import tone_file

    lab, vip, _ = pair
    [active] = wait_until(lambda: holder(lab, lab.media_vip, MEDIA) if len(holder(lab, lab.media_vip, MEDIA)) == 1 else None,
                          30, "a media address holder")
    [standby] = [m for m in MEDIA if m != active]
    sip = holder(lab, vip)[0]
    machine = lab.address(sip).rsplit(".", 1)[0] + ".1"
    tenant = api(lab, sip, "tenant.create", name="Media", sip_domain="media.example")
    for i in (1, 2):
        user = api(lab, sip, "user.create", tenant_id=tenant["id"], name=f"Media user {i}")
        api(lab, sip, "sip_account.create", user_id=user["id"], username=f"media{i}", password=f"pw-media-{i}-secret")
        api(lab, sip, "extension.create", number=f"40{i}", user_id=user["id"])
    sipp = Sipp((vip, 5060), tmp_path / "media")
    sipp.tone = tone_file(tmp_path / "media" / "long.ulaw", 30.0)  # the caller sends audio all through the call
    alice, bob = (sipp.phone(f"media{i}", "media.example", f"pw-media-{i}-secret", ip=machine) for i in (1, 2))
    for phone in (alice, bob):
        wait_until(lambda: sipp.register(phone).ok, 20, f"{phone.user} registered")
    sink = RtpSink(machine)
    try:
        callee = sipp.callee(bob, "answer", timeout_s=60, sdp_ip=machine, sdp_port=str(sink.port))
        call = sipp.caller_in_background(alice, "402", hold_ms=16000, timeout_s=60)
        wait_until(lambda: len(sink.arrivals) >= 50, 15, "audio through the media address")
        # the standby follows the call (keyspace notifications): it lists it as its own list does
        assert len(wait_until(lambda: NgClient(lab.media_vip, 2223).list_calls(), 5, "the call on the active node")) == 1
        assert wait_until(lambda: "Current sessions foreign: 1" in cli(lab, standby), 5, "the call followed by the standby")
        lab.crash(active)
        died = time.monotonic()
        result = call.result(timeout=90)
        assert result.ok, result.output[-3000:]
        assert sipp.wait(callee, 30).ok
    finally:
        sink.close()
    resumed, after = sink.gap_after(died)
    print(f"{active} died: the audio through {standby} resumed after {resumed:.2f} s ({after} packets after)")
    assert resumed is not None and resumed <= TAKEOVER_S, f"the audio resumed only after {resumed} s"
    assert after >= 200, f"only {after} packets after the takeover"  # the rest of the call: ~11 s at 50/s
    assert holder(lab, lab.media_vip, (standby,)) == [standby]
    # the call ended through the survivor: its media session gone there, its record complete
    assert wait_until(lambda: NgClient(lab.media_vip, 2223).list_calls() == [], 10, "no media session left")
    records = wait_until(lambda: [c for c in api(lab, sip, "cdr.list")["items"] if c["callee"] == "402"], 20, "the record")
    assert len(records) == 1 and records[0]["disposition"] == "answered" and records[0]["duration_s"] >= 14, records


def test_a_node_dies_and_its_calls_and_phones_go_on_through_the_other(pair, tmp_path):
    lab, vip, _ = pair
    [first] = wait_until(lambda: holder(lab, vip) if len(holder(lab, vip)) == 1 else None, 30, "an address holder")
    [second] = [h for h in PAIR if h != first]
    machine = lab.address(first).rsplit(".", 1)[0] + ".1"
    tenant = api(lab, second, "tenant.create", name="Pair", sip_domain="pair.example")
    for i in (1, 2, 3):
        user = api(lab, second, "user.create", tenant_id=tenant["id"], name=f"Pair user {i}")
        api(lab, second, "sip_account.create", user_id=user["id"], username=f"pair{i}", password=f"pw-pair-{i}-secret")
        api(lab, second, "extension.create", number=f"30{i}", user_id=user["id"])
    sipp = Sipp((vip, 5060), tmp_path / "phones")
    alice, bob, carol = (sipp.phone(f"pair{i}", "pair.example", f"pw-pair-{i}-secret", ip=machine) for i in (1, 2, 3))
    for phone in (alice, bob):  # through the virtual address: the node holding it
        wait_until(lambda: sipp.register(phone).ok, 20, f"{phone.user} registered")

    # a call set up through the first node, still up when that node dies
    callee = sipp.callee(bob, "answer", timeout_s=60)
    established = sipp.caller_in_background(alice, "302", hold_ms=15000, timeout_s=60)
    wait_until(lambda: "INVITE sip:" in callee.messages.read_text(errors="replace") if callee.messages.exists() else False,
               10, "the call reached Bob")
    time.sleep(1.5)  # answered, acknowledged: a confirmed dialog, replicated to the other node
    lab.crash(first)
    died = time.monotonic()

    # new registrations through the address: the other node answers within seconds
    wait_until(lambda: sipp.register(carol, timeout_s=1).ok, 30, "a REGISTER after the node died")
    took_over = time.monotonic() - died
    assert holder(lab, vip, (second,)) == [second] and vip_held(lab, second, vip) is True
    print(f"the virtual address moved to {second}: a new REGISTER succeeded {took_over:.2f} s after {first} died")
    assert took_over <= TAKEOVER_S, f"a new REGISTER succeeded only {took_over:.1f} s after the node died"

    # the call established before goes on, and ends through the survivor (its BYE reaches Bob, Alice gets the 200)
    result = established.result(timeout=90)
    assert result.ok, result.output[-3000:]
    assert sipp.wait(callee, 30).ok

    # Bob registered through the dead node: still routable, a new call to him through the survivor
    callee = sipp.callee(bob, "answer")
    assert sipp.caller(carol, "302", hold_ms=500).ok
    assert sipp.wait(callee).ok

    # every call has exactly one record, the one that ended on the survivor with its answer time
    def records():
        items = [c for c in api(lab, second, "cdr.list")["items"] if c["caller"] in ("301", "303")]
        return items if len(items) >= 2 else None

    items = wait_until(records, 20, "both calls' records")
    items = [c for c in items if c["caller"] in ("301", "303")]  # this test's calls
    assert len(items) == 2 and len({c["call_id"] for c in items}) == 2, items
    assert all(c["disposition"] == "answered" for c in items), items
    long_call = max(items, key=lambda c: c["duration_s"])
    assert long_call["caller"] == "301" and 13 <= long_call["duration_s"] <= 25, long_call
    # and the media sessions of both calls are gone from the data center's RTPengine
    ng = NgClient(lab.media_vip, 2223)
    assert wait_until(lambda: ng.list_calls() == [], 10, "no RTPengine session left")
