"""Alembic migrations produce exactly the SQLAlchemy schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from mpki.store import AuditHead, Base, Database, is_current, upgrade


def test_migrations_match_the_schema(database_url: str) -> None:
    database = Database(database_url)
    assert not is_current(database)
    upgrade(database)
    assert is_current(database)
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    tables = set(inspect(database.engine).get_table_names())
    assert {"cas", "certificates", "serial_reservations", "requests", "audit_events", "audit_head"} <= tables
    database.dispose()


def test_upgrade_twice_is_harmless_and_seeds_the_genesis_head(database_url: str) -> None:
    database = Database(database_url)
    upgrade(database)
    upgrade(database)
    with database.reader() as session:
        heads = [(h.id, h.seq, h.hash) for h in session.scalars(select(AuditHead))]
    assert heads == [(1, 0, "0" * 64)]
    database.dispose()
