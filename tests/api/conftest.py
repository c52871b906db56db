import threading

import httpx
import pytest

from controlplane.node.settings import load_settings
from controlplane.server import ControlPlaneServer
from tests.harness.ports import free_port


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token
        self._id = 0
        self._client = httpx.Client(timeout=10)  # one client: a new one per call builds an SSL context (~30 ms)

    def raw(self, body, token="default"):
        tok = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        content = body if isinstance(body, (bytes, str)) else None
        r = self._client.post(self.url, content=content, json=None if content is not None else body, headers=headers)
        return r.json() if r.content else None

    def call(self, method, token="default", **params):
        self._id += 1
        return self.raw({"jsonrpc": "2.0", "method": method, "params": params, "id": self._id}, token)

    def ok(self, method, token="default", **params):
        r = self.call(method, token, **params)
        assert "result" in r, r
        return r["result"]

    def err(self, method, token="default", **params):
        r = self.call(method, token, **params)
        assert "error" in r, r
        return r["error"]["data"]["error_id"], r["error"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Every API test runs on the single-node default (SQLite) and on the cluster database (PostgreSQL)."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def server(tmp_path, database_url):
    settings = load_settings(env={}, var_dir=str(tmp_path / "var"), api_port=free_port(), kamailio_rpc_port=free_port(), rtpengine_ng_port=free_port(),
                             database_url=database_url)
    srv = ControlPlaneServer(settings)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


@pytest.fixture
def api(server):
    return Api(server.settings.api_url, server.token_file.read_text().strip())


@pytest.fixture
def acme(api):
    """A tenant with an admin token, two users, SIP accounts and extensions."""
    t = api.ok("tenant.create", name="Acme", sip_domain="acme.example")
    admin = api.ok("token.create", name="acme admin", role="admin", tenant_id=t["id"])["token"]
    a = api.ok("user.create", token=admin, name="Alice", email="alice@acme.example")
    b = api.ok("user.create", token=admin, name="Bob")
    return {"tenant": t, "admin": admin, "alice": a, "bob": b}
