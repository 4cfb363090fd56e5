"""Walk the chain and name the first broken link."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from mpki.audit.chain import GENESIS_HASH, event_hash, format_time
from mpki.domain import InvalidRequest
from mpki.signer.checkpoints import Checkpoint, CheckpointForged, SignedCheckpoint
from mpki.store import AuditCheckpointRepository, AuditEvent, AuditRepository, CheckpointRow, Database


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`broken_at` is the sequence number of the first bad link, with a sentence saying what is wrong.

    An anchored verification also says how many signed checkpoints it compared the chain with, and the
    highest one the chain matched.
    """

    events: int
    broken_at: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    last_checkpoint: int | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason


class _Walk:
    """The running state of a walk: how many events are good so far and the hash the next must follow."""

    def __init__(
        self, progress: Callable[[int], None] | None, anchors: Mapping[int, SignedCheckpoint] | None = None
    ) -> None:
        self.count = 0
        self.prev_hash = GENESIS_HASH
        self.progress = progress
        self.anchors = anchors or {}
        self.matched: list[SignedCheckpoint] = []  # the checkpoints the chain matched, in sequence order

    @property
    def last_good(self) -> SignedCheckpoint | None:
        return self.matched[-1] if self.matched else None

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
        self._compare_with_checkpoint(event)
        self.prev_hash = event.hash
        self.count += 1
        if self.progress is not None and self.count % 10_000 == 0:
            self.progress(self.count)

    def _compare_with_checkpoint(self, event: AuditEvent) -> None:
        """A chain rewritten and re-chained is consistent in itself; only a signed hash can tell."""
        anchor = self.anchors.get(event.seq)
        if anchor is None:
            return
        if anchor.chain_hash != event.hash:
            first = self.last_good.sequence + 1 if self.last_good is not None else 1
            span = f"event {first} was" if first == event.seq else f"events {first} to {event.seq} were"
            raise _Broken(
                first,
                f"{span} rewritten and re-chained: event {event.seq}'s hash is not the one the checkpoint "
                f"signed at {format_time(anchor.at)} holds (the first bad event is among them)",
            )
        self.matched.append(anchor)


