"""Build PKCS#10 requests for tests: good ones for every profile, and bad ones through a few knobs.

Every builder returns DER bytes (PEM with ``pem=True``) ready for ``IssuanceOrder(profile, csr, ...)``,
the API or the CLI. Keys are fresh P-256 keys unless ``key=`` (any EC or RSA private key) or ``curve=``
says otherwise. Bad requests, by what they break::

    device_csr(eui, curve=ec.SECP384R1())          # wrong curve
    device_csr(eui, key=rsa_key())                 # RSA key on an SMKI profile
    device_csr(eui, hw_serials=())                 # no SAN at all
    device_csr(eui, hw_serials=(eui, other))       # two hardwareModuleNames
    device_csr(bytes(7)) / device_csr(bytes(9))    # EUI-64 of 7 or 9 octets
    device_csr(eui, usage=None)                    # no keyUsage requested
    device_csr(eui, usage=("digitalSignature", "keyAgreement"))  # two usages
    device_csr(eui, subject=name("CN", "x"))       # a device CSR must have an empty subject
    org_csr(eui, role="08") / org_csr(eui, role="99")            # unknown role codes
    org_csr(eui, role="00")                        # a CA role in an organisation request
    corrupt_signature(any_csr)                     # proof of possession fails

Example::

    from tests.csr_factory import device_csr, random_eui64
    csr = device_csr(random_eui64(), "keyAgreement")
    view = authority.issue(IssuanceOrder("smki-device", csr, approved_by="test"))
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, HardwareModuleName, encode_hardware_module_name

__all__ = [
    "DCC_TEST_HW_TYPE_OID",
    "KEY_USAGES",
    "PrivateKey",
    "corrupt_signature",
    "device_csr",
    "ec_key",
    "hardware_module_name",
    "key_usage",
    "load",
    "org_csr",
    "random_eui64",
    "rsa_key",
    "sign",
    "tls_client_csr",
    "tls_server_csr",
    "to_der",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""The keys these helpers sign with."""

DCC_TEST_HW_TYPE_OID = "1.2.826.0.1.8641679.1.2.2.1"
"""The hwType the DCC test device certificates carry (also mpki's default ``hw_type_oid``)."""

KEY_USAGES = ("digitalSignature", "keyAgreement", "keyEncipherment", "keyCertSign", "cRLSign")
"""Usage names ``key_usage()`` understands (RFC 5280 spelling)."""

Usage = str | Sequence[str] | None
"""One usage name, several (to make a bad SMKI request), or None for no keyUsage extension."""


def random_eui64() -> bytes:
    """A fresh random 8-octet EUI-64, so tests never collide on duplicate checks."""
    return os.urandom(8)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A new EC key, P-256 unless another curve is given."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key (takes tens of milliseconds: generate it once per test module where you can)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_usage(usage: str | Sequence[str]) -> x509.KeyUsage:
    """KeyUsage with the named bits set, e.g. ``key_usage("keyAgreement")``."""
    names = {usage} if isinstance(usage, str) else set(usage)
    unknown = names - set(KEY_USAGES)
    if unknown:
        raise ValueError(f"unknown key usage {sorted(unknown)}; expected some of {KEY_USAGES}")
    return x509.KeyUsage(
        digital_signature="digitalSignature" in names,
        content_commitment=False,
        key_encipherment="keyEncipherment" in names,
        data_encipherment=False,
        key_agreement="keyAgreement" in names,
        key_cert_sign="keyCertSign" in names,
        crl_sign="cRLSign" in names,
        encipher_only=False,
        decipher_only=False,
    )


def hardware_module_name(serial: bytes, hw_type: str = DCC_TEST_HW_TYPE_OID) -> x509.OtherName:
    """The RFC 4108 hardwareModuleName otherName for a device serial (its EUI-64)."""
    value = encode_hardware_module_name(HardwareModuleName(hw_type, serial))
    return x509.OtherName(x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID), value)


def sign(builder: x509.CertificateSigningRequestBuilder, key: PrivateKey, *, pem: bool = False) -> bytes:
    """Sign a CSR builder with SHA-256 (SHA-384 for P-384 and larger curves) and serialise it."""
    digest: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        digest = hashes.SHA384()
    csr = builder.sign(key, digest)
    return csr.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def _key(key: PrivateKey | None, curve: ec.EllipticCurve | None) -> PrivateKey:
    if key is not None and curve is not None:
        raise ValueError("give key= or curve=, not both")
    return key if key is not None else ec_key(curve)


def _with_key_usage(
    builder: x509.CertificateSigningRequestBuilder, usage: Usage, critical: bool
) -> x509.CertificateSigningRequestBuilder:
    if usage is None:
        return builder
    return builder.add_extension(key_usage(usage), critical=critical)


