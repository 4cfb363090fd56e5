"""What the CA, the status room and the ceremonies hold instead of a keystore: keys by id, signatures by purpose.

`SigningKeys` speaks to a `Signer`, either the `mpki signer` process over its socket or, in a
development or test installation with no signer running, a `SigningService` in the same process. Its
`signing_key(key_id, purpose)` is a `cryptography` private-key object whose `sign()` asks the signer,
so every builder signs through it unchanged; `sign_many` signs a chunk in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.domain import KeyStoreError
from mpki.keys import EcSigningKey, KeyAlgorithm, KeyInfo, RsaSigningKey
from mpki.keys.proxies import Data, RsaHash
from mpki.keys.purposes import CA_PURPOSES, Purpose
from mpki.keys.quorum import CustodianShare
from mpki.signer.checkpoints import SignedCheckpoint
from mpki.signer.service import ActivationResult, SignerStatus


class Signer(Protocol):
    """The signer's requests; `SigningService` and `SignerClient` both answer them."""

    def status(self) -> SignerStatus: ...
    def activate(self, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None) -> ActivationResult: ...
    def deactivate(self, group: str | None = None) -> list[str]: ...
    def active_groups(self) -> list[str]: ...
    def is_active(self) -> bool: ...
    def list_keys(self) -> list[KeyInfo]: ...
    def info(self, key_id: str) -> KeyInfo: ...
    def generate(
        self, label: str, algorithm: KeyAlgorithm, token: str | None, purposes: frozenset[Purpose]
    ) -> KeyInfo: ...
    def sign(self, key_id: str, purpose: Purpose, hash_name: str, payloads: Sequence[bytes]) -> list[bytes]: ...
    def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint: ...
    def close(self) -> None: ...


def hash_name(algorithm: object) -> str:
    """The name the signer knows a hash by; a pre-hashed digest is refused (the signer signs whole TBS)."""
    if isinstance(algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        return algorithm.name
    raise KeyStoreError(f"the signer signs with SHA-256, SHA-384 or SHA-512 over the whole data, not {algorithm!r}")


class SigningKeys:
    """Keys by id and signatures by purpose, through the installation's signer."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self._infos: dict[str, KeyInfo] = {}

    @property
    def remote(self) -> bool:
        """Whether signatures are made by a separate signer process."""
        return bool(getattr(self.signer, "remote", False))

    def is_active(self) -> bool:
        return self.signer.is_active()

    def info(self, key_id: str) -> KeyInfo:
        info = self._infos.get(key_id)
        if info is None:
            info = self._infos[key_id] = self.signer.info(key_id)
        return info

    def list_keys(self) -> list[KeyInfo]:
        return self.signer.list_keys()

    def generate(
        self,
        label: str,
        algorithm: KeyAlgorithm,
        token: str | None = None,
        *,
        purposes: frozenset[Purpose] = CA_PURPOSES,
    ) -> KeyInfo:
        info = self.signer.generate(label, algorithm, token, purposes)
        self._infos[info.key_id] = info
        return info

    def sign_many(self, key_id: str, purpose: Purpose, hash_name: str, payloads: Sequence[bytes]) -> list[bytes]:
        """Signatures over each payload, in order, in one request."""
        if not payloads:
            return []
        return self.signer.sign(key_id, purpose, hash_name, payloads)

    def signing_key(self, key_id: str, purpose: Purpose) -> CertificateIssuerPrivateKeyTypes:
        """A private-key object for `cryptography` builders that signs through the signer for `purpose`."""
        public = self.info(key_id).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):

            def ec_sign(data: Data, algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
                if not isinstance(algorithm, ec.ECDSA):
                    raise KeyStoreError("the signer makes ECDSA signatures only")
                return self.signer.sign(key_id, purpose, hash_name(algorithm.algorithm), [bytes(data)])[0]

            return EcSigningKey(key_id, public, ec_sign)

        def rsa_sign(data: Data, pad: padding.AsymmetricPadding, algorithm: RsaHash) -> bytes:
            if not isinstance(pad, padding.PKCS1v15):
                raise KeyStoreError("the signer makes RSA PKCS#1 v1.5 signatures only")
            return self.signer.sign(key_id, purpose, hash_name(algorithm), [bytes(data)])[0]

        assert isinstance(public, rsa.RSAPublicKey)
        return RsaSigningKey(key_id, public, rsa_sign)

    def close(self) -> None:
        self.signer.close()
