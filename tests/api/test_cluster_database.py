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
