"""The RA review desk's reads: the queue of held requests, one request with everything needed to decide it,
counts per organisation and batch timelines.

Every read is authorised for Action.REQUEST_DECIDE (the people who decide are the people who review) and
scoped to the organisations the principal may act for. Decisions themselves go through
`Registration.decide`, which authorises and audits them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mpki.domain import Action, InvalidRequest, NotFound, utcnow
from mpki.profiles import load_csr, rfc4514_string
from mpki.ra.authorisation import Principal, authorise, visible_organisation
from mpki.store import (
    BatchTimelineLine,
    ConflictingCertificate,
    ConflictingRequest,
    Database,
    DeviceFlagRepository,
    OrganisationRepository,
    OrganisationTally,
    QueueLine,
    RequestRepository,
    ReviewQueries,
)

QUEUE_PAGE = 50
TIMELINE_PAGE = 25
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of the queue, the counts above it, and the organisations it may be filtered by."""

    lines: list[QueueLine]
    next_after: int | None
    organisations: list[tuple[int, str]]
    selected: int | None
    held_by_organisation: dict[int | None, int]
    awaiting_second: int
    oldest: dt.datetime | None
    now: dt.datetime

    @property
    def held(self) -> int:
        return sum(self.held_by_organisation.values())


@dataclass(frozen=True, slots=True)
class RequestReview:
    """A request as the agent deciding it sees it, with what it conflicts with."""

    id: int
    status: str
    profile: str
    kind: str
    replaces: str | None
    organisation_id: int | None
    organisation: str | None
    batch_id: int | None
    item_index: int | None
    subject: str | None
    eui64: str | None
    key_usage: str | None
    submitted_by: str
    submitted_at: dt.datetime
    hold_reason: str | None
    first_approved_by: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None
    serial: str | None
    duplicate_hold: bool
    conflicting_certificates: list[ConflictingCertificate] = field(default_factory=list)
    conflicting_requests: list[ConflictingRequest] = field(default_factory=list)
    # The recovery that flagged the device (device key compromise), while the flag stands.
    flagged_by_recovery: int | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True, slots=True)
class TimelinePage:
    lines: list[BatchTimelineLine]
    next_before: int | None
    organisations: list[tuple[int, str]]
    selected: int | None


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"a page holds 1 to {MAX_PAGE} rows")
    return limit


def _subject_of(csr: bytes) -> str | None:
    """The subject the CSR asks for, as RFC 4514 text; None if the CSR cannot be read (it was rejected)."""
    try:
        return rfc4514_string(load_csr(csr).subject)
    except (InvalidRequest, ValueError):
        return None


class ReviewDesk:
    """What RA agents, RA managers and organisations' RA officers read before they decide."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _scope(self, principal: Principal, organisation_id: int | None) -> int | None:
        """The organisation to list (None: all the principal may see); a filter outside the scope is refused."""
        visible = visible_organisation(principal, Action.REQUEST_DECIDE)
        if organisation_id is None:
            return visible
        authorise(principal, Action.REQUEST_DECIDE, organisation_id)
        return organisation_id

    def _choices(self, queries: ReviewQueries, principal: Principal, selected: int | None) -> list[tuple[int, str]]:
        choices = queries.organisations(visible_organisation(principal, Action.REQUEST_DECIDE))
        if selected is not None and all(oid != selected for oid, _ in choices):
            raise NotFound(f"no organisation {selected}")
        return choices

    def organisations(self, principal: Principal) -> list[tuple[int, str]]:
        """(id, name) of the organisations whose requests the principal may decide."""
        with self.database.reader() as session:
            return self._choices(ReviewQueries(session), principal, None)

    def queue(
        self, principal: Principal, organisation_id: int | None = None, after_id: int = 0, limit: int = QUEUE_PAGE
    ) -> QueuePage:
        """Held requests, oldest first, a page at a time; `after_id` is the last id of the page before."""
        limit = _page_size(limit)
        scope = self._scope(principal, organisation_id)
        with self.database.reader() as session:
            queries = ReviewQueries(session)
            choices = self._choices(queries, principal, organisation_id)
            lines = queries.queue(scope, after_id, limit)
            counts = queries.pending_counts(scope)
            oldest = queries.oldest_pending(scope)
        return QueuePage(
            lines=lines,
            next_after=lines[-1].id if len(lines) == limit else None,
            organisations=choices,
            selected=organisation_id,
            held_by_organisation={org: held for org, (held, _) in counts.items()},
            awaiting_second=sum(second for _, second in counts.values()),
            oldest=oldest,
            now=utcnow(),
        )

    def review(self, principal: Principal, request_id: int) -> RequestReview:
        """One request, authorised for the organisation it belongs to, with its conflicts."""
        with self.database.reader() as session:
            row = RequestRepository(session).by_id(request_id)
            authorise(principal, Action.REQUEST_DECIDE, row.organisation_id)
            organisation = (
                OrganisationRepository(session).by_id(row.organisation_id).name if row.organisation_id else None
            )
            certificates: list[ConflictingCertificate] = []
            in_flight: list[ConflictingRequest] = []
            flagged_by: int | None = None
            if row.profile == "smki-device" and row.eui64 and row.key_usage:
                queries = ReviewQueries(session)
                certificates = queries.live_certificates(row.eui64, row.key_usage)
                in_flight = queries.requests_in_flight(row.eui64, row.key_usage, exclude_id=row.id)
                flagged_by = DeviceFlagRepository(session).flagged([row.eui64]).get(row.eui64)
            # Held by the duplicate-device check, or (held for another reason) still sharing its identity.
            duplicate = row.status == "pending" and ("duplicate" in (row.hold_reason or "") or bool(certificates))
            return RequestReview(
                id=row.id,
                status=row.status,
                profile=row.profile,
                kind=row.kind,
                replaces=row.replaces_serial,
                organisation_id=row.organisation_id,
                organisation=organisation,
                batch_id=row.batch_id,
                item_index=row.item_index,
                subject=_subject_of(row.csr_der),
                eui64=row.eui64,
                key_usage=row.key_usage,
                submitted_by=row.submitted_by,
                submitted_at=row.submitted_at,
                hold_reason=row.hold_reason,
                first_approved_by=row.first_approved_by,
                decided_by=row.decided_by,
                decided_at=row.decided_at,
                reason=row.reason,
                serial=row.certificate_serial,
                duplicate_hold=duplicate,
                conflicting_certificates=certificates,
                conflicting_requests=in_flight,
                flagged_by_recovery=flagged_by,
            )

    def tallies(self, principal: Principal) -> list[OrganisationTally]:
        """Per organisation the principal may see: pending, issued, rejected and revoked counts."""
        scope = self._scope(principal, None)
        with self.database.reader() as session:
            return ReviewQueries(session).tallies(scope)

    def batch_timelines(
        self,
        principal: Principal,
        organisation_id: int | None = None,
        before_id: int | None = None,
        limit: int = TIMELINE_PAGE,
    ) -> TimelinePage:
        """Batches newest first with their timelines; `before_id` is the last id of the page before."""
        limit = _page_size(limit)
        scope = self._scope(principal, organisation_id)
        with self.database.reader() as session:
            queries = ReviewQueries(session)
            choices = self._choices(queries, principal, organisation_id)
            lines = queries.batch_timelines(scope, before_id, limit)
        return TimelinePage(
            lines=lines,
            next_before=lines[-1].id if len(lines) == limit else None,
            organisations=choices,
            selected=organisation_id,
        )
