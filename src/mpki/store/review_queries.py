"""Read-only SQL for the RA review desk: the queue of held requests, what a held request conflicts with,
counts per organisation and batch timelines.

Every listing is one statement (or one per page); counts are GROUP BY aggregates, never a query per row.
The queue pages by (submitted_at, id), oldest first; batch timelines page by id, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from mpki.store.schema import Batch, CertificateRequest, IssuedCertificate, Organisation

_R = CertificateRequest
_C = IssuedCertificate
# A request in flight: held for review, or approved and not yet issued.
IN_FLIGHT = ("pending", "approved")


@dataclass(frozen=True, slots=True)
class QueueLine:
    """A request held for review, as the queue lists it."""

    id: int
    organisation_id: int | None
    organisation: str | None
    profile: str
    kind: str
    eui64: str | None
    key_usage: str | None
    submitted_by: str
    submitted_at: dt.datetime
    hold_reason: str | None
    first_approved_by: str | None
    batch_id: int | None


@dataclass(frozen=True, slots=True)
class ConflictingCertificate:
    """A live certificate with the same EUI-64 and key usage as a held request."""

    id: int
    serial: str
    subject: str
    status: str
    issued_at: dt.datetime
    not_after: dt.datetime
    organisation: str | None


@dataclass(frozen=True, slots=True)
class ConflictingRequest:
    """Another request in flight for the same EUI-64 and key usage."""

    id: int
    status: str
    organisation: str | None
    submitted_by: str
    submitted_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OrganisationTally:
    """Requests and certificates of one organisation, by outcome."""

    organisation_id: int
    name: str
    pending: int = 0
    in_progress: int = 0
    issued: int = 0
    rejected: int = 0
    failed: int = 0
    revoked: int = 0


@dataclass(frozen=True, slots=True)
class BatchTimelineLine:
    """A batch with its counters and the times of its life: submitted, started, processed, approved, actioned."""

    id: int
    organisation_id: int | None
    organisation: str | None
    profile: str
    status: str
    size: int
    issued: int
    rejected: int
    held: int
    submitted_by: str
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    approved_at: dt.datetime | None
    actioned_at: dt.datetime | None


class ReviewQueries:
    """The review desk's reads, in the caller's (read-only) session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _rows(self, statement: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.session.execute(statement)]

    def organisations(self, only_id: int | None = None) -> list[tuple[int, str]]:
        """(id, name) of every organisation, or of one, by name."""
        query = select(Organisation.id, Organisation.name).order_by(Organisation.name)
        if only_id is not None:
            query = query.where(Organisation.id == only_id)
        return [(int(oid), str(name)) for oid, name in self.session.execute(query)]

    # ----- the queue ----------------------------------------------------------------------------

    def queue(self, organisation_id: int | None, after_id: int = 0, limit: int = 50) -> list[QueueLine]:
        """Held requests, oldest first; `after_id` is the last request of the previous page."""
        query = (
            select(
                _R.id,
                _R.organisation_id,
                Organisation.name,
                _R.profile,
                _R.kind,
                _R.eui64,
                _R.key_usage,
                _R.submitted_by,
                _R.submitted_at,
                _R.hold_reason,
                _R.first_approved_by,
                _R.batch_id,
            )
            .outerjoin(Organisation, Organisation.id == _R.organisation_id)
            .where(_R.status == "pending")
        )
        if organisation_id is not None:
            query = query.where(_R.organisation_id == organisation_id)
        if after_id:
            last = select(_R.submitted_at).where(_R.id == after_id).scalar_subquery()
            query = query.where(or_(_R.submitted_at > last, and_(_R.submitted_at == last, _R.id > after_id)))
        query = query.order_by(_R.submitted_at, _R.id).limit(limit)
        return [QueueLine(*row) for row in self._rows(query)]

    def pending_counts(self, organisation_id: int | None) -> dict[int | None, tuple[int, int]]:
        """Per organisation: (held requests, of which awaiting a second approval)."""
        second = func.sum(case((_R.first_approved_by.is_not(None), 1), else_=0))
        query = select(_R.organisation_id, func.count(), second).where(_R.status == "pending")
        if organisation_id is not None:
            query = query.where(_R.organisation_id == organisation_id)
        rows = self.session.execute(query.group_by(_R.organisation_id))
        return {org: (int(total), int(dual or 0)) for org, total, dual in rows}

    def oldest_pending(self, organisation_id: int | None) -> dt.datetime | None:
        query = select(func.min(_R.submitted_at)).where(_R.status == "pending")
        if organisation_id is not None:
            query = query.where(_R.organisation_id == organisation_id)
        found: dt.datetime | None = self.session.scalar(query)
        return found

    # ----- one request's conflicts --------------------------------------------------------------

    def live_certificates(self, eui64: str, key_usage: str, limit: int = 20) -> list[ConflictingCertificate]:
        """Live (issued) certificates for this EUI-64 and key usage: what a duplicate-device hold is about."""
        query = (
            select(_C.id, _C.serial, _C.subject, _C.status, _C.created_at, _C.not_after, Organisation.name)
            .outerjoin(Organisation, Organisation.id == _C.organisation_id)
            .where(_C.eui64 == eui64, _C.key_usage == key_usage, _C.status == "issued")
            .order_by(_C.id)
            .limit(limit)
        )
        return [ConflictingCertificate(*row) for row in self._rows(query)]

    def requests_in_flight(
        self, eui64: str, key_usage: str, exclude_id: int, limit: int = 20
    ) -> list[ConflictingRequest]:
        """Other requests held or approved for this EUI-64 and key usage."""
        query = (
            select(_R.id, _R.status, Organisation.name, _R.submitted_by, _R.submitted_at)
            .outerjoin(Organisation, Organisation.id == _R.organisation_id)
            .where(_R.eui64 == eui64, _R.key_usage == key_usage, _R.status.in_(IN_FLIGHT), _R.id != exclude_id)
            .order_by(_R.id)
            .limit(limit)
        )
        return [ConflictingRequest(*row) for row in self._rows(query)]

    # ----- counts per organisation --------------------------------------------------------------

    def tallies(self, organisation_id: int | None) -> list[OrganisationTally]:
        """Every organisation (or one) with its request outcomes and revoked certificates: two grouped scans."""

        def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((condition, 1), else_=0))

        requests = select(
            _R.organisation_id,
            count(_R.status == "pending"),
            count(_R.status.in_(("submitted", "approved"))),
            count(_R.status == "issued"),
            count(_R.status == "rejected"),
            count(_R.status == "failed"),
        ).where(_R.organisation_id.is_not(None))
        revoked = select(_C.organisation_id, func.count()).where(
            _C.organisation_id.is_not(None), _C.status == "revoked"
        )
        if organisation_id is not None:
            requests = requests.where(_R.organisation_id == organisation_id)
            revoked = revoked.where(_C.organisation_id == organisation_id)
        by_org = {
            row[0]: tuple(int(n or 0) for n in row[1:]) for row in self._rows(requests.group_by(_R.organisation_id))
        }
        revoked_by_org = {row[0]: int(row[1]) for row in self._rows(revoked.group_by(_C.organisation_id))}
        found = []
        for oid, name in self.organisations(organisation_id):
            pending, in_progress, issued, rejected, failed = by_org.get(oid, (0, 0, 0, 0, 0))
            found.append(
                OrganisationTally(oid, name, pending, in_progress, issued, rejected, failed, revoked_by_org.get(oid, 0))
            )
        return found

    # ----- batch timelines ----------------------------------------------------------------------

    def batch_timelines(
        self, organisation_id: int | None, before_id: int | None = None, limit: int = 25
    ) -> list[BatchTimelineLine]:
        """A page of batches, newest first, each with its latest approval and latest issuance among its items
        (one grouped query over the page's items)."""
        query = select(
            Batch.id,
            Batch.organisation_id,
            Organisation.name,
            Batch.profile,
            Batch.status,
            Batch.size,
            Batch.issued,
            Batch.rejected,
            Batch.held,
            Batch.submitted_by,
            Batch.submitted_at,
            Batch.started_at,
            Batch.completed_at,
        ).outerjoin(Organisation, Organisation.id == Batch.organisation_id)
        if organisation_id is not None:
            query = query.where(Batch.organisation_id == organisation_id)
        if before_id is not None:
            query = query.where(Batch.id < before_id)
        batches = self._rows(query.order_by(Batch.id.desc()).limit(limit))
        times = self._item_times([int(row[0]) for row in batches])
        return [BatchTimelineLine(*(row + times.get(int(row[0]), (None, None)))) for row in batches]

    def _item_times(self, batch_ids: Sequence[int]) -> dict[int, tuple[dt.datetime | None, dt.datetime | None]]:
        """Per batch: the latest decision among approved (or since issued) items, and the latest issuance."""
        if not batch_ids:
            return {}
        approved = case((_R.status.in_(("approved", "issued")), _R.decided_at), else_=None)
        query = (
            select(_R.batch_id, func.max(approved), func.max(_R.issued_at))
            .where(_R.batch_id.in_(list(batch_ids)))
            .group_by(_R.batch_id)
        )
        return {int(batch): (decided, issued) for batch, decided, issued in self.session.execute(query)}
