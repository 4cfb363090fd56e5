"""SQL for portal sign-in (sessions, failed-login throttles) and for reports kept after generation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mpki.store.schema import LoginThrottle, PortalSession, StoredReport


class PortalSessionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: PortalSession) -> PortalSession:
        self.session.add(row)
        self.session.flush()
        return row

    def live_by_hash(self, token_sha256: str, now: dt.datetime) -> PortalSession | None:
        return self.session.scalar(
            select(PortalSession).where(
                PortalSession.token_sha256 == token_sha256,
                PortalSession.ended_at.is_(None),
                PortalSession.expires_at > now,
            )
        )

    def touch(self, session_id: int, now: dt.datetime) -> None:
        self.session.execute(update(PortalSession).where(PortalSession.id == session_id).values(last_seen_at=now))

    def end(self, token_sha256: str, now: dt.datetime) -> PortalSession | None:
        row = self.session.scalar(
            select(PortalSession).where(PortalSession.token_sha256 == token_sha256, PortalSession.ended_at.is_(None))
        )
        if row is not None:
            row.ended_at = now
            self.session.flush()
        return row

    def end_all_for(self, person_id: int, now: dt.datetime) -> int:
        result = self.session.execute(
            update(PortalSession)
            .where(PortalSession.person_id == person_id, PortalSession.ended_at.is_(None))
            .values(ended_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class LoginThrottleRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def for_update(self, person_id: int) -> LoginThrottle:
        """The person's throttle row, created at zero when missing; locked for the rest of the transaction."""
        row = self.session.scalar(select(LoginThrottle).where(LoginThrottle.person_id == person_id).with_for_update())
        if row is None:
            row = LoginThrottle(person_id=person_id, failed_count=0)
            self.session.add(row)
            self.session.flush()
        return row

    def get(self, person_id: int) -> LoginThrottle | None:
        return self.session.get(LoginThrottle, person_id)


class StoredReportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: StoredReport) -> StoredReport:
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, period: str, organisation_id: int | None) -> StoredReport | None:
        query = select(StoredReport).where(StoredReport.period == period)
        if organisation_id is None:
            query = query.where(StoredReport.organisation_id.is_(None))
        else:
            query = query.where(StoredReport.organisation_id == organisation_id)
        return self.session.scalar(query)

    def by_id(self, report_id: int) -> StoredReport | None:
        return self.session.get(StoredReport, report_id)

    def listing(self, organisation_id: int | None, *, everything: bool, limit: int = 200) -> Sequence[StoredReport]:
        """Newest first. `everything`: every scope (provider staff); else only the given organisation's."""
        query = select(StoredReport).order_by(StoredReport.generated_at.desc(), StoredReport.id.desc()).limit(limit)
        if not everything:
            query = query.where(StoredReport.organisation_id == organisation_id)
        return self.session.scalars(query).all()
