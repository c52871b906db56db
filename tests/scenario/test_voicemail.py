"""Voicemail (issue 23, VM-01..07): a call forwarded to a mailbox is answered by the media server, which greets the
caller and records what they say; the control plane stores the message (a WAV with the caller's audio), e-mails it
and lets the API list, download, mark and delete it. Real Kamailio, RTPengine, media server, SIPp sending RTP, and an
SMTP server (aiosmtpd) started by the test."""

import audioop
import base64
import io
import math
import struct
import time
from pathlib import Path
import wave
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from kemi.policy.announce import LANGUAGES, PROMPTS
from kemi.policy.mailbox_menu import PROMPTS as MENU_PROMPTS
from tests.harness.node import TestNode
from tests.harness.ports import free_port
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "mailbox.example"
GREETING_S = 0.6


def tone(path, hz: float, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * i / 8000)))
                               for i in range(int(8000 * seconds))))


class Mails:
    """What the test's SMTP server received."""

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    mails = Mails()
    ctl = Controller(mails, hostname="127.0.0.1", port=free_port())
    ctl.start()
    try:
        yield ctl, mails
    finally:
        ctl.stop()


def write_prompts(prompts: Path) -> Path:
    """Every prompt a tone callers can be told apart by: announcements 400 Hz, the system's greetings 700 Hz
    (unavailable) and 800 Hz (busy), the beep 1 kHz, listening by phone's prompts 300 Hz."""
    for lang in LANGUAGES:
        for name in PROMPTS:
            tone(prompts / lang / f"{name}.wav", 400.0, 0.5)
        tone(prompts / lang / "vm_unavailable.wav", 700.0, GREETING_S)
        tone(prompts / lang / "vm_busy.wav", 800.0, GREETING_S)
        tone(prompts / lang / "vm_beep.wav", 1000.0, 0.2)
        for name in MENU_PROMPTS:
            tone(prompts / lang / f"{name}.wav", 300.0, 0.3)
    return prompts


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components, smtp):
    prompts = write_prompts(tmp_path_factory.mktemp("prompts"))
    ctl, _ = smtp
    n = TestNode(tmp_path_factory.mktemp("vm") / "var", media_server=True, prompt_dir=str(prompts),
                 smtp_relay=f"127.0.0.1:{ctl.port}", smtp_from="voicemail@pbx.example",
                 voicemail_ingest_interval_s=0.2)
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    tenant = node.rpc("tenant.create", name="Mailbox GmbH", sip_domain=DOMAIN)
    alice = node.rpc("user.create", tenant_id=tenant["id"], name="Alice")
    node.rpc("sip_account.create", user_id=alice["id"], username="alice", password="alice-secret-pw")
    node.rpc("extension.create", number="201", user_id=alice["id"])
    bob = node.rpc("user.create", tenant_id=tenant["id"], name="Bob")
    node.rpc("sip_account.create", user_id=bob["id"], username="bob", password="bob-secret-pw")
    node.rpc("extension.create", number="202", user_id=bob["id"])
    box = node.rpc("voicemail.box_create", user_id=bob["id"], email="bob@mailbox.example", pin="2468",
                   min_message_s=1.0)
    node.rpc("forwarding.create", user_id=bob["id"], kind="unconditional", target_mailbox_id=box["id"])
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    return {"sipp": sipp, "alice": sipp.phone("alice", DOMAIN, "alice-secret-pw"), "box": box, "bob": bob,
            "alice_user": alice, "tenant": tenant}


def messages(node, box_id: int) -> list[dict]:
    return node.rpc("voicemail.list", mailbox_id=box_id)["items"]


def wav_of(node, message_id: str):
    got = node.rpc("voicemail.download", id=message_id)
    assert got["content_type"] == "audio/wav"
    w = wave.open(io.BytesIO(base64.b64decode(got["data_base64"])), "rb")
    return w, w.readframes(w.getnframes())


