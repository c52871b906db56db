"""A private PostgreSQL server for tests: Debian's `postgresql` binaries, a fresh data directory, a free loopback port.

Started and stopped by the tests themselves (never the system's cluster). fsync is off (a test never survives the
machine), synchronous_commit stays on: a committed row survives the server's crash (stop_now), as in production. As root it runs as the `postgres` user (the
server refuses root), with its data and socket directories handed to that user. Trust authentication on loopback
only: a test server, gone when the test session ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .ports import free_port


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian package postgresql; scripts/install-debian.sh)")
    return found[-1]


class PostgresServer:
    """`primary`: start as a streaming replica of that server (pg_basebackup), read-only until promoted."""

    def __init__(self, primary: PostgresServer | None = None) -> None:
        self.primary = primary
        self.root = Path(tempfile.mkdtemp(prefix="cm-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "run"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._as = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid}
            for d in (self.root, self.data, self.sockets):
                d.mkdir(exist_ok=True)
                os.chown(d, pw.pw_uid, pw.pw_gid)
        else:
            self.data.mkdir()
            self.sockets.mkdir()
        self.data.chmod(0o700)  # the server refuses a data directory others can read

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True, cwd=self.root, **self._as)

    def start(self) -> PostgresServer:
        if self.primary is None:
            self._run([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
            with open(self.data / "pg_hba.conf", "a") as hba:  # replicas on loopback (initdb's trust covers the rest)
                hba.write("host replication postgres 127.0.0.1/32 trust\n")
        else:  # a copy of the primary that follows it (standby.signal and primary_conninfo written by -R)
            self._run([pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres", "-D", str(self.data),
                       "-R", "-X", "stream", "-c", "fast"])
        self._launch()
        if self.primary is None:
            self.sql("CREATE ROLE callmanager LOGIN")
            self.sql("GRANT pg_monitor TO callmanager")  # as controlplane.ops.cluster_db.ensure does
        return self

    def _launch(self) -> None:
        self.log = open(self.root / "postgres.log", "a")
        self.proc = subprocess.Popen(
            [pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "wal_level=replica", "-c", "max_wal_senders=5",
             "-c", "hot_standby=on"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True, **self._as)
        deadline = time.monotonic() + 30
        while subprocess.run([pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "postgres.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start: {log}")
            time.sleep(0.1)

    def resume(self) -> PostgresServer:
        """Start the server again on its data (after stop_now)."""
        self._launch()
        return self

    def stop_now(self) -> None:
        """The server goes away (immediate shutdown, as a crash), its files kept."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(20)

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = subprocess.run([pg_bin("psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "postgres", "-d", database, "-c", statement], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """A replica: wait until it has replayed everything its primary has written so far (streaming is asynchronous:
        a write the primary confirmed can still be missing here for a moment, longer on a loaded machine)."""
        assert self.primary is not None, "only a replica catches up"
        target = self.primary.sql("select pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while self.sql(f"select pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica did not replay up to {target} within {timeout} s")
            time.sleep(0.1)

    def url(self, database: str, user: str = "callmanager") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str = "template1") -> str:
        self.sql(f'CREATE DATABASE "{name}" OWNER callmanager TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)
