"""Certificate status: revocation, CRLs and ARLs (full and delta), and the pre-signed OCSP responder."""

from mpki.status.crl import DELTA, FULL, CrlPublisher, PublishedCrl, crl_url
from mpki.status.ocsp import OcspAnswer, OcspService
from mpki.status.revocation import CaRevocationView, RevocationOutcome, Revocations
from mpki.status.service import MaintenanceReport, StatusMaintainer, StatusService

__all__ = [
    "DELTA",
    "FULL",
    "CaRevocationView",
    "CrlPublisher",
    "MaintenanceReport",
    "OcspAnswer",
    "OcspService",
    "PublishedCrl",
    "RevocationOutcome",
    "Revocations",
    "StatusMaintainer",
    "StatusService",
    "crl_url",
]
