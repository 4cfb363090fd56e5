"""TAMP's identifiers and codes: the id-ct-TAMP-* content types, the OIDs the messages refer to, RFC 5934
StatusCode, and the decode error that carries the status a store answers with."""

# ruff: noqa: N815 - StatusCode members keep the RFC's own mixedCase names.
from __future__ import annotations

import enum
from typing import Any

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error

from mpki.domain import InvalidRequest

_TAMP_ARC = "2.16.840.1.101.2.1.2.77"
CONTINGENCY_KEY_ATTR = "2.16.840.1.101.2.1.5.63"
WRAPPED_APEX_CONTIN_KEY_EXT = "1.3.6.1.5.5.7.1.20"
CMS_CONTENT_CONSTRAINTS_EXT = "1.3.6.1.5.5.7.1.18"
SUBJECT_KEY_IDENTIFIER_EXT = "2.5.29.14"
ANY_CONTENT_TYPE = "1.2.840.113549.1.9.16.1.0"


class ContentType(enum.StrEnum):
    """The id-ct-TAMP-* content types (RFC 5934 section 4)."""

    STATUS_QUERY = f"{_TAMP_ARC}.1"
    STATUS_RESPONSE = f"{_TAMP_ARC}.2"
    UPDATE = f"{_TAMP_ARC}.3"
    UPDATE_CONFIRM = f"{_TAMP_ARC}.4"
    APEX_UPDATE = f"{_TAMP_ARC}.5"
    APEX_UPDATE_CONFIRM = f"{_TAMP_ARC}.6"
    COMMUNITY_UPDATE = f"{_TAMP_ARC}.7"
    COMMUNITY_UPDATE_CONFIRM = f"{_TAMP_ARC}.8"
    ERROR = f"{_TAMP_ARC}.9"
    SEQ_NUM_ADJUST = f"{_TAMP_ARC}.10"
    SEQ_NUM_ADJUST_CONFIRM = f"{_TAMP_ARC}.11"


class StatusCode(enum.IntEnum):
    """RFC 5934 StatusCode, members named as in the RFC so that they can be searched for there;
    a test checks them against rfc5934.StatusCode's named values."""

    success = 0
    decodeFailure = 1
    badContentInfo = 2
    badSignedData = 3
    badEncapContent = 4
    badCertificate = 5
    badSignerInfo = 6
    badSignedAttrs = 7
    badUnsignedAttrs = 8
    missingContent = 9
    noTrustAnchor = 10
    notAuthorized = 11
    badDigestAlgorithm = 12
    badSignatureAlgorithm = 13
    unsupportedKeySize = 14
    unsupportedParameters = 15
    signatureFailure = 16
    insufficientMemory = 17
    unsupportedTAMPMsgType = 18
    apexTAMPAnchor = 19
    improperTAAddition = 20
    seqNumFailure = 21
    contingencyPublicKeyDecrypt = 22
    incorrectTarget = 23
    communityUpdateFailed = 24
    trustAnchorNotFound = 25
    unsupportedTAAlgorithm = 26
    unsupportedTAKeySize = 27
    unsupportedContinPubKeyDecryptAlg = 28
    missingSignature = 29
    resourcesBusy = 30
    versionNumberMismatch = 31
    missingPolicySet = 32
    revokedCertificate = 33
    unsupportedTrustAnchorFormat = 34
    improperTAChange = 35
    malformed = 36
    cmsError = 37
    unsupportedTargetIdentifier = 38
    other = 127


class TampDecodeError(InvalidRequest):
    """A TAMP content does not decode; `status` is the code to answer with."""

    def __init__(self, status: StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_exact(der: bytes, spec: Any, what: str, status: StatusCode = StatusCode.decodeFailure) -> Any:
    """Decode `der` as `spec`, all of it; anything else is TampDecodeError(`status`) naming `what`."""
    try:
        value, rest = decoder.decode(der, asn1Spec=spec)
    except PyAsn1Error as exc:
        raise TampDecodeError(status, f"{what} does not decode: {exc}") from None
    if rest:
        raise TampDecodeError(status, f"trailing bytes after the {what}")
    return value


def der_of(value: Any) -> bytes:
    """A decoded pyasn1 value's DER."""
    return bytes(encoder.encode(value))
