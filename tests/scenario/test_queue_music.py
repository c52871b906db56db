"""Waiting in a hunt group's queue with music (issue 23, ACD-16/17): with the media server on, a caller who waits for
a busy agent hears the group's greeting, their place in the queue and music, and is connected the moment the agent is
free; a wait whose time is up overflows. Real Kamailio, RTPengine, the media server and SIPp phones; the waiting
caller's audio is heard by an RtpReceiver."""

import base64
import time

import pytest

from kemi.policy.announce import LANGUAGES, PROMPTS
from kemi.policy.mailbox_menu import PROMPTS as MENU_PROMPTS
from tests.harness.node import TestNode
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot
from tests.scenario.test_voicemail import heard_tone, tone

DOMAIN = "queue.example"
WELCOME_HZ, PLACE_HZ, ONE_HZ, MUSIC_HZ, OWN_HZ = 500.0, 700.0, 900.0, 350.0, 1100.0
ABOUT_HZ, MINUTES_HZ = 1300.0, 1500.0


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    prompts = tmp_path_factory.mktemp("prompts")
    for lang in LANGUAGES:
        for name in (*PROMPTS, *MENU_PROMPTS):
            tone(prompts / lang / f"{name}.wav", 300.0, 0.3)
        tone(prompts / lang / "queue_welcome.wav", WELCOME_HZ, 0.6)
        tone(prompts / lang / "queue_place.wav", PLACE_HZ, 0.4)
        tone(prompts / lang / "n1.wav", ONE_HZ, 0.4)
        tone(prompts / lang / "queue_wait_about.wav", ABOUT_HZ, 0.4)
        tone(prompts / lang / "queue_minutes.wav", MINUTES_HZ, 0.4)
        tone(prompts / lang / "queue_wait_short.wav", 300.0, 0.3)
    tone(prompts / "music" / "default.wav", MUSIC_HZ, 1.0)
    n = TestNode(tmp_path_factory.mktemp("queue") / "var", media_server=True, prompt_dir=str(prompts))
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    tenant = node.rpc("tenant.create", name="Queue KG", sip_domain=DOMAIN)
    people = {}
    for name, ext in (("alice", "201"), ("bob", "202"), ("agent", "203"), ("backup", "204")):
        u = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("sip_account.create", user_id=u["id"], username=name, password=f"{name}-secret-pw")
        node.rpc("extension.create", number=ext, user_id=u["id"])
        people[name] = u
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    phones = {n: sipp.phone(n, DOMAIN, f"{n}-secret-pw") for n in people}
    assert sipp.register(phones["agent"]).ok and sipp.register(phones["backup"]).ok
    return {"sipp": sipp, "phones": phones, "people": people, "tenant": tenant}


def group(node, office, ext, **kw):
    g = node.rpc("group.create", tenant_id=office["tenant"]["id"], name=f"desk {ext}", extension=ext,
                 rings=[{"members": [{"user_id": office["people"]["agent"]["id"]}], "wait_s": 10}], **kw)
    wait_snapshot(node)
    return g


def records(node, ext, n):
    return wait_for(lambda: (lambda cs: cs if len(cs) >= n else None)(
        [c for c in node.rpc("cdr.list")["items"] if c["callee"] == ext]), timeout=10)


def test_a_waiting_caller_hears_greeting_place_and_music_and_gets_the_agent_when_free(node, office):
    sipp, phones = office["sipp"], office["phones"]
    g = group(node, office, "600", queue_s=30)
    uas = sipp.callee(phones["agent"], "answer", calls=2, timeout_s=60)
    busy = sipp.caller_in_background(phones["alice"], "600", hold_ms=6000)
    time.sleep(1.2)  # the agent is on alice's call
    rx = RtpReceiver().__enter__()
    try:
        waiting = sipp.caller_in_background(phones["bob"], "600", hold_ms=500, listen_rtp=rx.port, timeout_s=50)
        assert wait_for(lambda: heard_tone(rx, WELCOME_HZ) >= 0.4, timeout=10), f"{rx.seconds():.1f} s heard"
        assert wait_for(lambda: heard_tone(rx, PLACE_HZ) >= 0.2 and heard_tone(rx, ONE_HZ) >= 0.2, timeout=10)
        assert wait_for(lambda: heard_tone(rx, MUSIC_HZ) >= 0.5, timeout=10), "no music while waiting"
        item = next(i for i in node.rpc("queue.status")["items"] if i["group_id"] == g["id"])
        assert len([w for w in item["waiting"] if w["queued"]]) == 1
        assert busy.result(timeout=30).ok
        r = waiting.result(timeout=50)
        assert r.ok, r.output[-2000:]  # connected once alice's call ended
    finally:
        rx.__exit__(None, None, None)
    assert sipp.wait(uas, timeout_s=60).ok
    cdr = next(c for c in records(node, "600", 2) if any("with music" in t for t in c["trace"]))
    assert cdr["disposition"] == "answered", cdr
    assert any("a member is free after" in t for t in cdr["trace"]), cdr["trace"]
    # bob waited a few seconds before his turn: the group's average wait (for the expected wait said to callers)
    average = node.kamailio_rpc("htable.get", "acdq", f"w:g{g['id']}")
    seconds, calls = str(average["item"]["value"]).split(":")
    assert 1.0 <= float(seconds) <= 15.0 and calls == "1", average


