"""Storage: the SQLAlchemy schema, Alembic migrations and repositories. All SQL lives here."""

from mpki.store.client_certificates import ClientCertificateRepository
from mpki.store.db import Database
from mpki.store.migrate import is_current, upgrade, wipe
from mpki.store.repositories import (
    AuditRepository,
    BatchRepository,
    CaRepository,
    CertificateRepository,
    OrganisationRepository,
    PersonRepository,
    RequestRepository,
    SerialRepository,
    TokenRepository,
)
from mpki.store.schema import (
    ApiToken,
    AuditEvent,
    AuditHead,
    Base,
    Batch,
    CertificateAuthority,
    CertificateRequest,
    ClientCertificate,
    IssuedCertificate,
    Organisation,
    Person,
    SerialReservation,
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "AuditRepository",
    "Base",
    "Batch",
    "BatchRepository",
    "CaRepository",
    "CertificateAuthority",
    "CertificateRepository",
    "CertificateRequest",
    "ClientCertificate",
    "ClientCertificateRepository",
    "Database",
    "IssuedCertificate",
    "Organisation",
    "OrganisationRepository",
    "Person",
    "PersonRepository",
    "RequestRepository",
    "SerialRepository",
    "SerialReservation",
    "TokenRepository",
    "is_current",
    "upgrade",
    "wipe",
]
