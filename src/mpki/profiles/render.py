"""Rendering a checked request into validity, subject and extensions, in the profile's exact order."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, HardwareModuleName, encode_hardware_module_name
from mpki.domain import InvalidRequest, KeyUsageChoice
from mpki.profiles.key_identifiers import PublicKey, method1_key_identifier, method2_key_identifier
from mpki.profiles.model import (
    CheckedRequest,
    KeyIdMethod,
    Profile,
    ProfileKind,
    ProfileParameters,
    SubjectRule,
    Validity,
    ValidityRule,
)

NO_EXPIRY = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_EKU = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}


def key_identifier(profile: Profile, public_key: PublicKey) -> bytes:
    if profile.key_id_method is KeyIdMethod.METHOD_2:
        return method2_key_identifier(public_key)
    return method1_key_identifier(public_key)


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a non-leap year
        return moment.replace(year=moment.year + years, day=28)


def validity(
    profile: Profile, settings: ProfileParameters, now: dt.datetime, issuer_not_after: dt.datetime | None
) -> Validity:
    """notBefore is now to the second; notAfter follows the profile's rule and, where asked, the issuer's."""
    start = now.astimezone(dt.UTC).replace(microsecond=0)
    if profile.validity_rule is ValidityRule.NO_EXPIRY:
        end = NO_EXPIRY
    elif profile.validity_rule is ValidityRule.DAYS:
        end = start + dt.timedelta(days=settings.tls_leaf_validity_days) - dt.timedelta(seconds=1)
    else:
        end = _add_years(start, _years(profile, settings)) - dt.timedelta(seconds=1)
    if profile.clamp_to_issuer and issuer_not_after is not None and end > issuer_not_after:
        end = issuer_not_after
    if end <= start:
        raise InvalidRequest(f"the issuer expires before a {profile.name} certificate could be valid")
    return Validity(start, end)


def _years(profile: Profile, settings: ProfileParameters) -> int:
    smki = settings
    if profile.name == "smki-org":
        return smki.org_validity_years
    if profile.name == "smki-root":
        return smki.root_validity_years
    if profile.name == "smki-issuing":
        return smki.ca_validity_years
    return settings.tls_ca_validity_years


_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")
_UB_COMMON_NAME = 64  # RFC 5280 Appendix A


def ca_subject(profile: Profile, common_name: str, role_code: str | None = None) -> x509.Name:
    """Subject of a CA certificate: SMKI CAs carry OU=role (00 root, 07 issuing) and CN, as PrintableString.

    A name PrintableString cannot carry (e.g. ``_``, ``&`` or non-ASCII letters) is refused rather than
    written as an invalid PrintableString.
    """
    if not 0 < len(common_name) <= _UB_COMMON_NAME:
        raise InvalidRequest(f"a CA common name must be 1 to {_UB_COMMON_NAME} characters")
    if profile.subject_rule is SubjectRule.SMKI_CA:
        code = role_code or ("00" if profile.kind is ProfileKind.ROOT else "07")
        if not re.fullmatch(r"[0-9A-F]{2}", code):
            raise InvalidRequest(f"role code {code!r} is not two upper-case hex digits")
        if not _PRINTABLE.fullmatch(common_name):
            raise InvalidRequest(
                f"an SMKI CA common name is a PrintableString (letters, digits, space and '()+,-./:=?), "
                f"not {common_name!r}"
            )
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, code, _ASN1Type.PrintableString),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name, _ASN1Type.PrintableString),
            ]
        )
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(profile: Profile, request: CheckedRequest) -> x509.KeyUsage:
    if profile.is_ca:
        return _ku(key_cert_sign=True, crl_sign=True, digital_signature=False)
    if profile.single_key_usage:
        return _ku(
            digital_signature=request.key_usage is KeyUsageChoice.DIGITAL_SIGNATURE,
            key_agreement=request.key_usage is KeyUsageChoice.KEY_AGREEMENT,
        )
    return _ku(digital_signature=True, key_encipherment=isinstance(request.public_key, rsa.RSAPublicKey))


def _ku(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _policies(profile: Profile, settings: ProfileParameters) -> x509.CertificatePolicies:
    smki = settings
    oids = {"org": smki.org_policy_oids, "device": smki.device_policy_oids, "ca": smki.ca_policy_oids}
    chosen = oids.get(profile.policy_source or "", ())
    if not chosen:
        raise InvalidRequest(f"profile {profile.name} needs certificate policy OIDs; none are configured")
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in chosen])


def _subject_alt_name(
    profile: Profile, request: CheckedRequest, settings: ProfileParameters
) -> x509.SubjectAlternativeName:
    if profile.subject_rule is SubjectRule.SMKI_DEVICE:
        if request.eui64 is None:
            raise InvalidRequest("a device certificate needs an EUI-64")
        value = encode_hardware_module_name(HardwareModuleName(settings.hw_type_oid, request.eui64.octets))
        return x509.SubjectAlternativeName([x509.OtherName(x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID), value)])
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in request.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in request.ip_addresses]
    names += [x509.RFC822Name(e) for e in request.emails]
    return x509.SubjectAlternativeName(names)


def status_urls(public_url: str, ca_name: str) -> tuple[str, str, str]:
    """(CRL, OCSP, CA certificate) URLs of a CA, as the web room serves them."""
    base = public_url.rstrip("/")
    return f"{base}/crl/{ca_name}.crl", f"{base}/ocsp", f"{base}/repository/cas/{ca_name}.crt"


def delta_crl_url(public_url: str, ca_name: str) -> str:
    """Where the CA's delta CRL is (the full CRL's Freshest CRL pointer names it)."""
    crl, _, _ = status_urls(public_url, ca_name)
    return crl.removesuffix(".crl") + "-delta.crl"


def _crl_distribution_points(settings: ProfileParameters, issuer_ca: str | None) -> x509.CRLDistributionPoints | None:
    if issuer_ca is None:
        return None
    crl, _, _ = status_urls(settings.public_url, issuer_ca)
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)])


def _authority_information_access(
    settings: ProfileParameters, issuer_ca: str | None
) -> x509.AuthorityInformationAccess | None:
    if issuer_ca is None:
        return None
    _, responder, ca_issuers = status_urls(settings.public_url, issuer_ca)
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(responder)),
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers)
            ),
        ]
    )


def extensions(
    profile: Profile,
    request: CheckedRequest,
    settings: ProfileParameters,
    issuer_key_id: bytes | None,
    issuer_ca: str | None = None,
) -> list[tuple[x509.ExtensionType, bool]]:
    """The extensions in the order and with the criticality the profile lists; empty SANs are left out.
    `issuer_ca` (the issuing CA's name) builds the CRL, OCSP and caIssuers URLs under `public_url`."""
    builders: dict[str, Callable[[], x509.ExtensionType | None]] = {
        "keyUsage": lambda: _key_usage(profile, request),
        "basicConstraints": lambda: x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length),
        "certificatePolicies": lambda: _policies(profile, settings),
        "subjectKeyIdentifier": lambda: x509.SubjectKeyIdentifier(key_identifier(profile, request.public_key)),
        "authorityKeyIdentifier": lambda: (
            None
            if issuer_key_id is None
            else x509.AuthorityKeyIdentifier(
                key_identifier=issuer_key_id, authority_cert_issuer=None, authority_cert_serial_number=None
            )
        ),
        "subjectAltName": lambda: (
            None
            if not (request.dns_names or request.ip_addresses or request.emails or request.eui64)
            else _subject_alt_name(profile, request, settings)
        ),
        "cRLDistributionPoints": lambda: _crl_distribution_points(settings, issuer_ca),
        "authorityInfoAccess": lambda: _authority_information_access(settings, issuer_ca),
        "extendedKeyUsage": lambda: (
            x509.ExtendedKeyUsage([_EKU[e] for e in profile.extended_key_usage]) if profile.extended_key_usage else None
        ),
    }
    rendered: list[tuple[x509.ExtensionType, bool]] = []
    for spec in profile.extensions:
        value = builders[spec.name]()
        if value is None:
            continue
        critical = spec.critical
        if spec.name == "subjectAltName" and len(request.subject) == 0:
            critical = True  # RFC 5280 4.2.1.6: an empty subject makes the SAN critical
        rendered.append((value, critical))
    return rendered
