"""Signed audit checkpoints and the append-only anchor log that keeps them outside the database.

A checkpoint says "the audit chain's event `sequence` has hash `chain_hash`" at a moment, signed with
the audit key (made for that purpose only). The notary that signs it appends it to an anchor log the
database cannot reach (`checkpoints.jsonl`, opened O_APPEND and fsync'd), and refuses a sequence below
the last one it anchored or the same sequence with another hash: that is what deleting the tail and
rolling `audit_head` back, or rewriting and re-chaining events, looks like from outside the database.
Verification (`mpki.audit`) then compares the chain against these anchors.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.domain import AuditChainBroken, InvalidRequest, KeyStoreError, utcnow
from mpki.keys.purposes import Purpose, record_payload

ANCHOR_FILE = "checkpoints.jsonl"
FILE_MODE = 0o640
DIR_MODE = 0o750
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TAIL_BYTES = 64 * 1024  # far more than one line: the last complete line is always inside it


class CheckpointRefused(KeyStoreError):
    """The notary will not sign: the checkpoint goes back on what the anchor log already holds."""


class CheckpointForged(AuditChainBroken):
    """A checkpoint's signature does not verify, or it is not signed by the trusted audit key."""


def _format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Event `sequence` of the audit chain has hash `chain_hash` (hex), as seen at `at` (aware UTC)."""

    sequence: int
    chain_hash: str
    at: dt.datetime

    def __post_init__(self) -> None:
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise InvalidRequest(f"a checkpoint's sequence must be a whole number >= 0, not {self.sequence!r}")
        if not isinstance(self.chain_hash, str) or not _HEX64.fullmatch(self.chain_hash):
            raise InvalidRequest("a checkpoint's chain hash must be 64 lowercase hex digits (SHA-256)")
        if self.at.tzinfo is None:
            raise InvalidRequest("a checkpoint's time must be timezone-aware UTC")
        # Microseconds in UTC, exactly what the body carries, so a checkpoint round-trips its JSON.
        object.__setattr__(self, "at", _parse_time(_format_time(self.at)))

    def body(self) -> bytes:
        """Canonical JSON: sorted keys, no spaces, ASCII."""
        fields = {"at": _format_time(self.at), "chain_hash": self.chain_hash, "sequence": self.sequence}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")

    def signed_bytes(self) -> bytes:
        """What the audit key signs: the body behind the audit-checkpoint type line."""
        return record_payload(Purpose.AUDIT_CHECKPOINT, self.body())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"a checkpoint's {what} is not base64") from None


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint, the audit key that signed it (id and SubjectPublicKeyInfo DER) and the signature."""

    checkpoint: Checkpoint
    key_id: str
    public_key_der: bytes
    signature: bytes  # DER ECDSA-Sig-Value, P-256 with SHA-256

    @property
    def sequence(self) -> int:
        return self.checkpoint.sequence

    @property
    def chain_hash(self) -> str:
        return self.checkpoint.chain_hash

    @property
    def at(self) -> dt.datetime:
        return self.checkpoint.at

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.checkpoint.sequence,
            "chain_hash": self.checkpoint.chain_hash,
            "at": _format_time(self.checkpoint.at),
            "key_id": self.key_id,
            "public_key": _b64(self.public_key_der),
            "signature": _b64(self.signature),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedCheckpoint:
        """Parse what `to_json` wrote; InvalidRequest names what is missing or malformed."""
        try:
            checkpoint = Checkpoint(int(data["sequence"]), str(data["chain_hash"]), _parse_time(str(data["at"])))
            key_id = str(data["key_id"])
            public_key, signature = data["public_key"], data["signature"]
        except KeyError as missing:
            raise InvalidRequest(f"a signed checkpoint lacks its {missing.args[0]!r} field") from None
        except (TypeError, ValueError):
            raise InvalidRequest("a signed checkpoint has a malformed sequence or time") from None
        return cls(checkpoint, key_id, _unb64(public_key, "public key"), _unb64(signature, "signature"))

    def verify(self, trusted_public_key_der: bytes | None = None) -> None:
        """Check the ECDSA P-256 SHA-256 signature (and, when given, that the trusted key made it).

        Raises CheckpointForged naming the checkpoint; returns None when it holds.
        """
        what = f"the checkpoint at event {self.sequence} (signed {_format_time(self.at)} by {self.key_id})"
        if trusted_public_key_der is not None and self.public_key_der != trusted_public_key_der:
            raise CheckpointForged(f"{what} is not signed by the trusted audit key")
        try:
            public_key = serialization.load_der_public_key(self.public_key_der)
        except ValueError:
            raise CheckpointForged(f"{what} carries a public key that does not parse") from None
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
            raise CheckpointForged(f"{what} is not signed with an EC P-256 key")
        try:
            public_key.verify(self.signature, self.checkpoint.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise CheckpointForged(f"{what} has a signature that does not verify") from None


class CheckpointSigner(Protocol):
    """Who signs checkpoints for the audit room: the signer's client, or a `CheckpointNotary` in process."""

    def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint: ...


class AnchorDirectory:
    """An append-only log of signed checkpoints, one JSON object a line, in the order they were signed.

    Appends take an exclusive lock on the file, so several signer processes keep one order; each line is
    written in one O_APPEND write and fsync'd before the checkpoint is handed back. A line cut short by a
    crash (no closing brace: records are flat) is skipped on reading; any other bad line is an error.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = self.path / ANCHOR_FILE

    def _open_for_append(self) -> int:
        if not self.path.is_dir():
            self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(self.path, DIR_MODE)
        created = not self.file.exists()
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        if created:
            directory = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(directory)  # the new file's name survives a crash too
            finally:
                os.close(directory)
        return fd

    def check(self, checkpoint: Checkpoint) -> None:
        """Refuse a checkpoint that goes back on the log (a cheap early look; `append` checks again)."""
        _refuse_if_behind(self.last(), checkpoint)

    def append(self, signed: SignedCheckpoint) -> None:
        """Add a signed checkpoint; CheckpointRefused if it is below the last or rewrites its hash."""
        line = (json.dumps(signed.to_json(), sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")
        fd = self._open_for_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _refuse_if_behind(self.last(), signed.checkpoint)
            if self._ends_torn():
                line = b"\n" + line  # close a line a crash cut short, so it stays a line of its own
            if os.write(fd, line) != len(line):
                raise KeyStoreError(f"could not write the whole checkpoint to {self.file}")
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def _ends_torn(self) -> bool:
        size = self.file.stat().st_size
        if size == 0:
            return False
        with self.file.open("rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def last(self) -> SignedCheckpoint | None:
        """The last complete checkpoint, read from the end of the log."""
        if not self.file.exists():
            return None
        with self.file.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
        lines = tail.split(b"\n")
        if size > _TAIL_BYTES:
            lines = lines[1:]  # the first piece may be the end of a longer line
        for number, raw in reversed(list(enumerate(lines))):
            parsed = self._parse(raw, number)
            if parsed is not None:
                return parsed
        return None

    def read(self) -> list[SignedCheckpoint]:
        """Every checkpoint in the log, in the order signed; a missing log is an empty one."""
        if not self.file.exists():
            return []
        found = []
        for number, raw in enumerate(self.file.read_bytes().split(b"\n"), start=1):
            parsed = self._parse(raw, number)
            if parsed is not None:
                found.append(parsed)
        return found

    def _parse(self, raw: bytes, number: int) -> SignedCheckpoint | None:
        text = raw.strip()
        if not text:
            return None
        if not text.endswith(b"}"):
            return None  # torn by a crash mid-write: nothing was handed back for it
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return SignedCheckpoint.from_json(data)
        except (ValueError, InvalidRequest) as error:
            raise AuditChainBroken(f"line {number} of the anchor log {self.file} is corrupt: {error}") from None


def _refuse_if_behind(last: SignedCheckpoint | None, checkpoint: Checkpoint) -> None:
    if last is None:
        return
    if checkpoint.sequence < last.sequence:
        raise CheckpointRefused(
            f"refusing a checkpoint at event {checkpoint.sequence}: event {last.sequence} was anchored "
            f"at {_format_time(last.at)}, so the audit chain has been cut back (events deleted, head rolled back)"
        )
    if checkpoint.sequence == last.sequence and checkpoint.chain_hash != last.chain_hash:
        raise CheckpointRefused(
            f"refusing a checkpoint at event {checkpoint.sequence}: it was anchored at "
            f"{_format_time(last.at)} with another hash, so the audit chain has been rewritten"
        )


class CheckpointNotary:
    """Signs checkpoints with the audit key's `sign` function and anchors each before handing it back.

    Held by the signer process; in tests and tools, `CheckpointNotary.with_private_key` wraps a plain key.
    Without an anchor directory it still refuses to go back on what it signed itself in this process.
    """

    def __init__(
        self,
        sign: Callable[[bytes], bytes],
        key_id: str,
        public_key_der: bytes,
        anchors: AnchorDirectory | None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._sign = sign
        self.key_id = key_id
        self.public_key_der = public_key_der
        self.anchors = anchors
        self._clock = clock
        self._last: SignedCheckpoint | None = None

    @classmethod
    def with_private_key(
        cls, key: ec.EllipticCurvePrivateKey, key_id: str, anchors: AnchorDirectory | None
    ) -> CheckpointNotary:
        public_key_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())), key_id, public_key_der, anchors)

    def checkpoint(self, sequence: int, chain_hash: str, at: dt.datetime | None = None) -> SignedCheckpoint:
        """Check against the anchor log, sign, prove the signature, append, and return the checkpoint."""
        checkpoint = Checkpoint(sequence, chain_hash, at or self._clock())
        _refuse_if_behind(self._last, checkpoint)
        if self.anchors is not None:
            self.anchors.check(checkpoint)
        signed = SignedCheckpoint(checkpoint, self.key_id, self.public_key_der, self._sign(checkpoint.signed_bytes()))
        signed.verify()  # a wrong key or a broken signer is caught before anything is anchored
        if self.anchors is not None:
            self.anchors.append(signed)
        self._last = signed
        return signed
