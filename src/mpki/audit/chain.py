"""The append-only hash chain. Each event's hash covers its fields and the previous hash, so a changed,
deleted, inserted or reordered event breaks the chain at that point."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from mpki.audit.anchoring import note_appended
from mpki.domain import utcnow
from mpki.store import AuditRepository

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened, who did it, and what it touched; details must be JSON-serialisable."""

    action: str
    actor: str
    ca: str | None = None
    serial: str | None = None
    request_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_time(moment: dt.datetime) -> str:
    """Microsecond ISO form in UTC; the exact string is hashed, so it must round-trip the database."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    seq: int,
    at: dt.datetime,
    actor: str,
    action: str,
    ca: str | None,
    serial: str | None,
    request_id: int | None,
    details: str,
    prev_hash: str,
) -> str:
    material = canonical_json([seq, format_time(at), actor, action, ca, serial, request_id, details, prev_hash])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def append(session: Session, records: Sequence[AuditRecord], at: dt.datetime | None = None) -> list[int]:
    """Add events to the chain inside the caller's transaction (rule 3); returns their sequence numbers."""
    if not records:
        return []
    repository = AuditRepository(session)
    head = repository.lock_head()
    seq, prev = head.seq, head.hash
    moment = at or utcnow()
    rows: list[dict[str, Any]] = []
    for record in records:
        seq += 1
        details = canonical_json(dict(record.details))
        digest = event_hash(
            seq=seq,
            at=moment,
            actor=record.actor,
            action=record.action,
            ca=record.ca,
            serial=record.serial,
            request_id=record.request_id,
            details=details,
            prev_hash=prev,
        )
        rows.append(
            {
                "seq": seq,
                "at": moment,
                "actor": record.actor,
                "action": record.action,
                "ca": record.ca,
                "serial": record.serial,
                "request_id": record.request_id,
                "details": details,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    repository.append(rows, seq, prev)
    note_appended(session, rows)  # forwarded and checkpointed once the caller's transaction commits
    return [row["seq"] for row in rows]
