"""IVR menus (issue 23, IVR-01..05): a caller hears the menu, presses keys (RFC 2833) and is connected where the menu
leads — through submenus and back, to a colleague, to a mailbox — or hears goodbye. Real Kamailio, RTPengine, the
media server, SIPp phones; the caller's audio is heard by an RtpReceiver, which also presses the keys."""

import base64
import time

import pytest

from kemi.policy.announce import LANGUAGES, PROMPTS
from kemi.policy.ivr import PERSONAL_PROMPTS
from kemi.policy.mailbox_menu import PROMPTS as MENU_PROMPTS
from tests.harness.node import TestNode
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import CARRIER_IP, running, wait_for, wait_snapshot
from tests.scenario.test_voicemail import heard_tone, messages, tone

DOMAIN = "menus.example"
MENU_HZ, SUPPORT_HZ, CHOOSE_HZ, INVALID_HZ, GOODBYE_HZ = 600.0, 900.0, 500.0, 350.0, 1200.0
INTRO_HZ = 750.0


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    prompts = tmp_path_factory.mktemp("prompts")
    for lang in LANGUAGES:
        for name in (*PROMPTS, *MENU_PROMPTS, "vm_unavailable", "vm_busy", "vm_beep"):
            tone(prompts / lang / f"{name}.wav", 300.0, 0.3)
        tone(prompts / lang / "ivr_choose.wav", CHOOSE_HZ, 0.6)
        tone(prompts / lang / "ivr_invalid.wav", INVALID_HZ, 0.4)
        tone(prompts / lang / "vm_goodbye.wav", GOODBYE_HZ, 0.4)
        for name in PERSONAL_PROMPTS:  # a personal IVR's standard words: its intro one tone, its choices another
            tone(prompts / lang / f"{name}.wav", INTRO_HZ if name == "pivr_intro" else 300.0, 0.4)
    n = TestNode(tmp_path_factory.mktemp("ivr") / "var", media_server=True, prompt_dir=str(prompts),
                 voicemail_ingest_interval_s=0.2)
    with running([n]):
        yield n


def wav_b64(tmp_path, hz: float, seconds: float) -> str:
    path = tmp_path / f"{hz}.wav"
    tone(path, hz, seconds)
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    tenant = node.rpc("tenant.create", name="Menus AG", sip_domain=DOMAIN)
    people = {}
    for name, ext in (("alice", "201"), ("bob", "202"), ("carol", "203")):
        u = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("sip_account.create", user_id=u["id"], username=name, password=f"{name}-secret-pw")
        node.rpc("extension.create", number=ext, user_id=u["id"])
        people[name] = u
    box = node.rpc("voicemail.box_create", user_id=people["carol"]["id"], min_message_s=0.5, pin="1357")
    support = node.rpc("ivr.create", tenant_id=tenant["id"], name="support", timeout_s=3, actions=[
        {"key": "1", "kind": "extension", "target": "202"},
        {"key": "#", "kind": "back"},
    ])
    main = node.rpc("ivr.create", tenant_id=tenant["id"], name="main", extension="500", timeout_s=2, tries=2, actions=[
        {"key": "1", "kind": "extension", "target": "202"},
        {"key": "2", "kind": "menu", "target": str(support["id"])},
        {"key": "8", "kind": "mailbox", "target": str(box["id"])},
        {"key": "9", "kind": "hangup"},
        {"key": "0", "kind": "voicemail"},
    ])
    node.rpc("ivr.recording_upload", id=main["id"], data_base64=wav_b64(tmp, MENU_HZ, 0.8))
    node.rpc("ivr.recording_upload", id=support["id"], data_base64=wav_b64(tmp, SUPPORT_HZ, 0.8))
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    phones = {n: sipp.phone(n, DOMAIN, f"{n}-secret-pw") for n in people}
    assert sipp.register(phones["bob"]).ok
    return {"sipp": sipp, "phones": phones, "people": people, "main": main, "support": support, "box": box,
            "tenant": tenant}


def into_menu(office, expect, **kw):
    """alice dials the menu's extension; her audio goes to an RtpReceiver, which presses the keys."""
    rx = RtpReceiver().__enter__()
    call = office["sipp"].caller_in_background(office["phones"]["alice"], "500", expect=expect, listen_rtp=rx.port,
                                               timeout_s=40, **kw)
    return rx, call


