"""CMS SignedData (RFC 5652) for content types `cryptography` cannot sign (gotcha 8), and small DER writers.

This module only encodes and decodes: the signature itself is made and checked by the caller (`tams`),
through `keys`. A signed message here has exactly one SignerInfo, identified by subjectKeyIdentifier,
with signed attributes (content-type and message-digest at least), which is what TAMP requires.

Errors carry `reason`, the name of the RFC 5934 StatusCode that describes them, so that an endpoint
can answer with the right code without this module knowing TAMP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_alt_modules import rfc5652

from mpki.asn1.der import encode_oid, tlv
from mpki.domain import InvalidRequest

SIGNED_DATA_OID = "1.2.840.113549.1.7.2"
CONTENT_TYPE_ATTR = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST_ATTR = "1.2.840.113549.1.9.4"
BINARY_SIGNING_TIME_ATTR = "1.2.840.113549.1.9.16.2.46"

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA384_OID = "2.16.840.1.101.3.4.2.2"
ECDSA_SHA256_OID = "1.2.840.10045.4.3.2"
ECDSA_SHA384_OID = "1.2.840.10045.4.3.3"
RSA_SHA256_OID = "1.2.840.113549.1.1.11"
RSA_SHA384_OID = "1.2.840.113549.1.1.12"
# RSA signature AlgorithmIdentifiers carry NULL parameters; ECDSA ones carry none (RFC 5754).
_NULL_PARAMETER_ALGORITHMS = frozenset({RSA_SHA256_OID, RSA_SHA384_OID})


class CmsFormatError(InvalidRequest):
    """The CMS structure is not what a TAMP signed message must be; `reason` names the status code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- DER writers: each returns one complete TLV ---------------------------------------------------


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(parts: Iterable[bytes]) -> bytes:
    """A SET OF in DER order: elements sorted by their encodings (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(parts)))


def integer(value: int) -> bytes:
    length = max(1, (value.bit_length() + 8) // 8)
    return tlv(0x02, value.to_bytes(length, "big", signed=True))


def enumerated(value: int) -> bytes:
    return b"\x0a" + integer(value)[1:]


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def oid(dotted: str) -> bytes:
    return tlv(0x06, encode_oid(dotted))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def ia5_string(value: str) -> bytes:
    return tlv(0x16, value.encode("ascii"))


def utf8_string(value: str) -> bytes:
    return tlv(0x0C, value.encode("utf-8"))


def explicit(number: int, der: bytes) -> bytes:
    """[number] EXPLICIT: the whole TLV inside a constructed context tag."""
    return tlv(0xA0 | number, der)


def implicit(number: int, der: bytes) -> bytes:
    """[number] IMPLICIT: the TLV's own tag replaced by the context tag (keeping constructed-ness)."""
    constructed = der[0] & 0x20
    return bytes([0x80 | constructed | number]) + der[1:]


def untag(der: bytes, universal_tag: int) -> bytes:
    """Undo `implicit`: put the universal tag back on an implicitly tagged TLV."""
    return bytes([universal_tag]) + der[1:]


def algorithm_identifier(algorithm: str) -> bytes:
    if algorithm in _NULL_PARAMETER_ALGORITHMS:
        return sequence(oid(algorithm), null())
    return sequence(oid(algorithm))


def attribute(attr_type: str, *values: bytes) -> bytes:
    return sequence(oid(attr_type), set_of(values))


# --- SignedData ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedParts:
    """One SignedData with one SignerInfo, as its fields stand; `signed_attributes` is the DER SET
    that the signature covers (tag 0x31, not the [0] it carries inside the SignerInfo)."""

    content_type: str
    content: bytes
    subject_key_identifier: bytes
    digest_algorithm: str
    signature_algorithm: str
    signed_attributes: bytes
    signature: bytes
    unsigned_attributes: tuple[tuple[str, tuple[bytes, ...]], ...] = ()
    certificates: tuple[bytes, ...] = ()

    def signed_attribute(self, attr_type: str) -> tuple[bytes, ...]:
        """The DER values of one signed attribute; () when absent."""
        return _attribute_values(self.signed_attributes, attr_type)

    def unsigned_attribute(self, attr_type: str) -> tuple[bytes, ...]:
        for found, values in self.unsigned_attributes:
            if found == attr_type:
                return values
        return ()


