"""Read-only aggregate SQL for issuance reports: counts, turnaround percentiles, revocations and batches for
a period [start, end), per organisation.

Counts are aggregated in the database (conditional sums under GROUP BY, one scan per table), so a month over
10^6 certificates returns a few hundred rows, not a million. Turnarounds are the exception: exact percentiles
need every value, so one scan returns just two integers per timed request (whole milliseconds computed in
SQL) and the reports room ranks them. Rows without an organisation are reported under the key None.

Revocation response times pair each revocation of the period with the first CRL its CA published at or
after it. That is two reads, not one lookup per revocation: the period's revocations (by the
(ca_id, revoked_at) index) and the published CRLs' times since the period began (a few per CA per day);
each revocation then finds its CRL by bisection in the CA's sorted times.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Date, Integer, and_, case, cast, func, not_, or_, select
from sqlalchemy.orm import Session

from mpki.store.schema import Batch, CertificateAuthority, CertificateRequest, Crl, IssuedCertificate, Organisation

_R = CertificateRequest
_C = IssuedCertificate


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests submitted and rejected in the period, and those still waiting at its end."""

    submitted: int = 0
    rejected: int = 0
    pending: int = 0


@dataclass(slots=True)
class CertificateFigures:
    """Certificates issued (created) per UTC day and revoked per CRLReason code (none counts as 0), in the period."""

    issued_per_day: dict[dt.date, int] = field(default_factory=dict)
    revoked_by_reason: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Turnarounds:
    """Every turnaround of the period in milliseconds, sorted ascending (the reports room ranks them)."""

    approval_ms: list[int] = field(default_factory=list)
    issuance_ms: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RevocationTimes:
    """Revocation to first publication in a CRL of the revoking CA, in milliseconds, sorted ascending; and
    how many revocations no published CRL lists yet."""

    published_ms: list[int] = field(default_factory=list)
    awaiting: int = 0


# Items still on their way: not yet decided, or approved and not yet issued.
UNDECIDED = ("submitted", "pending")
UNFINISHED = ("submitted", "pending", "approved")


@dataclass(frozen=True, slots=True)
class BatchLine:
    """A batch submitted in the period, with its timeline. `approved_at`: when its last approved item was
    decided if any item was held for review, else when processing finished (None while an item waits for a
    decision). `returned_at`: when its last certificate was issued or processing finished, whichever is
    later (None while any item is unfinished)."""

    id: int
    organisation_id: int | None
    size: int
    status: str
    issued: int
    rejected: int
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    held: int = 0
    approved_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None