def test_the_caller_hears_the_menu_presses_a_key_and_is_connected(node, office):
    answer = office["sipp"].callee(office["phones"]["bob"], "answer")
    rx, call = into_menu(office, 200, hold_ms=1500)
    try:
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= 0.4, timeout=10), f"{rx.seconds():.1f} s heard, no menu"
        rx.send_dtmf("1")
        result = call.result(timeout=40)
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    assert office["sipp"].wait(answer).ok  # bob's phone rang and answered
    chosen = f"IVR menu {office['main']['id']} (main): key 1 -> extension 202"
    record = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"]
                                    if c["callee"] == "500" and chosen in c["trace"]), None), timeout=10)
    assert record["disposition"] == "answered", record


def test_a_submenu_and_back_then_a_message_in_the_mailbox(node, office):
    box = office["box"]
    before = len(messages(node, box["id"]))
    rx, call = into_menu(office, 200, hold_ms=2500)
    try:
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= 0.4, timeout=10)
        rx.send_dtmf("2")  # support: its own recording
        assert wait_for(lambda: heard_tone(rx, SUPPORT_HZ) >= 0.4, timeout=10), "the submenu was not heard"
        heard_main = heard_tone(rx, MENU_HZ)
        rx.send_dtmf("#")  # back to the main menu
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= heard_main + 0.4, timeout=10), "the main menu not again"
        rx.send_dtmf("8")  # carol's mailbox: greeting, tone, and what the caller says is recorded
        rx.send_tone(440.0, 1.5)
        result = call.result(timeout=40)
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    assert wait_for(lambda: len(messages(node, box["id"])) > before, timeout=15)


def test_listening_to_a_mailbox_from_anywhere_by_its_number_and_pin(node, office):
    box = office["box"]
    for m in messages(node, box["id"]):  # one message only: the one left now
        node.rpc("voicemail.delete", id=m["id"])
    rx, call = into_menu(office, 200, hold_ms=2000)
    try:  # a message in carol's mailbox first
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= 0.4, timeout=10)
        rx.send_dtmf("8")
        rx.send_tone(440.0, 1.5)
        assert call.result(timeout=40).ok
    finally:
        rx.__exit__(None, None, None)
    msg = wait_for(lambda: (m := messages(node, box["id"])) and m[0], timeout=15)
    rx, call = into_menu(office, "ended", bye_within_ms=40000)
    try:
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= 0.4, timeout=10)
        rx.send_dtmf("0")  # voicemail access: which mailbox, then its PIN
        time.sleep(1.5)
        rx.send_dtmf("999#")  # no such mailbox: asked again
        time.sleep(1.5)
        rx.send_dtmf("203#")  # carol's extension
        time.sleep(1.0)
        rx.send_dtmf("1357#")
        assert wait_for(lambda: heard_tone(rx, 440.0) >= 0.5, timeout=20), f"{rx.seconds():.1f} s heard, no message"
        assert wait_for(lambda: node.rpc("voicemail.get", id=msg["id"])["heard"], timeout=15)  # heard to its end
        rx.send_dtmf("#")  # goodbye: the mailbox hangs up
        result = call.result(timeout=60)
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    record = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"]
                                    if any("key 0 -> voicemail" in t for t in c["trace"])), None), timeout=10)
    assert record["disposition"] == "answered"


def test_no_choice_ends_with_goodbye_and_480(node, office):
    rx, call = into_menu(office, 480)
    try:
        result = call.result(timeout=40)  # two rounds of 2 s without a key
        assert result.ok, result.output[-2000:]
        assert heard_tone(rx, MENU_HZ) >= 0.8 and heard_tone(rx, GOODBYE_HZ) >= 0.2
    finally:
        rx.__exit__(None, None, None)


def test_an_invalid_key_is_said_and_the_hangup_key_says_goodbye(node, office):
    rx, call = into_menu(office, 480)
    try:
        assert wait_for(lambda: heard_tone(rx, MENU_HZ) >= 0.4, timeout=10)
        rx.send_dtmf("5")  # no action for 5: "not a valid choice", the menu again
        assert wait_for(lambda: heard_tone(rx, INVALID_HZ) >= 0.2, timeout=10)
        rx.send_dtmf("9")
        result = call.result(timeout=40)
        assert result.ok, result.output[-2000:]
        assert heard_tone(rx, GOODBYE_HZ) >= 0.2
    finally:
        rx.__exit__(None, None, None)
    record = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"]
                                    if c["callee"] == "500" and any("key 9 -> hangup" in t for t in c["trace"])), None),
                      timeout=10)
    assert record["sip_code"] == 480


