"""Revocation state, CRLs and ARLs, OCSP responders and pre-signed responses, dual-control CA revocation;
certificates remember the organisation they were issued for.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ca_revocations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ca_id", BigId, nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=256), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_ca_revocations_ca_id_cas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_revocations")),
    )
    with op.batch_alter_table("ca_revocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ca_revocations_ca_id_status"), ["ca_id", "status"], unique=False)

    op.create_table(
        "crls",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ca_id", BigId, nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("this_update", sa.DateTime(), nullable=False),
        sa.Column("next_update", sa.DateTime(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_crls_ca_id_cas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crls")),
        sa.UniqueConstraint("ca_id", "number", name=op.f("uq_crls_ca_id_number")),
    )
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crls_ca_id_kind_status_number"), ["ca_id", "kind", "status", "number"], unique=False
        )

    op.create_table(
        "ocsp_responders",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ca_id", BigId, nullable=False),
        sa.Column("key_id", sa.String(length=160), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_ocsp_responders_ca_id_cas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocsp_responders")),
    )
    with op.batch_alter_table("ocsp_responders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocsp_responders_ca_id_not_after"), ["ca_id", "not_after"], unique=False)

    op.create_table(
        "ocsp_responses",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ca_id", BigId, nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", sa.DateTime(), nullable=False),
        sa.Column("next_update", sa.DateTime(), nullable=False),
        sa.Column("responder_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_ocsp_responses_ca_id_cas")),
        sa.ForeignKeyConstraint(
            ["responder_id"], ["ocsp_responders.id"], name=op.f("fk_ocsp_responses_responder_id_ocsp_responders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocsp_responses")),
        sa.UniqueConstraint("ca_id", "serial", name=op.f("uq_ocsp_responses_ca_id_serial")),
    )
    with op.batch_alter_table("ocsp_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocsp_responses_next_update"), ["next_update"], unique=False)

    with op.batch_alter_table("cas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("revocation_reason", sa.Integer(), nullable=True))

    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("revocation_reason", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("hold_released_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_certificates_ca_id_revoked_at"), ["ca_id", "revoked_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificates_organisation_id_id"), ["organisation_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_certificates_ca_id_hold_released_at"), ["ca_id", "hold_released_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_certificates_status_id"), ["status", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificates_role_code_id"), ["role_code", "id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_certificates_organisation_id_organisations"), "organisations", ["organisation_id"], ["id"]
        )

    # Certificates issued before this revision take their organisation from their request.
    op.execute(
        "UPDATE certificates SET organisation_id = "
        "(SELECT requests.organisation_id FROM requests WHERE requests.id = certificates.request_id) "
        "WHERE request_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_certificates_organisation_id_organisations"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_certificates_organisation_id_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_ca_id_hold_released_at"))
        batch_op.drop_index(batch_op.f("ix_certificates_status_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_role_code_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_ca_id_revoked_at"))
        batch_op.drop_column("hold_released_at")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revocation_reason")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("organisation_id")

    with op.batch_alter_table("cas", schema=None) as batch_op:
        batch_op.drop_column("revocation_reason")
        batch_op.drop_column("revoked_at")

    with op.batch_alter_table("ocsp_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocsp_responses_next_update"))

    op.drop_table("ocsp_responses")
    with op.batch_alter_table("ocsp_responders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocsp_responders_ca_id_not_after"))

    op.drop_table("ocsp_responders")
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crls_ca_id_kind_status_number"))

    op.drop_table("crls")
    with op.batch_alter_table("ca_revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ca_revocations_ca_id_status"))

    op.drop_table("ca_revocations")
