import contextlib
import fcntl
import os
import shutil
import tempfile

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


class _RunLock:
    """Across the xdist workers of one run (`make test`): a test marked `alone` (a load whose outcome depends on having
    the machine's CPU: 300 calls/s, 200 registrations in 10 s) runs while no other test does. Every other test holds
    a shared lock while it runs; an `alone` test takes the gate (new tests wait there), then the lock exclusively
    (once the tests already running are done). The lab tier (tests/lab, one worker) neither waits nor holds: its
    deployments take minutes, and the others would stand still behind them."""

    def __init__(self, where: str):
        base = os.path.join(where, "callmanager-tests")
        self.gate, self.held = open(base + ".gate", "a+"), open(base + ".lock", "a+")

    @contextlib.contextmanager
    def hold(self, alone: bool):
        if alone:
            fcntl.flock(self.gate, fcntl.LOCK_EX)
            fcntl.flock(self.held, fcntl.LOCK_EX)
        else:
            fcntl.flock(self.gate, fcntl.LOCK_SH)  # not while an `alone` test waits or runs
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            fcntl.flock(self.held, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self.held, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)


_run_lock: list = []


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout's timer: waiting is not the test's time
def pytest_runtest_protocol(item, nextitem):
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None or item.nodeid.startswith("tests/lab/"):
        yield
        return
    if not _run_lock:  # in the run's own temporary directory (a worker's basetemp is <run's>/popen-gwN), kept by pytest
        basetemp = item.config.option.basetemp
        where = os.path.dirname(str(basetemp)) if basetemp else os.path.join(tempfile.gettempdir(), workerinput["testrunuid"])
        os.makedirs(where, exist_ok=True)
        _run_lock.append(_RunLock(where))
    with _run_lock[0].hold(item.get_closest_marker("alone") is not None):
        yield
