"""The KeyStore interface every backend (software, PKCS#11) implements.

Private keys never leave a keystore (rule 1): callers get a `cryptography` private-key object whose
`sign()` delegates to the backend, so certificate, CRL and OCSP builders sign through it unchanged.
"""

from __future__ import annotations

import enum
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.domain import InvalidRequest

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
INACTIVE_MESSAGE = "the keystore is not active: present the custodians' shares with `mpki keys activate`"


class KeyAlgorithm(enum.StrEnum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_3072 = "rsa-3072"

    @classmethod
    def parse(cls, text: str) -> KeyAlgorithm:
        try:
            return cls(text)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise InvalidRequest(f"unknown key algorithm {text!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be said about a key in public: its id, label, algorithm and public key."""

    key_id: str
    label: str
    algorithm: KeyAlgorithm
    backend: str
    public_key_der: bytes
    token: str | None = None

    def public_key(self) -> PublicKey:
        key = serialization.load_der_public_key(self.public_key_der)
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise TypeError("unsupported public key type in keystore")
        return key


def key_id_for(public_key: PublicKey) -> str:
    """A stable id: the first 16 octets of SHA-256 over the SubjectPublicKeyInfo, in hex."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:32]


class KeyStore(ABC):
    """Custody of private keys: generate inside, sign inside, describe in public.

    A store may be inactive (its quorum secret not presented): describing keys still works, while
    generating and signing raise KeyStoreError saying how to activate. Backups are not a keystore's
    business: a key never leaves its store, and a backup is a copy of the store's protected form taken
    without the activation secret (`keys.token_backups`, `keys.software_backups`).
    """

    backend_name: str

    @abstractmethod
    def generate(self, label: str, algorithm: KeyAlgorithm, token: str | None = None) -> KeyInfo:
        """Make a new key pair inside the store (on `token`, for backends with several)."""

    @abstractmethod
    def is_active(self) -> bool:
        """Whether the secret that unlocks the keys (KEK or token PINs) is present."""

    @abstractmethod
    def info(self, key_id: str) -> KeyInfo:
        """Describe one key; NotFound if it does not exist."""

    @abstractmethod
    def list_keys(self) -> list[KeyInfo]:
        """Describe every key."""

    @abstractmethod
    def signing_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        """A private-key object for `cryptography` builders; its secret stays in the store."""
