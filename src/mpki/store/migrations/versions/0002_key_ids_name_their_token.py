"""CA key ids may name their HSM token (`token/ckaid`), so they grow to 160 characters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cas") as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=64), type_=sa.String(length=160))


def downgrade() -> None:
    with op.batch_alter_table("cas") as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=160), type_=sa.String(length=64))