def goertzel_share(samples, hz: float) -> float:
    """How much of the samples' power is at `hz` (0..1)."""
    n = len(samples)
    k = 2 * math.cos(2 * math.pi * hz / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    total = sum(x * x for x in samples)
    return min(1.0, 2 * (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * total)) if total else 0.0


def voiced(pcm: bytes, block_s: float = 0.1) -> list:
    """The recording's 0.1 s blocks that are not silence."""
    n = len(pcm) // 2
    samples = struct.unpack(f"<{n}h", pcm[: n * 2])
    size = int(8000 * block_s)
    blocks = [samples[i : i + size] for i in range(0, n - size + 1, size)]
    return [b for b in blocks if math.sqrt(sum(x * x for x in b) / len(b)) > 300]


def share_at(blocks, hz: float) -> float:
    """The median share of `hz` over the voiced blocks."""
    shares = sorted(goertzel_share(b, hz) for b in blocks)
    return shares[len(shares) // 2] if shares else 0.0


def test_a_message_is_left_stored_and_emailed(node, office, smtp):
    _, mails = smtp
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    before = len(messages(node, box["id"]))
    result = sipp.caller(alice, "202", hold_ms=4000)  # answered by the mailbox; alice's phone sends a 440 Hz tone
    assert result.ok, result.output[-2000:]
    items = wait_for(lambda: (m := messages(node, box["id"])) and len(m) > before and m, timeout=15)
    msg = items[0]
    assert msg["heard"] is False and msg["caller"] == "201"
    # recorded after the greeting and the tone: what alice said, about the call's length minus those
    assert 2.0 <= msg["duration_s"] <= 4.5, msg
    w, pcm = wav_of(node, msg["id"])
    assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    blocks = voiced(pcm)
    assert len(blocks) >= 10, audioop.rms(pcm, 2)  # at least a second of the caller's audio, not silence
    assert share_at(blocks, 440.0) > 0.8  # and it is alice's tone ...
    assert share_at(blocks, 700.0) < 0.05 and share_at(blocks, 1000.0) < 0.05  # ... not the greeting's or the beep
    # the call's record: answered, to bob, through the mailbox
    cdr = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"] if c["callee"] == "202"), None), timeout=10)
    assert cdr["disposition"] == "answered"
    assert any(f"forwarding to mailbox {box['id']}" in line for line in cdr["trace"]), cdr["trace"]
    # counts on the mailbox
    got = node.rpc("voicemail.box_get", id=box["id"])
    assert got["new"] >= 1 and got["has_pin"] is True and "pin_hash" not in got
    # the e-mail, with the recording attached
    mail = wait_for(lambda: next((m for m in mails.received if "bob@mailbox.example" in m[1]), None), timeout=10)
    parsed = message_from_bytes(mail[2])
    assert parsed["From"] == "voicemail@pbx.example" and "201" in parsed["Subject"]
    parts = [p for p in parsed.walk() if p.get_content_type() == "audio/wav"]
    assert parts and wave.open(io.BytesIO(parts[0].get_payload(decode=True))).getnframes() > 8000 * 2
    assert wait_for(lambda: node.rpc("voicemail.get", id=msg["id"])["emailed"], timeout=5)


def test_marking_and_deleting_a_message(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    before = {m["id"] for m in messages(node, box["id"])}
    assert sipp.caller(alice, "202", hold_ms=3000).ok
    msg = wait_for(lambda: next((m for m in messages(node, box["id"]) if m["id"] not in before), None), timeout=15)
    heard = node.rpc("voicemail.mark", id=msg["id"], heard=True)
    assert heard["heard"] is True and heard["heard_at"]
    counts = node.rpc("voicemail.box_get", id=box["id"])
    assert counts["old"] >= 1
    assert node.rpc("voicemail.list", mailbox_id=box["id"], heard=False)["total"] == counts["new"]
    node.rpc("voicemail.delete", id=msg["id"])
    assert all(m["id"] != msg["id"] for m in messages(node, box["id"]))
    err = node.rpc_error("voicemail.download", id=msg["id"])
    assert err["data"]["error_id"] == "not_found"
    stored = node.settings.voicemail_store / str(office["tenant"]["id"]) / str(box["id"]) / f"{msg['id']}.wav"
    assert not stored.exists()


def test_a_message_under_the_minimum_is_discarded(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    node.rpc("voicemail.box_update", id=box["id"], min_message_s=3.0)
    try:
        before = {m["id"] for m in messages(node, box["id"])}
        spool = node.settings.voicemail_spool / "new"
        result = sipp.caller(alice, "202", hold_ms=2000)  # ~1 s recorded: under 3 s
        assert result.ok, result.output[-2000:]
        time.sleep(1.0)
        wait_for(lambda: not list(spool.glob("*.json")), timeout=10)  # the control plane has looked at it
        assert {m["id"] for m in messages(node, box["id"])} == before
    finally:
        node.rpc("voicemail.box_update", id=box["id"], min_message_s=1.0)


def test_a_disabled_mailbox_takes_no_calls(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    node.rpc("voicemail.box_update", id=box["id"], enabled=False)
    try:
        wait_snapshot(node)
        # bob's only forwarding leads nowhere now: his phone (not registered) is unreachable
        result = sipp.caller(alice, "202", expect=480)
        assert result.ok, result.output[-2000:]
    finally:
        node.rpc("voicemail.box_update", id=box["id"], enabled=True)
        wait_snapshot(node)


def test_bad_requests_change_nothing(node, office):
    box, bob = office["box"], office["bob"]
    assert node.rpc_error("voicemail.box_create", user_id=bob["id"])["data"]["error_id"] == "conflict"
    assert node.rpc_error("voicemail.set_pin", id=box["id"], pin="12")["data"]["error_id"] == "invalid_params"
    assert node.rpc_error("voicemail.box_update", id=box["id"], email="not-an-address")["data"]["error_id"] == "invalid_params"
    assert node.rpc_error("forwarding.create", user_id=bob["id"], kind="busy", target_mailbox_id=box["id"],
                          target_number="+4930123456")["data"]["error_id"] == "invalid_params"
    assert node.rpc("voicemail.box_get", id=box["id"])["email"] == "bob@mailbox.example"


def test_deleting_the_user_deletes_their_mailbox_and_recordings(node, office):
    sipp, alice = office["sipp"], office["alice"]
    tenant = office["tenant"]
    carol = node.rpc("user.create", tenant_id=tenant["id"], name="Carol")
    node.rpc("extension.create", number="203", user_id=carol["id"])
    box = node.rpc("voicemail.box_create", user_id=carol["id"], min_message_s=0.5)
    node.rpc("forwarding.create", user_id=carol["id"], kind="unreachable",
             target_mailbox_id=box["id"])
    wait_snapshot(node)
    result = sipp.caller(alice, "203", hold_ms=2500)  # carol has no device: unreachable -> her mailbox
    assert result.ok, result.output[-2000:]
    msg = wait_for(lambda: (m := messages(node, box["id"])) and m[0], timeout=15)
    stored = node.settings.voicemail_store / str(tenant["id"]) / str(box["id"]) / f"{msg['id']}.wav"
    assert stored.exists()
    node.rpc("user.delete", id=carol["id"])
    assert node.rpc_error("voicemail.box_get", id=box["id"])["data"]["error_id"] == "not_found"
    assert node.rpc_error("voicemail.get", id=msg["id"])["data"]["error_id"] == "not_found"
    assert not stored.exists()


def test_message_waiting_is_notified_to_the_subscribed_phone(node, office):
    """MWI (RFC 3842): the phone subscribes to its own address and hears the counts at once, on a new message, and when
    it is heard."""
    sipp, alice, tenant = office["sipp"], office["alice"], office["tenant"]
    dave = node.rpc("user.create", tenant_id=tenant["id"], name="Dave")
    node.rpc("sip_account.create", user_id=dave["id"], username="dave", password="dave-secret-pw")
    node.rpc("extension.create", number="204", user_id=dave["id"])
    box = node.rpc("voicemail.box_create", user_id=dave["id"], min_message_s=0.5)
    node.rpc("forwarding.create", user_id=dave["id"], kind="unconditional", target_mailbox_id=box["id"])
    wait_snapshot(node)
    phone = sipp.phone("dave", DOMAIN, "dave-secret-pw")
    sub = sipp.mwi_subscriber(phone, changes=2)
    try:
        wait_for(lambda: len(sub.notifies()) >= 1, timeout=20)
        assert "Messages-Waiting: no" in sub.notifies()[0] and "Voice-Message: 0/0" in sub.notifies()[0], sub.notifies()
        assert sipp.caller(alice, "204", hold_ms=2500).ok
        wait_for(lambda: len(sub.notifies()) >= 2, timeout=20)
        assert "Messages-Waiting: yes" in sub.notifies()[1] and "Voice-Message: 1/0" in sub.notifies()[1], sub.notifies()
        msg = messages(node, box["id"])[0]
        node.rpc("voicemail.mark", id=msg["id"], heard=True)
        wait_for(lambda: len(sub.notifies()) >= 3, timeout=20)
        assert "Messages-Waiting: no" in sub.notifies()[2] and "Voice-Message: 0/1" in sub.notifies()[2], sub.notifies()
        out, _ = sub.communicate(timeout=30)  # it unsubscribes: the subscription ends cleanly
        assert sub.returncode == 0, out[-2000:]
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def test_a_phone_may_subscribe_only_to_its_own_message_waiting(node, office, tmp_path):
    sipp = office["sipp"]
    alice = office["alice"]
    scen = tmp_path / "sub_other.xml"
    text = (Path(__file__).parent / "sipp" / "subscribe_mwi.xml").read_text()
    # alice subscribes to bob's address: challenged, then refused
    text = text.replace("SUBSCRIBE sip:[field0]@[field1] SIP/2.0", "SUBSCRIBE sip:bob@[field1] SIP/2.0")
    text = text.replace('<recv response="200" rrs="true"/>', '<recv response="403"/>')
    text = text[: text.index("@NOTIFY_LOOP@")] + "</scenario>\n"
    scen.write_text(text)
    result = sipp.run(sipp._argv(scen, alice, ["-inf", str(sipp._inf(alice, ""))], 10), 10)
    assert result.ok, result.output[-2000:]


def test_the_cli_lists_and_downloads_messages_and_route_simulate_names_the_mailbox(node, office, tmp_path):
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    before = {m["id"] for m in messages(node, box["id"])}
    assert sipp.caller(alice, "202", hold_ms=3000).ok
    msg = wait_for(lambda: next((m for m in messages(node, box["id"]) if m["id"] not in before), None), timeout=15)
    base = ["--url", node.settings.api_url, "--token", node.token]
    out = CliRunner().invoke(app, base + ["voicemail", "list", "--mailbox-id", str(box["id"]), "--new"])
    assert out.exit_code == 0 and msg["id"][:8] in out.output, out.output
    target = tmp_path / "m.wav"
    out = CliRunner().invoke(app, base + ["voicemail", "download", msg["id"], "--out", str(target)])
    assert out.exit_code == 0, out.output
    assert wave.open(str(target)).getnframes() > 8000
    out = CliRunner().invoke(app, base + ["voicemail", "set-pin", str(box["id"]), "12"])
    assert out.exit_code != 0 and "a PIN is 4 to 10 digits" in out.output, out.output
    # where a call to bob goes, as the API explains it
    got = node.rpc("route.simulate", caller_user_id=office["alice_user"]["id"], dialled="202")
    assert any(f"mailbox {box['id']}" in str(step) for step in got["timeline"]), got["timeline"]


def test_an_uploaded_greeting_is_what_callers_hear(node, office):
    box = office["box"]
    sipp, alice = office["sipp"], office["alice"]
    upload = io.BytesIO()
    tone(Path(node.settings.var_dir) / "greeting-upload.wav", 900.0, 1.0)  # a 900 Hz "greeting", 8 kHz mono ...
    with wave.open(str(Path(node.settings.var_dir) / "greeting-upload.wav")) as src, wave.open(upload, "wb") as w:
        w.setnchannels(2)  # ... sent as 16 kHz stereo: converted on upload
        w.setsampwidth(2)
        w.setframerate(16000)
        mono = src.readframes(src.getnframes())
        w.writeframes(audioop.tostereo(audioop.ratecv(mono, 2, 1, 8000, 16000, None)[0], 2, 1, 1))
    data = base64.b64encode(upload.getvalue()).decode()
    got = node.rpc("voicemail.greeting_upload", id=box["id"], kind="unavailable", data_base64=data)
    assert got["duration_s"] == pytest.approx(1.0, abs=0.05) and got["greetings"] == {"busy": False, "unavailable": True}
    # a file that cannot be a greeting changes nothing
    silent = io.BytesIO()
    with wave.open(silent, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 16000)
    err = node.rpc_error("voicemail.greeting_upload", id=box["id"], kind="busy",
                         data_base64=base64.b64encode(silent.getvalue()).decode())
    assert err["data"]["error_id"] == "invalid_params" and "silent" in err["message"] + str(err["data"])
    assert node.rpc("voicemail.box_get", id=box["id"])["greetings"] == {"busy": False, "unavailable": True}
    try:
        with RtpReceiver() as heard:
            assert sipp.caller(alice, "202", hold_ms=2000, listen_rtp=heard.port).ok
        assert heard.tone_share(900.0) > 0.3 and heard.tone_share(700.0) < 0.05  # the upload, not the system's
    finally:
        node.rpc("voicemail.greeting_delete", id=box["id"], kind="unavailable")
    assert node.rpc("voicemail.box_get", id=box["id"])["greetings"]["unavailable"] is False



def heard_tone(rx: RtpReceiver, hz: float) -> float:
    """Seconds of the received audio that are this tone (0.1 s blocks)."""
    return sum(0.1 for b in voiced(rx.pcm()) if goertzel_share(b, hz) > 0.8)


def listen_call(office, phone):
    """bob dials *98 (his own mailbox); his phone's audio goes to an RtpReceiver, which also presses the keys."""
    rx = RtpReceiver().__enter__()
    call = office["sipp"].caller_in_background(phone, "*98", expect="ended", bye_within_ms=40000, listen_rtp=rx.port,
                                               timeout_s=60)
    return rx, call


def test_the_owner_listens_by_phone_with_the_pin_and_deletes_the_message(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    for m in messages(node, box["id"]):  # one message only: alice's tone
        node.rpc("voicemail.delete", id=m["id"])
    assert sipp.caller(alice, "202", hold_ms=3000).ok
    msg = wait_for(lambda: (m := messages(node, box["id"])) and m[0], timeout=15)
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    rx, call = listen_call(office, bob)
    try:
        rx.send_dtmf("2468#")  # the PIN set at the mailbox's creation
        assert wait_for(lambda: heard_tone(rx, 440.0) >= 0.5, timeout=20), (  # ~1.2 s of it was recorded
            f"the message was not heard: {rx.seconds():.1f} s of audio, {heard_tone(rx, 300.0):.1f} s of prompts, "
            f"from {rx.peer}"
        )
        # heard to its end: marked heard, then the menu
        assert wait_for(lambda: node.rpc("voicemail.get", id=msg["id"])["heard"], timeout=15)
        rx.send_dtmf("7#")  # delete it: no more messages; then goodbye, and the mailbox hangs up
        result = call.result(timeout=60)
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    assert wait_for(lambda: not any(m["id"] == msg["id"] for m in messages(node, box["id"])), timeout=10)
    stored = node.settings.voicemail_store / str(office["tenant"]["id"]) / str(box["id"]) / f"{msg['id']}.wav"
    assert not stored.exists()
    record = wait_for(lambda: next((c for c in node.rpc("cdr.list")["items"] if c["callee"] == "*98"), None), timeout=10)
    assert record["disposition"] == "answered"
    assert any("listening to mailbox" in line for line in record["trace"]), record["trace"]


def test_three_wrong_pins_lock_listening_and_raise_a_fraud_event(node, office):
    box, sipp = office["box"], office["sipp"]
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    rx, call = listen_call(office, bob)
    try:
        rx.send_dtmf("1111#")
        rx.send_dtmf("2222#")
        rx.send_dtmf("3333#")
        result = call.result(timeout=60)  # the mailbox hangs up after the third
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    got = wait_for(lambda: (b := node.rpc("voicemail.box_get", id=box["id"]))["locked_until"] and b, timeout=10)
    assert got["locked_until"]
    events = node.rpc("fraud.events", tenant_id=office["tenant"]["id"])["items"]
    assert any(e["kind"] == "voicemail_pin_locked" for e in events), events
    # locked: even the right PIN does not open it now; a new PIN lifts the lock
    rx, call = listen_call(office, bob)
    try:
        assert call.result(timeout=60).ok  # told it is locked, and hung up on
        assert heard_tone(rx, 440.0) == 0
    finally:
        rx.__exit__(None, None, None)
    node.rpc("voicemail.set_pin", id=box["id"], pin="2468")
    assert node.rpc("voicemail.box_get", id=box["id"])["locked_until"] is None


def test_keys_pressed_as_sip_info_are_heard_like_rfc_2833_keys(node, office):
    """Phones that send keys as SIP INFO (application/dtmf-relay) work too: three wrong PINs by INFO lock the box."""
    box, sipp = office["box"], office["sipp"]
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    try:
        result = sipp.caller(bob, "*98", expect="info_keys", info_keys="1111#2222#3333#", bye_within_ms=30000,
                             timeout_s=60)
        assert result.ok, result.output[-2000:]  # each INFO answered 200, and the mailbox hung up after the third
        assert wait_for(lambda: node.rpc("voicemail.box_get", id=box["id"])["locked_until"], timeout=10)
    finally:
        node.rpc("voicemail.set_pin", id=box["id"], pin="2468")


def test_listening_without_a_mailbox_is_refused_with_its_reason(node, office):
    sipp, alice = office["sipp"], office["alice"]
    result = sipp.caller(alice, "*98", expect=404)  # alice has no mailbox (announced first: feature_rejected)
    assert result.ok, result.output[-2000:]


def media_workers(node) -> dict[int, int]:
    """The media server's processes: {port: pid} (the children of the component's process)."""
    parent = int((node.settings.run_dir / "mediaserver.pid").read_text())
    out = {}
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if b"--port" in argv:  # (a process just ended has no command line left)
            out[int(argv[argv.index(b"--port") + 1])] = int(child)
    return out


def test_hung_media_server_processes_are_passed_over_then_replaced_within_seconds(node, office):
    """Both processes hang (SIGSTOP): a call to a mailbox tries each, then ends as without the mailbox, in seconds,
    while ordinary calls go on; the media server's parent finds them silent and starts new ones within seconds; the
    next call reaches the mailbox again."""
    import os
    import signal

    sipp, alice, tenant = office["sipp"], office["alice"], office["tenant"]
    workers = media_workers(node)
    base = node.settings.media_server_port
    assert sorted(workers) == [base, base + 1]
    erin = node.rpc("user.create", tenant_id=tenant["id"], name="Erin")
    node.rpc("sip_account.create", user_id=erin["id"], username="erin", password="erin-secret-pw")
    node.rpc("extension.create", number="205", user_id=erin["id"])
    wait_snapshot(node)
    erin_phone = sipp.phone("erin", DOMAIN, "erin-secret-pw")
    assert sipp.register(erin_phone).ok
    for pid in workers.values():
        os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        assert sipp.caller(alice, "202", expect=480).ok  # both tried, neither answered: as without the mailbox
        assert time.monotonic() - stopped < 10
        callee = sipp.callee(erin_phone, "answer")  # and ordinary calls go on
        assert sipp.caller(alice, "205", hold_ms=500).ok
        assert sipp.wait(callee).ok
        # the parent ends the silent processes and starts new ones (HANG_S after their last answer)
        replaced = wait_for(lambda: (now := media_workers(node)) and len(now) == 2
                            and set(now.values()).isdisjoint(workers.values()) and now, timeout=20)
        assert replaced, "the hung processes were not replaced"
        assert time.monotonic() - stopped < 20
    finally:
        for pid in workers.values():  # whatever the parent did not end yet (never left stopped behind)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    ended = wait_for(lambda: next((c for c in node.rpc("cdr.list", limit=200)["items"]
                                   if c["callee"] == "202" and c["sip_code"] == 480), None), timeout=10)
    assert any("trying its next process" in line for line in ended["trace"]), ended["trace"]
    assert any("could not take the call" in line for line in ended["trace"]), ended["trace"]
    time.sleep(2)  # the new processes' pjsua up
    before = {m["id"] for m in messages(node, office["box"]["id"])}
    assert sipp.caller(alice, "202", hold_ms=3000).ok
    assert wait_for(lambda: any(m["id"] not in before for m in messages(node, office["box"]["id"])), timeout=15)


def test_the_owner_records_a_greeting_by_phone_and_callers_hear_it(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    rx, call = listen_call(office, bob)
    try:
        rx.send_dtmf("2468#")
        rx.send_dtmf("0")  # the greeting menu (from wherever the menu is)
        rx.send_dtmf("1")  # the unavailable greeting: the prompt, the tone, then it records
        time.sleep(1.5)
        rx.send_tone(500.0, 2.0)  # what bob says
        rx.send_dtmf("#")  # done: saved
        time.sleep(1.0)
        rx.send_dtmf("#")  # and goodbye (or the menu times out)
        result = call.result(timeout=60)
        assert result.ok, result.output[-2000:]
    finally:
        rx.__exit__(None, None, None)
    got = wait_for(lambda: (b := node.rpc("voicemail.box_get", id=box["id"]))["greetings"]["unavailable"] and b,
                   timeout=15)
    assert got, "the greeting recorded by phone was not installed"
    try:
        with RtpReceiver() as heard:  # alice calls bob: his mailbox greets her with what he recorded
            assert sipp.caller(alice, "202", hold_ms=2500, listen_rtp=heard.port).ok
        assert heard_tone(heard, 500.0) >= 1.0, "the new greeting was not heard"
    finally:
        node.rpc("voicemail.greeting_delete", id=box["id"], kind="unavailable")


def test_the_owner_calls_back_who_left_a_message(node, office):
    """Key 3 after a message: the mailbox asks bob's phone (REFER) to call alice, then ends its call."""
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    for m in messages(node, box["id"]):  # alice's message only
        node.rpc("voicemail.delete", id=m["id"])
    assert sipp.caller(alice, "202", hold_ms=3000).ok
    wait_for(lambda: messages(node, box["id"]), timeout=15)
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    with RtpReceiver() as rx:
        call = sipp.caller_in_background(bob, "*98", expect="refer", refer_to=r"sip:201@mailbox\.example",
                                         bye_within_ms=40000, listen_rtp=rx.port, timeout_s=60)
        rx.send_dtmf("2468#")
        assert wait_for(lambda: heard_tone(rx, 440.0) >= 0.3, timeout=20), "the message was not played"
        rx.send_dtmf("3")
        result = call.result(timeout=60)
    assert result.ok, result.output[-2000:]


def test_the_owner_changes_the_pin_by_phone(node, office):
    sipp, alice, box = office["sipp"], office["alice"], office["box"]
    if not messages(node, box["id"]):
        assert sipp.caller(alice, "202", hold_ms=3000).ok
        wait_for(lambda: messages(node, box["id"]), timeout=15)
    bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
    try:
        rx, call = listen_call(office, bob)
        try:
            rx.send_dtmf("2468#")
            rx.send_dtmf("05")  # the options, then a new PIN
            rx.send_dtmf("12#")  # too short: asked again
            rx.send_dtmf("97531#97531#")  # twice alike: changed
            time.sleep(1.0)
            rx.send_dtmf("#")  # goodbye
            assert call.result(timeout=60).ok
        finally:
            rx.__exit__(None, None, None)
        # the old PIN no longer opens the mailbox; the new one does (and plays the message)
        rx, call = listen_call(office, bob)
        try:
            rx.send_dtmf("2468#")
            time.sleep(1.5)
            rx.send_dtmf("97531#")
            assert wait_for(lambda: heard_tone(rx, 440.0) >= 0.3, timeout=20), "the new PIN did not open the mailbox"
            rx.send_dtmf("#")
            assert call.result(timeout=60).ok
        finally:
            rx.__exit__(None, None, None)
    finally:
        node.rpc("voicemail.set_pin", id=box["id"], pin="2468")


def test_a_call_a_users_mobile_forwards_to_the_central_voicemail_is_a_message_in_their_mailbox(node, office):
    """VM-08: the carrier delivers a call the mobile forwarded (Diversion: the mobile); bob's mailbox takes it."""
    from tests.scenario.conftest import CARRIER_IP

    sipp, box, tenant = office["sipp"], office["box"], office["tenant"]
    carrier = sipp.carrier(CARRIER_IP)
    trunk = node.rpc("trunk.create", name="vm-carrier", host=carrier.ip, port=carrier.port, transport="udp",
                     tenant_ids=[tenant["id"]])
    block = node.rpc("number_block.create", tenant_id=tenant["id"], first="+4930555700", size=10)
    number = node.rpc("number.assign", tenant_id=tenant["id"], e164="+4930555701", voicemail=True)
    node.rpc("user.update", id=office["bob"]["id"], mobile="+491711234567")
    wait_snapshot(node)
    try:
        before = {m["id"] for m in messages(node, box["id"])}
        result = sipp.carrier_call(carrier, "+4989123456", "+4930555701", hold_ms=3000,
                                   headers=("Diversion: <sip:+491711234567@mobile.example;user=phone>;reason=no-answer",))
        assert result.ok, result.output[-2000:]
        msg = wait_for(lambda: next((m for m in messages(node, box["id"]) if m["id"] not in before), None), timeout=15)
        assert msg is not None and msg["caller"] == "+4989123456"
        record = wait_for(lambda: next((c for c in node.rpc("cdr.list", limit=200)["items"]
                                        if c["callee"] == "+491711234567"), None), timeout=10)
        assert record is not None and any("central voicemail" in line for line in record["trace"]), record
        # forwarded by a number that is nobody's: not in service
        assert sipp.carrier_call(carrier, "+4989123456", "+4930555701", expect=404,
                                 headers=("Diversion: <sip:+491709999999@mobile.example>;reason=no-answer",)).ok
    finally:
        node.rpc("user.update", id=office["bob"]["id"], mobile="")
        node.rpc("number.release", id=number["id"])
        node.rpc("number_block.delete", id=block["id"])
        node.rpc("trunk.delete", id=trunk["id"])
        wait_snapshot(node)


def test_the_mailbox_extension_takes_messages_from_colleagues_and_lets_the_owner_listen(node, office):
    sipp, alice, box, tenant = office["sipp"], office["alice"], office["box"], office["tenant"]
    assert node.rpc("voicemail.box_update", id=box["id"], extension="2999")["extension"] == "2999"
    # the number is the mailbox's now: no user, group or other mailbox may take it, and it may not take theirs
    assert node.rpc_error("extension.create", number="2999", user_id=office["alice_user"]["id"])["data"]["error_id"] == "conflict"
    assert node.rpc_error("voicemail.box_update", id=box["id"], extension="201")["data"]["error_id"] == "conflict"
    wait_snapshot(node)
    try:
        before = {m["id"] for m in messages(node, box["id"])}
        assert sipp.caller(alice, "2999", hold_ms=3000).ok  # alice leaves bob a message directly
        msg = wait_for(lambda: next((m for m in messages(node, box["id"]) if m["id"] not in before), None), timeout=15)
        assert msg is not None and msg["caller"] == "201"
        bob = sipp.phone("bob", DOMAIN, "bob-secret-pw")
        assert sipp.caller(bob, "2999", hold_ms=1500).ok  # bob dials it: his mailbox asks for his PIN
        record = wait_for(lambda: next((c for c in node.rpc("cdr.list", limit=200)["items"]
                                        if c["callee"] == "2999" and "called by its owner" in " ".join(c["trace"])), None),
                          timeout=10)
        assert record is not None and record["disposition"] == "answered"
    finally:
        node.rpc("voicemail.box_update", id=box["id"], extension="")
        wait_snapshot(node)
