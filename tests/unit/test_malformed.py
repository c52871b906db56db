"""What the node answers itself to malformed or unsupported requests, and the exception barrier's pure parts."""
from hypothesis import given, strategies as st

from kemi.policy.routing import malformed, unsupported_require
from kemi.shell import barrier


def test_schemes_the_node_cannot_route_get_416():
    for uri in ("http://x.example/", "urn:service:sos", "mailto:a@b.example", "im:alice@x.example"):
        r = malformed(uri, False, "udp", "0")
        assert r.code == 416 and "cannot route" in r.warning
    assert malformed("urn:service:counseling", True, "udp", "0").code == 416


def test_an_emergency_urn_passes_to_the_routing():
    for uri in ("urn:service:sos", "URN:Service:SOS", "urn:service:sos.police", "urn:service:sos.ambulance"):
        assert malformed(uri, True, "udp", "0") is None, uri


def test_a_routable_uri_that_does_not_parse_gets_400():
    r = malformed("sip:@@@:99999999", False, "udp", "0")
    assert (r.code, r.reason) == (400, "Bad Request-URI")
    assert malformed("", False, "udp", "0").code == 400


def test_stream_transports_need_a_content_length():
    for proto in ("tcp", "TLS"):
        r = malformed("sip:100@x.example", True, proto, "")
        assert (r.code, r.reason) == (400, "Missing Content-Length")
    assert malformed("sip:100@x.example", True, "udp", "") is None  # optional over UDP
    for proto in ("ws", "WSS"):  # each SIP message is one WebSocket message (RFC 7118): framed without it
        assert malformed("sip:100@x.example", True, proto, "") is None
    assert malformed("sip:100@x.example", True, "tcp", "0") is None


def test_ordinary_requests_pass():
    for uri in ("sip:100@x.example", "SIPS:100@x.example;transport=tls", "tel:+493012345"):
        assert malformed(uri, True, "udp", "0") is None


@given(st.text(max_size=80), st.booleans(), st.text(max_size=5), st.text(max_size=5))
def test_the_verdict_never_raises_and_is_a_client_error(uri, parsed, proto, cl):
    r = malformed(uri, parsed, proto, cl)
    assert r is None or r.code in (400, 416)


def test_a_register_requiring_extensions_gets_420_listing_them():
    r = unsupported_require("REGISTER", "path, gruu,path")
    assert r.code == 420 and r.headers == ("Unsupported: path, gruu",)


def test_require_is_judged_on_register_only():
    assert unsupported_require("INVITE", "100rel") is None  # relayed: the far end answers what it requires
    assert unsupported_require("REGISTER", "") is None
    assert unsupported_require("REGISTER", "path", frozenset({"path"})) is None


def test_the_barrier_logs_one_ascii_line_with_where_it_failed():
    def deep():
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    try:
        deep()
    except UnicodeDecodeError as exc:
        line = barrier.describe("request", "INVITE", "abc\udcff victim", exc)
    assert line.endswith("\n") and line.count("\n") == 1
    line.encode("ascii")
    assert "request route failed on INVITE" in line and "abc\\udcff victim" in line
    assert "UnicodeDecodeError" in line and "test_malformed.py" in line and " deep" in line


def test_the_barrier_turns_an_exception_into_a_counted_failure_and_passes_results_through():
    seen = []
    real = barrier._failed[0]
    barrier._failed[0] = lambda route, exc: seen.append((route, type(exc).__name__))
    try:
        assert barrier.guard("failure", lambda: 1 / 0) == 1
        assert barrier.guard("request", lambda: None) == 1
        assert barrier.guard("request", lambda x: x, 0) == 0
    finally:
        barrier._failed[0] = real
    assert seen == [("failure", "ZeroDivisionError")]


def test_session_timers_give_the_call_its_lifetime_within_the_call_limit():
    from kemi.policy.routing import session_lifetime

    assert session_lifetime("1800;refresher=uac", 43200) == 1832
    assert session_lifetime(" 300 ", 43200) == 332
    assert session_lifetime("30", 43200) == 122  # below RFC 4028's minimum: counts as 90
    assert session_lifetime("99999", 3600) == 3600  # never past the call limit
    for bad in ("", "abc", "-5", "²", "1" * 20, ";refresher=uas"):
        assert session_lifetime(bad, 43200) is None