def signed_attributes(content_type: str, digest: bytes, binary_signing_time: int | None = None) -> bytes:
    """The SignedAttributes SET a signer signs: content-type, message-digest, optional binarySigningTime
    (RFC 6019: seconds since 1970 as an INTEGER)."""
    attributes = [attribute(CONTENT_TYPE_ATTR, oid(content_type)), attribute(MESSAGE_DIGEST_ATTR, octet_string(digest))]
    if binary_signing_time is not None:
        attributes.append(attribute(BINARY_SIGNING_TIME_ATTR, integer(binary_signing_time)))
    return set_of(attributes)


def encode_signed_data(parts: SignedParts) -> bytes:
    """ContentInfo(SignedData) DER: version 3 because the signer is named by subjectKeyIdentifier."""
    digest_alg = algorithm_identifier(parts.digest_algorithm)
    signer_info = sequence(
        integer(3),
        tlv(0x80, parts.subject_key_identifier),
        digest_alg,
        implicit(0, parts.signed_attributes),
        algorithm_identifier(parts.signature_algorithm),
        octet_string(parts.signature),
        *(
            [implicit(1, set_of(attribute(t, *values) for t, values in parts.unsigned_attributes))]
            if parts.unsigned_attributes
            else []
        ),
    )
    certificates = [implicit(0, set_of(parts.certificates))] if parts.certificates else []
    signed_data = sequence(
        integer(3),
        set_of([digest_alg]),
        sequence(oid(parts.content_type), explicit(0, octet_string(parts.content))),
        *certificates,
        set_of([signer_info]),
    )
    return sequence(oid(SIGNED_DATA_OID), explicit(0, signed_data))


def decode_signed_data(der: bytes) -> SignedParts:
    """Parse a ContentInfo holding SignedData with exactly one SignerInfo named by subjectKeyIdentifier."""
    try:
        info, rest = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    except PyAsn1Error as exc:
        raise CmsFormatError("decodeFailure", f"not a DER ContentInfo: {exc}") from None
    if rest:
        raise CmsFormatError("decodeFailure", "trailing bytes after the ContentInfo")
    if str(info["contentType"]) != SIGNED_DATA_OID:
        raise CmsFormatError("badContentInfo", f"content type {info['contentType']} is not signedData")
    try:
        signed, rest = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.SignedData())
    except PyAsn1Error as exc:
        raise CmsFormatError("badSignedData", f"SignedData does not decode: {exc}") from None
    if rest:
        raise CmsFormatError("badSignedData", "trailing bytes after the SignedData")
    if not signed["encapContentInfo"]["eContent"].isValue:
        raise CmsFormatError("missingContent", "the SignedData carries no encapsulated content")
    try:
        return _signed_parts(signed)
    except PyAsn1Error as exc:
        raise CmsFormatError("badSignedData", f"SignedData fields do not decode: {exc}") from None


