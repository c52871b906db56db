"""Voicemail in a cluster (issue 22, docs/cluster.md "Recordings and message waiting"): two nodes, each with its own
Kamailio, media server and control plane, on one PostgreSQL database. A greeting uploaded through one node is what
callers of the other hear; a message recorded by one node's media server is downloaded, marked and deleted through
the other; a phone subscribed to its message waiting on the other node hears of each change; listening by phone on
either node sees the same messages. Real Kamailio, RTPengine, media servers, SIPp and PostgreSQL."""

import base64
import io
import json
import wave
from pathlib import Path

import pytest

from tests.harness.node import TestNode
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot
from tests.scenario.test_voicemail import tone, write_prompts

DOMAIN = "vmcluster.example"
TOKEN = "cluster-vm-token-" + "x" * 32


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory, real_components):
    prompts = write_prompts(tmp_path_factory.mktemp("prompts"))
    url = postgres.create_database("cm_vm_cluster")
    nodes = [
        TestNode(
            tmp_path_factory.mktemp(f"vm{i}") / "var",
            database_url=url,
            platform_token=TOKEN,
            node_name=f"sip{i + 1}",
            media_server=True,
            prompt_dir=str(prompts),
            voicemail_ingest_interval_s=0.2,
            shared_store_interval_s=0.2,
        )
        for i in range(2)
    ]
    with running(nodes):
        yield nodes


@pytest.fixture(scope="module")
def office(cluster, tmp_path_factory):
    a, b = cluster
    tenant = a.rpc("tenant.create", name="VM Cluster GmbH", sip_domain=DOMAIN)
    people = {}
    for name, ext in (("alice", "301"), ("bob", "302")):
        user = a.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        a.rpc("sip_account.create", user_id=user["id"], username=name, password=f"{name}-secret-pw")
        a.rpc("extension.create", number=ext, user_id=user["id"])
        people[name] = user
    box = a.rpc("voicemail.box_create", user_id=people["bob"]["id"], min_message_s=0.5)
    a.rpc("forwarding.create", user_id=people["bob"]["id"], kind="unconditional", target_mailbox_id=box["id"])
    wait_snapshot(a), wait_snapshot(b)
    wait_for(lambda: b.rpc("voicemail.box_get", id=box["id"]), timeout=5)
    via_a, via_b = Sipp(a.sip, tmp_path_factory.mktemp("sipp_a")), Sipp(b.sip, tmp_path_factory.mktemp("sipp_b"))
    return {"box": box, "via_a": via_a, "via_b": via_b, "tenant": tenant, "people": people}


def store_file(node, relative: str) -> Path:
    return Path(node.settings.voicemail_store) / relative


def test_a_greeting_uploaded_through_one_node_is_what_callers_of_the_other_hear(cluster, office):
    a, b = cluster
    box, via_b = office["box"], office["via_b"]
    upload = Path(a.settings.var_dir) / "greeting-upload.wav"
    tone(upload, 900.0, 1.0)
    got = a.rpc("voicemail.greeting_upload", id=box["id"], kind="unavailable",
                data_base64=base64.b64encode(upload.read_bytes()).decode())
    assert got["greetings"]["unavailable"] is True
    on_a = store_file(a, f"greetings/{box['id']}/unavailable.wav")
    on_b = store_file(b, f"greetings/{box['id']}/unavailable.wav")
    assert wait_for(lambda: on_b.exists() and on_b.read_bytes() == on_a.read_bytes(), timeout=3), "not on the other node"
    assert b.rpc("voicemail.box_get", id=box["id"])["greetings"]["unavailable"] is True
    alice = via_b.phone("alice", DOMAIN, "alice-secret-pw")
    try:
        with RtpReceiver() as heard:  # a caller entering through the other node: its media server plays the upload
            assert via_b.caller(alice, "302", hold_ms=2000, listen_rtp=heard.port).ok
        assert heard.tone_share(900.0) > 0.3 and heard.tone_share(700.0) < 0.05
    finally:
        b.rpc("voicemail.greeting_delete", id=box["id"], kind="unavailable")  # removed through the other node
    assert wait_for(lambda: not on_a.exists(), timeout=3), "the removal did not reach the first node"
    # the messages those calls left are the next test's business: clear them
    for m in a.rpc("voicemail.list", mailbox_id=box["id"])["items"]:
        a.rpc("voicemail.delete", id=m["id"])


