"""SIP over TLS (issue 24, docs/tls.md): a phone registers and calls over TLS, checking the node's certificate; only
TLS 1.2+ with modern ciphers is spoken; the certificate is reported, reloaded without a restart after a renewal, and a
broken or expired one is refused with the old one kept. Real Kamailio (tls module), RTPengine, SIPp and a pjsua2
phone (Debian's SIPp has no TLS)."""

import concurrent.futures
import hashlib
import socket
import ssl
import time

import httpx
import pytest

from controlplane.node import tls
from tests.harness.node import TestNode
from tests.harness.pj_phone import PjPhone
from tests.harness.ports import free_port
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "tls.example"
PROVIDER, ROGUE = "127.0.0.3", "127.0.0.4"  # a provider's TLS server the node trusts, and one it does not
EXPIRED = "127.0.0.5"  # a provider the node trusts whose certificate has expired


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    tls.make_self_signed(d / "node.crt", d / "node.key", "sip.tls.example", ["127.0.0.1"])
    tls.make_self_signed(d / "provider.crt", d / "provider.key", "sip.provider.example", [PROVIDER])
    tls.make_self_signed(d / "rogue.crt", d / "rogue.key", "sip.provider.example", [ROGUE])
    # trusted (in the CA file) but ended a year ago: valid for 30 days from 400 days ago
    tls.make_self_signed(
        d / "expired.crt", d / "expired.key", "sip.expired.example", [EXPIRED], days=30, now=time.time() - 400 * 86400
    )
    # the CAs the node trusts for trunks
    (d / "providers.pem").write_bytes((d / "provider.crt").read_bytes() + (d / "expired.crt").read_bytes())
    return d


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components, certs):
    n = TestNode(
        tmp_path_factory.mktemp("tls") / "var",
        tls_certificate=str(certs / "node.crt"),
        tls_private_key=str(certs / "node.key"),
        tls_ca_file=str(certs / "providers.pem"),
        trunk_tls_check_s=1.0,
    )
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def people(node, tmp_path_factory):
    tenant = node.rpc("tenant.create", name="TLS AG", sip_domain=DOMAIN)
    for name, ext in (("alice", "201"), ("bob", "202")):
        user = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("sip_account.create", user_id=user["id"], username=name, password=f"{name}-secret-pw1")
        node.rpc("extension.create", number=ext, user_id=user["id"])
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    return sipp, sipp.phone("bob", DOMAIN, "bob-secret-pw1")


