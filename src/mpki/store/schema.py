"""The SQLAlchemy schema. Alembic migrations under `migrations/` must produce exactly this."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mpki.store.types import BigId, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


class CertificateAuthority(Base):
    """A CA the provider runs: its certificate, its key reference, and the profiles it issues."""

    __tablename__ = "cas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    profile: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(512))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cas.id"))
    key_id: Mapped[str] = mapped_column(String(160))
    key_backend: Mapped[str] = mapped_column(String(32))
    key_identifier: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(40))
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    issues_profiles: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revocation_reason: Mapped[int | None] = mapped_column(Integer)


class SerialReservation(Base):
    """A serial recorded before signing (rule 5): later used by a stored certificate, or abandoned."""

    __tablename__ = "serial_reservations"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial"),
        Index(None, "status", "reserved_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    reserved_at: Mapped[dt.datetime]
    settled_at: Mapped[dt.datetime | None]


class Batch(Base):
    """A batch of CSRs submitted in one call; its items are requests with `batch_id` set."""

    __tablename__ = "batches"
    __table_args__ = (Index(None, "status"), Index(None, "organisation_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    profile: Mapped[str] = mapped_column(String(32))
    submitted_by: Mapped[str] = mapped_column(String(256))
    submitted_at: Mapped[dt.datetime]
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    processed: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]


class CertificateRequest(Base):
    """One certificate request, alone or as an item of a batch, through its lifecycle:
    submitted -> pending (held for review) -> approved -> issued, or rejected, or failed."""

    __tablename__ = "requests"
    __table_args__ = (
        Index(None, "status"),
        Index(None, "batch_id", "item_index"),
        Index(None, "organisation_id", "status"),
        Index(None, "eui64", "key_usage"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile: Mapped[str] = mapped_column(String(32))
    csr_der: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    submitted_by: Mapped[str] = mapped_column(String(256))
    submitted_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    item_index: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="new")
    eui64: Mapped[str | None] = mapped_column(String(16))
    key_usage: Mapped[str | None] = mapped_column(String(32))
    public_key_sha256: Mapped[str | None] = mapped_column(String(64))
    hold_reason: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[dt.datetime | None]
    certificate_serial: Mapped[str | None] = mapped_column(String(40))
    first_approved_by: Mapped[str | None] = mapped_column(String(256))
    # Renewal, re-key and update name the certificate they replace.
    replaces_serial: Mapped[str | None] = mapped_column(String(40))


class IssuedCertificate(Base):
    """Every certificate a CA signed, with the identifiers the RA and repository search by."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial"),
        Index(None, "eui64", "key_usage"),
        Index(None, "public_key_sha256"),
        Index(None, "serial"),
        Index(None, "ca_id", "revoked_at"),
        Index(None, "organisation_id", "id"),
        Index(None, "ca_id", "hold_released_at"),
        # The public repository searches by status or role alone, a page at a time in id order.
        Index(None, "status", "id"),
        Index(None, "role_code", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(512))
    eui64: Mapped[str | None] = mapped_column(String(16))
    role_code: Mapped[str | None] = mapped_column(String(2))
    profile: Mapped[str] = mapped_column(String(32))
    key_usage: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    public_key_sha256: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[dt.datetime]
    # The organisation the certificate was issued for (through the RA); the repository searches by it.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    revoked_at: Mapped[dt.datetime | None]
    revocation_reason: Mapped[int | None] = mapped_column(Integer)
    revoked_by: Mapped[str | None] = mapped_column(String(256))
    # A certificateHold released: the entry leaves the CRL and a delta CRL says removeFromCRL.
    hold_released_at: Mapped[dt.datetime | None]
    # Device key compromise: SMKI device certificates are not revoked; they are marked not in use.
    not_in_use_at: Mapped[dt.datetime | None]


