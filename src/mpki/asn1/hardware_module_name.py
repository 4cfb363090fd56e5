"""RFC 4108 hardwareModuleName: the otherName an SMKI device certificate names its device by."""

from __future__ import annotations

from dataclasses import dataclass

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_alt_modules import rfc4108

from mpki.domain import InvalidRequest

HARDWARE_MODULE_NAME_OID = "1.3.6.1.5.5.7.8.4"


@dataclass(frozen=True, slots=True)
class HardwareModuleName:
    """hwType names the kind of module; hwSerialNum is its serial (for SMKI, the 8-octet EUI-64)."""

    hw_type: str
    hw_serial_num: bytes


def encode_hardware_module_name(name: HardwareModuleName) -> bytes:
    """DER of the HardwareModuleName SEQUENCE, the value an x509.OtherName carries."""
    value = rfc4108.HardwareModuleName()
    value["hwType"] = univ.ObjectIdentifier(name.hw_type)
    value["hwSerialNum"] = univ.OctetString(name.hw_serial_num)
    return bytes(encoder.encode(value))


def decode_hardware_module_name(der: bytes) -> HardwareModuleName:
    """Parse the otherName value; anything but exactly one well-formed SEQUENCE is refused."""
    try:
        value, rest = decoder.decode(der, asn1Spec=rfc4108.HardwareModuleName())
    except PyAsn1Error:
        raise InvalidRequest("hardwareModuleName is not valid DER") from None
    if rest:
        raise InvalidRequest("hardwareModuleName has trailing bytes")
    return HardwareModuleName(
        hw_type=str(value["hwType"]),
        hw_serial_num=bytes(value["hwSerialNum"]),
    )
