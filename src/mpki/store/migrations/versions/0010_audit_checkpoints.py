"""Signed audit checkpoints; on PostgreSQL the audit trail becomes append-only in the database itself.

Every database gets `audit_checkpoints`. On PostgreSQL this migration also
- adds a statement trigger on `audit_events` and `audit_checkpoints` that refuses UPDATE, DELETE and
  TRUNCATE for everyone, the owner and superusers included (a superuser can still disable it, which is
  why checkpoints are anchored outside the database as well). `mpki reinitialise` drops the tables,
  which no trigger stops;
- creates the NOLOGIN role `mpki_app` when it is missing (roles are cluster-wide) and grants it what the
  application needs in this schema: SELECT and INSERT on the audit tables, SELECT and UPDATE on
  `audit_head`, SELECT, INSERT, UPDATE and DELETE on every other table (also on tables later migrations
  make), the sequences, and no TRUNCATE anywhere. Production connects as a LOGIN role that is a member of
  `mpki_app` (`CREATE ROLE mpki_web LOGIN IN ROLE mpki_app`; `ALTER ROLE mpki_web SET role = 'mpki_app'`),
  never as the owner that runs migrations. A migrating role without CREATEROLE skips the role with a
  warning; an administrator then creates it and re-runs the grants below.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints")

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION mpki_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'audit events and checkpoints are never changed or removed once written';
END
$$
"""

APP_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mpki_app') THEN
        BEGIN
            CREATE ROLE mpki_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- made by a concurrent migration
            WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot create role mpki_app (no CREATEROLE): create it and grant it as in migration 0010';
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO mpki_app', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO mpki_app', current_schema());
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO mpki_app', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mpki_app', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO mpki_app', current_schema());
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM mpki_app;
    REVOKE INSERT, DELETE, TRUNCATE ON audit_head FROM mpki_app;
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM mpki_app;
END
$$
"""

APP_ROLE_REVOKE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mpki_app') THEN
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM mpki_app', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM mpki_app', current_schema());
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM mpki_app', current_schema());
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM mpki_app', current_schema());
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM mpki_app', current_schema());
    END IF;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=160), nullable=False),
        sa.Column("public_key_der", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_seq"), ["seq"], unique=False)

    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPEND_ONLY_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION mpki_audit_append_only()"
        )
    op.execute(APP_ROLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APP_ROLE_REVOKE)
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS mpki_audit_append_only()")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_seq"))
    op.drop_table("audit_checkpoints")
