"""Recovery records and their items, device flags, certificates marked not in use, TAMP sequence numbers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_in_use_at", sa.DateTime(), nullable=True))

    op.create_table(
        "recovery_records",
        sa.Column("id", BigId, nullable=False),
        sa.Column("scenario", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=256), nullable=False),
        sa.Column("proposed_at", sa.DateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=256), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_records")),
    )
    with op.batch_alter_table("recovery_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_records_status"), ["status"], unique=False)

    op.create_table(
        "recovery_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("recovery_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("replacement", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recovery_id"], ["recovery_records.id"], name=op.f("fk_recovery_items_recovery_id_recovery_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_items")),
        sa.UniqueConstraint("recovery_id", "kind", "subject", name=op.f("uq_recovery_items_recovery_id_kind_subject")),
    )
    with op.batch_alter_table("recovery_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recovery_items_recovery_id_kind_id"), ["recovery_id", "kind", "id"], unique=False
        )

    op.create_table(
        "device_flags",
        sa.Column("id", BigId, nullable=False),
        sa.Column("eui64", sa.String(length=16), nullable=False),
        sa.Column("recovery_id", BigId, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("flagged_at", sa.DateTime(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("replacement_serial", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["recovery_id"], ["recovery_records.id"], name=op.f("fk_device_flags_recovery_id_recovery_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_flags")),
    )
    with op.batch_alter_table("device_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_flags_eui64_status"), ["eui64", "status"], unique=False)

    op.create_table(
        "tamp_sequence_numbers",
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("ca", sa.String(length=64), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_tamp_sequence_numbers")),
    )


def downgrade() -> None:
    op.drop_table("tamp_sequence_numbers")
    with op.batch_alter_table("device_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_flags_eui64_status"))
    op.drop_table("device_flags")
    with op.batch_alter_table("recovery_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_items_recovery_id_kind_id"))
    op.drop_table("recovery_items")
    with op.batch_alter_table("recovery_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_records_status"))
    op.drop_table("recovery_records")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("not_in_use_at")
