"""Software keystore: each private key is a file encrypted under a key-encryption key (KEK).

The KEK comes from a passphrase through scrypt; a check blob detects a wrong passphrase before any key
is touched. For development and tests; production keys belong in an HSM (the PKCS#11 backend).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mpki.domain import KeyStoreError, NotFound
from mpki.keys.interface import INACTIVE_MESSAGE, KeyAlgorithm, KeyInfo, KeyStore, key_id_for
from mpki.keys.proxies import Data, EcSigningKey, RsaHash, RsaSigningKey
from mpki.keys.secrets import check_value, software_kek

HEADER_FILE = "keystore.json"
_CHECK_PLAINTEXT = b"mpki software keystore v1"
_SCRYPT_N = 2**15


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise KeyStoreError("keystore file is corrupt")
    return base64.b64decode(text)


def _derive_kek(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))


def _seal(kek: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(kek).encrypt(nonce, plaintext, aad))


def _open(kek: bytes, sealed: object, aad: bytes) -> bytes:
    blob = _unb64(sealed)
    return AESGCM(kek).decrypt(blob[:12], blob[12:], aad)


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    """Create a file readable by the owner only, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def key_path(directory: Path, key_id: str) -> Path:
    """The file holding one key, sealed under the keystore's KEK."""
    if not key_id.isalnum():
        raise NotFound(f"no key {key_id!r}")
    return directory / f"{key_id}.key.json"


