"""TAMP messages in CMS SignedData: sign through a keystore key, parse, and verify against a trust anchor.

The signer is named by subjectKeyIdentifier and signs the signed attributes (content-type, message-digest
and, when given, binarySigningTime). The private key is used only through `.sign()`, so a `keys` room
signing key (possibly PKCS#11-backed) and a plain `cryptography` key in tests work alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from pyasn1.error import PyAsn1Error

from mpki.asn1 import cms
from mpki.asn1.tamp import (
    CONTINGENCY_KEY_ATTR,
    ContentType,
    Message,
    StatusCode,
    TampDecodeError,
    TrustAnchor,
    decode_message,
    decode_plaintext_symmetric_key,
    encode_plaintext_symmetric_key,
    key_identifier,
)
from mpki.domain import InvalidRequest
from mpki.tams.errors import TampRefused

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_DIGESTS: dict[str, hashes.HashAlgorithm] = {cms.SHA256_OID: hashes.SHA256(), cms.SHA384_OID: hashes.SHA384()}
_EC_SIGNATURES = {cms.ECDSA_SHA256_OID: cms.SHA256_OID, cms.ECDSA_SHA384_OID: cms.SHA384_OID}
_RSA_SIGNATURES = {cms.RSA_SHA256_OID: cms.SHA256_OID, cms.RSA_SHA384_OID: cms.SHA384_OID}


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed a message and how, as read from its one SignerInfo (not yet verified)."""

    key_id: bytes
    digest_algorithm: str
    signature_algorithm: str
    signing_time: dt.datetime | None
    contingency_key: bytes | None
    parts: cms.SignedParts


