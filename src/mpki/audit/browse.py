"""Reading the audit log for people: a page of events, newest first, and the chain's verification status.

The log is read, never changed, here; who may read it is decided by the caller in `ra` (AUDIT_VIEW).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mpki.audit.verify import verify_chain
from mpki.store import AuditCriteria, AuditEvent, AuditQueries, Database

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    at: dt.datetime
    action: str
    actor: str
    ca: str | None
    serial: str | None
    request_id: int | None
    details: str  # compact JSON, as hashed


@dataclass(frozen=True, slots=True)
class EventPage:
    """`older` is the cursor for the next page (events below that seq), None on the last page."""

    events: tuple[EventView, ...]
    older: int | None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The verifier's answer, with the hash of the last good event (the head when the chain holds)."""

    events: int
    head_hash: str | None
    broken_at: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _view(event: AuditEvent) -> EventView:
    return EventView(
        event.seq, event.at, event.action, event.actor, event.ca, event.serial, event.request_id, event.details
    )


def events_page(
    database: Database, criteria: AuditCriteria, before_seq: int | None = None, limit: int = PAGE_SIZE
) -> EventPage:
    """One page of matching events, newest first; one row more is read to know if another page follows."""
    with database.reader() as session:
        rows = AuditQueries(session).newest(criteria, before_seq, limit + 1)
        views = tuple(_view(row) for row in rows[:limit])
    return EventPage(views, views[-1].seq if len(rows) > limit else None)


def chain_status(database: Database) -> ChainStatus:
    """Walk the whole chain (slow on a long log: run on request, not on every page view)."""
    result = verify_chain(database)
    head_hash: str | None = None
    if result.events:
        with database.reader() as session:
            head_hash = AuditQueries(session).hash_at(result.events)
    return ChainStatus(result.events, head_hash, result.broken_at, result.reason)