class SoftwareKeyStore(KeyStore):
    """Keys on disk under `directory`, each sealed with AES-256-GCM under the KEK.

    The KEK comes either from a passphrase (scrypt; tests and single-operator setups) or from a quorum
    secret rebuilt from M of N custodian shares (HKDF; see `keys.secrets`). Without it the store is
    inactive: keys can be described but not used.
    """

    backend_name = "software"

    def __init__(self, directory: Path, kek: bytes | None) -> None:
        self._directory = directory
        self._kek = kek
        self._loaded: dict[str, CertificateIssuerPrivateKeyTypes] = {}

    @classmethod
    def create(cls, directory: Path, passphrase: str) -> SoftwareKeyStore:
        """Initialise an empty keystore unlocked by a passphrase; refuses to overwrite an existing one."""
        salt = os.urandom(16)
        kek = _derive_kek(passphrase, salt, _SCRYPT_N)
        unlock = {"kind": "passphrase", "kdf": {"name": "scrypt", "salt": _b64(salt), "n": _SCRYPT_N, "r": 8, "p": 1}}
        return cls._create(directory, kek, unlock)

    @classmethod
    def create_for_quorum(cls, directory: Path, group: str, secret: bytes) -> SoftwareKeyStore:
        """Initialise an empty keystore whose KEK is derived from a quorum group's secret."""
        unlock = {"kind": "quorum", "group": group, "check": check_value(secret, group)}
        return cls._create(directory, software_kek(secret), unlock)

    @classmethod
    def _create(cls, directory: Path, kek: bytes, unlock: dict[str, Any]) -> SoftwareKeyStore:
        directory.mkdir(parents=True, exist_ok=True)
        header_path = directory / HEADER_FILE
        if header_path.exists():
            raise KeyStoreError(f"a keystore already exists in {directory}")
        header = {"version": 2, "unlock": unlock, "check": _seal(kek, _CHECK_PLAINTEXT, b"check")}
        _write_private(header_path, header)
        return cls(directory, kek)

    @staticmethod
    def read_header(directory: Path) -> dict[str, Any]:
        header_path = directory / HEADER_FILE
        if not header_path.is_file():
            raise KeyStoreError(f"no keystore in {directory}; run `mpki init --dev` or a key ceremony first")
        header: dict[str, Any] = json.loads(header_path.read_text())
        if "unlock" not in header:  # version 1 kept its scrypt parameters at the top level
            header["unlock"] = {"kind": "passphrase", "kdf": header["kdf"]}
        return header

    @classmethod
    def quorum_group(cls, directory: Path) -> str | None:
        """The quorum group whose secret unlocks this store, or None for a passphrase store."""
        unlock = cls.read_header(directory)["unlock"]
        return str(unlock["group"]) if unlock["kind"] == "quorum" else None

    @classmethod
    def open(cls, directory: Path, passphrase: str) -> SoftwareKeyStore:
        """Open a passphrase store; a wrong passphrase is refused before any key is read."""
        header = cls.read_header(directory)
        unlock = header["unlock"]
        if unlock["kind"] != "passphrase":
            raise KeyStoreError("this keystore is unlocked by a quorum of custodian shares, not a passphrase")
        kdf = unlock["kdf"]
        kek = _derive_kek(passphrase, _unb64(kdf["salt"]), int(kdf["n"]))
        cls._check(header, kek, "the keystore passphrase is wrong")
        return cls(directory, kek)

    @classmethod
    def open_with_secret(cls, directory: Path, secret: bytes) -> SoftwareKeyStore:
        """Open a quorum store with its rebuilt secret; a secret of another group is refused."""
        header = cls.read_header(directory)
        unlock = header["unlock"]
        if unlock["kind"] != "quorum" or not hmac.compare_digest(unlock["check"], check_value(secret, unlock["group"])):
            raise KeyStoreError("the presented secret does not unlock this keystore")
        kek = software_kek(secret)
        cls._check(header, kek, "the presented secret does not unlock this keystore")
        return cls(directory, kek)

    @classmethod
    def open_inactive(cls, directory: Path) -> SoftwareKeyStore:
        cls.read_header(directory)
        return cls(directory, None)

    @staticmethod
    def _check(header: dict[str, Any], kek: bytes, message: str) -> None:
        try:
            if _open(kek, header["check"], b"check") != _CHECK_PLAINTEXT:
                raise InvalidTag
        except InvalidTag:
            raise KeyStoreError(message) from None

    def is_active(self) -> bool:
        return self._kek is not None

    def _active_kek(self) -> bytes:
        if self._kek is None:
            raise KeyStoreError(INACTIVE_MESSAGE)
        return self._kek

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / HEADER_FILE).is_file()

    def _path(self, key_id: str) -> Path:
        return key_path(self._directory, key_id)

    def generate(self, label: str, algorithm: KeyAlgorithm, token: str | None = None) -> KeyInfo:
        if token not in (None, self.backend_name):
            raise KeyStoreError(f"the software keystore has no token {token!r}")
        kek = self._active_kek()
        private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if algorithm is KeyAlgorithm.EC_P256:
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm is KeyAlgorithm.EC_P384:
            private = ec.generate_private_key(ec.SECP384R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        public = private.public_key()
        key_id = key_id_for(public)
        pkcs8 = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        payload = {
            "key_id": key_id,
            "label": label,
            "algorithm": algorithm.value,
            "public_key": _b64(public_der),
            "sealed_private_key": _seal(kek, pkcs8, key_id.encode()),
        }
        _write_private(self._path(key_id), payload)
        return KeyInfo(key_id, label, algorithm, self.backend_name, public_der)

    def _read(self, key_id: str) -> dict[str, Any]:
        path = self._path(key_id)
        if not path.is_file():
            raise NotFound(f"no key {key_id} in the software keystore")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def info(self, key_id: str) -> KeyInfo:
        data = self._read(key_id)
        return KeyInfo(
            key_id=data["key_id"],
            label=data["label"],
            algorithm=KeyAlgorithm(data["algorithm"]),
            backend=self.backend_name,
            public_key_der=_unb64(data["public_key"]),
        )

    def list_keys(self) -> list[KeyInfo]:
        return [self.info(p.name.removesuffix(".key.json")) for p in sorted(self._directory.glob("*.key.json"))]

    def _private(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        cached = self._loaded.get(key_id)
        if cached is not None:
            return cached
        data = self._read(key_id)
        try:
            pkcs8 = _open(self._active_kek(), data["sealed_private_key"], key_id.encode())
        except InvalidTag:
            raise KeyStoreError(f"key {key_id} does not decrypt under this keystore's KEK") from None
        private = serialization.load_der_private_key(pkcs8, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyStoreError(f"key {key_id} has an unsupported type")
        self._loaded[key_id] = private
        return private

    def signing_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        private = self._private(key_id)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            ec_key = private

            def ec_sign(data: Data, algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
                return ec_key.sign(bytes(data), algorithm)

            return EcSigningKey(key_id, ec_key.public_key(), ec_sign)
        if isinstance(private, rsa.RSAPrivateKey):
            rsa_key = private

            def rsa_sign(data: Data, pad: padding.AsymmetricPadding, algorithm: RsaHash) -> bytes:
                return rsa_key.sign(bytes(data), pad, algorithm)

            return RsaSigningKey(key_id, rsa_key.public_key(), rsa_sign)
        raise KeyStoreError(f"key {key_id} has an unsupported type")
