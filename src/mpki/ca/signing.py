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

from mpki.profiles import CheckedRequest, Profile, ProfileParameters, Validity, extensions


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