def test_the_menus_are_followed_by_route_simulate_and_a_menu_without_recording_asks_to_choose(node, office, tmp_path):
    sim = node.rpc("route.simulate", dialled="500", caller_user_id=office["people"]["alice"]["id"],
                   events=[{"kind": "keys", "digits": "21"}])
    assert sim["decision"]["type"] == "ivr"
    assert "ring user" in sim["timeline"][-1]["outcome"]
    node.rpc("ivr.recording_delete", id=office["main"]["id"])
    try:
        rx, call = into_menu(office, 480)
        try:
            assert call.result(timeout=40).ok
            assert heard_tone(rx, CHOOSE_HZ) >= 0.4 and heard_tone(rx, MENU_HZ) == 0
        finally:
            rx.__exit__(None, None, None)
    finally:
        node.rpc("ivr.recording_upload", id=office["main"]["id"], data_base64=wav_b64(tmp_path, MENU_HZ, 0.8))


def test_a_number_key_goes_out_through_the_companys_trunk_presenting_the_caller(node, office):
    from tests.scenario.test_trunks import first_invite, received

    sipp = office["sipp"]
    carrier = sipp.carrier(CARRIER_IP)
    trunk = node.rpc("trunk.create", name="menu-carrier", host=carrier.ip, port=carrier.port, transport="udp",
                     tenant_ids=[office["tenant"]["id"]])
    menu = node.rpc("ivr.create", tenant_id=office["tenant"]["id"], name="out", extension="510",
                    actions=[{"key": "1", "kind": "number", "target": "+493098765432"}])
    try:
        wait_snapshot(node)
        uas = sipp.callee(carrier, "answer")
        rx = RtpReceiver().__enter__()
        try:
            call = sipp.caller_in_background(office["phones"]["alice"], "510", hold_ms=1000, listen_rtp=rx.port,
                                             timeout_s=40)
            assert wait_for(lambda: heard_tone(rx, CHOOSE_HZ) >= 0.3, timeout=10)  # no recording: "please choose"
            rx.send_dtmf("1")
            result = call.result(timeout=40)
            assert result.ok, result.output[-2000:]
        finally:
            rx.__exit__(None, None, None)
        assert sipp.wait(uas).ok
        invite = first_invite(received(uas))
        assert invite.startswith(f"INVITE sip:+493098765432@{carrier.ip}:{carrier.port}"), invite[:200]
    finally:
        node.rpc("ivr.delete", id=menu["id"])
        node.rpc("trunk.delete", id=trunk["id"])


def test_a_personal_ivr_reached_by_forwarding_puts_the_caller_through_to_the_assistant(node, office):
    """IVR-06: carol's calls are forwarded to her personal IVR; alice hears its standard words and presses 3."""
    sipp, carol = office["sipp"], office["people"]["carol"]
    personal = node.rpc("ivr.personal_set", user_id=carol["id"], message=True, assistant="202")
    rule = node.rpc("forwarding.create", user_id=carol["id"], kind="unconditional",
                    target_ivr_id=personal["menu"]["id"])
    wait_snapshot(node)
    try:
        answer = sipp.callee(office["phones"]["bob"], "answer")
        rx = RtpReceiver().__enter__()
        try:
            call = sipp.caller_in_background(office["phones"]["alice"], "203", hold_ms=1500, listen_rtp=rx.port,
                                             timeout_s=40)
            assert wait_for(lambda: heard_tone(rx, INTRO_HZ) >= 0.3, timeout=10), "the personal IVR was not heard"
            rx.send_dtmf("3")
            result = call.result(timeout=40)
            assert result.ok, result.output[-2000:]
        finally:
            rx.__exit__(None, None, None)
        assert sipp.wait(answer).ok  # the assistant's phone rang and answered
        record = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"]
                                        if c["callee"] == "203" and "key 3 -> extension 202" in " ".join(c["trace"])),
                                       None), timeout=10)
        assert record["disposition"] == "answered" and any("forwarding to IVR menu" in t for t in record["trace"])
    finally:
        node.rpc("forwarding.delete", id=rule["id"])
        node.rpc("ivr.delete", id=personal["menu"]["id"])
        wait_snapshot(node)


def test_keys_sent_as_sip_info_in_the_early_dialog_move_through_the_menus(node, office):
    """Phones that send keys as SIP INFO: the menus are early media, so the INFO travels in the 183's early dialog."""
    answer = office["sipp"].callee(office["phones"]["bob"], "answer")
    result = office["sipp"].caller(office["phones"]["alice"], "500", expect="early_info_keys", info_keys="1",
                                   hold_ms=1000, timeout_s=40)
    assert result.ok, result.output[-2000:]
    assert office["sipp"].wait(answer).ok  # key 1 by INFO: bob's phone rang and answered
