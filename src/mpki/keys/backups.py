"""The backup file: a public, authenticated header and a payload sealed under the backup group's key.

A backup never holds a private key in the clear. What it seals is already a keystore's protected form:
a SoftHSM2 token's object store (private objects encrypted under the token's key, which only the
token's PINs unlock) or a software key file (encrypted under the KEK). Sealing that again with
AES-256-GCM under the backup key (`secrets.backup_key` of the backup group's secret), the header as
associated data, means that taking, opening and laying back a backup needs the backup group's quorum
and never the activation secret; and that the backup alone, opened, still signs nothing.

    {"header": {"format": "mpki-backup-2", "kind": "pkcs11-token" | "software-key", "group": "backup",
                "created": "2026-...Z", "manifest": {"token": ..., "serial": ..., "keys": [...],
                                                     "files": [{"name", "size", "sha256"}, ...]}},
     "nonce": "<base64, 12 octets>", "sealed": "<base64: AES-256-GCM of a tar of the files, and its tag>"}

The manifest holds public facts only (key ids, labels, public keys, file names and digests), so a
backup can be recognised, and matched to a CA certificate, before anyone presents shares. Opening it
checks the tag, then every file against the manifest: nothing more, nothing less, nothing altered.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpki.domain import KeyStoreError
from mpki.keys.interface import KeyAlgorithm, KeyInfo

BACKUP_FORMAT = "mpki-backup-2"
BACKUP_KEY_BYTES = 32
_NONCE_BYTES = 12
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_BACKUP = 512 * 1024 * 1024


class BackupKind(enum.StrEnum):
    PKCS11_TOKEN = "pkcs11-token"  # a SoftHSM2 token's object store (`keys.token_backups`)
    SOFTWARE_KEY = "software-key"  # one software key file and its keystore's header (`keys.software_backups`)


@dataclass(frozen=True, slots=True)
class BackedUpKey:
    """A key a backup holds, as public facts: its id, label, algorithm and SubjectPublicKeyInfo."""

    key_id: str
    label: str
    algorithm: KeyAlgorithm
    public_key_der: bytes

    @classmethod
    def of(cls, info: KeyInfo) -> BackedUpKey:
        return cls(info.key_id, info.label, info.algorithm, info.public_key_der)


@dataclass(frozen=True, slots=True)
class BackedUpFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """What a backup holds: for a token its label and serial, the keys, and every file's digest."""

    kind: BackupKind
    keys: tuple[BackedUpKey, ...]
    files: tuple[BackedUpFile, ...]
    token: str | None = None
    serial: str | None = None
    directory: str | None = None  # the token's directory name in its object store


@dataclass(frozen=True, slots=True)
class BackupHeader:
    group: str
    created: str
    manifest: BackupManifest


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_name(name: str) -> str:
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise KeyStoreError(f"a backup may not hold a file named {name!r}")
    return name


def _manifest_json(manifest: BackupManifest) -> dict[str, Any]:
    return {
        "token": manifest.token,
        "serial": manifest.serial,
        "directory": manifest.directory,
        "keys": [
            {"key_id": k.key_id, "label": k.label, "algorithm": k.algorithm.value, "public_key": _b64(k.public_key_der)}
            for k in manifest.keys
        ],
        "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in manifest.files],
    }


