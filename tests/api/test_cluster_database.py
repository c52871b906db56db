"""The cluster database: the control plane's schema on PostgreSQL (psycopg 3), migrated by the same Alembic scripts as
the single-node SQLite file. The API tests run on both (tests/api/conftest.py); these check the migrations' own path."""
import time
from contextlib import contextmanager

import httpx
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from controlplane.db import models  # noqa: F401 - the tables, on the metadata
from controlplane.db.session import alembic_config, make_engine, migrate
from kemi.shell.cdr_spool import CdrSpool


def test_every_migration_goes_down_and_up_again_on_postgresql(postgres_database):
    engine = make_engine(postgres_database)
    try:
        cfg = alembic_config(postgres_database)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_timestamps_are_stored_with_their_time_zone_on_postgresql(postgres_database):
    """An aware UTC time written by the control plane reads back as the same instant whatever the session's zone."""
    engine = make_engine(postgres_database)
    try:
        with engine.connect() as conn:
            kinds = dict(conn.execute(text(
                "select table_name || '.' || column_name, data_type from information_schema.columns "
                "where table_schema = 'public' and data_type like 'timestamp%'")).all())
        assert kinds and set(kinds.values()) == {"timestamp with time zone"}, kinds
    finally:
        engine.dispose()


def test_the_replica_takes_over_after_promote_db_and_the_control_plane_follows(tmp_path):
    """Primary and streaming replica (both started here); the control plane's URL names both. The primary dies: reads
    go on from the replica, writes get a clear error and change nothing; `cm cluster promote-db` makes the replica the
    primary and the same control plane (no restart) writes again."""
    from typer.testing import CliRunner

    from controlplane.cli.main import app as cli

    with primary_replica_control_plane(tmp_path) as (primary, replica, settings, server, api):
        api.ok("tenant.create", name="Before", sip_domain="before.example")
        deadline = time.monotonic() + 15

        def on_replica() -> str:
            try:
                return replica.sql("select count(*) from tenant where name = 'Before'", "callmanager")
            except RuntimeError:  # the replica has not replayed the migration that made the table yet (lag under load)
                return ""

        while on_replica() != "1":
            assert time.monotonic() < deadline, "the replica did not receive the change"
            time.sleep(0.1)

        # the NOC sees the replica streaming and how far behind it is (from the primary)
        metrics = httpx.get(settings.api_url.rsplit("/", 1)[0] + "/metrics", timeout=10).text
        assert "callmanager_database_replicas 1.0" in metrics, [m for m in metrics.splitlines() if "replica" in m]
        assert "callmanager_database_replica_lag_seconds{replica=" in metrics
        assert "callmanager_database_replica_lag_bytes{replica=" in metrics
        primary.stop_now()
        assert "Before" in {t["name"] for t in api.ok("tenant.list")["items"]}  # read from the replica
        error_id, error = api.err("tenant.create", name="During", sip_domain="during.example")
        assert error_id == "database_read_only" and "promote-db" in error["message"]
        metrics = httpx.get(settings.api_url.rsplit("/", 1)[0] + "/metrics", timeout=10).text
        assert "callmanager_database_up 1.0" in metrics and "callmanager_database_read_only 1.0" in metrics
        # a call ends meanwhile: its record waits in the spool (the database refuses it) and is not lost
        CdrSpool(str(settings.spool_dir)).put(cdr_record("cdr-during-failover"))
        server.app.ingestor.run_once()

        runner = CliRunner()
        done = runner.invoke(cli, ["cluster", "promote-db", "--database-url", replica.url("postgres", "postgres")])
        assert done.exit_code == 0 and "promoted" in done.output, done.output
        again = runner.invoke(cli, ["cluster", "promote-db", "--database-url", replica.url("postgres", "postgres")])
        assert again.exit_code == 0 and "already a primary" in again.output

        api.ok("tenant.create", name="After", sip_domain="after.example")  # the same control plane, no restart
        assert {t["name"] for t in api.ok("tenant.list")["items"]} >= {"Before", "After"}
        assert "During" not in {t["name"] for t in api.ok("tenant.list")["items"]}
        metrics = httpx.get(settings.api_url.rsplit("/", 1)[0] + "/metrics", timeout=10).text
        assert "callmanager_database_read_only 0.0" in metrics
        deadline = time.monotonic() + 15
        while primary_or_replica_count(replica, "cdr-during-failover") != "1":  # the ingestor's next passes store it
            assert time.monotonic() < deadline, "the CDR spooled during the failover was not stored"
            time.sleep(0.2)


