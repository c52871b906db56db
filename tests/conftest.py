import shutil

import pytest


@pytest.fixture(scope="session", autouse=False)
def real_components():
    """Scenario tests need the real daemons; `make test` installs them (scripts/install-debian.sh)."""
    missing = [b for b in ("kamailio", "rtpengine", "sipp", "prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} — run `make test`, which installs them", pytrace=False)


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server for the session (tests/harness/postgres.py), with a database migrated to the latest
    schema as the template each test's database is copied from."""
    from controlplane.db.session import make_engine, migrate
    from tests.harness.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        engine = make_engine(server.create_database("cm_template"))
        migrate(engine)
        engine.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres, request):
    """A fresh database for one test, a copy of the migrated template; dropped afterwards. Its URL."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50] + f"_{id(request) % 100000}"
    url = postgres.create_database(name, "cm_template")
    yield url
    postgres.drop_database(name)


LONG_HELP = "also run the long tiers (marked long: the rolling upgrade under load, ...); or CALLMANAGER_LONG_TESTS=1"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False, help=LONG_HELP)


def pytest_collection_modifyitems(config, items):
    import os

    if config.getoption("--long") or os.environ.get("CALLMANAGER_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="a long tier: run with `make test ARGS=--long`")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