def device_csr(
    eui64: bytes,
    usage: Usage = "digitalSignature",
    *,
    key: PrivateKey | None = None,
    curve: ec.EllipticCurve | None = None,
    hw_serials: Sequence[bytes] | None = None,
    hw_type: str = DCC_TEST_HW_TYPE_OID,
    extra_names: Iterable[x509.GeneralName] = (),
    subject: x509.Name | None = None,
    san_critical: bool = True,
    key_usage_critical: bool = True,
    pem: bool = False,
) -> bytes:
    """An SMKI device CSR shaped like a comms hub's (see the vector ``device_csr_ds.der``).

    Empty subject; extensionRequest with a critical keyUsage (``usage``) then a critical SAN holding one
    hardwareModuleName {hwType ``hw_type``, hwSerialNum ``eui64``}. ``hw_serials`` replaces the list of
    serials in the SAN (``()`` leaves the SAN out, two serials make two hardwareModuleNames);
    ``extra_names`` appends other GeneralNames to the SAN.
    """
    signer = _key(key, curve)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    builder = _with_key_usage(builder, usage, key_usage_critical)
    serials = [eui64] if hw_serials is None else list(hw_serials)
    names: list[x509.GeneralName] = [hardware_module_name(s, hw_type) for s in serials]
    names += list(extra_names)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=san_critical)
    return sign(builder, signer, pem=pem)


def org_csr(
    eui64: bytes,
    role: str = "02",
    usage: Usage = "digitalSignature",
    *,
    cn: str | None = None,
    key: PrivateKey | None = None,
    curve: ec.EllipticCurve | None = None,
    unique_identifier: bytes | None = None,
    ou_type: _ASN1Type = _ASN1Type.UTF8String,
    extra_attributes: Iterable[x509.NameAttribute[str | bytes]] = (),
    pem: bool = False,
) -> bytes:
    """An SMKI organisation CSR: subject [CN], OU=``role`` (UTF8String), x500UniqueIdentifier=EUI-64.

    The x500UniqueIdentifier is written as a BIT STRING whose contents are ``b"\\x00" + eui64`` (no unused
    bits), the order is CN, OU, x500UniqueIdentifier as in the DCC's certificates. ``unique_identifier``
    overrides the raw BIT STRING contents (unused-bits octet included); ``role`` is written verbatim, so
    ``"08"``, ``"99"`` or ``"2"`` make bad requests. ``extra_attributes`` are appended to the subject.
    """
    signer = _key(key, curve)
    attributes: list[x509.NameAttribute[str | bytes]] = []
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn, _ASN1Type.UTF8String))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role, ou_type))
    uid = b"\x00" + eui64 if unique_identifier is None else unique_identifier
    attributes.append(x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, uid, _ASN1Type.BitString))
    attributes += list(extra_attributes)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    builder = _with_key_usage(builder, usage, True)
    return sign(builder, signer, pem=pem)


def tls_server_csr(
    dns: Sequence[str] = ("example.test",),
    *,
    ips: Sequence[str] = (),
    cn: str | None = None,
    key: PrivateKey | None = None,
    curve: ec.EllipticCurve | None = None,
    pem: bool = False,
) -> bytes:
    """A TLS server CSR: optional CN, SAN with ``dns`` names and ``ips`` (no SAN if both are empty)."""
    signer = _key(key, curve)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return sign(builder, signer, pem=pem)


def tls_client_csr(
    cn: str | None = "client.example.test",
    *,
    emails: Sequence[str] = (),
    key: PrivateKey | None = None,
    curve: ec.EllipticCurve | None = None,
    pem: bool = False,
) -> bytes:
    """A TLS client CSR: subject CN=``cn`` (None leaves the subject empty), optional rfc822Name SANs."""
    signer = _key(key, curve)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if emails:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(e) for e in emails]), False)
    return sign(builder, signer, pem=pem)


def to_der(csr: bytes) -> bytes:
    """DER of a CSR given as DER or PEM."""
    if csr.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER)
    return csr


def load(csr: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR given as DER or PEM."""
    return x509.load_der_x509_csr(to_der(csr))


def corrupt_signature(csr: bytes) -> bytes:
    """The same CSR (DER or PEM, returned in the same form) with one bit of its signature flipped.

    It still parses, but its proof of possession no longer verifies. The last octet of the DER is the
    last octet of the signature BIT STRING (the end of ``s`` for ECDSA), so flipping its low bit keeps
    every length and the DER valid.
    """
    was_pem = csr.lstrip().startswith(b"-----BEGIN")
    der = bytearray(to_der(csr))
    der[-1] ^= 0x01
    bad = bytes(der)
    parsed = x509.load_der_x509_csr(bad)
    if parsed.is_signature_valid:  # pragma: no cover - a flipped bit always breaks the signature
        raise AssertionError("corrupting the signature left it valid")
    return parsed.public_bytes(serialization.Encoding.PEM) if was_pem else bad
