"""Storage for signed audit checkpoints: added once, read in sequence order, never changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mpki.store.schema import AuditCheckpoint


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """One stored checkpoint as the database holds it (the audit room checks its signature)."""

    seq: int
    chain_hash: str
    at: dt.datetime
    key_id: str
    public_key_der: bytes
    signature: bytes


def _row(stored: AuditCheckpoint) -> CheckpointRow:
    return CheckpointRow(
        stored.seq, stored.chain_hash, stored.at, stored.key_id, stored.public_key_der, stored.signature
    )


class AuditCheckpointRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: CheckpointRow, created_at: dt.datetime) -> None:
        self.session.execute(
            insert(AuditCheckpoint).values(
                seq=row.seq,
                chain_hash=row.chain_hash,
                at=row.at,
                key_id=row.key_id,
                public_key_der=row.public_key_der,
                signature=row.signature,
                created_at=created_at,
            )
        )

    def latest(self) -> CheckpointRow | None:
        """The checkpoint of the highest event (the latest signed, if several name it)."""
        query = select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc()).limit(1)
        found = self.session.scalar(query)
        return _row(found) if found is not None else None

    def iterate(self, batch: int = 5000) -> Iterator[CheckpointRow]:
        """Every stored checkpoint by event sequence, in keyset pages."""
        last: tuple[int, int] | None = None
        while True:
            query = select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id).limit(batch)
            if last is not None:
                seq, row_id = last
                query = query.where(
                    (AuditCheckpoint.seq > seq) | ((AuditCheckpoint.seq == seq) & (AuditCheckpoint.id > row_id))
                )
            page = self.session.scalars(query).all()
            if not page:
                return
            yield from (_row(stored) for stored in page)
            last = (page[-1].seq, page[-1].id)
            self.session.expunge_all()