def verify_chain(database: Database, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check sequence continuity, each previous-hash link, each event's own hash, and the chain tip.

    Safe while others append: an event and the tip that counts it commit together, so the tip is read
    before each walk (every event up to it must be found) and again after it (every event found must be
    covered by it); events appended meanwhile are walked too, until the walk catches up with the tip.
    """
    return _walk_chain(database, _Walk(progress))


def _walk_chain(database: Database, walk: _Walk) -> VerifyResult:
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


def verify_with_anchors(
    database: Database,
    anchors: Sequence[SignedCheckpoint],
    trusted_public_key_der: bytes | None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Verify the chain as `verify_chain` does, and against signed checkpoints kept outside the database.

    `anchors` (from the anchor directory) and the checkpoints stored in the database must be signed by
    the trusted audit key, and agree with each other; then the chain must hold, at every checkpointed
    event, the hash that was signed, and reach the highest checkpoint. That finds what the chain alone
    cannot: the tail deleted with `audit_head` rolled back, and events rewritten with the rest re-chained.
    Events after the last checkpoint are covered by the chain alone (and by the syslog copy).
    The first problem by event sequence is reported, with the last checkpoint the chain still matched.
    With no trusted key (nothing anchored yet), `anchors` must be empty and any checkpoint stored in the
    database is reported, since nothing outside the database vouches for it.
    """
    if trusted_public_key_der is None and anchors:
        raise InvalidRequest("checking anchored checkpoints needs the trusted audit key")
    problems: list[_Broken] = []
    expected = _anchored(anchors, trusted_public_key_der, problems)
    with database.reader() as session:
        stored = list(AuditCheckpointRepository(session).iterate())
    expected |= _stored_checkpoints(stored, expected, trusted_public_key_der, problems)
    walk = _Walk(progress, expected)
    result = _walk_chain(database, walk)
    if result.ok:
        _check_reaches_checkpoints(result.events, expected, problems)
    elif result.broken_at is not None and result.reason is not None:
        problems.append(_Broken(result.broken_at, result.reason))
    last = walk.last_good
    last_seq = last.sequence if last is not None else None
    if not problems:
        return VerifyResult(result.events, checkpoints=len(expected), last_checkpoint=last_seq)
    first = min(problems, key=lambda problem: problem.seq)
    before = [checkpoint for checkpoint in walk.matched if checkpoint.sequence < first.seq]
    if before:
        good = f"last good checkpoint: event {before[-1].sequence}, signed {format_time(before[-1].at)}"
    else:
        good = "no good checkpoint before it"
    return VerifyResult(result.events, first.seq, f"{first.reason}; {good}", len(expected), last_seq)


def _anchored(
    anchors: Iterable[SignedCheckpoint], trusted_public_key_der: bytes | None, problems: list[_Broken]
) -> dict[int, SignedCheckpoint]:
    """The anchor directory's checkpoints by event, each proved signed by the trusted key."""
    expected: dict[int, SignedCheckpoint] = {}
    for anchor in anchors:
        try:
            anchor.verify(trusted_public_key_der)
        except CheckpointForged as forged:
            problems.append(_Broken(anchor.sequence, f"in the anchor directory, {forged}"))
            continue
        seen = expected.setdefault(anchor.sequence, anchor)
        if seen.chain_hash != anchor.chain_hash:
            problems.append(
                _Broken(anchor.sequence, f"the anchor directory holds two different hashes for event {anchor.sequence}")
            )
    return expected


def _stored_checkpoints(
    rows: Iterable[CheckpointRow],
    anchored: Mapping[int, SignedCheckpoint],
    trusted_public_key_der: bytes | None,
    problems: list[_Broken],
) -> dict[int, SignedCheckpoint]:
    """The database's checkpoints: each signed by the trusted key and agreeing with the anchors; those
    newer than every anchor (an anchor copy taken earlier) count as signed evidence too."""
    highest_anchor = max(anchored, default=0)
    newer: dict[int, SignedCheckpoint] = {}
    for row in rows:
        where = f"the checkpoint of event {row.seq} in the database"
        if trusted_public_key_der is None:
            problems.append(_Broken(row.seq, f"{where} is vouched for by nothing: the anchor directory is empty"))
            continue
        try:
            checkpoint = Checkpoint(row.seq, row.chain_hash, row.at)
            signed = SignedCheckpoint(checkpoint, row.key_id, row.public_key_der, row.signature)
            signed.verify(trusted_public_key_der)
        except (CheckpointForged, InvalidRequest) as error:
            problems.append(_Broken(row.seq, f"{where} is forged: {error}"))
            continue
        anchor = anchored.get(row.seq)
        if anchor is not None and anchor.chain_hash != row.chain_hash:
            problems.append(_Broken(row.seq, f"{where} holds another hash than the anchor directory"))
        elif anchor is None and row.seq <= highest_anchor:
            problems.append(_Broken(row.seq, f"{where} is missing from the anchor directory"))
        elif anchor is None:
            newer.setdefault(row.seq, signed)
    return newer


def _check_reaches_checkpoints(events: int, expected: Mapping[int, SignedCheckpoint], problems: list[_Broken]) -> None:
    beyond = [seq for seq in expected if seq > events]
    if not beyond:
        return
    top = expected[max(beyond)]
    span = f"event {events + 1} is" if events + 1 == top.sequence else f"events {events + 1} to {top.sequence} are"
    problems.append(
        _Broken(
            events + 1,
            f"{span} missing: a checkpoint signed {format_time(top.at)} covers event {top.sequence}, but the chain "
            f"ends at event {events} (deleted at the end, head rolled back)",
        )
    )


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
