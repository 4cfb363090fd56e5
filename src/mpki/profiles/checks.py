"""The check of a CSR against a profile: everything decided before anything is written or signed."""

from __future__ import annotations

import ipaddress
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, decode_hardware_module_name
from mpki.domain import Eui64, InvalidRequest, KeyUsageChoice, RemotePartyRole
from mpki.profiles.model import CheckedRequest, KeyRule, Profile, ProfileParameters, SubjectPublicKey, SubjectRule

_HW_OID = x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID)
_WEBPKI_CURVES = (ec.SECP256R1, ec.SECP384R1)


class _Described(Protocol):
    """What the checks read: a CSR, or a certificate being reissued under a new CA."""

    @property
    def subject(self) -> x509.Name: ...

    @property
    def extensions(self) -> x509.Extensions: ...


def check_public_key(profile: Profile, key: CertificatePublicKeyTypes) -> SubjectPublicKey:
    """Refuse keys the profile does not allow, naming what it does allow."""
    if profile.key_rule is KeyRule.P256_ONLY:
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
            raise InvalidRequest(f"profile {profile.name} needs a NIST P-256 key, not {describe_key(key)}")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _WEBPKI_CURVES):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    raise InvalidRequest(f"profile {profile.name} needs P-256, P-384 or RSA >= 2048, not {describe_key(key)}")


def describe_key(key: CertificatePublicKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA {key.key_size} key"
    return f"a {type(key).__name__.removesuffix('PublicKey').lstrip('_')} key"


def requested_key_usage(csr: _Described, override: KeyUsageChoice | None) -> KeyUsageChoice:
    """SMKI: exactly one of digitalSignature or keyAgreement, as the CSR asks (or the order, if it asks none)."""
    try:
        ku = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        if override is None:
            raise InvalidRequest(
                "the CSR requests no keyUsage; SMKI needs exactly one of digitalSignature or keyAgreement"
            ) from None
        return override
    asked = []
    if ku.digital_signature:
        asked.append(KeyUsageChoice.DIGITAL_SIGNATURE)
    if ku.key_agreement:
        asked.append(KeyUsageChoice.KEY_AGREEMENT)
    others = ku.content_commitment or ku.key_encipherment or ku.data_encipherment or ku.key_cert_sign or ku.crl_sign
    # encipherOnly/decipherOnly are only readable (and only meaningful) together with keyAgreement.
    others = others or (ku.key_agreement and (ku.encipher_only or ku.decipher_only))
    if len(asked) != 1 or others:
        raise InvalidRequest("the CSR must request exactly one key usage: digitalSignature or keyAgreement")
    if override is not None and override is not asked[0]:
        raise InvalidRequest(f"the CSR requests {asked[0].value} but the order asks for {override.value}")
    return asked[0]


def _requested_san(csr: _Described) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _device_eui64(csr: _Described) -> Eui64:
    if len(csr.subject) != 0:
        raise InvalidRequest("a device CSR must have an empty subject; the device is named in the SAN")
    san = _requested_san(csr)
    names = [] if san is None else [n for n in san if isinstance(n, x509.OtherName) and n.type_id == _HW_OID]
    if not names:
        raise InvalidRequest("the device CSR has no hardwareModuleName SAN carrying the EUI-64")
    if len(names) > 1 or san is None or len(list(san)) != 1:
        raise InvalidRequest("the device CSR must name exactly one device: one hardwareModuleName and nothing else")
    hw = decode_hardware_module_name(names[0].value)
    if len(hw.hw_serial_num) != 8:
        raise InvalidRequest(f"the device EUI-64 must be 8 octets, the CSR has {len(hw.hw_serial_num)}")
    return Eui64(hw.hw_serial_num)


def _single(csr: _Described, oid: x509.ObjectIdentifier, label: str) -> x509.NameAttribute[str | bytes] | None:
    found = csr.subject.get_attributes_for_oid(oid)
    if len(found) > 1:
        raise InvalidRequest(f"the CSR subject has {len(found)} {label} attributes; at most one is allowed")
    return found[0] if found else None


def _org_subject(csr: _Described, smki: ProfileParameters) -> tuple[x509.Name, RemotePartyRole, Eui64]:
    allowed = {NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.X500_UNIQUE_IDENTIFIER}
    extra = [a.oid.dotted_string for a in csr.subject if a.oid not in allowed]
    if extra:
        raise InvalidRequest(f"an organisation CSR subject may hold only CN, OU and x500UniqueIdentifier, not {extra}")
    ou = _single(csr, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    if ou is None:
        raise InvalidRequest("the organisation CSR has no OU carrying the remote-party role code")
    role = RemotePartyRole.from_code(str(ou.value))
    if role.value not in smki.org_roles:
        raise InvalidRequest(
            f"role code {role.code} ({role.name.lower()}) is not allowed in an organisation certificate"
        )
    uid = _single(csr, NameOID.X500_UNIQUE_IDENTIFIER, "x500UniqueIdentifier")
    if uid is None:
        raise InvalidRequest("the organisation CSR has no x500UniqueIdentifier carrying the EUI-64")
    raw = uid.value if isinstance(uid.value, bytes) else b""
    if len(raw) != 9 or raw[0] != 0:
        raise InvalidRequest("the x500UniqueIdentifier must be a 64-bit BIT STRING holding the EUI-64")
    eui64 = Eui64(raw[1:])
    cn = _single(csr, NameOID.COMMON_NAME, "CN")
    attributes: list[x509.NameAttribute[str | bytes]] = []
    if cn is not None:
        name = str(cn.value)
        if not 0 < len(name) <= 64:
            raise InvalidRequest("the CN must be 1 to 64 characters")
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, name, _ASN1Type.UTF8String))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.code, _ASN1Type.UTF8String))
    attributes.append(x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui64.octets, _ASN1Type.BitString))
    return x509.Name(attributes), role, eui64


