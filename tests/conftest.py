import shutil

import pytest


@pytest.fixture(scope="session", autouse=False)
def real_components():
    """Scenario tests need the real daemons; `make test` installs them (scripts/install-debian.sh)."""
    missing = [b for b in ("kamailio", "rtpengine", "sipp", "prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} — run `make test`, which installs them", pytrace=False)


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