class ReportQueries:
    """The report's reads, in the caller's (read-only) session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.is_sqlite = session.get_bind().dialect.name == "sqlite"

    def organisations(self, only_id: int | None = None) -> dict[int, str]:
        query = select(Organisation.id, Organisation.name).order_by(Organisation.name)
        if only_id is not None:
            query = query.where(Organisation.id == only_id)
        return {int(oid): str(name) for oid, name in self.session.execute(query)}

    def organisation_id(self, name: str) -> int | None:
        found = self.session.scalar(select(Organisation.id).where(Organisation.name == name))
        return int(found) if found is not None else None

    def _milliseconds(self, later: Any, earlier: Any) -> ColumnElement[int]:
        """later - earlier in whole milliseconds, in SQL (julianday on SQLite, epoch on PostgreSQL)."""
        if self.is_sqlite:
            days = func.julianday(later) - func.julianday(earlier)
            return cast(func.round(days * 86_400_000), Integer)
        return cast(func.round(func.extract("epoch", later - earlier) * 1000), Integer)

    @staticmethod
    def _in(column: Any, start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
        return and_(column >= start, column < end)

    def request_counts(
        self, start: dt.datetime, end: dt.datetime, organisation_id: int | None = None
    ) -> dict[int | None, RequestCounts]:
        """One scan of requests. Pending at the end: submitted before it, and neither issued nor rejected before
        it (failed requests are finished); an approved request not yet issued still waits."""
        finished = or_(
            _R.status == "failed",
            and_(_R.status == "rejected", _R.decided_at < end),
            and_(_R.issued_at.is_not(None), _R.issued_at < end),
        )
        query = select(
            _R.organisation_id,
            func.sum(case((self._in(_R.submitted_at, start, end), 1), else_=0)),
            func.sum(case((and_(_R.status == "rejected", self._in(_R.decided_at, start, end)), 1), else_=0)),
            func.sum(case((and_(_R.submitted_at < end, not_(finished)), 1), else_=0)),
        ).where(_R.submitted_at < end)
        if organisation_id is not None:
            query = query.where(_R.organisation_id == organisation_id)
        rows = self.session.execute(query.group_by(_R.organisation_id))
        return {org: RequestCounts(int(s or 0), int(r or 0), int(p or 0)) for org, s, r, p in rows}

    def _day(self, column: Any) -> ColumnElement[Any]:
        """The UTC day of a stored time: a prefix of SQLite's ISO text (no date parsing), a cast on PostgreSQL."""
        return func.substr(column, 1, 10) if self.is_sqlite else cast(column, Date)

    def certificate_figures(
        self, start: dt.datetime, end: dt.datetime, organisation_id: int | None = None
    ) -> dict[int | None, CertificateFigures]:
        """One scan of certificates, grouped by organisation, day of issue and reason of revocation: at most
        organisations x days x reasons rows."""
        issued = self._in(_C.created_at, start, end)
        revoked = self._in(_C.revoked_at, start, end)
        day = case((issued, self._day(_C.created_at)), else_=None)
        reason = case((revoked, func.coalesce(_C.revocation_reason, 0)), else_=None)
        query = select(_C.organisation_id, day, reason, func.count()).where(or_(issued, revoked))
        if organisation_id is not None:
            query = query.where(_C.organisation_id == organisation_id)
        found: dict[int | None, CertificateFigures] = {}
        for org, on, code, count in self.session.execute(query.group_by(_C.organisation_id, day, reason)):
            figures = found.setdefault(org, CertificateFigures())
            if on is not None:
                when = dt.date.fromisoformat(str(on)[:10])
                figures.issued_per_day[when] = figures.issued_per_day.get(when, 0) + int(count)
            if code is not None:
                figures.revoked_by_reason[int(code)] = figures.revoked_by_reason.get(int(code), 0) + int(count)
        return found

    def turnarounds(
        self, start: dt.datetime, end: dt.datetime, organisation_id: int | None = None
    ) -> dict[int | None, Turnarounds]:
        """One scan of requests returning two integers per timed request, computed in SQL: approval
        (submitted_at -> decided_at of requests approved or since issued, decided in the period) and issuance
        (decided_at -> issued_at of requests issued in the period). Sorting a million integers in Python is
        faster than a window sort on SQLite, and percentiles, SLA shares and histograms then come from the
        same sorted lists."""
        approved = and_(_R.status.in_(("approved", "issued")), self._in(_R.decided_at, start, end))
        issued = and_(_R.decided_at.is_not(None), self._in(_R.issued_at, start, end))
        query = select(
            _R.organisation_id,
            case((approved, self._milliseconds(_R.decided_at, _R.submitted_at)), else_=None),
            case((issued, self._milliseconds(_R.issued_at, _R.decided_at)), else_=None),
        ).where(or_(approved, issued))
        if organisation_id is not None:
            query = query.where(_R.organisation_id == organisation_id)
        found: dict[int | None, Turnarounds] = {}
        for org, approval, issuance in self.session.execute(query):
            lists = found.get(org)
            if lists is None:
                lists = found[org] = Turnarounds()
            if approval is not None:
                lists.approval_ms.append(approval)
            if issuance is not None:
                lists.issuance_ms.append(issuance)
        for lists in found.values():
            lists.approval_ms.sort()
            lists.issuance_ms.sort()
        return found

    def batches(self, start: dt.datetime, end: dt.datetime, organisation_id: int | None = None) -> list[BatchLine]:
        """The period's batches with their items' timeline: one grouped read of their items (by the
        (batch_id, item_index) index) joined to the batches."""
        in_period = self._in(Batch.submitted_at, start, end)
        if organisation_id is not None:
            in_period = and_(in_period, Batch.organisation_id == organisation_id)
        items = (
            select(
                _R.batch_id.label("batch_id"),
                func.sum(case((_R.hold_reason.is_not(None), 1), else_=0)).label("held"),
                func.sum(case((_R.status.in_(UNDECIDED), 1), else_=0)).label("undecided"),
                func.sum(case((_R.status.in_(UNFINISHED), 1), else_=0)).label("unfinished"),
                func.max(case((_R.status.in_(("approved", "issued")), _R.decided_at), else_=None)).label("approved"),
                func.max(_R.issued_at).label("issued"),
            )
            .where(_R.batch_id.in_(select(Batch.id).where(in_period)))
            .group_by(_R.batch_id)
            .subquery()
        )
        query = (
            select(
                Batch.id,
                Batch.organisation_id,
                Batch.size,
                Batch.status,
                Batch.issued,
                Batch.rejected,
                Batch.submitted_at,
                Batch.started_at,
                Batch.completed_at,
                items.c.held,
                items.c.undecided,
                items.c.unfinished,
                items.c.approved,
                items.c.issued,
            )
            .outerjoin(items, items.c.batch_id == Batch.id)
            .where(in_period)
            .order_by(Batch.submitted_at, Batch.id)
        )
        lines = []
        for row in self.session.execute(query):
            held, undecided, unfinished, last_approved, last_issued = row[9:]
            completed: dt.datetime | None = row.completed_at
            done = completed is not None and row.status == "completed"
            approved_at = returned_at = None
            if done and not undecided:
                approved_at = last_approved if held else completed
            if completed is not None and done and not unfinished:
                returned_at = completed if last_issued is None else max(completed, last_issued)
            lines.append(
                BatchLine(
                    id=row.id,
                    organisation_id=row.organisation_id,
                    size=row.size,
                    status=row.status,
                    issued=row.issued,
                    rejected=row.rejected,
                    submitted_at=row.submitted_at,
                    started_at=row.started_at,
                    completed_at=completed,
                    held=int(held or 0),
                    approved_at=approved_at,
                    returned_at=returned_at,
                )
            )
        return lines

    def revocation_times(
        self, start: dt.datetime, end: dt.datetime, organisation_id: int | None = None
    ) -> dict[int | None, RevocationTimes]:
        """For each certificate revoked in the period: the time to the first CRL (full or delta) its CA
        published with thisUpdate at or after the revocation; revocations no published CRL covers yet are
        counted as awaiting publication."""
        revoked = select(_C.organisation_id, _C.ca_id, _C.revoked_at).where(
            # ca_id IN (every CA) lets SQLite range-scan the (ca_id, revoked_at) index once per CA.
            _C.ca_id.in_(select(CertificateAuthority.id)),
            self._in(_C.revoked_at, start, end),
        )
        if organisation_id is not None:
            revoked = revoked.where(_C.organisation_id == organisation_id)
        rows = self.session.execute(revoked).all()
        if not rows:
            return {}
        published: dict[int, list[dt.datetime]] = {}  # thisUpdate times per CA, ascending
        crls = (
            select(Crl.ca_id, Crl.this_update)
            .where(Crl.status == "published", Crl.this_update >= start)
            .order_by(Crl.ca_id, Crl.this_update)
        )
        for ca_id, this_update in self.session.execute(crls):
            published.setdefault(ca_id, []).append(this_update)
        found: dict[int | None, RevocationTimes] = {}
        millisecond = dt.timedelta(milliseconds=1)
        for org, ca_id, revoked_at in rows:
            assert revoked_at is not None  # selected by its range
            times = found.get(org)
            if times is None:
                times = found[org] = RevocationTimes()
            moments = published.get(ca_id, [])
            index = bisect.bisect_left(moments, revoked_at)
            if index == len(moments):
                times.awaiting += 1
            else:
                times.published_ms.append(round((moments[index] - revoked_at) / millisecond))
        for times in found.values():
            times.published_ms.sort()
        return found
