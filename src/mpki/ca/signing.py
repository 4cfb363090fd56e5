"""Building and signing one certificate from a checked request; no database, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.asn1.der import read_tlv, tlv
from mpki.keys import EcSigningKey, RsaSigningKey
from mpki.keys.proxies import Data
from mpki.profiles import CheckedRequest, Profile, ProfileParameters, Validity, extensions

_TAG_SEQUENCE, _TAG_BIT_STRING = 0x30, 0x03
# A well-formed ECDSA-Sig-Value (r = s = 1): what a draft carries until the signer's signature replaces it.
_PLACEHOLDER_ECDSA = bytes.fromhex("3006020101020101")


@dataclass(frozen=True, slots=True)
class Issuer:
    """Everything about the signing CA that every certificate it makes repeats."""

    name: x509.Name
    key: CertificateIssuerPrivateKeyTypes
    key_identifier: bytes | None
    not_after: dt.datetime | None
    # The CA's name in this installation: status URLs (CRL, OCSP, caIssuers) are built from it.
    ca_name: str | None = None


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    """SHA-256 for P-256 and RSA, SHA-384 for P-384 (RFC 5480 pairing)."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return hashes.SHA256()
    raise TypeError(f"unsupported issuer key {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class UnsignedCertificate:
    """A certificate built in full but not yet signed: its TBSCertificate and AlgorithmIdentifier, DER."""

    tbs: bytes
    algorithm: bytes

    def signed(self, signature: bytes) -> bytes:
        """The Certificate DER with `signature` (RFC 5280 section 4.1: tbs, algorithm, BIT STRING)."""
        return tlv(_TAG_SEQUENCE, self.tbs + self.algorithm + tlv(_TAG_BIT_STRING, b"\x00" + signature))


def draft_key(issuer_key: CertificateIssuerPrivateKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    """A stand-in for the issuer's key that signs nothing: builders made with it yield drafts to sign in a batch."""
    public = issuer_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return EcSigningKey("draft", public, lambda _data, _algorithm: _PLACEHOLDER_ECDSA)
    if isinstance(public, rsa.RSAPublicKey):
        placeholder = b"\x00" * (public.key_size // 8)

        def rsa_placeholder(_data: Data, *_: object) -> bytes:
            return placeholder

        return RsaSigningKey("draft", public, rsa_placeholder)
    raise TypeError(f"unsupported issuer key {type(issuer_key).__name__}")


def draft_certificate(
    profile: Profile,
    request: CheckedRequest,
    issuer: Issuer,
    draft: CertificateIssuerPrivateKeyTypes,
    serial: int,
    validity: Validity,
    settings: ProfileParameters,
) -> UnsignedCertificate:
    """What `sign_certificate` would sign, built by `cryptography` with the `draft_key` stand-in."""
    stand_in = Issuer(issuer.name, draft, issuer.key_identifier, issuer.not_after, issuer.ca_name)
    der = sign_certificate(profile, request, stand_in, serial, validity, settings).public_bytes(
        serialization.Encoding.DER
    )
    _, body, _ = read_tlv(der, 0, "the draft certificate")
    _, _, after_tbs = read_tlv(body, 0, "the draft TBSCertificate")
    _, _, after_algorithm = read_tlv(body, after_tbs, "the draft signature algorithm")
    return UnsignedCertificate(body[:after_tbs], body[after_tbs:after_algorithm])


def sign_certificate(
    profile: Profile,
    request: CheckedRequest,
    issuer: Issuer,
    serial: int,
    validity: Validity,
    settings: ProfileParameters,
    extra_extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """The profile's extensions, then any `extra_extensions` (non-critical; e.g. the apex's wrapped contingency key)."""
    builder = x509.CertificateBuilder(
        issuer_name=issuer.name,
        subject_name=request.subject,
        public_key=request.public_key,
        serial_number=serial,
        not_valid_before=validity.not_before,
        not_valid_after=validity.not_after,
    )
    for value, critical in extensions(profile, request, settings, issuer.key_identifier, issuer.ca_name):
        builder = builder.add_extension(value, critical)
    for extra in extra_extensions:
        builder = builder.add_extension(extra, False)
    return builder.sign(issuer.key, signature_hash(issuer.key))


def spki_sha256(request: CheckedRequest) -> str:
    spki = request.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()
