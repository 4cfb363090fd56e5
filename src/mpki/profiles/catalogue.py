"""The built-in profiles. Extension order and criticality follow the DCC's real certificates (SMKI.md)."""

from __future__ import annotations

from mpki.domain import NotFound
from mpki.profiles.model import (
    ExtensionSpec,
    KeyIdMethod,
    KeyRule,
    Profile,
    ProfileKind,
    SubjectRule,
    ValidityRule,
)

KU = ExtensionSpec("keyUsage", critical=True)
BC = ExtensionSpec("basicConstraints", critical=True)
CP = ExtensionSpec("certificatePolicies", critical=True)
SKI = ExtensionSpec("subjectKeyIdentifier", critical=False)
AKI = ExtensionSpec("authorityKeyIdentifier", critical=False)
HW_SAN = ExtensionSpec("subjectAltName", critical=True)
SAN = ExtensionSpec("subjectAltName", critical=False)
EKU = ExtensionSpec("extendedKeyUsage", critical=False)
# Where relying parties find status: the issuer's CRL, its OCSP responder and its certificate.
CDP = ExtensionSpec("cRLDistributionPoints", critical=False)
AIA = ExtensionSpec("authorityInfoAccess", critical=False)

SMKI_ROOT = Profile(
    name="smki-root",
    description="SMKI root CA: self-signed, OU=00",
    kind=ProfileKind.ROOT,
    subject_rule=SubjectRule.SMKI_CA,
    key_rule=KeyRule.P256_ONLY,
    validity_rule=ValidityRule.YEARS_LESS_ONE_SECOND,
    extensions=(KU, BC, CP, SKI),
    key_id_method=KeyIdMethod.METHOD_2,
    policy_source="ca",
)

SMKI_ISSUING = Profile(
    name="smki-issuing",
    description="SMKI issuing CA (Organisation or Device), OU=07, CA:TRUE pathlen 0",
    kind=ProfileKind.ISSUING,
    subject_rule=SubjectRule.SMKI_CA,
    key_rule=KeyRule.P256_ONLY,
    validity_rule=ValidityRule.YEARS_LESS_ONE_SECOND,
    extensions=(KU, BC, CP, SKI, AKI),
    key_id_method=KeyIdMethod.METHOD_2,
    policy_source="ca",
    path_length=0,
)

SMKI_ORG = Profile(
    name="smki-org",
    description="SMKI organisation certificate: role code in OU, EUI-64 in x500UniqueIdentifier",
    kind=ProfileKind.END_ENTITY,
    subject_rule=SubjectRule.SMKI_ORG,
    key_rule=KeyRule.P256_ONLY,
    validity_rule=ValidityRule.YEARS_LESS_ONE_SECOND,
    extensions=(KU, SKI, CP, AKI),
    key_id_method=KeyIdMethod.METHOD_2,
    single_key_usage=True,
    policy_source="org",
)

SMKI_DEVICE = Profile(
    name="smki-device",
    description="SMKI device certificate: empty subject, hardwareModuleName EUI-64, no expiry",
    kind=ProfileKind.END_ENTITY,
    subject_rule=SubjectRule.SMKI_DEVICE,
    key_rule=KeyRule.P256_ONLY,
    validity_rule=ValidityRule.NO_EXPIRY,
    extensions=(KU, SKI, HW_SAN, CP, AKI),
    key_id_method=KeyIdMethod.METHOD_2,
    single_key_usage=True,
    policy_source="device",
)

TLS_ROOT = Profile(
    name="tls-root",
    description="Generic root CA for TLS certificates",
    kind=ProfileKind.ROOT,
    subject_rule=SubjectRule.GENERIC_CA,
    key_rule=KeyRule.WEBPKI,
    validity_rule=ValidityRule.YEARS_LESS_ONE_SECOND,
    extensions=(BC, KU, SKI),
    key_id_method=KeyIdMethod.METHOD_1,
)

TLS_ISSUING = Profile(
    name="tls-issuing",
    description="Generic issuing CA for TLS server and client certificates, pathlen 0",
    kind=ProfileKind.ISSUING,
    subject_rule=SubjectRule.GENERIC_CA,
    key_rule=KeyRule.WEBPKI,
    validity_rule=ValidityRule.YEARS_LESS_ONE_SECOND,
    extensions=(BC, KU, SKI, AKI, CDP, AIA),
    key_id_method=KeyIdMethod.METHOD_1,
    path_length=0,
    clamp_to_issuer=True,
)

TLS_SERVER = Profile(
    name="tls-server",
    description="TLS server certificate: DNS names or IP addresses in the SAN, serverAuth",
    kind=ProfileKind.END_ENTITY,
    subject_rule=SubjectRule.TLS_SERVER,
    key_rule=KeyRule.WEBPKI,
    validity_rule=ValidityRule.DAYS,
    extensions=(KU, EKU, SAN, SKI, AKI, CDP, AIA),
    key_id_method=KeyIdMethod.METHOD_1,
    clamp_to_issuer=True,
    extended_key_usage=("serverAuth",),
    allows_hold=True,
)

TLS_CLIENT = Profile(
    name="tls-client",
    description="TLS client certificate: a named subject, clientAuth",
    kind=ProfileKind.END_ENTITY,
    subject_rule=SubjectRule.TLS_CLIENT,
    key_rule=KeyRule.WEBPKI,
    validity_rule=ValidityRule.DAYS,
    extensions=(KU, EKU, SAN, SKI, AKI, CDP, AIA),
    key_id_method=KeyIdMethod.METHOD_1,
    clamp_to_issuer=True,
    extended_key_usage=("clientAuth",),
    allows_hold=True,
)

PROFILES: dict[str, Profile] = {
    p.name: p for p in (SMKI_ROOT, SMKI_ISSUING, SMKI_ORG, SMKI_DEVICE, TLS_ROOT, TLS_ISSUING, TLS_SERVER, TLS_CLIENT)
}


def get_profile(name: str) -> Profile:
    """Look a profile up by name; an unknown name is a clear error listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise NotFound(f"unknown profile {name!r}; known profiles: {known}") from None
