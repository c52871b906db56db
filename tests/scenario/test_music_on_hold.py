"""Music on hold (issue 23): the caller puts the call on hold (re-INVITE sendonly) and the callee hears the music —
RTPengine plays the node's music file to the held party — until the caller resumes (re-INVITE sendrecv); then the
music stops. Real Kamailio, RTPengine and SIPp; the callee's media goes to an RTP receiver that checks the tune."""

import pytest

from tests.harness.node import TestNode
from tests.harness.rtp import RtpReceiver
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_snapshot
from tests.scenario.test_announcements import tone

DOMAIN = "hold.example"
MUSIC_HZ = 800.0


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    music = tmp_path_factory.mktemp("music") / "tune.wav"
    tone(music, MUSIC_HZ, seconds=4.0)
    n = TestNode(tmp_path_factory.mktemp("hold") / "var", music_on_hold=True, music_file=str(music))
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def phones(node, tmp_path_factory):
    tenant = node.rpc("tenant.create", name="Hold AG", sip_domain=DOMAIN)
    for name, ext in (("alice", "201"), ("bob", "202")):
        user = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("sip_account.create", user_id=user["id"], username=name, password=f"{name}-secret-pw1")
        node.rpc("extension.create", number=ext, user_id=user["id"])
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    return sipp, sipp.phone("alice", DOMAIN, "alice-secret-pw1"), sipp.phone("bob", DOMAIN, "bob-secret-pw1")


def test_the_held_party_hears_the_music_until_the_call_is_resumed(node, phones):
    sipp, alice, bob = phones
    assert sipp.register(bob).ok
    with RtpReceiver() as bob_hears:
        callee = sipp.callee(bob, "hold", sdp_port=str(bob_hears.port))
        result = sipp.caller(alice, "202", expect="hold", hold_ms=1000, held_ms=3000, resumed_ms=1500)
        assert result.ok, result.output[-2000:]
        assert sipp.wait(callee).ok, callee.stdout.read()[-2000:] if callee.stdout else ""
    # what Bob heard while held: the tune, for about the time he was held; after the resume, no more of it
    tune = [(t, d) for t, d in bob_hears.packets]
    assert bob_hears.tone_share(MUSIC_HZ) > 0.5, (bob_hears.seconds(), len(tune))
    assert 2.0 <= bob_hears.seconds() <= 4.0, bob_hears.seconds()
    last = max(t for t, _ in tune)
    first = min(t for t, _ in tune)
    assert last - first <= 3.6, last - first  # it stopped with the resume (the call went on 1.5 s after it)
