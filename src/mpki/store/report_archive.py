"""Kept reports: which periods and scopes are stored, a listing without the bodies, and the lock two
nodes take before storing the same report.

The unique constraint on (period, organisation_id) stops a second copy of an organisation's report, but
SQL treats NULLs as distinct, so it cannot stop a second all-organisations report (organisation_id NULL).
Storing therefore first takes a lock per period and scope: on SQLite every writer already holds the
database lock (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock, released at commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mpki.store.schema import Organisation, StoredReport


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    """A kept report's description (its bodies are read one at a time, when asked for)."""

    id: int
    period: str
    kind: str
    organisation_id: int | None
    organisation: str | None
    generated_at: dt.datetime
    generated_by: str


def _lock_key(period: str, organisation_id: int | None) -> int:
    """A signed 64-bit advisory lock key for one report scope."""
    digest = hashlib.sha256(f"mpki.stored_reports:{period}:{organisation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ReportArchive:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self, period: str, organisation_id: int | None) -> None:
        """Serialise storing one scope's report for the rest of the transaction."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(select(func.pg_advisory_xact_lock(_lock_key(period, organisation_id))))

    def stored_scopes(self, periods: Iterable[str]) -> set[tuple[str, int | None]]:
        """(period, organisation id or None) of every report kept for these periods."""
        wanted = list(periods)
        if not wanted:
            return set()
        query = select(StoredReport.period, StoredReport.organisation_id).where(StoredReport.period.in_(wanted))
        return {(period, organisation_id) for period, organisation_id in self.session.execute(query)}

    def catalogue(self, organisation_id: int | None, *, everything: bool, limit: int = 500) -> list[ArchivedReport]:
        """Newest period first, the all-organisations report before the organisations' by name.
        `everything`: every scope (provider staff); else only the given organisation's reports."""
        query = (
            select(
                StoredReport.id,
                StoredReport.period,
                StoredReport.kind,
                StoredReport.organisation_id,
                Organisation.name,
                StoredReport.generated_at,
                StoredReport.generated_by,
            )
            .outerjoin(Organisation, Organisation.id == StoredReport.organisation_id)
            .order_by(
                StoredReport.generated_at.desc(),
                StoredReport.period.desc(),
                StoredReport.organisation_id.is_not(None),
                Organisation.name,
            )
            .limit(limit)
        )
        if not everything:
            query = query.where(StoredReport.organisation_id == organisation_id)
        return [ArchivedReport(*row) for row in self.session.execute(query)]