def cdr_record(cdr_id: str) -> dict:
    now = time.time()
    return {"id": cdr_id, "tenant_id": None, "caller": "201", "caller_user_id": None, "callee": "202", "callee_user_id": None,
            "call_id": f"{cdr_id}@test", "start_ts": now - 30, "answer_ts": now - 25, "end_ts": now, "duration_s": 25.0,
            "disposition": "answered", "sip_code": 200, "sip_reason": "OK", "trace": ["test"]}


def primary_or_replica_count(server, cdr_id: str) -> str:
    return server.sql(f"select count(*) from cdr where id = '{cdr_id}'", "callmanager")


@contextmanager
def primary_replica_control_plane(tmp_path):
    """A primary and its streaming replica (started here), a control plane whose URL names both (the primary first),
    its admin API; everything stopped afterwards. Yields (primary, replica, settings, server, api)."""
    import threading

    from controlplane.node.settings import load_settings
    from controlplane.server import ControlPlaneServer
    from tests.api.conftest import Api
    from tests.harness.ports import free_port
    from tests.harness.postgres import PostgresServer

    primary = PostgresServer().start()
    replica = server = None
    try:
        primary.create_database("callmanager")
        replica = PostgresServer(primary=primary).start()
        url = (f"postgresql+psycopg://callmanager@/callmanager?host=127.0.0.1:{primary.port}&host=127.0.0.1:{replica.port}"
               "&target_session_attrs=any&connect_timeout=3")
        settings = load_settings(env={}, var_dir=str(tmp_path / "var"), api_port=free_port(), kamailio_rpc_port=free_port(),
                                 rtpengine_ng_port=free_port(), database_url=url)
        server = ControlPlaneServer(settings)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield primary, replica, settings, server, Api(settings.api_url, server.token_file.read_text().strip())
    finally:
        if server is not None:
            server.shutdown()
            server.app.close()
        if replica is not None:
            replica.stop()
        primary.stop()


def test_a_control_plane_on_the_replica_returns_to_the_primary_when_it_answers_again(tmp_path):
    """The primary out of reach for a while (a partition, its restart): the control plane's connections land on the
    replica and writes are refused (database_read_only). Once the primary answers again, the next refused write makes
    the pool reconnect and the one after it is written on the primary — the control plane does not stay read-only."""
    with primary_replica_control_plane(tmp_path) as (primary, replica, _, _, api):
        api.ok("tenant.create", name="Before", sip_domain="before.example")
        replica.wait_caught_up()  # the replica has the schema and the tenant (it lagged once on a loaded machine)
        primary.stop_now()
        assert api.err("tenant.create", name="Cut", sip_domain="cut.example")[0] == "database_read_only"
        primary.resume()
        deadline = time.monotonic() + 20
        while True:
            try:
                api.ok("tenant.create", name="After", sip_domain="after.example")
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the control plane stayed on the replica"
                time.sleep(0.5)
        assert primary.sql("select count(*) from tenant where name = 'After'", "callmanager") == "1"


def test_promote_db_says_why_when_it_cannot():
    from typer.testing import CliRunner

    from controlplane.cli.main import app as cli
    from tests.harness.ports import free_port

    done = CliRunner().invoke(cli, ["cluster", "promote-db", "--database-url", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                                    "--wait-s", "5"])
    assert done.exit_code == 1 and "error" in done.output.lower()


def test_cdrs_wait_in_the_spool_while_no_database_answers(tmp_path):
    """Nothing is set aside or deleted while the database is unreachable: the records are offered again later."""
    from controlplane.services.cdr_ingest import CdrIngestor
    from tests.harness.ports import free_port

    spool = CdrSpool(str(tmp_path / "spool"))
    spool.put(cdr_record("cdr-no-database"))
    spool.close_segment()
    engine = make_engine(f"postgresql+psycopg://callmanager@127.0.0.1:{free_port()}/callmanager?connect_timeout=2")
    try:
        ingestor = CdrIngestor(engine, tmp_path / "spool")
        assert ingestor.run_once() == 0 and ingestor.database_away
        assert len(list((tmp_path / "spool" / "new").iterdir())) == 1  # still there, whole
        assert not (tmp_path / "spool" / "bad").exists() or not list((tmp_path / "spool" / "bad").iterdir())
    finally:
        engine.dispose()


