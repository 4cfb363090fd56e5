"""Storage: the SQLAlchemy schema, Alembic migrations and repositories. All SQL lives here."""

from mpki.store.db import Database
from mpki.store.migrate import is_current, upgrade, wipe
from mpki.store.repositories import (
    AuditRepository,
    CaRepository,
    CertificateRepository,
    RequestRepository,
    SerialRepository,
)
from mpki.store.schema import (
    AuditEvent,
    AuditHead,
    Base,
    CertificateAuthority,
    CertificateRequest,
    IssuedCertificate,
    SerialReservation,
)

__all__ = [
    "AuditEvent",
    "AuditHead",
    "AuditRepository",
    "Base",
    "CaRepository",
    "CertificateAuthority",
    "CertificateRepository",
    "CertificateRequest",
    "Database",
    "IssuedCertificate",
    "RequestRepository",
    "SerialRepository",
    "SerialReservation",
    "is_current",
    "upgrade",
    "wipe",
]
