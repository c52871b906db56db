"""The house rules the toolchain checks (pyproject.toml): ruff's lint and format, and mypy, on kemi/ and controlplane/.
A failure here names the file and line; `.venv/bin/ruff format kemi controlplane` fixes the formatting."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CODE = ["kemi", "controlplane", "mediaserver"]


def run(*argv: str) -> subprocess.CompletedProcess:
    tool = BIN / argv[0]
    if not tool.exists():
        pytest.fail(f"{argv[0]} is not installed in the venv: make test installs it from pyproject.toml's test extras")
    return subprocess.run([str(tool), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_passes():
    r = run("ruff", "check", *CODE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_applied():
    r = run("ruff", "format", "--check", *CODE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_passes():
    r = run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_kamailio_is_called_only_from_the_ksr_modules():
    """The shell's route functions read, call the policy and apply through kemi/shell/ksr_*.py (and the barrier)."""
    allowed = {"ksr_read.py", "ksr_apply.py", "ksr_dialog.py", "ksr_groups.py", "ksr_fraud.py", "ksr_edge.py", "ksr_shared.py", "barrier.py", "runtime.py", "profiling.py"}
    offenders = []
    for path in sorted((ROOT / "kemi" / "shell").glob("*.py")):
        if path.name in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bKSR\.[a-z_]", line) or line.strip() == "import KSR":
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_policy_module_imports_kamailio_or_the_shell():
    offenders = [f"{p.name}: {line.strip()}" for p in sorted((ROOT / "kemi" / "policy").glob("*.py"))
                 for line in p.read_text().splitlines() if line.strip() in ("import KSR",) or "kemi.shell" in line]
    assert not offenders, "\n".join(offenders)
