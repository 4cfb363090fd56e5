"""Which CA an OCSP CertID names: issuer name and key hashes for every hash a client may use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mpki.asn1.certificate import subject_der
from mpki.asn1.der import read_tlv

HASHES = ("sha1", "sha256", "sha384", "sha512")


@dataclass(frozen=True, slots=True, eq=False)
class KnownIssuer:
    """A CA as OCSP requests name it; compared by identity (one object per CA per index)."""

    ca_id: int
    name: str
    name_hashes: dict[str, bytes]
    key_hashes: dict[str, bytes]


def subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's value without its unused-bits octet (RFC 6960 4.1.1 KeyHash)."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, body, _ = read_tlv(spki, 0, "SubjectPublicKeyInfo")
    _, _, after_algorithm = read_tlv(body, 0, "AlgorithmIdentifier")
    _, bits, _ = read_tlv(body, after_algorithm, "subjectPublicKey")
    return bits[1:]


def known_issuer(ca_id: int, name: str, certificate_der: bytes) -> KnownIssuer:
    certificate = x509.load_der_x509_certificate(certificate_der)
    subject = subject_der(certificate_der)
    bits = subject_public_key_bits(certificate)
    return KnownIssuer(
        ca_id,
        name,
        {h: hashlib.new(h, subject).digest() for h in HASHES},
        {h: hashlib.new(h, bits).digest() for h in HASHES},
    )


class IssuerIndex:
    """(hash algorithm, issuer key hash) -> the CA; rebuilt when the set of CAs changes."""

    def __init__(self, issuers: list[KnownIssuer]) -> None:
        self.by_id = {issuer.ca_id: issuer for issuer in issuers}
        self._by_key = {(h, issuer.key_hashes[h]): issuer for issuer in issuers for h in HASHES}

    def find(self, algorithm: str, name_hash: bytes, key_hash: bytes) -> KnownIssuer | None:
        issuer = self._by_key.get((algorithm, key_hash))
        if issuer is None or issuer.name_hashes[algorithm] != name_hash:
            return None
        return issuer
