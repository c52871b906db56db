import shutil

import pytest


@pytest.fixture(scope="session", autouse=False)
def real_components():
    """Scenario tests need the real daemons; `make test` installs them (scripts/install-debian.sh)."""
    missing = [b for b in ("kamailio", "rtpengine", "sipp", "prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} — run `make test`, which installs them", pytrace=False)