def test_the_expected_wait_is_said_with_the_place_once_the_group_has_an_average(node, office):
    sipp, phones = office["sipp"], office["phones"]
    g = group(node, office, "610", queue_s=30)
    node.kamailio_rpc("htable.sets", "acdq", f"w:g{g['id']}", "150.0:4")  # callers waited 2.5 minutes on average
    uas = sipp.callee(phones["agent"], "answer", calls=2, timeout_s=60)
    busy = sipp.caller_in_background(phones["alice"], "610", hold_ms=5000)
    time.sleep(1.2)
    rx = RtpReceiver().__enter__()
    try:
        waiting = sipp.caller_in_background(phones["bob"], "610", hold_ms=500, listen_rtp=rx.port, timeout_s=50)
        # "you are caller number one; your expected waiting time is about three minutes"
        assert wait_for(lambda: heard_tone(rx, ONE_HZ) >= 0.2 and heard_tone(rx, ABOUT_HZ) >= 0.2
                        and heard_tone(rx, MINUTES_HZ) >= 0.2, timeout=12), f"{rx.seconds():.1f} s heard"
        assert busy.result(timeout=30).ok
        assert waiting.result(timeout=50).ok
    finally:
        rx.__exit__(None, None, None)
    assert sipp.wait(uas, timeout_s=60).ok


def test_the_groups_own_greeting_and_a_wait_whose_time_is_up_overflows(node, office, tmp_path):
    sipp, phones = office["sipp"], office["phones"]
    g = group(node, office, "601", queue_s=4, overflow_user_id=office["people"]["backup"]["id"])
    tone(tmp_path / "own.wav", OWN_HZ, 0.8)
    node.rpc("group.greeting_upload", id=g["id"], data_base64=base64.b64encode((tmp_path / "own.wav").read_bytes()).decode())
    uas = sipp.callee(phones["agent"], "answer")
    backup = sipp.callee(phones["backup"], "answer")
    busy = sipp.caller_in_background(phones["alice"], "601", hold_ms=9000, timeout_s=40)
    time.sleep(1.2)
    rx = RtpReceiver().__enter__()
    try:
        r = sipp.caller(phones["bob"], "601", hold_ms=300, listen_rtp=rx.port, timeout_s=40)
        assert r.ok, r.output[-2000:]  # answered by the overflow user after 4 s of waiting
        assert heard_tone(rx, OWN_HZ) >= 0.4 and heard_tone(rx, WELCOME_HZ) == 0
    finally:
        rx.__exit__(None, None, None)
    assert sipp.wait(backup).ok and busy.result(timeout=40).ok and sipp.wait(uas).ok
    cdr = next(c for c in records(node, "601", 2) if any("with music" in t for t in c["trace"]))
    assert any("no member became free: overflow" in t for t in cdr["trace"]), cdr["trace"]
    item = next(i for i in node.rpc("queue.status")["items"] if i["group_id"] == g["id"])
    assert not [w for w in item["waiting"] if w["queued"]]


def test_a_group_without_music_waits_ringing_as_before(node, office):
    sipp, phones = office["sipp"], office["phones"]
    group(node, office, "602", queue_s=20, queue_music=False)
    uas = sipp.callee(phones["agent"], "answer", calls=2, timeout_s=40)
    busy = sipp.caller_in_background(phones["alice"], "602", hold_ms=3000)
    time.sleep(1.2)
    r = sipp.caller(phones["bob"], "602", hold_ms=300, timeout_s=40)
    assert r.ok, r.output[-2000:]
    assert busy.result(timeout=30).ok and sipp.wait(uas, timeout_s=40).ok
    cdr = next(c for c in records(node, "602", 2) if any("waiting in the queue" in t for t in c["trace"]))
    assert not any("with music" in t for t in cdr["trace"])


def test_a_caller_who_hangs_up_while_waiting_leaves_the_queue(node, office):
    sipp, phones = office["sipp"], office["phones"]
    g = group(node, office, "603", queue_s=30)
    uas = sipp.callee(phones["agent"], "answer")
    busy = sipp.caller_in_background(phones["alice"], "603", hold_ms=5000)
    time.sleep(1.2)
    r = sipp.caller(phones["bob"], "603", expect="cancel_early", ring_ms=2000)  # hears the greeting, then hangs up
    assert r.ok, r.output[-2000:]

    def queued():
        item = next(i for i in node.rpc("queue.status")["items"] if i["group_id"] == g["id"])
        return [w for w in item["waiting"] if w["queued"]]

    assert wait_for(lambda: not queued(), timeout=5)
    assert busy.result(timeout=30).ok and sipp.wait(uas).ok
    cdr = next(c for c in records(node, "603", 2) if any("with music" in t for t in c["trace"]))
    assert cdr["disposition"] in ("cancelled", "abandoned"), cdr
