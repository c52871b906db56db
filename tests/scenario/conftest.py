import itertools
import time

import pytest

from tests.harness.node import TestNode
from tests.harness.sipp import Sipp

_n = itertools.count(1)


@pytest.fixture(scope="session")
def node(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("node") / "var").start()
    yield n
    n.stop()


@pytest.fixture(scope="session")
def sipp(node, tmp_path_factory):
    return Sipp(node.sip, tmp_path_factory.mktemp("sipp"))


@pytest.fixture(scope="session")
def tenant(node):
    return node.rpc("tenant.create", name="Scenario GmbH", sip_domain="scenario.example")


@pytest.fixture
def make_user(node, tenant, sipp):
    """Create a user with an extension and a SIP account; returns (user, extension, phone)."""

    def make(ext: str | None = None, transport: str = "udp"):
        i = next(_n)
        ext = ext or str(300 + i)
        user = node.rpc("user.create", tenant_id=tenant["id"], name=f"User {i}")
        password = f"pw-{i}-secret"
        node.rpc("sip_account.create", user_id=user["id"], username=f"u{i}", password=password)
        node.rpc("extension.create", number=ext, user_id=user["id"])
        return user, ext, sipp.phone(f"u{i}", tenant["sip_domain"], password, transport)

    return make


def wait_for(fn, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_snapshot(node, timeout=5.0):
    """Wait until Kamailio's workers can have seen the latest published snapshot."""
    time.sleep(max(node.settings.snapshot_check_s * 3, 0.5))


def cdrs_for(node, call_id):
    return node.rpc("cdr.list", call_id=call_id)["items"]
