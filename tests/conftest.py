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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs the tests in parallel workers (pytest-xdist; the scenario tests mostly wait on timers and
    phones: one worker keeps a third of a core busy). A test file is one unit of work, so its module fixtures (a node,
    a lab) start once; the whole of tests/lab is one unit, so two labs never overlap (they share the machine's
    /etc/callmanager... mount points and pick their 198.18 subnets from the interfaces they see)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFileLabTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/lab" if path.startswith("tests/lab/") else path

    return ByFileLabTogether(config, log)
