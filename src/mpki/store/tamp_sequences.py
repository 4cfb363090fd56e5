"""The TAMP sequence-number counters, one row per signer key (`tamp_sequence_numbers`).

A trust-anchor store refuses a number that is not above the last it accepted from a signer, so a number
must never be handed out twice, whichever node signs. `reserve` therefore increments in the database
itself (one `UPDATE … SET last = last + 1 … RETURNING`), which the row lock on PostgreSQL and the
single writer of SQLite (`BEGIN IMMEDIATE`) serialise; no value is read first and written back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mpki.store.schema import TampSequenceNumber


class TampSequenceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def reserve(self, key_id_hex: str, ca: str, at: dt.datetime) -> int:
        """The next number for the signer (1 for a signer never seen), recorded in the caller's transaction."""
        self._insert_if_missing(key_id_hex, ca, 0, at)
        number = self.session.execute(
            update(TampSequenceNumber)
            .where(TampSequenceNumber.key_id == key_id_hex)
            .values(last=TampSequenceNumber.last + 1, ca=ca, updated_at=at)
            .returning(TampSequenceNumber.last)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        return int(number)

    def set_at_least(self, key_id_hex: str, ca: str, value: int, at: dt.datetime) -> int:
        """Raise the signer's counter to `value` unless it is already there or above; returns the counter.
        Never lowers it: a lower number would be handed out again."""
        if value < 0:
            raise ValueError("a TAMP sequence number is never negative")
        self._insert_if_missing(key_id_hex, ca, value, at)
        number = self.session.execute(
            update(TampSequenceNumber)
            .where(TampSequenceNumber.key_id == key_id_hex)
            .values(
                last=case((TampSequenceNumber.last < value, value), else_=TampSequenceNumber.last),
                updated_at=case((TampSequenceNumber.last < value, at), else_=TampSequenceNumber.updated_at),
            )
            .returning(TampSequenceNumber.last)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        return int(number)

    def last(self, key_id_hex: str) -> int | None:
        found = self.session.scalar(select(TampSequenceNumber.last).where(TampSequenceNumber.key_id == key_id_hex))
        return None if found is None else int(found)

    def all(self) -> list[TampSequenceNumber]:
        rows = self.session.scalars(
            select(TampSequenceNumber).order_by(TampSequenceNumber.ca, TampSequenceNumber.key_id)
        )
        return list(rows)

    def _insert_if_missing(self, key_id_hex: str, ca: str, last: int, at: dt.datetime) -> None:
        """Create the row unless it exists; two nodes inserting at once both succeed, one row results."""
        dialect: Any = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        self.session.execute(
            dialect.insert(TampSequenceNumber)
            .values(key_id=key_id_hex, ca=ca, last=last, updated_at=at)
            .on_conflict_do_nothing(index_elements=[TampSequenceNumber.key_id])
        )
