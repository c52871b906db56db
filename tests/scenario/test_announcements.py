"""Announced refusals (issue 23): where a person calls a number that cannot be reached, the node routes the call to
its media server (pjsua2), which plays the reason as early media through RTPengine and then answers the refusal —
heard by the caller as RTP carrying the prompt's tone, then the final response. Real Kamailio, RTPengine, media
server and SIPp."""

import math
import struct
import time
import wave

import httpx
import pytest

from kemi.policy.announce import LANGUAGES, PROMPTS
from tests.harness.node import TestNode
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "speaks.example"
TONE_HZ = {"not_in_service": 1000.0, "busy": 600.0}  # the test prompts: a known tone each (others: 400 Hz)
PROMPT_S = 1.5


def tone(path, hz: float, seconds: float = PROMPT_S) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * i / 8000)))
                               for i in range(int(8000 * seconds))))


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    prompts = tmp_path_factory.mktemp("prompts")
    for lang in LANGUAGES:
        for name in PROMPTS:
            tone(prompts / lang / f"{name}.wav", TONE_HZ.get(name, 400.0) * (1.5 if lang == "de" else 1.0))
    n = TestNode(tmp_path_factory.mktemp("speaks") / "var", media_server=True, prompt_dir=str(prompts))
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def caller(node, tmp_path_factory):
    tenant = node.rpc("tenant.create", name="Speaks AG", sip_domain=DOMAIN)
    user = node.rpc("user.create", tenant_id=tenant["id"], name="Alice")
    node.rpc("sip_account.create", user_id=user["id"], username="alice", password="alice-secret-pw")
    node.rpc("extension.create", number="201", user_id=user["id"])
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    return sipp, sipp.phone("alice", DOMAIN, "alice-secret-pw"), user


def record_of(node, dialled: str) -> dict:
    return wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"] if c["callee"] == dialled), None), timeout=10)


def test_a_number_not_in_service_is_announced_then_refused(node, caller):
    sipp, alice, _ = caller
    with RtpReceiver() as heard:
        started = time.monotonic()
        result = sipp.announced_caller(alice, "699", 404, heard.port)
        took = time.monotonic() - started
    assert result.ok, result.output[-2000:]
    # the caller heard the prompt (through RTPengine): about its length, and its tone
    assert heard.seconds() >= PROMPT_S * 0.8, heard.seconds()
    assert heard.tone_share(TONE_HZ["not_in_service"]) > 0.8
    assert heard.tone_share(400.0) < 0.05
    assert took >= PROMPT_S  # the refusal came after the prompt, not before
    record = record_of(node, "699")
    assert record["sip_code"] == 404
    assert any("announced to the caller: not_in_service (en)" in line for line in record["trace"]), record["trace"]


def test_route_simulate_shows_the_announcement(node, caller):
    _, _, user = caller
    got = node.rpc("route.simulate", caller_user_id=user["id"], dialled="699")
    assert got["decision"] == {"type": "reject", "code": 404, "reason": "Not Found",
                               "explanation": "extension 699 does not exist",
                               "announced": {"prompt": "not_in_service", "language": "en"}}
    assert got["trace"][-1] == "announced to the caller: not_in_service (en)"


