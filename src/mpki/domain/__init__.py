"""Value types, enums, identifiers and the error hierarchy shared by every room."""

from mpki.domain.errors import (
    AuditChainBroken,
    ConfigError,
    InvalidRequest,
    KeyStoreError,
    MpkiError,
    NotFound,
)
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
    "AuditChainBroken",
    "CertificateStatus",
    "ConfigError",
    "Eui64",
    "InvalidRequest",
    "KeyStoreError",
    "KeyUsageChoice",
    "MpkiError",
    "NotFound",
    "RemotePartyRole",
    "SerialStatus",
    "format_serial",
    "parse_serial",
    "utcnow",
]