def test_a_message_recorded_by_one_node_is_heard_of_and_handled_through_the_other(cluster, office):
    a, b = cluster
    box, via_a, via_b = office["box"], office["via_a"], office["via_b"]
    wait_for(lambda: not b.rpc("voicemail.list", mailbox_id=box["id"])["items"], timeout=5)
    bob_at_b = via_b.phone("bob", DOMAIN, "bob-secret-pw")
    sub = via_b.mwi_subscriber(bob_at_b, changes=3, timeout_s=60)  # bob's phone is with the other node
    try:
        assert wait_for(lambda: len(sub.notifies()) >= 1, timeout=20), "no first NOTIFY"
        assert "Voice-Message: 0/0" in sub.notifies()[0], sub.notifies()
        # alice calls bob through the first node: its media server records the message, its control plane stores it
        assert via_a.caller(via_a.phone("alice", DOMAIN, "alice-secret-pw"), "302", hold_ms=2500).ok
        assert wait_for(lambda: a.rpc("voicemail.list", mailbox_id=box["id"])["items"], timeout=15)
        msg = a.rpc("voicemail.list", mailbox_id=box["id"])["items"][0]
        assert wait_for(lambda: any("Voice-Message: 1/0" in n for n in sub.notifies()), timeout=10), sub.notifies()
        # the recording on the other node's disk, and through its API: the same WAV
        relative = f"{office['tenant']['id']}/{box['id']}/{msg['id']}.wav"
        assert wait_for(lambda: store_file(b, relative).exists(), timeout=3)
        via_a_wav = base64.b64decode(a.rpc("voicemail.download", id=msg["id"])["data_base64"])
        via_b_wav = base64.b64decode(b.rpc("voicemail.download", id=msg["id"])["data_base64"])
        assert via_a_wav == via_b_wav == store_file(a, relative).read_bytes()
        assert wave.open(io.BytesIO(via_b_wav)).getnframes() > 4000  # over half a second of the caller
        # listening by phone on the first node knows what happened through the other
        b.rpc("voicemail.mark", id=msg["id"], heard=True)
        assert wait_for(lambda: any("Voice-Message: 0/1" in n for n in sub.notifies()), timeout=10), sub.notifies()
        box_file = store_file(a, f"boxes/{box['id']}.json")
        assert wait_for(lambda: json.loads(box_file.read_text())["messages"][0]["heard"] is True, timeout=3)
        # deleted through the other node: gone from the first node's disk, and bob's lamp says nothing waits
        b.rpc("voicemail.delete", id=msg["id"])
        assert wait_for(lambda: not store_file(a, relative).exists(), timeout=3)
        assert wait_for(lambda: json.loads(box_file.read_text())["messages"] == [], timeout=3)
        assert wait_for(lambda: any("Voice-Message: 0/0" in n for n in sub.notifies()[1:]), timeout=10), sub.notifies()
        out, _ = sub.communicate(timeout=60)
        assert sub.returncode == 0, out[-2000:]
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def metrics(node) -> str:
    import httpx

    return httpx.get(f"http://{node.settings.api_address}:{node.settings.api_port}/metrics", timeout=10).text


def test_the_noc_sees_each_node_keeping_up_with_the_shared_store(cluster, office):
    for node in cluster:
        assert wait_for(lambda node=node: "callmanager_shared_store_behind_changes 0.0" in metrics(node), timeout=5)
    applied = [
        float(line.split()[-1])
        for node in cluster
        for line in metrics(node).splitlines()
        if line.startswith("callmanager_shared_store_changes_applied_total")
    ]
    assert len(applied) == 2 and all(v > 0 for v in applied), applied  # each applied the other's changes


def test_an_operator_sees_each_node_applying_the_shared_store_in_its_status(cluster, office):
    a, b = cluster
    for node in cluster:
        assert wait_for(lambda node=node: node.rpc("node.status")["shared_store"]["behind"] == 0, timeout=5)
    assert a.rpc("node.status")["shared_store"]["applied_to"] == b.rpc("node.status")["shared_store"]["applied_to"] > 0
