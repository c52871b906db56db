"""The cluster database: the control plane's schema on PostgreSQL (psycopg 3), migrated by the same Alembic scripts as
the single-node SQLite file. The API tests run on both (tests/api/conftest.py); these check the migrations' own path."""
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from controlplane.db import models  # noqa: F401 - the tables, on the metadata
from controlplane.db.session import alembic_config, make_engine, migrate


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
    import threading
    import time

    from typer.testing import CliRunner

    from controlplane.cli.main import app as cli
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
        api = Api(settings.api_url, server.token_file.read_text().strip())
        api.ok("tenant.create", name="Before", sip_domain="before.example")
        deadline = time.monotonic() + 15
        while replica.sql("select count(*) from tenant where name = 'Before'", "callmanager") != "1":
            assert time.monotonic() < deadline, "the replica did not receive the change"
            time.sleep(0.1)

        primary.stop_now()
        assert "Before" in {t["name"] for t in api.ok("tenant.list")["items"]}  # read from the replica
        error_id, error = api.err("tenant.create", name="During", sip_domain="during.example")
        assert error_id == "database_read_only" and "promote-db" in error["message"]

        runner = CliRunner()
        done = runner.invoke(cli, ["cluster", "promote-db", "--database-url", replica.url("postgres", "postgres")])
        assert done.exit_code == 0 and "promoted" in done.output, done.output
        again = runner.invoke(cli, ["cluster", "promote-db", "--database-url", replica.url("postgres", "postgres")])
        assert again.exit_code == 0 and "already a primary" in again.output

        api.ok("tenant.create", name="After", sip_domain="after.example")  # the same control plane, no restart
        assert {t["name"] for t in api.ok("tenant.list")["items"]} >= {"Before", "After"}
        assert "During" not in {t["name"] for t in api.ok("tenant.list")["items"]}
    finally:
        if server is not None:
            server.shutdown()
            server.app.close()
        if replica is not None:
            replica.stop()
        primary.stop()


def test_promote_db_says_why_when_it_cannot():
    from typer.testing import CliRunner

    from controlplane.cli.main import app as cli
    from tests.harness.ports import free_port

    done = CliRunner().invoke(cli, ["cluster", "promote-db", "--database-url", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                                    "--wait-s", "5"])
    assert done.exit_code == 1 and "error" in done.output.lower()
