"""Reads for the subscriber portal: an organisation's requests, batches and certificates, newest first.

People look at what they did last, so these listings run in descending id order with a keyset cursor
(`before_id`: the last id of the page already shown), never OFFSET. A batch's items page by item index.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mpki.store.schema import Batch, CertificateRequest, IssuedCertificate


class SubscriberQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    def requests(
        self, organisation_id: int | None, *, status: str | None, before_id: int | None, limit: int
    ) -> Sequence[CertificateRequest]:
        """Requests of one organisation (None: every organisation), newest first."""
        query = select(CertificateRequest)
        if organisation_id is not None:
            query = query.where(CertificateRequest.organisation_id == organisation_id)
        if status is not None:
            query = query.where(CertificateRequest.status == status)
        if before_id is not None:
            query = query.where(CertificateRequest.id < before_id)
        return self.session.scalars(query.order_by(CertificateRequest.id.desc()).limit(limit)).all()

    def batches(self, organisation_id: int | None, *, before_id: int | None, limit: int) -> Sequence[Batch]:
        """Batches of one organisation (None: every organisation), newest first."""
        query = select(Batch)
        if organisation_id is not None:
            query = query.where(Batch.organisation_id == organisation_id)
        if before_id is not None:
            query = query.where(Batch.id < before_id)
        return self.session.scalars(query.order_by(Batch.id.desc()).limit(limit)).all()

    def batch_items(self, batch_id: int, *, from_index: int, limit: int) -> Sequence[CertificateRequest]:
        """A page of a batch's items in item order, by the (batch_id, item_index) index."""
        return self.session.scalars(
            select(CertificateRequest)
            .where(CertificateRequest.batch_id == batch_id, CertificateRequest.item_index >= from_index)
            .order_by(CertificateRequest.item_index)
            .limit(limit)
        ).all()

    def certificates(
        self, organisation_id: int | None, *, before_id: int | None, limit: int
    ) -> Sequence[IssuedCertificate]:
        """Certificates issued through the RA for one organisation (None: for any), newest first."""
        query = select(IssuedCertificate).where(IssuedCertificate.request_id.is_not(None))
        if organisation_id is not None:
            query = query.where(IssuedCertificate.organisation_id == organisation_id)
        if before_id is not None:
            query = query.where(IssuedCertificate.id < before_id)
        return self.session.scalars(query.order_by(IssuedCertificate.id.desc()).limit(limit)).all()

    def certificates_by_serial(self, serial: str) -> Sequence[IssuedCertificate]:
        """Every certificate with this serial (one, unless two CAs happened to pick the same number)."""
        return self.session.scalars(
            select(IssuedCertificate).where(IssuedCertificate.serial == serial).order_by(IssuedCertificate.id)
        ).all()
