"""Alembic, driven from code: `upgrade()` brings any database to the current schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mpki.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply pending migrations inside one connection (so a PostgreSQL search_path applies)."""
    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def is_current(database: Database) -> bool:
    return current_revision(database) == head_revision(database)


def wipe(database: Database) -> None:
    """Drop every mpki table and the migration marker: only `mpki reinitialise` calls this.

    Dropping a table is not an UPDATE, DELETE or TRUNCATE, so the audit trail's append-only trigger
    (PostgreSQL, migration 0010) goes with its table; its function is dropped after. The role `mpki_app`
    is cluster-wide and stays.
    """
    from sqlalchemy import text

    from mpki.store.schema import Base

    Base.metadata.drop_all(database.engine)
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if not database.is_sqlite:
            connection.execute(text("DROP FUNCTION IF EXISTS mpki_audit_append_only()"))
