"""The sequence numbers this installation signs TAMP messages with, one counter per signer key.

A trust-anchor store refuses a message whose sequence number is not above the last it accepted from that
signer (seqNumFailure), so every message a signer sends must carry a larger number than the one before,
across runs and processes. The counters live in one JSON file, `MPKI_HOME/tams/sequence-numbers.json`,
read and rewritten under an exclusive lock and replaced atomically (temp file, fsync, `os.replace`), as the
store's own state is. They move to the database when the recovery procedures use them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpki.domain import InvalidRequest
from mpki.tams.state import locked

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SignerCounter:
    """The last sequence number given out for one signer key, and the CA it belongs to (for people)."""

    key_id: bytes
    ca: str
    last: int


class SequenceNumbers:
    """Per-signer counters in one JSON file; `reserve` hands out the next number and records it first,
    so a number is never given twice even if the signing after it fails (a gap is harmless)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def reserve(self, key_id: bytes, ca: str) -> int:
        """The next sequence number for `key_id` (1 for a signer never seen), recorded before it is used."""
        with locked(self.path):
            counters = self._load()
            previous = counters.get(key_id)
            number = 1 if previous is None else previous.last + 1
            counters[key_id] = SignerCounter(key_id, ca, number)
            self._save(counters)
        return number

    def last(self, key_id: bytes) -> int | None:
        """The last number given out for `key_id`, or None when it never signed here."""
        counter = self._load().get(key_id)
        return None if counter is None else counter.last

    def all(self) -> list[SignerCounter]:
        return sorted(self._load().values(), key=lambda c: (c.ca, c.key_id))

    def _load(self) -> dict[bytes, SignerCounter]:
        try:
            data: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"TAMP sequence-number file {self.path} is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InvalidRequest(f"TAMP sequence-number file {self.path} is not format {_FORMAT}")
        try:
            return {
                bytes.fromhex(key): SignerCounter(bytes.fromhex(key), str(entry["ca"]), int(entry["last"]))
                for key, entry in data["signers"].items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"TAMP sequence-number file {self.path} is damaged: {exc!r}") from None

    def _save(self, counters: dict[bytes, SignerCounter]) -> None:
        data = {
            "format": _FORMAT,
            "signers": {c.key_id.hex(): {"ca": c.ca, "last": c.last} for c in sorted(counters.values(), key=_by_key)},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


def _by_key(counter: SignerCounter) -> bytes:
    return counter.key_id
