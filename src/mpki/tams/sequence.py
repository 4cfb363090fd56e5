"""The sequence numbers this installation signs TAMP messages with, one counter per signer key.

A trust-anchor store refuses a message whose sequence number is not above the last it accepted from that
signer (seqNumFailure), so every message a signer sends must carry a larger number than the one before,
across runs, processes and nodes. The counters are rows of the database (`tamp_sequence_numbers`), so that
every node of an installation (and the recovery procedures) draws from the same counter.

Counters kept by earlier versions in `MPKI_HOME/tams/sequence-numbers.json` are imported on first use
(the larger number wins) and the file is renamed, so an upgrade never hands out a number twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpki.domain import InvalidRequest, utcnow
from mpki.store import Database
from mpki.store.tamp_sequences import TampSequenceRepository

LEGACY_FILE = Path("tams") / "sequence-numbers.json"
IMPORTED_SUFFIX = ".imported"
_LEGACY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SignerCounter:
    """The last sequence number given out for one signer key, and the CA it belongs to (for people)."""

    key_id: bytes
    ca: str
    last: int


class SequenceNumbers:
    """Per-signer counters in the database; `reserve` commits the next number before returning it, so a
    number is never given twice even if the signing after it fails (a gap is harmless)."""

    def __init__(self, database: Database, legacy_file: Path | None = None) -> None:
        self.database = database
        self.legacy_file = legacy_file

    def reserve(self, key_id: bytes, ca: str) -> int:
        """The next sequence number for `key_id` (1 for a signer never seen), committed before it is used."""
        self._import_legacy()
        with self.database.transaction() as session:
            return TampSequenceRepository(session).reserve(key_id.hex(), ca, utcnow())

    def set_at_least(self, key_id: bytes, ca: str, value: int) -> int:
        """Raise the counter to `value` (say, the number a store reports it last accepted); never lowers it."""
        if value < 0:
            raise InvalidRequest(f"a sequence number is not negative (got {value})")
        self._import_legacy()
        with self.database.transaction() as session:
            return TampSequenceRepository(session).set_at_least(key_id.hex(), ca, value, utcnow())

    def last(self, key_id: bytes) -> int | None:
        """The last number given out for `key_id`, or None when it never signed here."""
        self._import_legacy()
        with self.database.reader() as session:
            return TampSequenceRepository(session).last(key_id.hex())

    def all(self) -> list[SignerCounter]:
        """Every signer's counter, by CA then key id."""
        self._import_legacy()
        with self.database.reader() as session:
            rows = TampSequenceRepository(session).all()
            return [SignerCounter(bytes.fromhex(r.key_id), r.ca, int(r.last)) for r in rows]

    def _import_legacy(self) -> None:
        """Take over the JSON file's counters once: raise each to at least its value, then rename the file.
        A crash between the commit and the rename only repeats an import that changes nothing."""
        path = self.legacy_file
        if path is None or not path.exists():
            return
        counters = read_legacy_file(path)
        with self.database.transaction() as session:
            repository = TampSequenceRepository(session)
            for counter in counters:
                repository.set_at_least(counter.key_id.hex(), counter.ca, counter.last, utcnow())
        path.replace(path.with_name(path.name + IMPORTED_SUFFIX))


def read_legacy_file(path: Path) -> list[SignerCounter]:
    """The counters of a `sequence-numbers.json` (format 1), or InvalidRequest naming what is wrong."""
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"TAMP sequence-number file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != _LEGACY_FORMAT:
        raise InvalidRequest(f"TAMP sequence-number file {path} is not format {_LEGACY_FORMAT}")
    try:
        counters = [
            SignerCounter(bytes.fromhex(key), str(entry["ca"]), int(entry["last"]))
            for key, entry in data["signers"].items()
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"TAMP sequence-number file {path} is damaged: {exc!r}") from None
    if any(c.last < 0 or not c.key_id for c in counters):
        raise InvalidRequest(f"TAMP sequence-number file {path} is damaged: an empty key id or a negative number")
    return counters
