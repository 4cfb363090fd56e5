"""ASN.1 that `cryptography` lacks, built on pyasn1 and pyasn1-alt-modules."""

from mpki.asn1.hardware_module_name import (
    HARDWARE_MODULE_NAME_OID,
    HardwareModuleName,
    decode_hardware_module_name,
    encode_hardware_module_name,
)

__all__ = [
    "HARDWARE_MODULE_NAME_OID",
    "HardwareModuleName",
    "decode_hardware_module_name",
    "encode_hardware_module_name",
]
