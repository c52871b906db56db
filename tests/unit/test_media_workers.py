"""The media server's parent (mediaserver/workers.py): which worker a probe's answer comes from, and when a worker
that stopped answering counts as hung."""

from mediaserver.workers import HANG_S, START_GRACE_S, answered_worker, hung


def test_a_probes_answer_names_its_worker_and_anything_else_names_none():
    ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\nCall-ID: probe-3-abc123\r\nCSeq: 1 OPTIONS\r\n\r\n"
    assert answered_worker(ok, "abc123") == 3
    assert answered_worker(ok.replace(b"Call-ID", b"i"), "abc123") == 3  # the compact form
    assert answered_worker(ok, "other") is None  # another parent's probe
    for bad in (b"", b"\xff\xfe", b"OPTIONS sip:x SIP/2.0\r\nCall-ID: probe-3-abc123\r\n\r\n",
                b"SIP/2.0 200 OK\r\nCall-ID: probe-x-abc123\r\n\r\n", b"SIP/2.0 200 OK\r\nCall-ID: call-1\r\n\r\n"):
        assert answered_worker(bad, "abc123") is None, bad


def test_a_worker_is_hung_after_hang_s_of_silence_and_a_new_one_gets_its_start():
    assert not hung(last_answer=100.0, started=50.0, now=100.0 + HANG_S - 0.1)
    assert hung(last_answer=100.0, started=50.0, now=100.0 + HANG_S + 0.1)
    # started again after the last answer its predecessor gave: it has the start grace
    assert not hung(last_answer=100.0, started=200.0, now=200.0 + START_GRACE_S - 1)
    assert hung(last_answer=100.0, started=200.0, now=200.0 + START_GRACE_S + 1)