def _header_json(header: BackupHeader) -> dict[str, Any]:
    return {
        "format": BACKUP_FORMAT,
        "kind": header.manifest.kind.value,
        "group": header.group,
        "created": header.created,
        "manifest": _manifest_json(header.manifest),
    }


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _tar(files: Mapping[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            member = tarfile.TarInfo(name)
            member.size = len(files[name])
            member.mode = 0o600
            archive.addfile(member, io.BytesIO(files[name]))
    return out.getvalue()


def _untar(payload: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                raise KeyStoreError(f"the backup holds {member.name!r}, which is not a plain file")
            name = _check_name(member.name)
            if name in files:
                raise KeyStoreError(f"the backup holds {name!r} twice")
            handle = archive.extractfile(member)
            files[name] = handle.read() if handle is not None else b""
    return files


def seal_backup(manifest: BackupManifest, files: Mapping[str, bytes], backup_key: bytes, *, group: str) -> bytes:
    """The backup file for `files` (whose digests `manifest` must not name: they are computed here)."""
    if len(backup_key) != BACKUP_KEY_BYTES:
        raise KeyStoreError("the backup key must be 32 bytes (AES-256)")
    listed = tuple(
        BackedUpFile(_check_name(name), len(data), hashlib.sha256(data).hexdigest())
        for name, data in sorted(files.items())
    )
    header = BackupHeader(
        group=group,
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        manifest=BackupManifest(
            manifest.kind, manifest.keys, listed, manifest.token, manifest.serial, manifest.directory
        ),
    )
    header_json = _header_json(header)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(backup_key).encrypt(nonce, _tar(files), _canonical(header_json))
    document = {"header": header_json, "nonce": _b64(nonce), "sealed": _b64(sealed)}
    return (json.dumps(document, indent=2) + "\n").encode("ascii")


def _document(blob: bytes) -> dict[str, Any]:
    not_a_backup = KeyStoreError(f"not an {BACKUP_FORMAT} backup file")
    if len(blob) > _MAX_BACKUP:
        raise not_a_backup
    try:
        document = json.loads(blob)
    except (UnicodeDecodeError, ValueError):
        raise not_a_backup from None
    if not isinstance(document, dict) or not isinstance(document.get("header"), dict):
        raise not_a_backup
    if document["header"].get("format") != BACKUP_FORMAT:
        raise not_a_backup
    return document


def _parse_header(raw: dict[str, Any]) -> BackupHeader:
    try:
        manifest = raw["manifest"]
        keys = tuple(
            BackedUpKey(
                str(k["key_id"]),
                str(k["label"]),
                KeyAlgorithm(k["algorithm"]),
                base64.b64decode(k["public_key"], validate=True),
            )
            for k in manifest["keys"]
        )
        files = tuple(
            BackedUpFile(_check_name(str(f["name"])), int(f["size"]), str(f["sha256"])) for f in manifest["files"]
        )
        optional = {name: manifest.get(name) for name in ("token", "serial", "directory")}
        if any(value is not None and not isinstance(value, str) for value in optional.values()):
            raise TypeError
        return BackupHeader(
            group=str(raw["group"]),
            created=str(raw["created"]),
            manifest=BackupManifest(BackupKind(raw["kind"]), keys, files, **optional),
        )
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise KeyStoreError("the backup's header is damaged") from None


def read_header(blob: bytes) -> BackupHeader:
    """What a backup says it holds, without opening it (and so without any check that it is true)."""
    return _parse_header(_document(blob)["header"])


def open_backup(blob: bytes, backup_key: bytes) -> tuple[BackupHeader, dict[str, bytes]]:
    """The header and the files of a backup, each file checked against the manifest.

    A wrong backup key, a changed header (its manifest included) or a changed payload all fail the
    AES-GCM tag: refused in one line, with nothing written anywhere.
    """
    document = _document(blob)
    header = _parse_header(document["header"])
    if len(backup_key) != BACKUP_KEY_BYTES:
        raise KeyStoreError("the backup key must be 32 bytes (AES-256)")
    try:
        nonce = base64.b64decode(document["nonce"], validate=True)
        sealed = base64.b64decode(document["sealed"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise KeyStoreError("the backup's sealed payload is damaged") from None
    try:
        payload = AESGCM(backup_key).decrypt(nonce, sealed, _canonical(document["header"]))
    except (InvalidTag, ValueError):
        payload = None
    if payload is None:
        raise KeyStoreError(
            f"the backup does not open under the backup key of group {header.group!r}: other shares, or an altered file"
        )
    files = _untar(payload)
    expected = {f.name: f for f in header.manifest.files}
    if set(files) != set(expected):
        raise KeyStoreError("the backup's files are not the ones its manifest lists")
    for name, data in files.items():
        listed = expected[name]
        if len(data) != listed.size or hashlib.sha256(data).hexdigest() != listed.sha256:
            raise KeyStoreError(f"the backup's file {name} does not match its manifest")
    return header, files