def served(node, **ctx_options) -> tuple[str, str]:
    """(sha256 of the certificate the TLS listener presents, protocol version) for a fresh connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in ctx_options.items():
        if k == "ciphers":
            ctx.set_ciphers(v)
        else:
            setattr(ctx, k, v)
    with socket.create_connection(node.sip_tls, timeout=5) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
        fp = hashlib.sha256(der).hexdigest().upper()
        return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)), s.version()


def options_over(s: ssl.SSLSocket, host: str, port: int, n: int) -> str:
    lp = s.getsockname()[1]
    s.sendall(
        (
            f"OPTIONS sip:{host}:{port};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {host}:{lp};branch=z9hG4bK-o{n}\r\n"
            f"From: <sip:probe@{host}>;tag=p{n}\r\nTo: <sip:{host}>\r\nCall-ID: tls-probe-{n}\r\nCSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    s.settimeout(5)
    return s.recv(4096).decode(errors="replace")


def metrics(node) -> str:
    return httpx.get(f"http://{node.settings.api_address}:{node.settings.api_port}/metrics", timeout=10).text


def test_a_phone_registers_and_calls_over_tls_checking_the_nodes_certificate(node, people, certs):
    sipp, bob = people
    assert sipp.register(bob).ok
    alice = PjPhone.start(
        node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", ca=str(certs / "node.crt")
    )
    try:
        assert alice.register() == 200
        callee = sipp.callee(bob)
        assert alice.call(f"sip:202@{DOMAIN}") == 200
        time.sleep(1.5)
        (st,) = alice.stats()
        assert st["tx"] > 10 and st["rx"] > 10, st  # audio both ways (SIPp echoes it)
        alice.hangup()
        alice.ended()
        assert sipp.wait(callee).ok
        # and the other way: a plain phone calls the TLS phone, which the node reaches over its TLS connection
        call = sipp.caller_in_background(bob, "201", hold_ms=2500)
        alice.incoming()
        alice.answer()
        time.sleep(1.0)
        (st,) = alice.stats()
        assert st["rx"] > 10 and st["tx"] > 10, st
        assert call.result(timeout=30).ok
    finally:
        alice.close()
    records = node.rpc("cdr.list", tenant_id=node.rpc("tenant.list")["items"][-1]["id"])["items"]
    assert [r["disposition"] for r in records[:2]] == ["answered", "answered"]


def test_a_phone_that_does_not_trust_the_certificate_gets_nowhere(node, tmp_path):
    other = tmp_path / "other.crt"
    tls.make_self_signed(other, tmp_path / "other.key", "elsewhere", [])
    phone = PjPhone.start(node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", ca=str(other))
    try:
        code = phone.register()
        assert code not in (200, 401, 407), code  # the handshake fails at the phone: the registrar never asked
    finally:
        phone.close()


def test_only_tls_12_and_up_with_forward_secret_ciphers(node):
    fp, version = served(node)
    assert version in ("TLSv1.2", "TLSv1.3")
    fp, version = served(node, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    with pytest.raises((ssl.SSLError, ConnectionResetError)):  # TLS 1.1 offered (and allowed by this client)
        served(
            node,
            maximum_version=ssl.TLSVersion.TLSv1_1,
            minimum_version=ssl.TLSVersion.TLSv1,
            ciphers="ALL:@SECLEVEL=0",
        )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):  # TLS 1.2 with CBC-SHA1 suites only
        served(node, maximum_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA")


def test_status_reload_after_a_renewal_and_broken_files_refused(node, certs):
    before = node.rpc("tls.status")
    assert before["configured"] and before["certificate"]["names"] == ["sip.tls.example", "127.0.0.1"]
    assert served(node)[0] == before["certificate"]["sha256"]
    assert "callmanager_tls_certificate_valid 1.0" in metrics(node)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(node.sip_tls, timeout=5) as raw, ctx.wrap_socket(raw) as kept:
        assert options_over(kept, *node.sip_tls, 1).startswith("SIP/2.0 200")
        # a renewal: new files in place, reloaded — no restart
        renewed = tls.make_self_signed(certs / "node.crt", certs / "node.key", "sip.tls.example", ["127.0.0.1"])
        after = node.rpc("tls.reload")
        assert after["certificate"]["sha256"] == renewed.sha256 != before["certificate"]["sha256"]
        assert served(node)[0] == renewed.sha256
        assert options_over(kept, *node.sip_tls, 2).startswith("SIP/2.0 200")  # an open connection goes on
        expiry = [ln for ln in metrics(node).splitlines() if ln.startswith("callmanager_tls_certificate_expiry")]
        assert expiry and abs(float(expiry[0].rsplit(" ", 1)[1]) - renewed.not_after) < 1, expiry
        # a key that does not belong: refused, nothing changes
        good_key = (certs / "node.key").read_bytes()
        tls.make_self_signed(certs / "x.crt", certs / "node.key", "x", [])
        try:
            err = node.rpc_error("tls.reload")
            assert err["data"]["error_id"] == "tls_invalid" and "does not belong" in err["message"], err
            assert served(node)[0] == renewed.sha256
            assert wait_for(lambda: "callmanager_tls_certificate_valid 0.0" in metrics(node), timeout=5)
        finally:
            (certs / "node.key").write_bytes(good_key)
        # an expired certificate: refused too
        good_cert = (certs / "node.crt").read_bytes()
        tls.make_self_signed(
            certs / "node.crt", certs / "node.key", "sip.tls.example", [], days=30, now=time.time() - 60 * 86400
        )
        try:
            err = node.rpc_error("tls.reload")
            assert err["data"]["error_id"] == "tls_invalid" and "expired" in err["message"], err
            assert served(node)[0] == renewed.sha256
        finally:
            (certs / "node.crt").write_bytes(good_cert)
            (certs / "node.key").write_bytes(good_key)
    assert wait_for(lambda: "callmanager_tls_certificate_valid 1.0" in metrics(node), timeout=5)
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    out = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["--url", node.settings.api_url, "--token", node.token, "tls", "status"]
    )
    assert out.exit_code == 0 and renewed.sha256 in out.output and "days left" in out.output, out.output


def test_calls_out_over_a_tls_trunk_and_a_provider_certificate_the_node_does_not_trust(node, people, certs):
    """Two TLS trunks: the first (priority 1) presents a certificate the node's CA file does not vouch for, the second
    a trusted one. The check names the bad trunk and why, in the log and as metrics; a call fails over to the good
    one, which takes it over TLS."""
    tenant_id = node.rpc("tenant.list")["items"][-1]["id"]
    node.rpc("site.create", tenant_id=tenant_id, name="Berlin", region="DE", area_code="30")
    good_port, bad_port = free_port(PROVIDER), free_port(ROGUE)
    provider = PjPhone.provider(PROVIDER, good_port, str(certs / "provider.crt"), str(certs / "provider.key"))
    rogue = PjPhone.provider(ROGUE, bad_port, str(certs / "rogue.crt"), str(certs / "rogue.key"))
    made = [
        node.rpc("trunk.create", name="rogue-tls", host=ROGUE, port=bad_port, transport="tls", priority=1),
        node.rpc("trunk.create", name="provider-tls", host=PROVIDER, port=good_port, transport="tls", priority=2),
    ]
    alice = PjPhone.start(
        node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", ca=str(certs / "node.crt")
    )
    try:
        # a check may run between the two trunk.create calls and see only the first trunk: wait for one that saw both
        checked = (
            'callmanager_trunk_tls_ok{trunk="rogue-tls"} 0.0',
            'callmanager_trunk_tls_ok{trunk="provider-tls"} 1.0',
        )
        assert wait_for(lambda: all(m in metrics(node) for m in checked), timeout=15), metrics(node)[-3000:]
        text = metrics(node)
        expiry = [
            ln
            for ln in text.splitlines()
            if ln.startswith('callmanager_trunk_tls_certificate_expiry_timestamp_seconds{trunk="provider-tls"}')
        ]
        assert expiry and abs(float(expiry[0].rsplit(" ", 1)[1]) - tls.inspect(certs / "provider.crt").not_after) < 1
        log = (node.settings.log_dir / "controlplane.log").read_text()
        assert f"trunk rogue-tls (tls {ROGUE}:{bad_port}): certificate verify failed" in log, log[-2000:]
        assert alice.register() == 200
        answered = concurrent.futures.ThreadPoolExecutor(1).submit(lambda: (provider.incoming(30), provider.answer()))
        assert alice.call(f"sip:0891234567@{DOMAIN}", timeout=30) == 200  # after the rogue trunk's timeout
        answered.result(timeout=10)
        time.sleep(1.0)
        (st,) = alice.stats()
        assert st["rx"] > 10 and st["tx"] > 10, st
        alice.hangup()
        assert "incoming" not in [e.get("event") for e in rogue.seen]  # the rogue never got the call
    finally:
        for phone in (alice, provider, rogue):
            phone.close()
        for t in made:
            node.rpc("trunk.delete", id=t["id"])
    record = wait_for(
        lambda: next(
            (r for r in node.rpc("cdr.list", tenant_id=tenant_id)["items"] if r["callee"] == "+49891234567"), None
        )
    )
    assert record["disposition"] == "answered" and "provider-tls" in " ".join(record["trace"]), record


def test_a_tls_trunk_whose_certificate_expired_is_named_and_never_gets_a_call(node, people, certs):
    """The provider is trusted (its certificate is in the CA file) but its certificate ended: the check says so in
    the log and the metrics, and Kamailio's own handshake refuses it too — the call fails, the provider hears nothing."""
    tenant_id = node.rpc("tenant.list")["items"][-1]["id"]
    if not node.rpc("site.list", tenant_id=tenant_id)["items"]:  # numbers need the site's region (run alone)
        node.rpc("site.create", tenant_id=tenant_id, name="Berlin", region="DE", area_code="30")
    port = free_port(EXPIRED)
    provider = PjPhone.provider(EXPIRED, port, str(certs / "expired.crt"), str(certs / "expired.key"))
    trunk = node.rpc("trunk.create", name="expired-tls", host=EXPIRED, port=port, transport="tls", priority=1)
    alice = PjPhone.start(
        node.sip_tls, "alice", DOMAIN, "alice-secret-pw1", transport="tls", ca=str(certs / "node.crt")
    )
    try:
        assert wait_for(lambda: 'callmanager_trunk_tls_ok{trunk="expired-tls"} 0.0' in metrics(node), timeout=15)
        expiry = [
            ln
            for ln in metrics(node).splitlines()
            if ln.startswith('callmanager_trunk_tls_certificate_expiry_timestamp_seconds{trunk="expired-tls"}')
        ]
        assert not expiry or float(expiry[0].rsplit(" ", 1)[1]) < time.time()
        log = (node.settings.log_dir / "controlplane.log").read_text()
        assert f"trunk expired-tls (tls {EXPIRED}:{port}): certificate verify failed: certificate has expired" in log, (
            log[-2000:]
        )
        assert alice.register() == 200
        assert alice.call(f"sip:0891234568@{DOMAIN}", timeout=40) != 200
        assert "incoming" not in [e.get("event") for e in provider.seen]
    finally:
        for phone in (alice, provider):
            phone.close()
        node.rpc("trunk.delete", id=trunk["id"])
