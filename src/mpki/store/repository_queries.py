"""Read-only SQL for the public repository: certificate search, downloads, CAs and CRLs.

Listings select columns, never the DER, so a page of results stays small; the DER is read one
certificate at a time when someone downloads it. Pages are keyset by certificates.id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mpki.store.schema import CertificateAuthority, IssuedCertificate, Organisation


@dataclass(frozen=True, slots=True)
class CertificateCriteria:
    """A search in stored forms (lower-case hex serial, upper-case EUI-64, role code); None matches any.
    Each field is named after the certificates column it must equal."""

    serial: str | None = None
    eui64: str | None = None
    organisation_id: int | None = None
    role_code: str | None = None
    key_usage: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateListing:
    """One certificate as the repository lists it: everything but the DER."""

    id: int
    ca_id: int
    serial: str
    subject: str
    eui64: str | None
    role_code: str | None
    profile: str
    key_usage: str | None
    status: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    organisation: str | None
    revoked_at: dt.datetime | None
    revocation_reason: int | None


@dataclass(frozen=True, slots=True)
class CaListing:
    """A CA as the repository lists it (pending CAs, not yet certified, are left out)."""

    id: int
    name: str
    profile: str
    subject: str
    parent_id: int | None
    serial: str
    status: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    revoked_at: dt.datetime | None
    revocation_reason: int | None


_C = IssuedCertificate
_LISTING_COLUMNS = (
    _C.id,
    _C.ca_id,
    _C.serial,
    _C.subject,
    _C.eui64,
    _C.role_code,
    _C.profile,
    _C.key_usage,
    _C.status,
    _C.not_before,
    _C.not_after,
    _C.fingerprint_sha256,
    Organisation.name,
    _C.revoked_at,
    _C.revocation_reason,
)
_A = CertificateAuthority
_CA_COLUMNS = (
    _A.id,
    _A.name,
    _A.profile,
    _A.subject,
    _A.parent_id,
    _A.serial,
    _A.status,
    _A.not_before,
    _A.not_after,
    _A.fingerprint_sha256,
    _A.revoked_at,
    _A.revocation_reason,
)


class RepositoryQueries:
    """Everything the public repository reads, in the caller's (read-only) session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def search_statement(
        criteria: CertificateCriteria, *, after_id: int = 0, limit: int = 100
    ) -> Select[*tuple[Any, ...]]:
        """The search as a statement (tests read its plan). Equality on serial, eui64(+key_usage) and
        organisation_id lets the database use those indexes; the id order makes the keyset cursor."""
        query = select(*_LISTING_COLUMNS).outerjoin(Organisation, Organisation.id == _C.organisation_id)
        query = query.where(_C.id > after_id)
        for field in fields(criteria):
            value = getattr(criteria, field.name)
            if value is not None:
                query = query.where(getattr(_C, field.name) == value)
        return query.order_by(_C.id).limit(limit)

    def search(self, criteria: CertificateCriteria, *, after_id: int = 0, limit: int = 100) -> list[CertificateListing]:
        """Certificates matching every given criterion, by id after `after_id`."""
        return [
            CertificateListing(*row)
            for row in self._rows(self.search_statement(criteria, after_id=after_id, limit=limit))
        ]

    def by_serial(self, serial: str, ca_id: int | None = None) -> list[CertificateListing]:
        """Every certificate with this serial (one per CA at most), optionally under one CA."""
        query = select(*_LISTING_COLUMNS).outerjoin(Organisation, Organisation.id == _C.organisation_id)
        query = query.where(_C.serial == serial)
        if ca_id is not None:
            query = query.where(_C.ca_id == ca_id)
        return [CertificateListing(*row) for row in self._rows(query.order_by(_C.id))]

    def _rows(self, statement: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.session.execute(statement)]

    def certificate_der(self, certificate_id: int) -> bytes | None:
        der = self.session.scalar(select(_C.der).where(_C.id == certificate_id))
        return bytes(der) if der is not None else None

    def organisation_id(self, name: str) -> int | None:
        found = self.session.scalar(select(Organisation.id).where(Organisation.name == name))
        return int(found) if found is not None else None

    def cas(self) -> list[CaListing]:
        """The certified CAs (active or revoked) in creation order; a handful of rows."""
        query = select(*_CA_COLUMNS).where(_A.status != "pending").order_by(_A.id)
        return [CaListing(*row) for row in self._rows(query)]

    def ca_certificates(self, ca_ids: Sequence[int]) -> dict[int, bytes]:
        """DER of these CAs' certificates, by CA id."""
        rows = self.session.execute(select(_A.id, _A.certificate_der).where(_A.id.in_(list(ca_ids))))
        return {int(ca_id): bytes(der) for ca_id, der in rows}