class CaRevocation(Base):
    """A CA certificate revocation under dual control: proposed by one administrator, approved by another."""

    __tablename__ = "ca_revocations"
    __table_args__ = (Index(None, "ca_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    reason: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending, done, withdrawn
    requested_by: Mapped[str] = mapped_column(String(256))
    requested_at: Mapped[dt.datetime]
    approved_by: Mapped[str | None] = mapped_column(String(256))
    approved_at: Mapped[dt.datetime | None]


class Crl(Base):
    """A CRL (an issuing CA's) or ARL (a root's), full or delta. The number is reserved (status building)
    before signing so that cRLNumber never repeats, even across nodes or after a crash."""

    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("ca_id", "number"), Index(None, "ca_id", "kind", "status", "number"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))  # full or delta
    base_number: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # building or published
    this_update: Mapped[dt.datetime]
    next_update: Mapped[dt.datetime]
    entries: Mapped[int] = mapped_column(Integer, default=0)
    der: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class OcspResponder(Base):
    """A delegated OCSP responder certificate (id-kp-OCSPSigning, ocsp-nocheck) and its key, per CA."""

    __tablename__ = "ocsp_responders"
    __table_args__ = (Index(None, "ca_id", "not_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    key_id: Mapped[str] = mapped_column(String(160))
    serial: Mapped[str] = mapped_column(String(40))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]


class OcspResponse(Base):
    """The pre-signed OCSP response for one certificate (SHA-1 CertID, no nonce), refreshed before it
    expires and re-signed when the certificate's status changes."""

    __tablename__ = "ocsp_responses"
    __table_args__ = (UniqueConstraint("ca_id", "serial"), Index(None, "next_update"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # good, revoked or unknown at signing time
    der: Mapped[bytes] = mapped_column(LargeBinary)
    this_update: Mapped[dt.datetime]
    next_update: Mapped[dt.datetime]
    responder_id: Mapped[int] = mapped_column(ForeignKey("ocsp_responders.id"))


class AuditEvent(Base):
    """One link of the hash chain; `hash` covers every other column and the previous hash."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "action"), Index(None, "serial"))

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    ca: Mapped[str | None] = mapped_column(String(64))
    serial: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip, one row; locking it serialises appenders across processes and nodes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed checkpoint of the chain (event `seq` had hash `chain_hash`), also anchored outside the
    database; append-only like the events (PostgreSQL enforces it with a trigger, migration 0010)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index(None, "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    chain_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    key_id: Mapped[str] = mapped_column(String(160))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class Organisation(Base):
    """A customer organisation running its own RA: its EUI-64 entity identifiers and permitted roles."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    eui64s: Mapped[str] = mapped_column(Text, default="")  # comma-separated 16-hex-digit identifiers
    roles: Mapped[str] = mapped_column(String(64), default="")  # comma-separated two-hex-digit role codes
    status: Mapped[str] = mapped_column(String(16))
    # JSON {profile: "auto" | "review" | "dual"}; profiles not named follow the service default.
    approval_policy: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime]


class Person(Base):
    """Someone who acts in the service, with one role; organisation-side roles belong to one organisation."""

    __tablename__ = "people"
    __table_args__ = (Index(None, "organisation_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    status: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime]


class ApiToken(Base):
    """An API credential: only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class ClientCertificate(Base):
    """A client certificate a person authenticates with, found by the SHA-256 of its DER (pinned, not just
    chained: the TLS layer or the trusted proxy checks the chain, this table says whose it is)."""

    __tablename__ = "client_certificates"
    __table_args__ = (Index(None, "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(512))
    not_after: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class PortalSession(Base):
    """A signed-in portal session: only the SHA-256 of its cookie is kept; the CSRF token is bound to it."""

    __tablename__ = "portal_sessions"
    __table_args__ = (Index(None, "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]


class LoginThrottle(Base):
    """Consecutive failed sign-ins per person, and the lockout they caused."""

    __tablename__ = "login_throttles"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[dt.datetime | None]
    locked_until: Mapped[dt.datetime | None]


class StoredReport(Base):
    """A generated report kept for later: one per period and scope (organisation, or all when null)."""

    __tablename__ = "stored_reports"
    # NULLs are distinct in a unique constraint, so the all-organisations report needs its own partial index.
    __table_args__ = (
        UniqueConstraint("period", "organisation_id"),
        Index(
            "uq_stored_reports_period_all",
            "period",
            unique=True,
            sqlite_where=text("organisation_id IS NULL"),
            postgresql_where=text("organisation_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    generated_at: Mapped[dt.datetime]
    generated_by: Mapped[str] = mapped_column(String(256))
    json_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    csv_body: Mapped[str] = mapped_column(Text)


class RecoveryRecord(Base):
    """One compromise procedure (seed 000, Part G): proposed by one person, approved and run by another."""

    __tablename__ = "recovery_records"
    __table_args__ = (Index(None, "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scenario: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(512))
    parameters: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    proposed_by: Mapped[str] = mapped_column(String(256))
    proposed_at: Mapped[dt.datetime]
    approved_by: Mapped[str | None] = mapped_column(String(256))
    approved_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)


class RecoveryItem(Base):
    """What a procedure did to one certificate or device; a re-run skips the items already done."""

    __tablename__ = "recovery_items"
    __table_args__ = (
        UniqueConstraint("recovery_id", "kind", "subject"),
        Index(None, "recovery_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recovery_records.id"))
    kind: Mapped[str] = mapped_column(String(24))
    # The certificate (`CA:serial`) or the device (EUI-64) the item is about.
    subject: Mapped[str] = mapped_column(String(128))
    replacement: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]


class DeviceFlag(Base):
    """A device whose key store was compromised: its re-enrolment is held for an RA agent."""

    __tablename__ = "device_flags"
    __table_args__ = (Index(None, "eui64", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    eui64: Mapped[str] = mapped_column(String(16))
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recovery_records.id"))
    status: Mapped[str] = mapped_column(String(16))
    flagged_at: Mapped[dt.datetime]
    cleared_at: Mapped[dt.datetime | None]
    replacement_serial: Mapped[str | None] = mapped_column(String(40))


class TampSequenceNumber(Base):
    """The last TAMP sequence number given out for one signer key (RFC 5934: each message must be higher)."""

    __tablename__ = "tamp_sequence_numbers"

    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ca: Mapped[str] = mapped_column(String(64))
    last: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime]
