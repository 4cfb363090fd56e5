"""SoftHSM2's file object store: where a token lives on disk, found from its `SOFTHSM2_CONF`.

SoftHSM2 keeps each token in a directory of `directories.tokendir`, named by a UUID it draws when the
token is initialised. The directory's `token.object` records the token's label and serial number (and
the token key, encrypted under the SO PIN and under the user PIN); every private object beside it is
encrypted under that token key. So the directory is the token's protected form at rest: copied to
another SoftHSM2, it is the same token, usable with the same PINs and with nothing less.

A token is matched to its directory by the serial number PKCS#11 reports for the label: the serial is
read back from each directory's `token.object` and must agree, label and all, for exactly one directory.
(SoftHSM2 also takes the serial from the UUID's last 16 hex digits; that is not relied on.)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpki.domain import KeyStoreError

DEFAULT_CONF = Path("/etc/softhsm/softhsm2.conf")
TOKEN_OBJECT = "token.object"

# SoftHSM2's OSAttributes.h: CKA_VENDOR_DEFINED + 0x5348 ('SH') + 1, + 2.
_CKA_OS_TOKENLABEL = 0x80005349
_CKA_OS_TOKENSERIAL = 0x8000534A
# ObjectFile value kinds: boolean (1 octet), unsigned long (8), byte string (8-octet length, then octets).
_BOOLEAN, _ULONG, _BYTES = 1, 2, 3
_MAX_TOKEN_OBJECT = 64 * 1024


@dataclass(frozen=True, slots=True)
class TokenDirectory:
    path: Path
    label: str
    serial: str


def softhsm_conf(env: Mapping[str, str] | None = None) -> Path:
    """The SoftHSM2 configuration in force: `SOFTHSM2_CONF`, else SoftHSM2's own default."""
    value = (env if env is not None else os.environ).get("SOFTHSM2_CONF")
    return Path(value) if value else DEFAULT_CONF


def token_root(conf: Path) -> Path:
    """The `directories.tokendir` a SoftHSM2 configuration names; refuses a store that is not files."""
    try:
        text = conf.read_text()
    except OSError as error:
        raise KeyStoreError(f"cannot read the SoftHSM2 configuration {conf}: {error.strerror}") from None
    settings: dict[str, str] = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and not key.strip().startswith("#"):
            settings[key.strip()] = value.strip()
    backend = settings.get("objectstore.backend", "file")
    if backend != "file":
        raise KeyStoreError(f"{conf}: objectstore.backend is {backend!r}; token backups need SoftHSM2's file store")
    root = settings.get("directories.tokendir")
    if not root:
        raise KeyStoreError(f"{conf} names no directories.tokendir")
    return Path(root)


def read_token_object(path: Path) -> tuple[str, str]:
    """(label, serial) from a SoftHSM2 `token.object`; KeyStoreError if it cannot be read as one."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_TOKEN_OBJECT + 1)
    except OSError as error:
        raise KeyStoreError(f"cannot read {path}: {error.strerror}") from None
    found: dict[int, bytes] = {}
    offset = 8  # the object's generation counter
    try:
        while offset < len(data) and len(found) < 2:
            attribute, kind = struct.unpack_from(">QQ", data, offset)
            offset += 16
            if kind == _BOOLEAN:
                offset += 1
            elif kind == _ULONG:
                offset += 8
            elif kind == _BYTES:
                (length,) = struct.unpack_from(">Q", data, offset)
                value = data[offset + 8 : offset + 8 + length]
                if len(value) != length:
                    raise struct.error
                offset += 8 + length
                if attribute in (_CKA_OS_TOKENLABEL, _CKA_OS_TOKENSERIAL):
                    found[attribute] = value
            else:
                break  # kinds token.object does not use before its label and serial
    except struct.error:
        raise KeyStoreError(f"{path} is not a SoftHSM2 token object mpki can read") from None
    if len(data) > _MAX_TOKEN_OBJECT or len(found) != 2:
        raise KeyStoreError(f"{path} is not a SoftHSM2 token object mpki can read")
    label = found[_CKA_OS_TOKENLABEL].decode("utf-8", "replace").rstrip(" \x00")
    serial = found[_CKA_OS_TOKENSERIAL].decode("ascii", "replace").strip()
    return label, serial


def token_directories(root: Path) -> list[TokenDirectory]:
    """Every token directory under a `tokendir`, with the label and serial its token.object records."""
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and (entry / TOKEN_OBJECT).is_file():
            label, serial = read_token_object(entry / TOKEN_OBJECT)
            found.append(TokenDirectory(entry, label, serial))
    return found


def find_token_directory(root: Path, label: str, serial: str) -> TokenDirectory:
    """The one directory holding the token with this label and serial number."""
    matches = [d for d in token_directories(root) if d.serial == serial and d.label == label]
    if len(matches) != 1:
        state = "no directory" if not matches else f"{len(matches)} directories"
        raise KeyStoreError(f"{state} in {root} hold token {label!r} (serial {serial}); is SOFTHSM2_CONF this HSM's?")
    return matches[0]
