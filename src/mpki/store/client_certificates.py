"""SQL for client certificates: registration, lookup by fingerprint, revocation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mpki.store.schema import ClientCertificate, IssuedCertificate


class ClientCertificateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ClientCertificate) -> ClientCertificate:
        self.session.add(row)
        self.session.flush()
        return row

    def by_fingerprint(self, fingerprint_sha256: str) -> ClientCertificate | None:
        return self.session.scalar(
            select(ClientCertificate).where(ClientCertificate.fingerprint_sha256 == fingerprint_sha256)
        )

    def for_person(self, person_id: int) -> Sequence[ClientCertificate]:
        query = select(ClientCertificate).where(ClientCertificate.person_id == person_id)
        return self.session.scalars(query.order_by(ClientCertificate.id)).all()

    def revoke(self, row: ClientCertificate, at: dt.datetime) -> None:
        row.revoked_at = at
        self.session.flush()

    def issued_status(self, fingerprint_sha256: str) -> str | None:
        """The status of the certificate if this service issued it (e.g. revoked), else None."""
        return self.session.scalar(
            select(IssuedCertificate.status).where(IssuedCertificate.fingerprint_sha256 == fingerprint_sha256)
        )
