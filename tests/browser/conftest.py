"""The browser tier (issue 24): Debian's Chromium through Playwright against a real node. A failed test keeps each
open page's screenshot and console log under var/test-artifacts/browser/ (named after the test)."""

from pathlib import Path

import pytest

from tests.harness import browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def chromium():
    why = browser.available()
    if why:
        pytest.fail(f"the browser tier cannot run: {why} — run `make test`, which installs it", pytrace=False)
    with browser.Chromium(ARTIFACTS) as c:
        yield c


@pytest.fixture
def pages(chromium, request):
    """Opens web phones (`pages(node, "ann")`); closes them after the test, screenshots first if it failed."""
    opened = []

    def open_phone(base_url: str, name: str, viewport=(1280, 900), trust_any_certificate: bool = False):
        p = chromium.phone(base_url, name, viewport, trust_any_certificate)
        opened.append(p)
        return p

    yield open_phone
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        kept = chromium.keep_screenshots(request.node.name)
        print(f"screenshots kept: {', '.join(str(k) for k in kept)}")
    for p in opened:
        p.close()
    chromium.phones = [p for p in chromium.phones if not p.closed]
