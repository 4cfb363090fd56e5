"""Backup and restore of one software key: its sealed file, sealed once more under the backup key.

A software key file is already AES-256-GCM under the keystore's KEK (`software.py`). Its backup is
that file as it is, with the keystore's header (which says how the KEK is unlocked and checks it),
sealed under the backup group's key (`backups`). So backing up and restoring never need the KEK, and
never the activation secret: opened, a backup gives back the key file, which still needs the
activation quorum to sign.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mpki.domain import KeyStoreError
from mpki.keys.backups import BackedUpKey, BackupKind, BackupManifest, open_backup, seal_backup
from mpki.keys.interface import KeyInfo, key_id_for
from mpki.keys.software import HEADER_FILE, SoftwareKeyStore, key_path


def backup_software_key(directory: Path, key_id: str, backup_key: bytes, *, group: str) -> bytes:
    """The backup of key `key_id` of the software keystore in `directory`, sealed for `group`."""
    info = SoftwareKeyStore.open_inactive(directory).info(key_id)
    path = key_path(directory, key_id)
    files = {HEADER_FILE: (directory / HEADER_FILE).read_bytes(), path.name: path.read_bytes()}
    manifest = BackupManifest(BackupKind.SOFTWARE_KEY, (BackedUpKey.of(info),), ())
    return seal_backup(manifest, files, backup_key, group=group)


def restore_software_key(blob: bytes, backup_key: bytes, directory: Path) -> tuple[KeyInfo, bool]:
    """Lay a key backup back into the software keystore in `directory`; (the key, whether it was written).

    The keystore's header is laid too when the keystore itself was lost. Refused, with nothing written:
    a backup of another keystore (its header differs), or a different key file under the same name.
    The same key file already in place is left as it is.
    """
    header, files = open_backup(blob, backup_key)
    manifest = header.manifest
    if manifest.kind is not BackupKind.SOFTWARE_KEY or len(manifest.keys) != 1:
        raise KeyStoreError(f"this backup holds a {manifest.kind.value}, not a software key")
    (key,) = manifest.keys
    path = key_path(directory, key.key_id)
    if set(files) != {HEADER_FILE, path.name}:
        raise KeyStoreError("the backup does not hold one software key file and its keystore header")
    _check_key_file(files[path.name], key)
    header_path = directory / HEADER_FILE
    if header_path.exists() and header_path.read_bytes() != files[HEADER_FILE]:
        raise KeyStoreError(f"the backup is of another keystore than {directory}'s (their headers differ)")
    if path.exists():
        if path.read_bytes() != files[path.name]:
            raise KeyStoreError(f"a different key {key.key_id} already exists in {directory}; refusing to overwrite it")
        return SoftwareKeyStore.open_inactive(directory).info(key.key_id), False
    directory.mkdir(parents=True, exist_ok=True)
    if not header_path.exists():
        _write_new(header_path, files[HEADER_FILE])
    _write_new(path, files[path.name])
    return SoftwareKeyStore.open_inactive(directory).info(key.key_id), True


def _check_key_file(data: bytes, key: BackedUpKey) -> None:
    """The key file describes the key the manifest names, and that key's id is its public key's."""
    try:
        described = json.loads(data)
        public = serialization.load_der_public_key(key.public_key_der)
        same = described["key_id"] == key.key_id and described["label"] == key.label
    except (ValueError, KeyError, TypeError):
        same = False
    else:
        usable = isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        same = same and usable and key_id_for(public) == key.key_id  # type: ignore[arg-type]
    if not same:
        raise KeyStoreError("the backup's key file is not the key its manifest names")


def _write_new(path: Path, data: bytes) -> None:
    """Create an owner-only file atomically; never replaces one."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if `path` appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)
