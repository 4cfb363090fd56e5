"""Public dissemination, without login: certificate search and download, CA certificates, CRLs."""

from mpki.repository.service import Repository, normalise_serial
from mpki.repository.views import CaEntry, CertificateEntry, CrlEntry, SearchFilters, SearchPage, role_name

__all__ = [
    "CaEntry",
    "CertificateEntry",
    "CrlEntry",
    "Repository",
    "SearchFilters",
    "SearchPage",
    "normalise_serial",
    "role_name",
]
