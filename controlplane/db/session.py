"""Database engine, sessions and migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            for f in (
                Path(path),
                Path(path + "-wal"),
                Path(path + "-shm"),
            ):  # password hashes (HA1) live here: owner only
                if f.exists():
                    f.chmod(0o600)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "handle_error")
    def _standby_write_reconnects(ctx):
        """A write refused by a standby: the pool's connections were made while the primary was out of reach (a
        partition, its restart). Treated as a disconnect, so the pool reconnects and libpq tries the URL's hosts in
        order again — the primary once it answers — instead of staying on the standby for good."""
        if getattr(ctx.original_exception, "sqlstate", None) == READ_ONLY_SQLSTATE:
            ctx.is_disconnect = True

    return engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser: a '%' in a password or host list
    return cfg


MIGRATION_LOCK = 0x636D6D67  # PostgreSQL advisory lock key of the schema migration ("cmmg")


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent)."""
    cfg = alembic_config(str(engine.url))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # control planes sharing a database start at once: one migrates, the
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")  # others wait, then find it done
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: a write to a standby


def database_away(exc: BaseException) -> str | None:
    """Is this database error the database being away rather than the statement being wrong? "read_only" (a standby
    that is not promoted yet), "unavailable" (unreachable, connection lost), or None (anything else: a refused row, a
    bug). Callers retry the same work later for the first two."""
    if getattr(getattr(exc, "orig", None), "sqlstate", None) == READ_ONLY_SQLSTATE:
        return "read_only"
    if getattr(exc, "connection_invalidated", False) or type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return "unavailable"
    return None
