"""Client certificates people authenticate to the API with (pinned by SHA-256 fingerprint).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "client_certificates",
        sa.Column("id", BigId, nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_client_certificates_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_certificates")),
        sa.UniqueConstraint("fingerprint_sha256", name=op.f("uq_client_certificates_fingerprint_sha256")),
    )
    with op.batch_alter_table("client_certificates") as batch_op:
        batch_op.create_index(batch_op.f("ix_client_certificates_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("client_certificates") as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_certificates_person_id"))
    op.drop_table("client_certificates")
