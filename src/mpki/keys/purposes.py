"""What a key may sign, decided when the key is made and enforced by the signer on every signature.

A CA key signs certificates, CRLs, OCSP responses (when it answers for itself), TAMP messages and
signed records; an OCSP responder key signs OCSP responses only; the audit key signs audit checkpoints
only; the apex contingency key signs TAMP only. The signer also checks that the bytes it is asked to
sign have the outer shape of the purpose named, so a caller cannot pass a TBSCertificate off as an
OCSP response to have a responder key certify something.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable
from pathlib import Path

from mpki.domain import Forbidden, KeyStoreError

PURPOSES_FILE = "key-purposes.json"


class Purpose(enum.StrEnum):
    CERTIFICATE = "certificate"
    CRL = "crl"
    OCSP = "ocsp"
    TAMP = "tamp"
    RECORD = "record"
    AUDIT_CHECKPOINT = "audit-checkpoint"


CA_PURPOSES = frozenset({Purpose.CERTIFICATE, Purpose.CRL, Purpose.OCSP, Purpose.TAMP, Purpose.RECORD})
OCSP_RESPONDER_PURPOSES = frozenset({Purpose.OCSP})
AUDIT_PURPOSES = frozenset({Purpose.AUDIT_CHECKPOINT})
CONTINGENCY_PURPOSES = frozenset({Purpose.TAMP})


def _first_elements(data: bytes) -> list[int]:
    """The tags of the first two elements inside an outer SEQUENCE (or SET), without decoding them."""
    tags: list[int] = []
    if len(data) < 2:
        return tags
    offset = 1
    first = data[offset]
    offset += 1 + (first & 0x7F if first & 0x80 else 0)
    while offset + 1 < len(data) and len(tags) < 2:
        tags.append(data[offset])
        size = data[offset + 1]
        cursor = offset + 2
        if size & 0x80:
            count = size & 0x7F
            size = int.from_bytes(data[cursor : cursor + count], "big")
            cursor += count
        offset = cursor + size
    return tags


def shape_matches(purpose: Purpose, data: bytes) -> bool:
    """Whether `data` has the outer DER shape of what `purpose` signs (a cheap check, not a parse)."""
    if purpose is Purpose.RECORD:  # a signed record is a canonical JSON object: never DER
        return data[:1] == b"{"
    if purpose is Purpose.AUDIT_CHECKPOINT:
        return data.startswith(b"mpki-" + purpose.value.encode() + b"\n")
    if not data or data[0] not in (0x30, 0x31):
        return False
    tags = _first_elements(data)
    if purpose is Purpose.CERTIFICATE:  # TBSCertificate: [0] version, serialNumber INTEGER
        return data[0] == 0x30 and tags[:2] == [0xA0, 0x02]
    if purpose is Purpose.CRL:  # TBSCertList: version INTEGER, signature AlgorithmIdentifier
        return data[0] == 0x30 and tags[:2] == [0x02, 0x30]
    if purpose is Purpose.OCSP:  # ResponseData: responderID [1] byName or [2] byKey (version omitted, v1)
        return data[0] == 0x30 and bool(tags) and tags[0] in (0xA1, 0xA2)
    # TAMP: CMS signed attributes, a SET OF Attribute
    return data[0] == 0x31 and bool(tags) and tags[0] == 0x30


def record_payload(purpose: Purpose, body: bytes) -> bytes:
    """The bytes signed for a checkpoint: a type line first, so no DER object or record can pose as one."""
    if purpose is not Purpose.AUDIT_CHECKPOINT:
        raise ValueError(f"{purpose} does not sign typed payloads")
    return b"mpki-" + purpose.value.encode() + b"\n" + body


class KeyPurposes:
    """`MPKI_HOME/keys/key-purposes.json`: key id -> the purposes it was made for (public facts)."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / PURPOSES_FILE

    def _load(self) -> dict[str, list[str]]:
        if not self.path.is_file():
            return {}
        data: dict[str, list[str]] = json.loads(self.path.read_text())
        return data

    def record(self, key_id: str, purposes: Iterable[Purpose]) -> None:
        data = self._load()
        data[key_id] = sorted(Purpose(p).value for p in purposes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def of(self, key_id: str) -> frozenset[Purpose]:
        return frozenset(Purpose(p) for p in self._load().get(key_id, []))

    def check(self, key_id: str, purpose: Purpose) -> None:
        allowed = self.of(key_id)
        if not allowed:
            raise KeyStoreError(f"key {key_id} has no recorded purposes; the signer refuses to use it")
        if purpose not in allowed:
            names = ", ".join(sorted(allowed))
            raise Forbidden(f"key {key_id} was made for {names}, not for signing {purpose.value}")
