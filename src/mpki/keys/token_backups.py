"""Backup, restore and clone of a whole PKCS#11 token: the HSM-to-HSM path, on SoftHSM2.

A key on a token can never be wrapped out (`pkcs11.py`), so a token is backed up the way HSMs clone
one: as its protected object store. On SoftHSM2 that is the token's directory (`softhsm_store`): its
private objects are encrypted under the token's key, and that key under the token's PINs, so the copy
is no easier to use than the token itself. The copy is sealed under the backup group's key with a
manifest (`backups`): the token's label and serial, each key's id and public key, each file's SHA-256.

Restoring lays the directory into another SoftHSM2's token directory (the replacement HSM, named by its
own `SOFTHSM2_CONF`), where it is the same token: same label, same key ids, same PINs. Cloning is both
in one step. None of it needs a PIN or the activation secret; the restored keys sign again only once
the activation group's quorum activates them there. On a production HSM the same job is the vendor's
cloning (a Luna cloning domain, an nShield Security World), never key wrapping.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mpki.domain import KeyStoreError
from mpki.keys.backups import BackedUpKey, BackupKind, BackupManifest, open_backup, seal_backup
from mpki.keys.pkcs11 import Pkcs11KeyStore
from mpki.keys.pkcs11_tokens import module_handle, token_serial
from mpki.keys.softhsm_store import TOKEN_OBJECT, read_token_object, token_directories, token_root

_DIRECTORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


@dataclass(frozen=True, slots=True)
class RestoredToken:
    """A token laid into a token directory: its label, serial, where it now lives, and its keys."""

    label: str
    serial: str
    directory: Path
    keys: tuple[BackedUpKey, ...]


def backup_token(module: str, label: str, backup_key: bytes, *, group: str, conf: Path) -> bytes:
    """The backup of token `label`, whose module reads SoftHSM2 configuration `conf`, sealed for `group`.

    The files are read under the module's lock, so this process writes nothing to the token meanwhile;
    take a backup while no other process (a running signer) generates keys on it.
    """
    serial = token_serial(module, label)
    keys = tuple(BackedUpKey.of(info) for info in Pkcs11KeyStore(module, None).list_keys() if info.token == label)
    handle = module_handle(module)
    with handle.lock:
        matches = [d for d in token_directories(token_root(conf)) if d.serial == serial and d.label == label]
        if len(matches) != 1:
            state = "no directory" if not matches else f"{len(matches)} directories"
            raise KeyStoreError(
                f"{state} of {token_root(conf)} hold token {label!r} (serial {serial}): is {conf} this module's?"
            )
        directory = matches[0].path
        files = {entry.name: entry.read_bytes() for entry in sorted(directory.iterdir()) if entry.is_file()}
    manifest = BackupManifest(BackupKind.PKCS11_TOKEN, keys, (), token=label, serial=serial, directory=directory.name)
    return seal_backup(manifest, files, backup_key, group=group)


def restore_token(blob: bytes, backup_key: bytes, target_conf: Path) -> RestoredToken:
    """Lay a token backup into the token directory of SoftHSM2 configuration `target_conf`.

    Refused, with nothing written, when the backup does not open or match its manifest, or when a
    token with that label (or that directory) is already there: a restore never replaces a token.
    """
    header, files = open_backup(blob, backup_key)
    manifest = header.manifest
    if manifest.kind is not BackupKind.PKCS11_TOKEN or not manifest.token or not manifest.serial:
        raise KeyStoreError(f"this backup holds a {manifest.kind.value}, not a PKCS#11 token")
    name = manifest.directory or ""
    if not _DIRECTORY_NAME.fullmatch(name) or TOKEN_OBJECT not in files:
        raise KeyStoreError("the backup does not hold a SoftHSM2 token directory")
    root = token_root(target_conf)
    if any(existing.label == manifest.token for existing in token_directories(root)):
        raise KeyStoreError(
            f"a token labelled {manifest.token!r} already exists in {root}; a restore never replaces one"
        )
    target = root / name
    if target.exists():
        raise KeyStoreError(f"{target} exists already; a restore never replaces a token")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".mpki-restore-{os.urandom(6).hex()}"
    staging.mkdir(mode=0o700)
    try:
        for file_name, data in files.items():
            _write_new(staging / file_name, data)
        if read_token_object(staging / TOKEN_OBJECT) != (manifest.token, manifest.serial):
            raise KeyStoreError("the backup's token object does not name the token its manifest names")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RestoredToken(manifest.token, manifest.serial, target, manifest.keys)


def clone_token(
    module: str, label: str, backup_key: bytes, *, group: str, conf: Path, target_conf: Path
) -> RestoredToken:
    """Backup and restore in one step: token `label` of this HSM laid into `target_conf`'s token directory."""
    if token_root(conf).resolve() == token_root(target_conf).resolve():
        raise KeyStoreError("a token is cloned to another HSM: the target names this HSM's own token directory")
    return restore_token(backup_token(module, label, backup_key, group=group, conf=conf), backup_key, target_conf)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