def public_key_id(public_key: PublicKey) -> bytes:
    """The subjectKeyIdentifier TAMP names a key by (RFC 5280 method 1)."""
    return key_identifier(
        public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def anchor_public_key(anchor: TrustAnchor) -> PublicKey:
    """The public key of a trust anchor, to verify its messages with; unsupportedTAAlgorithm otherwise."""
    try:
        key = serialization.load_der_public_key(anchor.public_key_info)
    except (ValueError, TypeError):
        raise TampRefused(StatusCode.unsupportedTAAlgorithm, "the trust anchor's key is not supported") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TampRefused(StatusCode.unsupportedTAAlgorithm, "the trust anchor's key is not supported")
    return key


def _algorithms(key: SigningKey) -> tuple[str, str]:
    """(digest OID, signature OID) for a key: SHA-384 for P-384, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp384r1":
            return cms.SHA384_OID, cms.ECDSA_SHA384_OID
        return cms.SHA256_OID, cms.ECDSA_SHA256_OID
    return cms.SHA256_OID, cms.RSA_SHA256_OID


def sign_message(
    message: Message,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    key_id: bytes | None = None,
    signing_time: dt.datetime | None = None,
    contingency_key: bytes | None = None,
    certificates: tuple[bytes, ...] = (),
) -> bytes:
    """ContentInfo DER of `message` signed by `key`; `contingency_key` rides as the unsigned attribute
    id-aa-TAMP-contingencyPublicKeyDecryptKey (only a TAMPApexUpdate signed by the contingency key has it)."""
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidRequest("TAMP messages are signed with an EC or RSA key")
    digest_oid, signature_oid = _algorithms(key)
    content = message.encode()
    digest = hashlib.new(_DIGESTS[digest_oid].name, content).digest()
    seconds = None if signing_time is None else int(signing_time.timestamp())
    attributes = cms.signed_attributes(message.content_type, digest, seconds)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(attributes, ec.ECDSA(_DIGESTS[digest_oid]))
    else:
        signature = key.sign(attributes, padding.PKCS1v15(), _DIGESTS[digest_oid])
    unsigned: tuple[tuple[str, tuple[bytes, ...]], ...] = ()
    if contingency_key is not None:
        unsigned = ((CONTINGENCY_KEY_ATTR, (encode_plaintext_symmetric_key(contingency_key),)),)
    return cms.encode_signed_data(
        cms.SignedParts(
            content_type=message.content_type,
            content=content,
            subject_key_identifier=key_id if key_id is not None else public_key_id(key.public_key()),
            digest_algorithm=digest_oid,
            signature_algorithm=signature_oid,
            signed_attributes=attributes,
            signature=signature,
            unsigned_attributes=unsigned,
            certificates=certificates,
        )
    )


def parse(der: bytes) -> tuple[Message, SignerInfo]:
    """Decode a signed TAMP message without verifying it; TampRefused says what is wrong with its form."""
    try:
        parts = cms.decode_signed_data(der)
    except cms.CmsFormatError as exc:
        raise TampRefused(StatusCode[exc.reason], str(exc)) from None
    msg_type = parts.content_type
    if msg_type not in set(ContentType):
        raise TampRefused(StatusCode.unsupportedTAMPMsgType, f"{msg_type} is not a TAMP message type", msg_type)
    try:
        message = decode_message(msg_type, parts.content)
        seconds = cms.binary_signing_time(parts)
        values = parts.unsigned_attribute(CONTINGENCY_KEY_ATTR)
        if len(values) > 1:
            raise TampDecodeError(StatusCode.badUnsignedAttrs, "more than one contingency decrypt key")
        contingency = decode_plaintext_symmetric_key(values[0]) if values else None
    except TampDecodeError as exc:
        raise TampRefused(exc.status, str(exc), msg_type) from None
    except cms.CmsFormatError as exc:
        raise TampRefused(StatusCode[exc.reason], str(exc), msg_type) from None
    except PyAsn1Error as exc:  # a last guard: a store answers every input, it never crashes on one
        raise TampRefused(StatusCode.decodeFailure, f"the message does not decode: {exc}", msg_type) from None
    return message, SignerInfo(
        key_id=parts.subject_key_identifier,
        digest_algorithm=parts.digest_algorithm,
        signature_algorithm=parts.signature_algorithm,
        signing_time=None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC),
        contingency_key=contingency,
        parts=parts,
    )


def verify(signer: SignerInfo, public_key: PublicKey) -> None:
    """Check the message digest and the signature with `public_key`; TampRefused if either fails."""
    parts = signer.parts
    if signer.digest_algorithm not in _DIGESTS:
        raise TampRefused(StatusCode.badDigestAlgorithm, f"digest algorithm {signer.digest_algorithm} is not supported")
    algorithms = _EC_SIGNATURES if isinstance(public_key, ec.EllipticCurvePublicKey) else _RSA_SIGNATURES
    if algorithms.get(signer.signature_algorithm) != signer.digest_algorithm:
        raise TampRefused(
            StatusCode.badSignatureAlgorithm,
            f"signature algorithm {signer.signature_algorithm} does not fit the key or the digest algorithm",
        )
    hash_algorithm = _DIGESTS[signer.digest_algorithm]
    if hashlib.new(hash_algorithm.name, parts.content).digest() != cms.message_digest(parts):
        raise TampRefused(StatusCode.signatureFailure, "the content does not match its message-digest")
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(parts.signature, parts.signed_attributes, ec.ECDSA(hash_algorithm))
        else:
            public_key.verify(parts.signature, parts.signed_attributes, padding.PKCS1v15(), hash_algorithm)
    except InvalidSignature:
        raise TampRefused(StatusCode.signatureFailure, "the signature does not verify") from None


def parse_verified(der: bytes, trusted: PublicKey | TrustAnchor) -> tuple[Message, SignerInfo]:
    """`parse` then `verify` against the one key (or trust anchor) the caller trusts for this message."""
    message, signer = parse(der)
    verify(signer, anchor_public_key(trusted) if isinstance(trusted, TrustAnchor) else trusted)
    return message, signer
