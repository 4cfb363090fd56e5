"""Requests grow their RA lifecycle (organisation, batch item, identity, hold reason, issuance), and
batches arrive.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("organisation_id", BigId, nullable=True),
        sa.Column("profile", sa.String(length=32), nullable=False),
        sa.Column("submitted_by", sa.String(length=256), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_batches_organisation_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches") as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_batches_organisation_id"), ["organisation_id"], unique=False)
    with op.batch_alter_table("requests") as batch_op:
        batch_op.add_column(sa.Column("organisation_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("batch_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("item_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="new"))
        batch_op.add_column(sa.Column("eui64", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("key_usage", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("public_key_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("issued_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("certificate_serial", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_requests_organisation_id_organisations"), "organisations", ["organisation_id"], ["id"]
        )
        batch_op.create_foreign_key(batch_op.f("fk_requests_batch_id_batches"), "batches", ["batch_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_requests_batch_id_item_index"), ["batch_id", "item_index"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_requests_organisation_id_status"), ["organisation_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_requests_eui64_key_usage"), ["eui64", "key_usage"], unique=False)
    with op.batch_alter_table("requests") as batch_op:
        batch_op.alter_column("kind", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch_op:
        for index in (
            "ix_requests_eui64_key_usage",
            "ix_requests_organisation_id_status",
            "ix_requests_batch_id_item_index",
        ):
            batch_op.drop_index(index)
        batch_op.drop_constraint("fk_requests_batch_id_batches", type_="foreignkey")
        batch_op.drop_constraint("fk_requests_organisation_id_organisations", type_="foreignkey")
        for column in (
            "certificate_serial",
            "issued_at",
            "hold_reason",
            "public_key_sha256",
            "key_usage",
            "eui64",
            "kind",
            "item_index",
            "batch_id",
            "organisation_id",
        ):
            batch_op.drop_column(column)
    op.drop_table("batches")
