"""The committed web phone bundle (webapp/dist) is the one its sources and lockfile make (`make webapp`)."""

import hashlib
import json
from pathlib import Path

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"


def test_the_committed_bundle_is_built_from_the_current_sources_and_the_locked_versions():
    build = json.loads((WEBAPP / "dist" / "BUILD.json").read_text())
    lock = json.loads((WEBAPP / "package-lock.json").read_text())["packages"]
    assert build["jssip"] == lock["node_modules/jssip"]["version"]
    assert build["esbuild"] == lock["node_modules/esbuild"]["version"]
    digest = hashlib.sha256()
    for f in sorted((WEBAPP / "src").iterdir(), key=lambda p: p.name):
        digest.update(f"{f.name}\n".encode())
        digest.update(f.read_bytes())
    assert build["sources"] == digest.hexdigest(), "webapp/src changed since the bundle was built: run `make webapp`"
    page = (WEBAPP / "dist" / "index.html").read_text()
    for asset in (build["js"], build["css"]):
        assert (WEBAPP / "dist" / "assets" / asset).is_file() and f"assets/{asset}" in page
    assert "jssip" in (WEBAPP / "dist" / "assets" / "THIRD-PARTY-LICENSES.txt").read_text().lower()
