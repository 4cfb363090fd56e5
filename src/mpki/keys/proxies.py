"""Private-key classes that `cryptography` accepts but that refuse to reveal key material."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from mpki.domain import KeyStoreError

Data = bytes | bytearray | memoryview
RsaHash = hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo
EcSign = Callable[[Data, ec.EllipticCurveSignatureAlgorithm], bytes]
RsaSign = Callable[[Data, padding.AsymmetricPadding, RsaHash], bytes]


def _refuse(*_: object) -> NoReturn:
    raise KeyStoreError("private keys never leave the keystore")


class EcSigningKey(ec.EllipticCurvePrivateKey):
    """An EC key whose signatures are made by a keystore backend."""

    def __init__(self, key_id: str, public_key: ec.EllipticCurvePublicKey, sign: EcSign) -> None:
        self.key_id = key_id
        self._public_key = public_key
        self._sign = sign

    def sign(self, data: Data, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return self._sign(data, signature_algorithm)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _refuse()

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _refuse()

    def __copy__(self) -> EcSigningKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> EcSigningKey:
        return self


class RsaSigningKey(rsa.RSAPrivateKey):
    """An RSA key whose signatures are made by a keystore backend."""

    def __init__(self, key_id: str, public_key: rsa.RSAPublicKey, sign: RsaSign) -> None:
        self.key_id = key_id
        self._public_key = public_key
        self._sign = sign

    def sign(
        self,
        data: Data,
        padding: padding.AsymmetricPadding,
        algorithm: RsaHash,
    ) -> bytes:
        return self._sign(data, padding, algorithm)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        _refuse()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _refuse()

    def __copy__(self) -> RsaSigningKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> RsaSigningKey:
        return self
