"""Walk the chain and name the first broken link."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from mpki.audit.chain import GENESIS_HASH, event_hash, format_time
from mpki.store import AuditEvent, AuditRepository, Database


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`broken_at` is the sequence number of the first bad link, with a sentence saying what is wrong."""

    events: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason


class _Walk:
    """The running state of a walk: how many events are good so far and the hash the next must follow."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.count = 0
        self.prev_hash = GENESIS_HASH
        self.progress = progress

    def check(self, event: AuditEvent) -> None:
        expected = self.count + 1
        if event.seq < expected:
            raise _Broken(event.seq, f"event {event.seq} is out of sequence (inserted)")
        if event.seq > expected:
            raise _Broken(expected, f"event {expected} is missing (deleted)")
        if event.prev_hash != self.prev_hash:
            raise _Broken(event.seq, f"event {event.seq} does not follow event {event.seq - 1} (inserted or reordered)")
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
            raise _Broken(event.seq, f"event {event.seq} was modified (its hash does not match)")
        self.prev_hash = event.hash
        self.count += 1
        if self.progress is not None and self.count % 10_000 == 0:
            self.progress(self.count)


def verify_chain(database: Database, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check sequence continuity, each previous-hash link, each event's own hash, and the chain tip.

    Safe while others append: an event and the tip that counts it commit together, so the tip is read
    before each walk (every event up to it must be found) and again after it (every event found must be
    covered by it); events appended meanwhile are walked too, until the walk catches up with the tip.
    """
    walk = _Walk(progress)
    with database.reader() as session:
        repository = AuditRepository(session)
        after: int | None = None  # the first walk has no lower bound, so rows forged at seq <= 0 are seen
        try:
            while True:
                head = repository.head()
                tip_before = head.seq if head is not None else 0
                for event in repository.iterate(after=after):
                    walk.check(event)
                after = walk.count
                if walk.count < tip_before:
                    missing = walk.count + 1
                    span = f"event {missing} is" if missing == tip_before else f"events {missing} to {tip_before} are"
                    raise _Broken(missing, f"{span} missing (deleted at the end)")
                head = repository.head()
                tip_after = head.seq if head is not None else 0
                if walk.count > tip_after:
                    raise _Broken(tip_after + 1, f"event {tip_after + 1} lies beyond the chain tip (inserted)")
                if walk.count == tip_after:
                    if (head.hash if head is not None else GENESIS_HASH) != walk.prev_hash:
                        raise _Broken(walk.count, f"the chain tip does not match event {walk.count}")
                    return VerifyResult(walk.count)
                # The tip moved on during the walk: walk again from where this one stopped.
        except _Broken as broken:
            return VerifyResult(walk.count, broken.seq, broken.reason)


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
