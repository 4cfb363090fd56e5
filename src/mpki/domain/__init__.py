"""Value types, enums, identifiers and the error hierarchy shared by every room."""

from mpki.domain.errors import (
    AuditChainBroken,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidRequest,
    KeyStoreError,
    MpkiError,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from mpki.domain.revocation import CA_REASONS, END_ENTITY_REASONS, RevocationReason
from mpki.domain.roles import Action, OrgStatus, Role
from mpki.domain.values import (
    CertificateStatus,
    Eui64,
    KeyUsageChoice,
    RemotePartyRole,
    SerialStatus,
    format_serial,
    parse_serial,
    utcnow,
)

__all__ = [
    "CA_REASONS",
    "END_ENTITY_REASONS",
    "Action",
    "AuditChainBroken",
    "CertificateStatus",
    "ConfigError",
    "Conflict",
    "Eui64",
    "Forbidden",
    "InvalidRequest",
    "KeyStoreError",
    "KeyUsageChoice",
    "MpkiError",
    "NotFound",
    "OrgStatus",
    "RemotePartyRole",
    "RevocationReason",
    "Role",
    "SerialStatus",
    "Unauthenticated",
    "Unavailable",
    "format_serial",
    "parse_serial",
    "utcnow",
]
