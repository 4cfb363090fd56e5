"""Key identifiers: RFC 5280 4.2.1.2 method 2 for SMKI, method 1 for the generic profiles."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

PublicKey = CertificateIssuerPublicKeyTypes


def subject_public_key_bits(public_key: PublicKey) -> bytes:
    """The contents of the SubjectPublicKeyInfo's subjectPublicKey BIT STRING."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise TypeError(f"no key identifier rule for {type(public_key).__name__}")


def method2_key_identifier(public_key: PublicKey) -> bytes:
    """8 octets: the 4-bit value 0100 then the low 60 bits of SHA-1 over the subjectPublicKey bits."""
    digest = hashlib.sha1(subject_public_key_bits(public_key), usedforsecurity=False).digest()
    low = bytearray(digest[-8:])
    low[0] = 0x40 | (low[0] & 0x0F)
    return bytes(low)


def method1_key_identifier(public_key: PublicKey) -> bytes:
    """The 20-octet SHA-1 of the subjectPublicKey bits (RFC 5280 method 1)."""
    return hashlib.sha1(subject_public_key_bits(public_key), usedforsecurity=False).digest()
