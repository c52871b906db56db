"""A draining node takes no new work (503 + Retry-After), keeps the work it has, and still takes emergency calls."""
from kemi.policy import drain


def test_new_requests_are_refused_with_503_and_retry_after():
    for method in ("INVITE", "REGISTER", "SUBSCRIBE", "OPTIONS", "MESSAGE"):
        r = drain.refuse_new(method, "sip:201@pbx.example", "201", ["DE"], 120)
        assert r is not None and r.code == 503 and "Retry-After: 120" in r.headers and "draining" in r.warning


def test_emergency_calls_are_still_taken_while_draining():
    assert drain.refuse_new("INVITE", "sip:112@pbx.example", "112", ["DE"], 120) is None
    assert drain.refuse_new("INVITE", "sip:999@pbx.example", "999", ["DE", "GB"], 120) is None
    assert drain.refuse_new("INVITE", "urn:service:sos", "", [], 120) is None
    assert drain.refuse_new("INVITE", "sip:911@pbx.example", "911", ["DE"], 120) is not None  # not an emergency number in DE
    assert drain.refuse_new("REGISTER", "sip:pbx.example", "112", ["DE"], 120) is not None  # only calls


def test_ack_and_cancel_belong_to_existing_transactions():
    assert drain.refuse_new("ACK", "sip:201@x", "201", ["DE"], 60) is None
    assert drain.refuse_new("CANCEL", "sip:201@x", "201", ["DE"], 60) is None


def test_retry_after_is_never_negative():
    assert "Retry-After: 0" in drain.refusal(-5).headers


def test_the_server_ping_is_answered_503_only_while_draining():
    assert drain.ping_answer(False, 120) is None
    r = drain.ping_answer(True, 30)
    assert r.code == 503 and "Retry-After: 30" in r.headers
