"""The shape of a declarative profile and of a request that has passed its checks."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type

from mpki.asn1.der import tlv
from mpki.domain import Eui64, KeyUsageChoice, RemotePartyRole

SubjectPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class ProfileKind(enum.StrEnum):
    """What a profile makes: a self-signed root, a subordinate CA, or an end-entity certificate."""

    ROOT = "root"
    ISSUING = "issuing"
    END_ENTITY = "end-entity"


class SubjectRule(enum.StrEnum):
    """How the certificate subject (and SAN) is derived from the request."""

    SMKI_CA = "smki-ca"  # OU=role (PrintableString), CN=name (PrintableString)
    SMKI_ORG = "smki-org"  # [CN], OU=role code (UTF8String), x500UniqueIdentifier=EUI-64
    SMKI_DEVICE = "smki-device"  # empty subject, SAN hardwareModuleName with the EUI-64
    GENERIC_CA = "generic-ca"  # CN (and O) as given
    TLS_SERVER = "tls-server"  # CN optional, SAN dNSName/iPAddress required
    TLS_CLIENT = "tls-client"  # CN required, SAN optional


class ValidityRule(enum.StrEnum):
    """How notBefore/notAfter are chosen."""

    NO_EXPIRY = "no-expiry"  # notAfter 99991231235959Z (RFC 5280 4.1.2.5)
    YEARS_LESS_ONE_SECOND = "years-less-one-second"
    DAYS = "days"


class KeyIdMethod(enum.StrEnum):
    METHOD_1 = "method-1"
    METHOD_2 = "method-2"


class KeyRule(enum.StrEnum):
    """Which subject keys a profile accepts."""

    P256_ONLY = "p256-only"
    WEBPKI = "webpki"  # P-256, P-384, RSA >= 2048


@dataclass(frozen=True, slots=True)
class ExtensionSpec:
    """One extension in the order it is written, with its criticality."""

    name: str
    critical: bool


@dataclass(frozen=True, slots=True)
class Profile:
    """A certificate profile, as data: the CA renders it, the RA and CA check requests against it."""

    name: str
    description: str
    kind: ProfileKind
    subject_rule: SubjectRule
    key_rule: KeyRule
    validity_rule: ValidityRule
    extensions: tuple[ExtensionSpec, ...]
    key_id_method: KeyIdMethod
    # SMKI end-entity: exactly one of these, as the CSR requests it.
    single_key_usage: bool = False
    # Where policy OIDs come from in SmkiSettings ("org", "device", "ca"), or none.
    policy_source: str | None = None
    path_length: int | None = None
    # Generic profiles never outlive their issuer; SMKI devices deliberately do (no expiry).
    clamp_to_issuer: bool = False
    extended_key_usage: tuple[str, ...] = ()
    # certificateHold is a reversible suspension; SMKI certificates are revoked for good or not at all.
    allows_hold: bool = False

    @property
    def is_ca(self) -> bool:
        return self.kind is not ProfileKind.END_ENTITY

    @property
    def is_smki(self) -> bool:
        return self.name.startswith("smki-")


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A request that passed its profile's checks: everything the CA needs to build the certificate."""

    profile: str
    public_key: SubjectPublicKey
    subject: x509.Name
    key_usage: KeyUsageChoice | None = None
    eui64: Eui64 | None = None
    role: RemotePartyRole | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    @property
    def subject_text(self) -> str:
        return rfc4514_string(self.subject)


def rfc4514_string(name: x509.Name) -> str:
    """The RFC 4514 string of a name; like `openssl -nameopt RFC2253`, except unknown types are named by OID.

    ``cryptography`` writes a BIT STRING value (the SMKI x500UniqueIdentifier) as ``#`` and its contents
    octets; RFC 4514 2.4 asks for the hex of the value's BER encoding, tag and length included:
    ``2.5.4.45=#03090090b3d51f30010000,OU=02,CN=GITTESTSUPPLIER``.
    """
    return ",".join("+".join(_attribute_string(a) for a in rdn) for rdn in reversed(name.rdns))


def _attribute_string(attribute: x509.NameAttribute[str | bytes]) -> str:
    if attribute._type is _ASN1Type.BitString and isinstance(attribute.value, bytes):
        return f"{attribute.oid.dotted_string}=#{tlv(0x03, attribute.value).hex()}"
    return attribute.rfc4514_string()


@dataclass(frozen=True, slots=True)
class ProfileParameters:
    """The per-environment values profiles need; the CA fills them from config (profiles stay pure)."""

    org_policy_oids: tuple[str, ...]
    device_policy_oids: tuple[str, ...]
    ca_policy_oids: tuple[str, ...]
    hw_type_oid: str
    org_validity_years: int
    ca_validity_years: int
    root_validity_years: int
    org_roles: tuple[int, ...]
    tls_leaf_validity_days: int
    tls_ca_validity_years: int
    # Base of the CRL, OCSP and CA-certificate URLs written into certificates whose profile asks for them.
    public_url: str = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Validity:
    not_before: dt.datetime
    not_after: dt.datetime
