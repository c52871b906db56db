"""The control plane's HTTP server (controlplane/web, issue 24): HTTPS with the node's certificate and its reload, the
connection limit, the idle timeout — what an operator relies on when the API faces a network."""

import socket
import ssl
import threading
import time

import httpx
import pytest

from controlplane.cli import client
from controlplane.node import tls
from controlplane.node.settings import load_settings
from controlplane.server import ControlPlaneServer
from tests.api.conftest import Api
from tests.harness.ports import free_port


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(**overrides) -> ControlPlaneServer:
        settings = load_settings(env={}, var_dir=str(tmp_path / "var"), api_port=free_port(),
                                 kamailio_rpc_port=free_port(), rtpengine_ng_port=free_port(), **overrides)
        srv = ControlPlaneServer(settings, start_workers=False)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.shutdown()


def peer_fingerprint(settings) -> str:
    ctx = ssl.create_default_context(cafile=settings.api_verify)
    with socket.create_connection((settings.api_address, settings.api_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=settings.api_address) as s:
            import hashlib

            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def test_https_with_the_nodes_certificate_verified_by_cm_and_reloaded_without_a_restart(serve, monkeypatch):  # noqa: E501
    srv = serve(api_tls=True, sip_tls_port=0)
    s = srv.settings
    assert s.api_url.startswith("https://")
    cert, key = s.tls_files
    assert cert.exists()  # the self-signed pair, made by the control plane since nothing was configured
    token = srv.token_file.read_text().strip()
    monkeypatch.setenv("CM_CA", str(cert))  # cm checks the certificate (the self-signed one is its own CA)
    assert client.call("token.whoami", url=s.api_url, token=token)["platform"] is True
    with pytest.raises(httpx.ConnectError):  # ... and refuses a server it cannot verify
        httpx.post(s.api_url, json={}, timeout=5)
    with socket.create_connection((s.api_address, s.api_port), timeout=5) as raw:  # plain HTTP on the TLS port: no answer
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not raw.recv(100).startswith(b"HTTP/1.1 200")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS 1.1 and older are refused
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection((s.api_address, s.api_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw).do_handshake()

    before = peer_fingerprint(s)
    served = cert.with_name("served-before.crt")
    served.write_bytes(cert.read_bytes())
    tls.make_self_signed(cert, key, s.node_name, s.tls_addresses, now=time.time())  # a renewal on disk
    api = Api(s.api_url, token)
    api._client = httpx.Client(timeout=10, verify=ssl.create_default_context(cafile=str(served)))  # the API still serves the old one until the reload
    doc = api.ok("tls.reload")
    assert doc["api"] == s.api_base and doc["listener"] is None
    after = peer_fingerprint(s)
    assert after != before and after == doc["certificate"]["sha256"].replace(":", "").lower()


def test_beyond_the_connection_limit_a_request_is_answered_503(serve):
    srv = serve(api_max_connections=8)
    s = srv.settings
    held = [socket.create_connection((s.api_address, s.api_port), timeout=5) for _ in range(8)]
    try:
        time.sleep(0.3)
        r = httpx.get(s.api_url.replace("/rpc", "/health"), timeout=5)
        assert r.status_code == 503
    finally:
        for h in held:
            h.close()
    time.sleep(0.3)
    assert httpx.get(s.api_url.replace("/rpc", "/metrics"), timeout=5).status_code == 200  # served again


def test_an_idle_kept_alive_connection_is_closed_and_a_bad_path_named(serve):
    srv = serve(api_idle_timeout_s=1.0)
    s = srv.settings
    with socket.create_connection((s.api_address, s.api_port), timeout=10) as c:
        c.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"/phone/" not in first and (chunk := c.recv(4096)):  # headers and body may come in two segments
            first += chunk
        assert first.startswith(b"HTTP/1.1 404") and b"/phone/" in first, first
        started = time.monotonic()
        rest = b""
        while chunk := c.recv(4096):
            rest += chunk
        assert time.monotonic() - started < 5  # closed after ~1 s idle, not kept for ever
    r = httpx.get(s.api_url, timeout=5)  # the API is POST only
    assert r.status_code == 405


def test_notifications_get_no_body_and_a_revoked_token_stops_at_once(serve):
    """POST /rpc takes its own short path (controlplane.web.asgi.RpcEndpoint): a notification is answered 204 with no
    body, and the token is read from the database on every call — revoked now, refused on the next call."""
    srv = serve()
    s = srv.settings
    admin = srv.token_file.read_text().strip()
    with httpx.Client(timeout=10) as http:
        def call(method, token, **params):
            body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
            return http.post(s.api_url, json=body, headers={"Authorization": f"Bearer {token}"}).json()

        made = call("token.create", admin, name="short-lived", role="admin")["result"]
        assert call("token.whoami", made["token"])["result"]["role"] == "admin"
        r = http.post(s.api_url, json={"jsonrpc": "2.0", "method": "token.whoami"},
                      headers={"Authorization": f"Bearer {made['token']}"})
        assert r.status_code == 204 and r.content == b""
        call("token.delete", admin, id=made["id"])
        r = call("token.whoami", made["token"])  # the same kept-alive connection
        assert r["error"]["data"]["error_id"] == "unauthorized"


def test_a_failing_metrics_collector_and_a_too_large_body_are_answered_logged_and_counted(serve, caplog):
    srv = serve(api_max_body_bytes=4096)
    s = srv.settings
    registry = srv.app.metrics.registry

    class Broken:
        def collect(self):
            raise RuntimeError("collector broke")

    broken = Broken()
    registry.register(broken)
    try:
        r = httpx.get(s.api_url.replace("/rpc", "/metrics"), timeout=5)
        assert r.status_code == 500 and "could not be collected" in r.json()["error"]
        assert "collector broke" in caplog.text  # the cause is in the log, not in the answer
    finally:
        registry.unregister(broken)
    r = httpx.post(s.api_url, content=b"x" * 4097, timeout=5)
    assert r.status_code == 413 and "at most 4096 bytes" in r.json()["error"]
    scraped = httpx.get(s.api_url.replace("/rpc", "/metrics"), timeout=5).text
    assert 'callmanager_api_http_errors_total{path="/metrics",status="500"} 1.0' in scraped
    assert 'callmanager_api_http_errors_total{path="/rpc",status="413"} 1.0' in scraped


def test_a_result_that_does_not_serialise_is_an_internal_error_answered_and_counted(serve, monkeypatch):
    srv = serve()
    s = srv.settings
    monkeypatch.setattr(srv.dispatcher, "handle_body", lambda body, token: {"jsonrpc": "2.0", "result": {1, 2}, "id": 1})
    r = httpx.post(s.api_url, json={"jsonrpc": "2.0", "method": "token.whoami", "id": 1}, timeout=5)
    assert r.status_code == 200 and r.json()["error"]["data"]["error_id"] == "internal_error"
    scraped = httpx.get(s.api_url.replace("/rpc", "/metrics"), timeout=5).text
    assert 'callmanager_api_http_errors_total{path="/rpc",status="500"} 1.0' in scraped
