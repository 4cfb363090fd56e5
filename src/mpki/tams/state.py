"""What a trust-anchor store holds, and its JSON file (written atomically: temp file, then os.replace).

The apex trust anchor (its contingency key, if any, is in its id-pe-wrappedApexContinKey extension), the
other trust anchors with the TAMP content types each may sign, the last sequence number accepted from
each signer, the store's communities and its hardware identity.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpki.asn1.tamp import TrustAnchor
from mpki.domain import InvalidRequest

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """A trust anchor below the apex; `content_types` are the TAMP messages it may sign (none: an identity TA)."""

    anchor: TrustAnchor
    content_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class HardwareIdentity:
    """The store's own hwType and serial, which a hwModules target may name."""

    hw_type: str
    serial: bytes


@dataclass(slots=True)
class StoreState:
    apex: TrustAnchor
    anchors: list[AnchorRecord] = field(default_factory=list)
    communities: list[str] = field(default_factory=list)
    seq_numbers: dict[bytes, int] = field(default_factory=dict)
    hardware: HardwareIdentity | None = None

    def copy(self) -> StoreState:
        return StoreState(self.apex, list(self.anchors), list(self.communities), dict(self.seq_numbers), self.hardware)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "apex": _b64(self.apex.der),
            "anchors": [{"der": _b64(r.anchor.der), "content_types": sorted(r.content_types)} for r in self.anchors],
            "communities": list(self.communities),
            "sequence_numbers": {key.hex(): n for key, n in sorted(self.seq_numbers.items())},
            "hardware": None
            if self.hardware is None
            else {"hw_type": self.hardware.hw_type, "serial": self.hardware.serial.hex()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreState:
        if data.get("format") != _FORMAT:
            raise InvalidRequest(f"trust-anchor store file format {data.get('format')!r} is not {_FORMAT}")
        hardware = data.get("hardware")
        return cls(
            apex=TrustAnchor(base64.b64decode(data["apex"])),
            anchors=[
                AnchorRecord(TrustAnchor(base64.b64decode(r["der"])), frozenset(r["content_types"]))
                for r in data["anchors"]
            ],
            communities=list(data["communities"]),
            seq_numbers={bytes.fromhex(k): int(v) for k, v in data["sequence_numbers"].items()},
            hardware=None
            if hardware is None
            else HardwareIdentity(hardware["hw_type"], bytes.fromhex(hardware["serial"])),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_state(path: Path) -> StoreState:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidRequest(f"no trust-anchor store at {path}: initialise one first") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"trust-anchor store {path} is not JSON: {exc}") from None
    return StoreState.from_json(data)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the state file, so that two processes never interleave a
    read-check-write of the sequence numbers (which would let a replay through)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_state(path: Path, state: StoreState) -> None:
    """Write the whole state to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump(state.to_json(), handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
