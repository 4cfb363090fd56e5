"""Walk the chain and name the first broken link."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from mpki.audit.chain import GENESIS_HASH, event_hash, format_time
from mpki.store import AuditRepository, Database


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`broken_at` is the sequence number of the first bad link, with a sentence saying what is wrong."""

    events: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(database: Database, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check sequence continuity, each previous-hash link, each event's own hash, and the chain tip."""
    with database.reader() as session:
        repository = AuditRepository(session)
        head = repository.head()
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        for event in repository.iterate():
            if event.seq != expected_seq:
                return VerifyResult(count, expected_seq, f"event {expected_seq} is missing (deleted)")
            if event.prev_hash != prev_hash:
                return VerifyResult(
                    count,
                    event.seq,
                    f"event {event.seq} does not follow event {event.seq - 1} (inserted or reordered)",
                )
            recomputed = event_hash(
                seq=event.seq,
                at=event.at,
                actor=event.actor,
                action=event.action,
                ca=event.ca,
                serial=event.serial,
                request_id=event.request_id,
                details=event.details,
                prev_hash=event.prev_hash,
            )
            if recomputed != event.hash:
                return VerifyResult(count, event.seq, f"event {event.seq} was modified (its hash does not match)")
            prev_hash = event.hash
            expected_seq += 1
            count += 1
            if progress is not None and count % 10_000 == 0:
                progress(count)
        head_seq = head.seq if head is not None else 0
        head_hash = head.hash if head is not None else GENESIS_HASH
        if head_seq > count:
            return VerifyResult(count, count + 1, f"events {count + 1} to {head_seq} are missing (deleted at the end)")
        if head_seq != count or head_hash != prev_hash:
            return VerifyResult(count, count, f"the chain tip does not match event {count}")
        return VerifyResult(count)


def export_jsonl(database: Database, out: TextIO) -> int:
    """Write every event as one JSON object per line, in sequence order; returns the count."""
    count = 0
    with database.reader() as session:
        for event in AuditRepository(session).iterate():
            out.write(
                json.dumps(
                    {
                        "seq": event.seq,
                        "at": format_time(event.at),
                        "actor": event.actor,
                        "action": event.action,
                        "ca": event.ca,
                        "serial": event.serial,
                        "request_id": event.request_id,
                        "details": json.loads(event.details),
                        "prev_hash": event.prev_hash,
                        "hash": event.hash,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
    return count
