"""The apex contingency key's custody (seed 000, Part G): a keystore of its own (a software directory or
a PKCS#11 token of its own), unlocked only by its own quorum's secret and never left activated, so the
key that can replace the apex is out of reach of the everyday CA keystore and its custodians.

The symmetric key that unwraps the contingency public key from the apex is made here too, but written
apart from the vault: whoever holds the vault's shares cannot announce a new apex without it, and it
stays secret until the apex is compromised.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives import keywrap, serialization

from mpki.asn1.tamp import ApexContingencyKey
from mpki.domain import InvalidRequest, KeyStoreError
from mpki.keys.interface import KeyStore, PublicKey
from mpki.keys.secrets import so_pin, user_pin
from mpki.keys.software import SoftwareKeyStore

GROUP = "contingency"
TOKEN = "contingency"
VAULT_DIRECTORY = "contingency"
_RECORD = "vault.json"
UNWRAP_KEY_BYTES = 32
# RFC 5649 AES key wrap with padding, by key size: a DER SubjectPublicKeyInfo is rarely a multiple of 8 octets.
WRAP_ALGORITHMS = {16: "2.16.840.1.101.3.4.1.8", 24: "2.16.840.1.101.3.4.1.28", 32: "2.16.840.1.101.3.4.1.48"}


@dataclass(frozen=True, slots=True)
class VaultRecord:
    """What the vault holds and for which apex: public facts only."""

    backend: str
    key_id: str
    apex: str
    unwrap_key_sha256: str
    retired: tuple[str, ...] = field(default=())


def wrap_public_key(public_key: PublicKey, unwrap_key: bytes) -> ApexContingencyKey:
    """The id-pe-wrappedApexContinKey value: the contingency SPKI under AES key wrap with padding."""
    if len(unwrap_key) not in WRAP_ALGORITHMS:
        raise InvalidRequest("the contingency unwrap key must be 16, 24 or 32 octets")
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ApexContingencyKey(WRAP_ALGORITHMS[len(unwrap_key)], keywrap.aes_key_wrap_with_padding(unwrap_key, spki))


def write_unwrap_key(path: Path, unwrap_key: bytes, apex: str) -> str:
    """Write the unwrap key to its own file (never overwritten, owner-only); returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "purpose": "apex contingency public key unwrap key (RFC 5934 id-aa-TAMP-contingencyPublicKeyDecryptKey)",
        "apex": apex,
        "algorithm": WRAP_ALGORITHMS[len(unwrap_key)],
        "key": unwrap_key.hex(),
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidRequest(f"{path} exists; an unwrap key is never overwritten") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(unwrap_key).hexdigest()


def read_unwrap_key(path: Path) -> bytes:
    try:
        payload = json.loads(path.read_text())
        key = bytes.fromhex(payload["key"])
    except FileNotFoundError:
        raise InvalidRequest(f"no unwrap key file {path}") from None
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest(f"{path} is not an mpki contingency unwrap key file") from None
    if len(key) not in WRAP_ALGORITHMS:
        raise InvalidRequest(f"{path}: the unwrap key must be 16, 24 or 32 octets")
    return key


class ContingencyVault:
    """The contingency keystore under `keys_dir/contingency`, software or a PKCS#11 token of its own."""

    def __init__(self, keys_dir: Path, backend: str, pkcs11_module: str) -> None:
        self.directory = keys_dir / VAULT_DIRECTORY
        self.backend = backend
        self.pkcs11_module = pkcs11_module

    def exists(self) -> bool:
        return (self.directory / _RECORD).is_file()

    def record(self) -> VaultRecord:
        path = self.directory / _RECORD
        if not path.is_file():
            raise KeyStoreError("this installation has no apex contingency key; its key ceremony makes one")
        raw = json.loads(path.read_text())
        return VaultRecord(
            backend=str(raw["backend"]),
            key_id=str(raw["key_id"]),
            apex=str(raw["apex"]),
            unwrap_key_sha256=str(raw["unwrap_key_sha256"]),
            retired=tuple(raw.get("retired", ())),
        )

    def save(self, record: VaultRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (_RECORD + ".tmp")
        tmp.write_text(json.dumps({**asdict(record), "retired": list(record.retired)}, indent=2) + "\n")
        tmp.replace(self.directory / _RECORD)

    def create(self, secret: bytes, *, token_admin_secret: bytes | None = None) -> KeyStore:
        """Initialise the empty vault for the contingency quorum's secret. A token of its own also needs
        the token-admin group's secret, whose SO PIN it is initialised under."""
        if self.exists():
            raise KeyStoreError(f"a contingency vault already exists in {self.directory}")
        if self.backend == "software":
            return SoftwareKeyStore.create_for_quorum(self.directory, GROUP, secret)
        if token_admin_secret is None:
            raise KeyStoreError("the contingency token is initialised under the token-admin group's SO PIN")
        from mpki.keys.pkcs11_tokens import initialise_token

        initialise_token(self.pkcs11_module, TOKEN, so_pin(token_admin_secret, TOKEN), user_pin(secret, TOKEN))
        return self.open(secret)

    def open(self, secret: bytes) -> KeyStore:
        """The vault, active for as long as this object lives; the secret is never written anywhere."""
        if self.backend == "software":
            return SoftwareKeyStore.open_with_secret(self.directory, secret)
        from mpki.keys.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(self.pkcs11_module, lambda label: user_pin(secret, label))

    def token(self) -> str | None:
        return TOKEN if self.backend == "pkcs11" else None

    def rotate(self, record: VaultRecord, key_id: str, apex: str, unwrap_key_sha256: str) -> VaultRecord:
        """After an apex recovery: the new key serves the new apex; the used one is kept on record."""
        updated = replace(
            record,
            key_id=key_id,
            apex=apex,
            unwrap_key_sha256=unwrap_key_sha256,
            retired=(*record.retired, record.key_id),
        )
        self.save(updated)
        return updated
