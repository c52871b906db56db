"""The cluster database's role and database for callmanager, made idempotently on a PostgreSQL host (Ansible role
postgresql runs `python -m controlplane.ops.cluster_db ensure ...` with the vault's password on stdin).

The password never appears on a command line or in a file: it is turned into a SCRAM-SHA-256 verifier here (RFC 5802
/ 7677, PostgreSQL's own format) and only the verifier is sent to PostgreSQL. A password that already matches the
stored verifier changes nothing, so a second run reports no change and a rotated password in the vault is applied on
the next run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), hmac.new(salted, b"Server Key", hashlib.sha256).digest()


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16) if salt is None else salt
    stored, server = _keys(password, salt, iterations)
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored)}:{_b64(server)}"


def matches(verifier: str, password: str) -> bool:
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)", verifier or "")
    if not m:
        return False
    return hmac.compare_digest(scram_verifier(password, base64.b64decode(m.group(2)), int(m.group(1))), verifier)


_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _psql(socket_dir: str, port: int, sql: str, database: str = "postgres") -> str:
    """SQL as the postgres superuser over the local socket (peer authentication), statements on stdin."""
    argv = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-p", str(port), "-d", database]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    try:
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"psql could not be run: {exc}") from None
    if done.returncode != 0:
        raise RuntimeError(f"psql: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def ensure(socket_dir: str, port: int, database: str, user: str, password: str) -> list[str]:
    """Make the role (login, the password's verifier) and the database it owns; the changes made ([] : none)."""
    for what, name in (("database", database), ("user", user)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"{what} name {name!r} must be a lower-case SQL identifier")
    if len(password) < 12:
        raise ValueError("the database password must have at least 12 characters")
    changes = []
    current = _psql(socket_dir, port, f"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{user}';")
    exists = _psql(socket_dir, port, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}';") == "1"
    if not exists:
        _psql(socket_dir, port, f"CREATE ROLE {user} LOGIN PASSWORD '{scram_verifier(password)}';")
        changes.append(f"role {user} created")
    elif not matches(current, password):
        _psql(socket_dir, port, f"ALTER ROLE {user} LOGIN PASSWORD '{scram_verifier(password)}';")
        changes.append(f"password of {user} set")
    monitor = f"SELECT pg_has_role('{user}', 'pg_monitor', 'member');"
    if _psql(socket_dir, port, monitor) != "t":  # the replicas' lag (pg_stat_replication) for the NOC's metrics
        _psql(socket_dir, port, f"GRANT pg_monitor TO {user};")
        changes.append(f"{user} may read the replication state (pg_monitor)")
    if _psql(socket_dir, port, f"SELECT 1 FROM pg_database WHERE datname = '{database}';") != "1":
        _psql(socket_dir, port, f"CREATE DATABASE {database} OWNER {user};")
        changes.append(f"database {database} created")
    return changes


def ensure_replication(socket_dir: str, port: int, user: str, password: str) -> list[str]:
    """Make the role the replicas stream as (REPLICATION, login, the password's verifier); the changes made."""
    if not _NAME.fullmatch(user):
        raise ValueError(f"user name {user!r} must be a lower-case SQL identifier")
    if len(password) < 12:
        raise ValueError("the replication password must have at least 12 characters")
    current = _psql(socket_dir, port, f"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{user}';")
    if _psql(socket_dir, port, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}';") != "1":
        _psql(socket_dir, port, f"CREATE ROLE {user} REPLICATION LOGIN PASSWORD '{scram_verifier(password)}';")
        return [f"replication role {user} created"]
    if not matches(current, password):
        _psql(socket_dir, port, f"ALTER ROLE {user} REPLICATION LOGIN PASSWORD '{scram_verifier(password)}';")
        return [f"password of {user} set"]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["ensure", "ensure-replication"])
    ap.add_argument("--socket-dir", required=True)
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--database", default="callmanager")
    ap.add_argument("--user", default="callmanager")
    args = ap.parse_args(argv)
    password = sys.stdin.read().strip()
    try:
        if args.action == "ensure-replication":
            changes = ensure_replication(args.socket_dir, args.port, args.user, password)
        else:
            changes = ensure(args.socket_dir, args.port, args.database, args.user, password)
    except (ValueError, RuntimeError) as exc:
        print(f"cluster database: {exc}", file=sys.stderr)
        return 1
    print("changed: " + "; ".join(changes) if changes else "ok: nothing to change")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------- failover: promote the replica


class PromoteError(Exception):
    """The replica could not be promoted (not reachable, not a replica, or promotion did not finish)."""


def promote(url: str, wait_s: int = 60) -> str:
    """Promote the streaming replica at `url` (a role allowed to run pg_promote: a superuser, or one granted EXECUTE on
    it) to primary; returns what happened in one line. Idempotent: a server that is already a primary is left alone.
    The control plane follows by itself: its database URL lists both servers (docs/cluster.md) and new connections go
    to the one that accepts writes."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is None or not row[0]:
                return "already a primary: nothing to do"
            done = conn.execute("SELECT pg_promote(true, %s)", (wait_s,)).fetchone()
            if not done or not done[0]:
                raise PromoteError(f"promotion did not finish within {wait_s} s")
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is None or row[0]:
                raise PromoteError("the server still reports recovery after promotion")
    except psycopg.Error as exc:
        raise PromoteError(f"{type(exc).__name__}: {str(exc).strip()[:300]}") from None
    return "promoted: the replica is the primary now and accepts writes"
