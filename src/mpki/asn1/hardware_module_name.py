"""RFC 4108 hardwareModuleName: the otherName an SMKI device certificate names its device by.

    HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }

Encoded and decoded with the strict DER helpers in `der` because it sits on the issuance hot path;
tests cross-check it against pyasn1-alt-modules' rfc4108 definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mpki.asn1.der import (
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    decode_oid,
    encode_oid,
    read_tlv,
    tlv,
)
from mpki.domain import InvalidRequest

HARDWARE_MODULE_NAME_OID = "1.3.6.1.5.5.7.8.4"
_WHAT = "hardwareModuleName"


@dataclass(frozen=True, slots=True)
class HardwareModuleName:
    """hwType names the kind of module; hwSerialNum is its serial (for SMKI, the 8-octet EUI-64)."""

    hw_type: str
    hw_serial_num: bytes


@lru_cache(maxsize=32)
def _oid_tlv(dotted: str) -> bytes:
    return tlv(TAG_OID, encode_oid(dotted))


def encode_hardware_module_name(name: HardwareModuleName) -> bytes:
    """DER of the HardwareModuleName SEQUENCE, the value an x509.OtherName carries."""
    return tlv(TAG_SEQUENCE, _oid_tlv(name.hw_type) + tlv(TAG_OCTET_STRING, name.hw_serial_num))


def decode_hardware_module_name(der: bytes) -> HardwareModuleName:
    """Parse the otherName value; anything but exactly one well-formed SEQUENCE is refused."""
    tag, body, end = read_tlv(der, 0, _WHAT)
    if tag != TAG_SEQUENCE:
        raise InvalidRequest(f"{_WHAT} is not a SEQUENCE")
    if end != len(der):
        raise InvalidRequest(f"{_WHAT} has trailing bytes")
    tag, oid, cursor = read_tlv(body, 0, f"{_WHAT} hwType")
    if tag != TAG_OID:
        raise InvalidRequest(f"{_WHAT} hwType is not an OBJECT IDENTIFIER")
    tag, serial, cursor = read_tlv(body, cursor, f"{_WHAT} hwSerialNum")
    if tag != TAG_OCTET_STRING:
        raise InvalidRequest(f"{_WHAT} hwSerialNum is not an OCTET STRING")
    if cursor != len(body):
        raise InvalidRequest(f"{_WHAT} has extra fields")
    return HardwareModuleName(hw_type=decode_oid(oid, f"{_WHAT} hwType"), hw_serial_num=serial)
