"""Hostile and unusual SIP at a real node: every request gets its answer or a deliberate drop, never silence to a
Python exception (issue 17). Each test sends from its own loopback addresses (127.0.1.x; 127.0.0.1 is exempt)."""
from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid

import httpx
import pytest

from tests.harness.raw_sip import DigestClient, Reply

from .conftest import cdrs_for, wait_for, wait_snapshot

_src = itertools.count(10)
FAULT = "X-Callmanager-Test-Fault"  # the test nodes' fault header (tests/harness/node.py): the routing raises


def source() -> str:
    return f"127.0.1.{next(_src)}"


def build(src: str, port: int, *, method: str = "OPTIONS", ruri: str = "sip:100@scenario.example", version: str = "SIP/2.0",
          proto: str = "UDP", cseq: str | None = None, call_id: bytes | None = None, extra: bytes = b"", body: bytes = b"",
          content_length: int | None = None, max_forwards: bytes | None = b"70") -> bytes:
    head = (f"{method} {ruri} {version}\r\nVia: SIP/2.0/{proto} {src}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            f"From: <sip:tester@scenario.example>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:100@scenario.example>\r\n").encode()
    head += b"Call-ID: " + (call_id or uuid.uuid4().hex.encode()) + b"\r\n" + f"CSeq: {cseq or '1 ' + method}\r\n".encode()
    if max_forwards is not None:
        head += b"Max-Forwards: " + max_forwards + b"\r\n"
    length = b"" if content_length == -1 else b"Content-Length: " + str(len(body) if content_length is None else content_length).encode() + b"\r\n"
    return head + extra + length + b"\r\n" + body


def send_udp(node, timeout: float = 2.0, **kw) -> Reply | None:
    src = source()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.sendto(build(src, s.getsockname()[1], **kw), node.sip)
        return _final(s)


def send_tcp(node, timeout: float = 3.0, **kw) -> Reply | None:
    src = source()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(node.sip)
        s.sendall(build(src, s.getsockname()[1], proto="TCP", **kw))
        return _final(s)


def _final(s: socket.socket) -> Reply | None:
    while True:
        try:
            data = s.recv(65535)
        except socket.timeout:
            return None
        if not data:
            return None
        reply = Reply(data.decode("utf-8", "replace"))
        if reply.code >= 200:
            return reply


HOSTILE = {  # name: (transport, request, expected final code; None: dropped before the script, see docs/security.md)
    "User-Agent not UTF-8": ("udp", dict(extra=b"User-Agent: phone \xff\xfe/1.0\r\n"), 407),
    "unknown header not UTF-8": ("udp", dict(extra=b"X-Weird: \xc3\x28 \x80\r\n"), 407),
    "display name not UTF-8": ("udp", dict(extra=b"Contact: \"J\xf6rg\" <sip:j@127.0.1.1>\r\n"), 407),
    "Call-ID with a space": ("udp", dict(call_id=b"abc victim"), 407),
    "Call-ID not UTF-8": ("udp", dict(call_id=b"abc\xffdef"), 407),
    "NUL in a header": ("udp", dict(extra=b"User-Agent: a\x00b\r\n"), 407),
    "9 KB User-Agent": ("udp", dict(extra=b"User-Agent: " + b"u" * 9000 + b"\r\n"), 407),
    "8 KB header": ("udp", dict(extra=b"X-Eight: " + b"e" * 8192 + b"\r\n"), 407),
    "100 Via headers": ("udp", dict(extra=b"".join(b"Via: SIP/2.0/UDP 198.18.0.%d:%d;branch=z9hG4bKv%d\r\n" % (i % 250 + 1, 5000 + i, i)
                                                   for i in range(100))), 407),
    "16 KB over TCP": ("tcp", dict(extra=b"X-Sixteen: " + b"s" * 16000 + b"\r\n"), 407),
    "60 KB over TCP": ("tcp", dict(extra=b"".join(b"X-H%d: " % i + b"h" * 1000 + b"\r\n" for i in range(60))), 407),
    "quoted digest username with a space and bytes not UTF-8": (
        "udp", dict(method="REGISTER", ruri="sip:scenario.example", extra=b'Contact: <sip:x@127.0.1.1>\r\nAuthorization: Digest '
                    b'username="a \xff b", realm="scenario.example", nonce="abc", uri="sip:scenario.example", response="0"\r\n'), 401),
    "Request-URI of an unknown scheme": ("udp", dict(ruri="http://scenario.example/"), 416),
    "Request-URI that does not parse": ("udp", dict(ruri="sip:@@@:99999999"), 400),
    "CSeq method not the request's": ("udp", dict(cseq="1 INVITE"), 400),
    "CSeq not a number": ("udp", dict(cseq="x OPTIONS"), 400),
    "Content-Length beyond the body": ("udp", dict(body=b"abc", content_length=10), 400),
    "no Content-Length over TCP": ("tcp", dict(content_length=-1), 400),
    "Expires not a number": ("udp", dict(method="REGISTER", ruri="sip:scenario.example", extra=b"Expires: soon\r\n"), 400),
    "Max-Forwards 0": ("udp", dict(max_forwards=b"0"), 483),
    "Proxy-Require": ("udp", dict(extra=b"Proxy-Require: foo\r\n"), 420),
    "REGISTER with Require, no credentials": ("udp", dict(method="REGISTER", ruri="sip:scenario.example", extra=b"Require: path\r\n"), 401),
    "unknown method": ("udp", dict(method="FROB"), 405),
    "CANCEL matching nothing": ("udp", dict(method="CANCEL"), 481),
    "SIP version 3.0": ("udp", dict(version="SIP/3.0"), None),
}


@pytest.fixture(scope="module")
def served(node, tenant):
    """The tenant's domain is in the workers' snapshot (REGISTERs for it are challenged, not refused)."""
    wait_snapshot(node)
    return tenant


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_and_unusual_requests_get_their_answer(node, served, name):
    transport, kw, expected = HOSTILE[name]
    reply = (send_tcp if transport == "tcp" else send_udp)(node, **kw)
    if expected is None:
        assert reply is None  # Kamailio's core parser drops it before the script runs (docs/security.md)
        return
    assert reply is not None, f"{name}: no answer"
    assert reply.code == expected, f"{name}: {reply.code} {reply.reason}"
    if expected == 420:
        assert reply.headers.get("unsupported") == "foo"
    assert reply.code != 500


def test_the_node_answers_and_logged_no_unhandled_exception_after_the_hostile_requests(node):
    reply = send_udp(node, ruri=f"sip:{node.sip[0]}:{node.sip[1]}")
    assert reply is not None and reply.code == 200
    log = (node.settings.log_dir / "kamailio.log").read_text(errors="replace")
    assert "Unhandled exception" not in log
    assert all("fault injected" in line for line in log.splitlines() if "route failed" in line)


def test_an_authenticated_register_requiring_extensions_gets_420_listing_them_and_registers_nothing(node, tenant, make_user):
    user, _, phone = make_user()
    wait_snapshot(node)
    client = DigestClient(node.sip, source())
    client.extra_headers = "Require: path, gruu\r\n"
    first, second = client.attempt(phone.user, tenant["sip_domain"], phone.password)
    assert first.code == 401 and second is not None and second.code == 420
    assert second.headers.get("unsupported") == "path, gruu"
    client.extra_headers = ""
    client.close()
    aors = [a for d in node.kamailio_rpc("ul.dump", "brief").get("Domains", []) for a in d.get("Domain", {}).get("AoRs", [])]
    assert not any(phone.user in str(a) for a in aors)  # nothing was registered


def _banned(node) -> set[str]:
    return {b["source"] for b in node.rpc("fraud.bans")["items"]}


@pytest.mark.parametrize("user_agent", [b"friendly-scanner \xff\xfe", b"Mozilla " + b"x" * 9000 + b" sipvicious"])
def test_a_scanner_named_in_a_user_agent_not_utf8_or_too_large_for_one_read_is_banned(node, user_agent):
    src = source()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.settimeout(1.0)
        s.sendto(build(src, s.getsockname()[1], extra=b"User-Agent: " + user_agent + b"\r\n"), node.sip)
        assert _final(s) is None  # a scanner: not a word back
        assert src in _banned(node)
        for call_id in (b"abc victim", b"x\xff y"):  # banned: whatever the Call-ID holds, nothing is answered
            s.sendto(build(src, s.getsockname()[1], call_id=call_id), node.sip)
            assert _final(s) is None
    node.rpc("fraud.lift_ban", source=src, reason="test")


def test_a_routing_exception_is_answered_500_with_retry_after_logged_once_and_counted(node):
    def errors() -> float:
        text = httpx.get(node.settings.api_url.rsplit("/", 1)[0] + "/metrics", timeout=5).text
        line = next((x for x in text.splitlines() if x.startswith('callmanager_routing_errors_total{') and 'route="request"' in x), "")
        return float(line.rsplit(" ", 1)[1]) if line else -1.0

    before = errors()
    assert before >= 0  # exported from the start, at 0
    call_ids = []
    for method in ("OPTIONS", "INVITE"):
        call_id = f"fault-{uuid.uuid4().hex[:8]}"
        call_ids.append(call_id)
        reply = send_udp(node, method=method, call_id=call_id.encode(), extra=f"{FAULT}: 1\r\n".encode())
        assert reply is not None and reply.code == 500 and reply.reason == "Server Internal Error"
        assert reply.headers.get("retry-after") == "5"
    assert send_udp(node, method="ACK", extra=f"{FAULT}: 1\r\n".encode(), timeout=1.0) is None  # an ACK has no answer
    assert wait_for(lambda: errors() >= before + 3, timeout=5)
    log = (node.settings.log_dir / "kamailio.log").read_text(errors="replace")
    for call_id in call_ids:
        lines = [x for x in log.splitlines() if "route failed" in x and call_id in x]
        assert len(lines) == 1 and "RuntimeError: fault injected" in lines[0] and "routes.py" in lines[0]


class BusyPhone:
    """A registered phone (raw UDP) that answers every INVITE `486 Busy` with a reason phrase that is not UTF-8."""

    def __init__(self, node, user: str, domain: str, password: str):
        self.client = DigestClient(node.sip, source(), timeout=2.0)
        _, ok = self.client.attempt(user, domain, password)
        assert ok is not None and ok.code == 200
        self.client.sock.settimeout(0.3)
        self.done = threading.Event()
        self.invites = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.done.is_set():
            try:
                data, peer = self.client.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if not data.startswith(b"INVITE "):
                continue
            self.invites += 1
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
            keep = [h for h in head if h.split(b":", 1)[0].strip().lower() in (b"via", b"from", b"call-id", b"cseq")]
            to = next(h for h in head if h.split(b":", 1)[0].strip().lower() == b"to") + b";tag=busy1"
            self.client.sock.sendto(b"SIP/2.0 486 Busy \xff\xfe Here\r\n" + b"\r\n".join(keep + [to]) + b"\r\nContent-Length: 0\r\n\r\n", peer)

    def close(self) -> None:
        self.done.set()
        self.thread.join(2)
        self.client.close()


def test_a_failure_whose_reason_phrase_is_not_utf8_still_reaches_the_caller_with_its_record(node, tenant, make_user):
    callee, ext, _ = make_user()
    acc = node.rpc("sip_account.list", user_id=callee["id"])["items"][0]
    password = f"pw-{acc['username'][1:]}-secret"
    caller, _, caller_phone = make_user()
    wait_snapshot(node)
    phone = BusyPhone(node, acc["username"], tenant["sip_domain"], password)
    try:
        caller_acc = node.rpc("sip_account.list", user_id=caller["id"])["items"][0]
        client = DigestClient(node.sip, "127.0.0.1", timeout=5.0)
        _, final = client.attempt(caller_acc["username"], tenant["sip_domain"], f"pw-{caller_acc['username'][1:]}-secret",
                                  method="INVITE", dial=ext)
        client.close()
    finally:
        phone.close()
    assert phone.invites >= 1
    assert final is not None and final.code == 486
    log = (node.settings.log_dir / "kamailio.log").read_text(errors="replace")
    assert all("fault injected" in line for line in log.splitlines() if "route failed" in line)
    records = wait_for(lambda: [c for c in node.rpc("cdr.list", user_id=callee["id"])["items"] if c["sip_code"] == 486], timeout=5)
    assert records, "the failed call has its CDR"
    assert records[0]["sip_reason"] == "Busy \\xff\\xfe Here"  # the bytes that are not UTF-8 kept as escapes


def test_kamailios_rpc_answers_only_the_nodes_control_plane(node):
    """Anyone on the machine could lift bans or end calls through Kamailio's RPC listener; it now answers only requests
    that carry the node's secret (var/kamailio-rpc.secret, mode 0600)."""
    import stat

    import httpx

    url = node.settings.kamailio_rpc_url
    body = {"jsonrpc": "2.0", "method": "htable.seti", "params": ["cmerr", "rpc-probe", 7], "id": 1}
    for headers in ({}, {"X-Callmanager-Rpc-Key": "guess"}, {"X-Callmanager-Rpc-Key": ""}):
        r = httpx.post(url, json=body, headers=headers, timeout=5)
        assert r.status_code == 401, (headers, r.status_code, r.text)
    items = {i["name"]: i["value"] for slot in node.kamailio_rpc("htable.dump", "cmerr") or [] for i in slot.get("slot", [])}
    assert "rpc-probe" not in items  # nothing was written; the secret opens it (the call above went through)
    assert stat.S_IMODE(node.settings.rpc_secret_path.stat().st_mode) == 0o600
    assert "items" in node.rpc("call.list")  # the control plane reaches Kamailio as before