def _tls_names(
    csr: _Described, profile: Profile
) -> tuple[x509.Name, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    san = _requested_san(csr)
    dns = tuple(san.get_values_for_type(x509.DNSName)) if san else ()
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) if san else ()
    emails = tuple(san.get_values_for_type(x509.RFC822Name)) if san else ()
    cn_attr = _single(csr, NameOID.COMMON_NAME, "CN")
    cn = str(cn_attr.value) if cn_attr is not None else None
    for name in dns:
        _check_dns_name(name)
    if profile.subject_rule is SubjectRule.TLS_SERVER:
        if cn and not dns and not ips:
            _check_dns_name(cn)
            dns = (cn,)
        if not dns and not ips:
            raise InvalidRequest("a TLS server CSR must name at least one DNS name or IP address in its SAN")
        if cn and cn not in dns and cn not in ips:
            raise InvalidRequest(f"the CN {cn!r} must also appear in the SAN")
    elif cn is None:
        raise InvalidRequest("a TLS client CSR must have a CN")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    return subject, dns, ips, emails


def _check_dns_name(name: str) -> None:
    labels = name.removeprefix("*.").split(".")
    valid = all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )
    if not valid or len(name) > 253:
        raise InvalidRequest(f"{name!r} is not a valid DNS name")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return
    raise InvalidRequest(f"{name!r} is an IP address; put it in the SAN as an iPAddress")


def check_csr(
    profile: Profile,
    csr: x509.CertificateSigningRequest,
    smki: ProfileParameters,
    key_usage: KeyUsageChoice | None = None,
) -> CheckedRequest:
    """Verify proof of possession and the profile's rules; return what the certificate will say."""
    if profile.is_ca:
        raise InvalidRequest(
            f"profile {profile.name} makes CA certificates, which are made in a ceremony, not from a CSR"
        )
    public_key = check_public_key(profile, csr.public_key())
    if not csr.is_signature_valid:
        raise InvalidRequest("the CSR signature does not verify (no proof of possession)")
    return _checked(profile, csr, public_key, smki, key_usage)


def check_reissue(profile: Profile, certificate: x509.Certificate, smki: ProfileParameters) -> CheckedRequest:
    """The request behind a certificate being reissued under a new CA (issuing-CA recovery): the same key
    and identity, re-checked against today's profile. Possession was proven when it was first issued."""
    if profile.is_ca:
        raise InvalidRequest(f"profile {profile.name} makes CA certificates; a CA is re-certified, not reissued")
    public_key = check_public_key(profile, certificate.public_key())
    return _checked(profile, certificate, public_key, smki, None)


def _checked(
    profile: Profile,
    csr: _Described,
    public_key: SubjectPublicKey,
    smki: ProfileParameters,
    key_usage: KeyUsageChoice | None,
) -> CheckedRequest:
    rule = profile.subject_rule
    if rule is SubjectRule.SMKI_DEVICE:
        return CheckedRequest(
            profile=profile.name,
            public_key=public_key,
            subject=x509.Name([]),
            key_usage=requested_key_usage(csr, key_usage),
            eui64=_device_eui64(csr),
        )
    if rule is SubjectRule.SMKI_ORG:
        usage = requested_key_usage(csr, key_usage)
        subject, role, eui64 = _org_subject(csr, smki)
        return CheckedRequest(
            profile=profile.name,
            public_key=public_key,
            subject=subject,
            key_usage=usage,
            eui64=eui64,
            role=role,
        )
    subject, dns, ips, emails = _tls_names(csr, profile)
    return CheckedRequest(
        profile=profile.name,
        public_key=public_key,
        subject=subject,
        dns_names=dns,
        ip_addresses=ips,
        emails=emails,
    )
