"""SQL for reading the audit log a page at a time, newest first, with the administration page's filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mpki.store.schema import AuditEvent


@dataclass(frozen=True, slots=True)
class AuditCriteria:
    """Every field narrows the log; None means no filter on that column.

    `action_prefix` matches the start of the action (``portal.``), `actor` any part of the actor, case
    aside; `since` is inclusive and `until` exclusive.
    """

    action_prefix: str | None = None
    actor: str | None = None
    serial: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class AuditQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    def newest(self, criteria: AuditCriteria, before_seq: int | None, limit: int) -> Sequence[AuditEvent]:
        """Up to `limit` matching events with seq below `before_seq` (keyset paging on the primary key)."""
        query = select(AuditEvent)
        if before_seq is not None:
            query = query.where(AuditEvent.seq < before_seq)
        if criteria.action_prefix:
            query = query.where(AuditEvent.action.startswith(criteria.action_prefix, autoescape=True))
        if criteria.actor:
            query = query.where(func.lower(AuditEvent.actor).contains(criteria.actor.lower(), autoescape=True))
        if criteria.serial:
            query = query.where(AuditEvent.serial == criteria.serial)
        if criteria.since is not None:
            query = query.where(AuditEvent.at >= criteria.since)
        if criteria.until is not None:
            query = query.where(AuditEvent.at < criteria.until)
        return self.session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)).all()

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of event `seq` (the head a verification walked up to)."""
        return self.session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