def _signed_parts(signed: Any) -> SignedParts:
    encap = signed["encapContentInfo"]
    if len(signed["signerInfos"]) == 0:
        raise CmsFormatError("missingSignature", "the SignedData is not signed")
    if len(signed["signerInfos"]) != 1:
        raise CmsFormatError("badSignerInfo", f"expected one SignerInfo, found {len(signed['signerInfos'])}")
    signer = signed["signerInfos"][0]
    sid = signer["sid"]
    if sid.getName() != "subjectKeyIdentifier":
        raise CmsFormatError("badSignerInfo", "the signer is not identified by subjectKeyIdentifier")
    # RFC 5652 5.1 and 5.3: with a subjectKeyIdentifier signer, both versions are 3.
    if int(signer["version"]) != 3 or int(signed["version"]) != 3:
        raise CmsFormatError("badSignerInfo", "SignedData and SignerInfo must be version 3")
    digest = signer["digestAlgorithm"]["algorithm"]
    if all(a["algorithm"] != digest for a in signed["digestAlgorithms"]):
        raise CmsFormatError("badSignedData", "digestAlgorithms does not list the signer's digest algorithm")
    if not signer["signedAttrs"].isValue or len(signer["signedAttrs"]) == 0:
        raise CmsFormatError("badSignedAttrs", "the SignerInfo has no signed attributes")
    signed_attrs = untag(encoder.encode(signer["signedAttrs"]), 0x31)
    unsigned: list[tuple[str, tuple[bytes, ...]]] = []
    if signer["unsignedAttrs"].isValue:
        for attr in signer["unsignedAttrs"]:
            unsigned.append((str(attr["attrType"]), tuple(encoder.encode(v) for v in attr["attrValues"])))
    certificates: tuple[bytes, ...] = ()
    if signed["certificates"].isValue:
        certificates = tuple(encoder.encode(choice.getComponent()) for choice in signed["certificates"])
    parts = SignedParts(
        content_type=str(encap["eContentType"]),
        content=bytes(encap["eContent"]),
        subject_key_identifier=bytes(sid["subjectKeyIdentifier"]),
        digest_algorithm=str(signer["digestAlgorithm"]["algorithm"]),
        signature_algorithm=str(signer["signatureAlgorithm"]["algorithm"]),
        signed_attributes=signed_attrs,
        signature=bytes(signer["signature"]),
        unsigned_attributes=tuple(unsigned),
        certificates=certificates,
    )
    _check_signed_attributes(parts)
    return parts


def _check_signed_attributes(parts: SignedParts) -> None:
    content_types = parts.signed_attribute(CONTENT_TYPE_ATTR)
    digests = parts.signed_attribute(MESSAGE_DIGEST_ATTR)
    if len(content_types) != 1 or len(digests) != 1:
        raise CmsFormatError("badSignedAttrs", "content-type and message-digest must each appear once")
    try:
        declared, rest = decoder.decode(content_types[0], asn1Spec=univ.ObjectIdentifier())
    except PyAsn1Error:
        raise CmsFormatError("badSignedAttrs", "the content-type attribute is not an OID") from None
    if rest or str(declared) != parts.content_type:
        raise CmsFormatError("badSignedAttrs", "the content-type attribute differs from eContentType")
    try:
        _, rest = decoder.decode(digests[0], asn1Spec=univ.OctetString())
    except PyAsn1Error:
        raise CmsFormatError("badSignedAttrs", "the message-digest attribute is not an OCTET STRING") from None
    if rest:
        raise CmsFormatError("badSignedAttrs", "trailing bytes in the message-digest attribute")


def message_digest(parts: SignedParts) -> bytes:
    """The message-digest attribute's value (checked present by `decode_signed_data`)."""
    value, _ = decoder.decode(parts.signed_attribute(MESSAGE_DIGEST_ATTR)[0], asn1Spec=univ.OctetString())
    return bytes(value)


def binary_signing_time(parts: SignedParts) -> int | None:
    values = parts.signed_attribute(BINARY_SIGNING_TIME_ATTR)
    if not values:
        return None
    try:
        value, _ = decoder.decode(values[0], asn1Spec=univ.Integer())
    except PyAsn1Error:
        raise CmsFormatError("badSignedAttrs", "binarySigningTime is not an INTEGER") from None
    return int(value)


def _attribute_values(attributes_set: bytes, attr_type: str) -> tuple[bytes, ...]:
    attrs, _ = decoder.decode(attributes_set, asn1Spec=univ.SetOf(componentType=rfc5652.Attribute()))
    for attr in attrs:
        if str(attr["attrType"]) == attr_type:
            return tuple(encoder.encode(v) for v in attr["attrValues"])
    return ()
