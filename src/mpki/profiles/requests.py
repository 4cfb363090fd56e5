"""Building SMKI CSRs the way devices and organisations send them, for subscribers' tools and demos.

The key is the subscriber's own and is passed in: this module never creates or stores keys.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, HardwareModuleName, encode_hardware_module_name
from mpki.domain import Eui64, KeyUsageChoice, RemotePartyRole


def _usage(choice: KeyUsageChoice) -> x509.KeyUsage:
    signing = choice is KeyUsageChoice.DIGITAL_SIGNATURE
    return x509.KeyUsage(signing, False, False, False, not signing, False, False, False, False)


def device_csr(
    key: ec.EllipticCurvePrivateKey, eui64: Eui64, usage: KeyUsageChoice, hw_type: str
) -> x509.CertificateSigningRequest:
    """Empty subject; extensionRequest with critical keyUsage and critical hardwareModuleName SAN."""
    other_name = x509.OtherName(
        x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID),
        encode_hardware_module_name(HardwareModuleName(hw_type, eui64.octets)),
    )
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(_usage(usage), critical=True)
        .add_extension(x509.SubjectAlternativeName([other_name]), critical=True)
        .sign(key, hashes.SHA256())
    )


def organisation_csr(
    key: ec.EllipticCurvePrivateKey,
    eui64: Eui64,
    role: RemotePartyRole,
    usage: KeyUsageChoice,
    common_name: str | None = None,
) -> x509.CertificateSigningRequest:
    """Subject [CN], OU = role code, x500UniqueIdentifier = EUI-64; extensionRequest with keyUsage."""
    attributes: list[x509.NameAttribute[str | bytes]] = []
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name, _ASN1Type.UTF8String))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.code, _ASN1Type.UTF8String))
    attributes.append(x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui64.octets, _ASN1Type.BitString))
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .add_extension(_usage(usage), critical=True)
        .sign(key, hashes.SHA256())
    )
