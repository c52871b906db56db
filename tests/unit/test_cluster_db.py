"""The cluster database's password goes to PostgreSQL only as a SCRAM-SHA-256 verifier, and a matching one is left
alone (a second run changes nothing; a rotated password is applied). PostgreSQL accepting the login is tested in the
lab (tests/lab/test_rollout.py)."""
import pytest

from controlplane.ops.cluster_db import ensure, matches, scram_verifier


def test_a_verifier_matches_its_password_only():
    v = scram_verifier("correct horse battery")
    assert v.startswith("SCRAM-SHA-256$4096:") and "correct" not in v
    assert matches(v, "correct horse battery") and not matches(v, "correct horse batterY")
    assert scram_verifier("x" * 12) != scram_verifier("x" * 12)  # a new salt each time
    assert not matches("md5abc", "anything") and not matches("", "anything")


def test_names_and_short_passwords_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="lower-case SQL identifier"):
        ensure("/nonexistent", 5432, "callmanager; DROP TABLE x", "callmanager", "a-long-enough-password")
    with pytest.raises(ValueError, match="at least 12"):
        ensure("/nonexistent", 5432, "callmanager", "callmanager", "short")
