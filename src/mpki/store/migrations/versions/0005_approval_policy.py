"""Approval rules per organisation and profile, and the first of two approvers under dual control.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch_op:
        batch_op.add_column(sa.Column("approval_policy", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("organisations") as batch_op:
        batch_op.alter_column("approval_policy", server_default=None)
    with op.batch_alter_table("requests") as batch_op:
        batch_op.add_column(sa.Column("first_approved_by", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("replaces_serial", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch_op:
        batch_op.drop_column("replaces_serial")
        batch_op.drop_column("first_approved_by")
    with op.batch_alter_table("organisations") as batch_op:
        batch_op.drop_column("approval_policy")