def metric(node, name: str) -> float:
    text = httpx.get(f"http://{node.settings.api_address}:{node.settings.api_port}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_without_its_media_server_the_node_refuses_at_once_as_before(node, caller):
    """The media server killed: the refusal still comes — from the node, with its reason — and ordinary routing goes
    on; the NOC sees it down and the announcements not played; started again, the announcements come back."""
    sipp, alice, _ = caller
    assert metric(node, "callmanager_media_server_up") == 1
    assert wait_for(lambda: metric(node, 'callmanager_announcements_total{outcome="played",prompt="not_in_service"}') >= 1)
    media = node.component("mediaserver")
    media.stop()
    try:
        assert metric(node, "callmanager_media_server_up") == 0
        started = time.monotonic()
        result = sipp.caller(alice, "698", expect=404)
        assert result.ok, result.output[-2000:]
        assert time.monotonic() - started < 10  # the node gave the media server 2 s to answer
        record = record_of(node, "698")
        assert record["sip_code"] == 404
        assert any("the announcement could not be played" in line for line in record["trace"]), record["trace"]
        assert wait_for(
            lambda: metric(node, 'callmanager_announcements_total{outcome="not_played",prompt="not_in_service"}') >= 1
        )
    finally:
        media.start()
    with RtpReceiver() as heard:
        assert sipp.announced_caller(alice, "697", 404, heard.port).ok
    assert heard.tone_share(TONE_HZ["not_in_service"]) > 0.8


def test_a_busy_callee_without_forwarding_is_announced_then_the_busy_goes_back(node, caller):
    """Bob's phone answers 486 and Bob has no forwarding: Alice hears the busy prompt (its tone), then gets 486."""
    sipp, alice, alice_user = caller
    tenant_id = alice_user["tenant_id"]
    bob = node.rpc("user.create", tenant_id=tenant_id, name="Bob")
    node.rpc("sip_account.create", user_id=bob["id"], username="bob", password="bob-secret-pw1")
    node.rpc("extension.create", number="202", user_id=bob["id"])
    wait_snapshot(node)
    bob_phone = sipp.phone("bob", DOMAIN, "bob-secret-pw1")
    assert sipp.register(bob_phone).ok
    busy = sipp.callee(bob_phone, "busy")
    with RtpReceiver() as heard:
        result = sipp.announced_caller(alice, "202", 486, heard.port)
    assert result.ok, result.output[-2000:]
    assert sipp.wait(busy).ok
    assert heard.tone_share(TONE_HZ["busy"]) > 0.8, heard.seconds()
    record = record_of(node, "202")
    assert record["sip_code"] == 486
    assert any("announced to the caller: busy (en)" in line for line in record["trace"]), record["trace"]


def test_a_feature_code_is_confirmed_by_voice_then_answered_as_before(node, caller):
    """*78 (do not disturb on): Alice hears the confirmation, then the node's 603 as before; DND is in force."""
    sipp, alice, alice_user = caller
    with RtpReceiver() as heard:
        result = sipp.announced_caller(alice, "*78", 603, heard.port)
    assert result.ok, result.output[-2000:]
    assert heard.tone_share(400.0) > 0.8 and heard.seconds() >= PROMPT_S * 0.8
    assert wait_for(lambda: node.rpc("user.get", id=alice_user["id"])["status"] == "dnd", timeout=10)
    with RtpReceiver() as heard_off:  # and off again (the other tests call Alice's number's neighbours, not Alice)
        assert sipp.announced_caller(alice, "*79", 603, heard_off.port).ok


def test_a_tenant_in_german_hears_the_german_prompts(node, caller):
    sipp, alice, alice_user = caller
    node.rpc("tenant.update", id=alice_user["tenant_id"], language="de")
    wait_snapshot(node)
    try:
        with RtpReceiver() as heard:
            assert sipp.announced_caller(alice, "696", 404, heard.port).ok
        trace = record_of(node, "696")["trace"]
        assert any("not_in_service (de)" in line for line in trace), trace
        assert heard.tone_share(TONE_HZ["not_in_service"] * 1.5) > 0.8, (heard.seconds(), heard.tone_share(1000.0))
    finally:
        node.rpc("tenant.update", id=alice_user["tenant_id"], language="")
        wait_snapshot(node)


def finals(server: tuple[str, int], text: str, timeout: float = 3.0) -> list[int]:
    """Send one request; the status codes of every final reply that came back within `timeout`."""
    import socket

    codes: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        s.sendto(text.replace("{port}", str(s.getsockname()[1])).encode("latin-1", "replace"), server)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not codes:
            try:
                status = s.recv(65535).decode(errors="replace").split("\r\n", 1)[0].split()
            except socket.timeout:
                continue
            if len(status) > 1 and status[1].isdigit() and int(status[1]) >= 200:
                codes.append(int(status[1]))
    return codes


def test_the_media_server_refuses_what_it_is_not_asked_for_and_survives_bad_input(node):
    """Straight at the media server (anyone on its network could): an INVITE for something it does not play, and one
    whose SDP is garbage, each get a final error — and it goes on answering."""
    from controlplane.node.probe import probe
    from tests.harness import raw_sip

    ms = (node.settings.sip_address, node.settings.media_server_port)
    contact = "Contact: <sip:tester@127.0.0.1:{port}>\r\n"
    assert finals(ms, raw_sip.request("INVITE", f"sip:alice@{ms[0]}:{ms[1]}", extra=contact)) == [404]
    garbage = raw_sip.request("INVITE", f"sip:ann.busy.486.en@{ms[0]}:{ms[1]}",
                              extra=contact + "Content-Type: application/sdp\r\n")
    garbage = garbage.replace("Content-Length: 0\r\n\r\n", "Content-Length: 12\r\n\r\nnot an sdp\r\n")
    codes = finals(ms, garbage)
    assert codes and 400 <= codes[0] < 600, codes
    # no SDP offer at all, and header bytes that are not UTF-8: its media never comes up, so it must not keep one of
    # the process's 4 places — ended with 488 within the media server's wait
    odd = raw_sip.request("INVITE", f"sip:ann.busy.486.en@{ms[0]}:{ms[1]}", extra=contact + "X-Odd: \udcff\r\n")
    codes = finals(ms, odd.encode("utf-8", "surrogateescape").decode("latin-1"), timeout=8.0)
    assert codes == [488], codes
    assert probe(*ms, 1.0)[0]


def test_a_tenants_own_recording_replaces_the_systems_announcement(node, caller, tmp_path):
    import base64

    sipp, alice, user = caller
    tenant_id = user["tenant_id"]
    tone(tmp_path / "own.wav", 900.0, 1.2)
    data = base64.b64encode((tmp_path / "own.wav").read_bytes()).decode()
    got = node.rpc("prompt.upload", tenant_id=tenant_id, prompt="not_in_service", language="en", data_base64=data)
    assert got["own"] is True and abs(got["duration_s"] - 1.2) < 0.05
    listed = {(i["prompt"], i["language"]): i for i in node.rpc("prompt.list", tenant_id=tenant_id)["items"]}
    assert listed[("not_in_service", "en")]["own"] and not listed[("busy", "en")]["own"]
    # a file that cannot be an announcement changes nothing
    tone(tmp_path / "short.wav", 900.0, 0.1)
    err = node.rpc_error("prompt.upload", tenant_id=tenant_id, prompt="busy", language="en",
                         data_base64=base64.b64encode((tmp_path / "short.wav").read_bytes()).decode())
    assert err["data"]["error_id"] == "invalid_params" and "too short" in str(err)
    assert node.rpc_error("prompt.upload", tenant_id=tenant_id, prompt="no_such_prompt", language="en",
                          data_base64=data)["data"]["error_id"] == "invalid_params"
    try:
        with RtpReceiver() as heard:
            assert sipp.announced_caller(alice, "699", 404, heard.port).ok
        assert heard.tone_share(900.0) > 0.8 and heard.tone_share(TONE_HZ["not_in_service"]) < 0.05
    finally:
        node.rpc("prompt.delete", tenant_id=tenant_id, prompt="not_in_service", language="en")
    with RtpReceiver() as heard:  # the system's again
        assert sipp.announced_caller(alice, "699", 404, heard.port).ok
    assert heard.tone_share(TONE_HZ["not_in_service"]) > 0.8