def test_two_control_planes_on_one_database_hand_out_distinct_versions_and_each_publishes_the_others_changes(
        tmp_path, postgres_database):
    """A cluster's control planes share the database: concurrent changes get distinct configuration versions (an
    atomic increment; read-modify-write gave two changes one version, and the second never reached routing), and a
    change made through one reaches the other's routing snapshot within 2 s."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from controlplane.node.settings import load_settings
    from controlplane.server import ControlPlaneServer
    from tests.api.conftest import Api
    from tests.harness.ports import free_port

    servers = []
    try:
        for name in ("a", "b"):
            settings = load_settings(env={}, var_dir=str(tmp_path / name), api_port=free_port(), kamailio_rpc_port=free_port(),
                                     rtpengine_ng_port=free_port(), database_url=postgres_database)
            srv = ControlPlaneServer(settings)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            servers.append(srv)
        token = servers[0].token_file.read_text().strip()  # one database, one set of tokens: the first made it
        a, b = (Api(s.settings.api_url, token) for s in servers)
        with ThreadPoolExecutor(8) as pool:  # 16 changes at once, through both control planes
            done = list(pool.map(lambda i: (a, b)[i % 2].ok("tenant.create", name=f"T{i}", sip_domain=f"t{i}.example"),
                                 range(16)))
        assert len(done) == 16
        versions = [json.loads(s.settings.snapshot_path.read_text())["version"] for s in servers]
        with servers[0].app.read() as s:
            from controlplane.db.models import ConfigState
            assert s.get(ConfigState, 1).version >= 16  # every change its own version

        started = time.monotonic()
        a.ok("tenant.create", name="Late", sip_domain="late.example")
        def snapshots():  # each control plane writes its node's snapshot on its own (a's own change: not before b's)
            return [json.loads(s.settings.snapshot_path.read_text()) for s in servers]

        while not all("late.example" in json.dumps(snap) for snap in snapshots()):
            assert time.monotonic() - started < 2.0, f"the snapshots did not follow a's change within 2 s ({versions})"
            time.sleep(0.05)
        a_version, b_version = (snap["version"] for snap in snapshots())
        assert b_version == a_version
    finally:
        for srv in servers:
            srv.shutdown()
            srv.app.close()


def test_control_planes_starting_at_once_on_a_new_database_share_its_schema_the_platform_token_and_the_secret_key(
        tmp_path, postgres):
    """A new cluster: its control planes start at the same moment on an empty database. One migrates, the others wait
    for it (an advisory lock; concurrent migrations failed with duplicate tables); each writes the cluster's platform
    token (Ansible's vault) to its admin.token and it works on every node's API; a trunk password one node sealed is
    opened by the other (the key file, from the vault, is the same on every node)."""
    import threading

    from cryptography.fernet import Fernet

    from controlplane.db.models import ApiToken
    from controlplane.node.settings import load_settings
    from controlplane.server import ControlPlaneServer
    from tests.api.conftest import Api
    from tests.harness.ports import free_port

    url = postgres.create_database("t_new_cluster")
    token = "cm_cluster_" + "x7" * 20
    key = tmp_path / "secret.key"
    key.write_bytes(Fernet.generate_key() + b"\n")
    servers, errors = [], []

    def start(name):
        try:
            settings = load_settings(env={}, var_dir=str(tmp_path / name), api_port=free_port(), kamailio_rpc_port=free_port(),
                                     rtpengine_ng_port=free_port(), database_url=url, platform_token=token,
                                     secret_key_file=str(key))
            servers.append(ControlPlaneServer(settings))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("a", "b", "c")]
    serving: list = []
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        for srv in servers:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            serving.append(srv)
        for srv in servers:
            assert srv.token_file.read_text().strip() == token
            assert oct(srv.token_file.stat().st_mode & 0o777) == "0o600"
        with servers[0].app.read() as s:
            assert [t.role for t in s.exec(__import__("sqlmodel").select(ApiToken)).all()] == ["platform"]  # one token
        a, b = (Api(s.settings.api_url, token) for s in servers[:2])
        trunk = a.ok("trunk.create", name="carrier", host="198.18.0.20", auth_username="acme", auth_password="s3cret-trunk")
        assert b.ok("trunk.get", id=trunk["id"])["has_password"] is True
        started = time.monotonic()  # b's routing snapshot carries the password b opened with the shared key
        while "s3cret-trunk" not in servers[1].settings.snapshot_path.read_text():
            assert time.monotonic() - started < 5.0, "b could not open the trunk password a sealed"
            time.sleep(0.1)
    finally:
        for srv in servers:
            if srv in serving:
                srv.shutdown()
            else:  # one that never served would wait forever in shutdown() for its loop to end
                srv.httpd.server_close()
                srv.app.close()
        postgres.drop_database("t_new_cluster")


def test_the_replication_role_is_made_once_and_its_password_follows_the_vault(postgres):
    """What the postgresql role runs on the primary for its replicas (`cluster_db ensure-replication`): the role is
    made with REPLICATION, a second run changes nothing, a new vault password is applied."""
    from controlplane.ops.cluster_db import ensure_replication

    sockets, port = str(postgres.sockets), postgres.port
    assert ensure_replication(sockets, port, "cm_repl_test", "first-password-123") == ["replication role cm_repl_test created"]
    assert ensure_replication(sockets, port, "cm_repl_test", "first-password-123") == []
    assert ensure_replication(sockets, port, "cm_repl_test", "second-password-456") == ["password of cm_repl_test set"]
    assert postgres.sql("select rolreplication and rolcanlogin from pg_roles where rolname = 'cm_repl_test'") == "t"
    postgres.sql("drop role cm_repl_test")


def test_the_callmanager_role_is_made_once_and_may_read_the_replicas_lag(postgres):
    """What the postgresql role runs on the primary (`cluster_db ensure`): the role, its database, and pg_monitor (the
    NOC's replica lag: pg_stat_replication's details are hidden from other roles); a second run changes nothing."""
    from controlplane.ops.cluster_db import ensure

    sockets, port = str(postgres.sockets), postgres.port
    first = ensure(sockets, port, "cm_ensure_db", "cm_ensure_user", "first-password-123")
    assert first == ["role cm_ensure_user created", "cm_ensure_user may read the replication state (pg_monitor)",
                     "database cm_ensure_db created"]
    assert ensure(sockets, port, "cm_ensure_db", "cm_ensure_user", "first-password-123") == []
    assert postgres.sql("select pg_has_role('cm_ensure_user', 'pg_monitor', 'member')") == "t"
    postgres.sql("drop database cm_ensure_db")
    postgres.sql("drop role cm_ensure_user")


def test_a_control_plane_started_before_its_database_waits_for_it_and_stops_when_told(tmp_path):
    """A cluster node's control plane whose PostgreSQL is not up yet (or not reachable) waits for it instead of exiting
    (a supervisor gives up on a program that keeps failing at once), starts serving when it answers, and a SIGTERM
    ends the wait as it ends a running control plane."""
    import json
    import signal
    import subprocess
    import sys

    from tests.harness.ports import free_port
    from tests.harness.postgres import PostgresServer

    def control_plane(url: str, name: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({"var_dir": str(tmp_path / name), "api_port": port, "kamailio_rpc_port": free_port(),
                                      "rtpengine_ng_port": free_port(), "database_url": url, "prometheus": False}))
        log = open(tmp_path / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "controlplane.server", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT), port

    def health(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    pg = PostgresServer()  # its port is chosen, the server not started yet
    proc, port = control_plane(pg.url("callmanager") + "?connect_timeout=2", "waiting")
    idle, idle_port = control_plane(f"postgresql+psycopg://callmanager@127.0.0.1:{free_port()}/callmanager?connect_timeout=2",
                                    "stopped")
    try:
        time.sleep(5)
        assert proc.poll() is None and idle.poll() is None, "a control plane exited for want of its database"
        assert not health(port)
        assert "waiting for it" in (tmp_path / "waiting.log").read_text()
        idle.send_signal(signal.SIGTERM)
        assert idle.wait(10) == 0  # told to stop while waiting: it stops, cleanly
        pg.start()
        pg.create_database("callmanager")
        deadline = time.monotonic() + 30
        while not health(port):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "waiting.log").read_text()[-2000:]
            time.sleep(0.3)
        assert (tmp_path / "waiting" / "admin.token").exists()  # started for real: migrated, its token made
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        for p in (proc, idle):
            if p.poll() is None:
                p.kill()
                p.wait(5)
        pg.stop()
