"""Conformance of every profile's certificates: pkilint, `openssl verify`, and the DCC's real certificates.

The SMKI reference certificates in the vectors directory come from the DCC's test PKI. Certificates the
dev hierarchy issues for the same inputs must have the same structure: extension set, order and
criticality, keyUsage bytes, method-2 key identifiers, name encodings, SAN, validity encoding and serial
form. `cryptography`'s path validator refuses SMKI chains (DEPENDENCIES.md gotcha 7), so `openssl verify`
is the independent chain check. It accepts SMKI's critical certificatePolicies as it is: no
`-ignore_critical`; SMKI chains are checked with `-x509_strict -explicit_policy -policy <configured OID>`,
TLS chains with `-x509_strict -purpose sslserver|sslclient`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc4108, rfc5280

from mpki.ca import CertificationAuthority, IssuanceOrder, IssuedView
from mpki.ca.parameters import profile_parameters
from mpki.config import Settings
from mpki.domain import InvalidRequest, KeyUsageChoice
from mpki.profiles import (
    ca_subject,
    check_csr,
    get_profile,
    load_csr,
    method1_key_identifier,
    method2_key_identifier,
)
from tests.csr_factory import (
    corrupt_signature,
    device_csr,
    org_csr,
    random_eui64,
    rsa_key,
    tls_client_csr,
    tls_server_csr,
)
from tests.support.pkilint_check import lint_certificate

OPENSSL = "/usr/bin/openssl"

ORG_EUI64 = bytes.fromhex("90B3D51F30010000")  # the reference organisation
ORG_CN = "GITTESTSUPPLIER"  # the reference organisation's DS certificate has this CN, its KA one none
DEVICE_EUI64 = bytes.fromhex("00DB1234567890A4")  # the reference device
REFERENCE_CSR_EUI64 = "887384AA8307B6C0"  # hwSerialNum in device_csr_ds.der

OID_KU = "2.5.29.15"
OID_SKI = "2.5.29.14"
OID_SAN = "2.5.29.17"
OID_BC = "2.5.29.19"
OID_CP = "2.5.29.32"
OID_AKI = "2.5.29.35"
OID_EKU = "2.5.29.37"
OID_CN = "2.5.4.3"
OID_OU = "2.5.4.11"
OID_UID = "2.5.4.45"
OID_HW_MODULE_NAME = "1.3.6.1.5.5.7.8.4"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"

TAG_BIT_STRING = 0x03
TAG_UTF8 = 0x0C
TAG_PRINTABLE = 0x13

KU_DIGITAL_SIGNATURE = bytes.fromhex("03020780")
KU_KEY_AGREEMENT = bytes.fromhex("03020308")
KU_CA = bytes.fromhex("03020106")  # keyCertSign | cRLSign
BC_CA_PATHLEN_0 = bytes.fromhex("30060101ff020100")

# ----- small readers over the DER ------------------------------------------------------------------


@dataclass(frozen=True)
class Ext:
    oid: str
    critical: bool
    value: bytes  # the extnValue OCTET STRING's contents


@dataclass(frozen=True)
class Cert:
    """A certificate decoded with pyasn1, so that encodings (string and time types) stay visible."""

    der: bytes
    asn1: rfc5280.Certificate

    @classmethod
    def parse(cls, der: bytes) -> Cert:
        value, rest = decoder.decode(der, asn1Spec=rfc5280.Certificate())
        assert not rest, "trailing bytes after the certificate"
        return cls(der, value)

    @property
    def tbs(self) -> rfc5280.TBSCertificate:
        return self.asn1["tbsCertificate"]

    @property
    def extensions(self) -> list[Ext]:
        return [Ext(str(e["extnID"]), bool(e["critical"]), bytes(e["extnValue"])) for e in self.tbs["extensions"]]

    def ext(self, oid: str) -> Ext:
        [found] = [e for e in self.extensions if e.oid == oid]
        return found

    @property
    def layout(self) -> list[tuple[str, bool]]:
        return [(e.oid, e.critical) for e in self.extensions]

    def name_der(self, field: str) -> bytes:
        return bytes(encoder.encode(self.tbs[field]))

    def name_layout(self, field: str) -> list[list[tuple[str, int]]]:
        """Each RDN as [(attribute type, tag of the value's ASN.1 string type)]."""
        return [[(str(atv["type"]), bytes(atv["value"])[0]) for atv in rdn] for rdn in self.tbs[field]["rdnSequence"]]

    def attribute(self, field: str, oid: str) -> bytes:
        """The raw DER of the single value of attribute `oid` in the subject or issuer."""
        [value] = [
            bytes(atv["value"]) for rdn in self.tbs[field]["rdnSequence"] for atv in rdn if str(atv["type"]) == oid
        ]
        return value

    def time(self, which: str) -> tuple[str, str]:
        """('utcTime' | 'generalTime', the encoded string) for notBefore or notAfter."""
        choice = self.tbs["validity"][which]
        kind = choice.getName()
        return kind, str(choice[kind])

    @property
    def serial_octets(self) -> bytes:
        encoded = bytes(encoder.encode(self.tbs["serialNumber"]))
        assert encoded[0] == 0x02 and encoded[1] < 0x80, "serial is not a short-form INTEGER"
        return encoded[2:]

    @property
    def crypto(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def ski(self) -> bytes:
        value, _ = decoder.decode(self.ext(OID_SKI).value, asn1Spec=rfc5280.SubjectKeyIdentifier())
        return bytes(value)

    def aki(self) -> rfc5280.AuthorityKeyIdentifier:
        value, rest = decoder.decode(self.ext(OID_AKI).value, asn1Spec=rfc5280.AuthorityKeyIdentifier())
        assert not rest
        return value

    def policies(self) -> rfc5280.CertificatePolicies:
        value, rest = decoder.decode(self.ext(OID_CP).value, asn1Spec=rfc5280.CertificatePolicies())
        assert not rest
        return value


def _der(node: object) -> bytes:
    return bytes(encoder.encode(node))


def _hardware_module_names(cert: Cert) -> list[tuple[str, bytes]]:
    """(hwType, hwSerialNum) of every otherName in the SAN; fails on any other kind of name."""
    san, rest = decoder.decode(cert.ext(OID_SAN).value, asn1Spec=rfc5280.SubjectAltName())
    assert not rest
    found = []
    for general_name in san:
        assert general_name.getName() == "otherName", f"unexpected SAN entry {general_name.getName()}"
        other = general_name["otherName"]
        assert str(other["type-id"]) == OID_HW_MODULE_NAME
        hw, rest = decoder.decode(bytes(other["value"]), asn1Spec=rfc4108.HardwareModuleName())
        assert not rest
        found.append((str(hw["hwType"]), bytes(hw["hwSerialNum"])))
    return found


def _parse_time(kind: str, text: str) -> dt.datetime:
    fmt = "%y%m%d%H%M%SZ" if kind == "utcTime" else "%Y%m%d%H%M%SZ"
    return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _assert_years_less_one_second(cert: Cert, years: int) -> None:
    not_before = _parse_time(*cert.time("notBefore"))
    not_after = _parse_time(*cert.time("notAfter"))
    assert not_after == _add_years(not_before, years) - dt.timedelta(seconds=1), (not_before, not_after)


def _assert_rfc5280_time_encoding(cert: Cert) -> None:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""
    for which in ("notBefore", "notAfter"):
        kind, text = cert.time(which)
        year = _parse_time(kind, text).year
        assert kind == ("utcTime" if year < 2050 else "generalTime"), (which, kind, text)


def _assert_common_smki(cert: Cert) -> None:
    """What every SMKI certificate shares with the DCC's: v3, ecdsa-with-SHA256, P-256, 16-octet serial."""
    assert int(cert.tbs["version"]) == 2
    assert str(cert.asn1["signatureAlgorithm"]["algorithm"]) == OID_ECDSA_SHA256
    assert not cert.asn1["signatureAlgorithm"]["parameters"].isValue, "ecdsa-with-SHA256 has no parameters"
    assert _der(cert.tbs["signature"]) == _der(cert.asn1["signatureAlgorithm"])
    serial = cert.serial_octets
    assert len(serial) == 16 and 0 < serial[0] < 0x80, serial.hex()
    spki = cert.tbs["subjectPublicKeyInfo"]
    assert str(spki["algorithm"]["algorithm"]) == "1.2.840.10045.2.1"
    assert bytes(spki["algorithm"]["parameters"]) == _der(univ.ObjectIdentifier("1.2.840.10045.3.1.7"))  # P-256
    point = spki["subjectPublicKey"].asOctets()
    assert len(point) == 65 and point[0] == 0x04, "P-256 key in uncompressed form"
    assert not cert.tbs["issuerUniqueID"].isValue and not cert.tbs["subjectUniqueID"].isValue
    # Method 2 key identifier, recomputed from the key.
    assert len(cert.ski) == 8 and cert.ski[0] >> 4 == 0b0100, cert.ski.hex()
    key = cert.crypto.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.ski == method2_key_identifier(key), "SKI is not method 2 over this key"


def _assert_aki_key_id_only(cert: Cert, issuer: Cert) -> None:
    aki = cert.aki()
    assert aki["keyIdentifier"].isValue
    assert not aki["authorityCertIssuer"].isValue, "AKI must not carry authorityCertIssuer"
    assert not aki["authorityCertSerialNumber"].isValue, "AKI must not carry authorityCertSerialNumber"
    assert bytes(aki["keyIdentifier"]) == issuer.ski


def _assert_policy_shape(cert: Cert, expected_oids: Sequence[str]) -> None:
    policies = cert.policies()
    assert [str(p["policyIdentifier"]) for p in policies] == list(expected_oids)
    assert all(not p["policyQualifiers"].isValue for p in policies), "no policy qualifiers"


# ----- issuing --------------------------------------------------------------------------------------


def _issue(authority: CertificationAuthority, profile: str, csr: bytes) -> IssuedView:
    return authority.issue(IssuanceOrder(profile, csr, approved_by="test", key_usage=None))


def _ca(authority: CertificationAuthority, name: str) -> Cert:
    return Cert.parse(authority.get_ca(name).certificate_der)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def openssl_verify(
    tmp_path: Path, der: bytes, root: bytes, intermediates: Sequence[bytes] = (), flags: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`openssl verify` of `der` with CAfile=root and -untrusted=intermediates; returns the finished process."""
    folder = tmp_path / f"verify-{len(list(tmp_path.glob('verify-*')))}"
    folder.mkdir()
    (folder / "root.pem").write_bytes(_pem(root))
    (folder / "leaf.pem").write_bytes(_pem(der))
    command = [OPENSSL, "verify", *flags, "-CAfile", str(folder / "root.pem")]
    if intermediates:
        (folder / "untrusted.pem").write_bytes(b"".join(_pem(i) for i in intermediates))
        command += ["-untrusted", str(folder / "untrusted.pem")]
    command.append(str(folder / "leaf.pem"))
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _assert_verifies(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr


def _assert_refused(done: subprocess.CompletedProcess[str], error: str) -> None:
    assert done.returncode != 0, f"openssl verify accepted it: {done.stdout}"
    assert error in done.stdout + done.stderr, done.stdout + done.stderr


def _smki_flags(policy_oids: Sequence[str]) -> list[str]:
    flags = ["-x509_strict", "-explicit_policy"]
    for oid in policy_oids:
        flags += ["-policy", oid]
    return flags


# ----- every profile: pkilint and openssl verify ---------------------------------------------------


@dataclass(frozen=True)
class LeafCase:
    profile: str
    csr: Callable[[], bytes]
    purpose: str | None = None  # openssl -purpose for TLS


LEAF_CASES: dict[str, LeafCase] = {
    "smki-org-ds": LeafCase("smki-org", lambda: org_csr(random_eui64(), "02", "digitalSignature")),
    "smki-org-ka": LeafCase("smki-org", lambda: org_csr(random_eui64(), "03", "keyAgreement")),
    "smki-org-ds-cn": LeafCase("smki-org", lambda: org_csr(random_eui64(), "02", "digitalSignature", cn=ORG_CN)),
    "smki-org-ka-cn": LeafCase("smki-org", lambda: org_csr(random_eui64(), "7F", "keyAgreement", cn="Other Ltd")),
    "smki-device-ds": LeafCase("smki-device", lambda: device_csr(random_eui64(), "digitalSignature")),
    "smki-device-ka": LeafCase("smki-device", lambda: device_csr(random_eui64(), "keyAgreement")),
    "tls-server-p256": LeafCase(
        "tls-server", lambda: tls_server_csr(("www.example.test", "example.test"), cn="www.example.test"), "sslserver"
    ),
    "tls-server-rsa": LeafCase("tls-server", lambda: tls_server_csr(key=rsa_key()), "sslserver"),
    "tls-server-p384-ip": LeafCase(
        "tls-server", lambda: tls_server_csr(("a.example.test",), ips=("192.0.2.7",), curve=ec.SECP384R1()), "sslserver"
    ),
    "tls-client": LeafCase("tls-client", lambda: tls_client_csr("client.example.test"), "sslclient"),
}


def _policy_oids(authority: CertificationAuthority, profile: str) -> tuple[str, ...]:
    parameters = authority.parameters
    source = get_profile(profile).policy_source
    return {
        "org": parameters.org_policy_oids,
        "device": parameters.device_policy_oids,
        "ca": parameters.ca_policy_oids,
    }[source or ""]


@pytest.mark.parametrize("case", list(LEAF_CASES), ids=list(LEAF_CASES))
def test_end_entity_lints_clean_and_verifies(authority: CertificationAuthority, tmp_path: Path, case: str) -> None:
    spec = LEAF_CASES[case]
    view = _issue(authority, spec.profile, spec.csr())
    assert view.profile == spec.profile
    findings = lint_certificate(view.der)
    assert findings == [], "\n".join(findings)

    issuing, root = (c.certificate_der for c in authority.chain(view.ca))
    if spec.purpose:
        flags = ["-x509_strict", "-purpose", spec.purpose]
    else:
        flags = _smki_flags(_policy_oids(authority, spec.profile))
    _assert_verifies(openssl_verify(tmp_path, view.der, root, [issuing], flags))

    cert, issuer = Cert.parse(view.der), Cert.parse(issuing)
    _assert_aki_key_id_only(cert, issuer)
    if spec.purpose is None:
        _assert_common_smki(cert)
        _assert_policy_shape(cert, _policy_oids(authority, spec.profile))
    else:
        key = cert.crypto.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        assert cert.ski == method1_key_identifier(key)
        eku = cert.crypto.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        wanted = ExtendedKeyUsageOID.SERVER_AUTH if spec.purpose == "sslserver" else ExtendedKeyUsageOID.CLIENT_AUTH
        assert list(eku) == [wanted]
        ku = cert.crypto.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature and ku.key_encipherment == isinstance(key, rsa.RSAPublicKey)
        assert cert.crypto.not_valid_after_utc <= issuer.crypto.not_valid_after_utc


@pytest.mark.parametrize("name", ["smki-root", "smki-org-ca", "smki-device-ca", "tls-root", "tls-issuing"])
def test_ca_certificate_lints_clean_and_verifies(authority: CertificationAuthority, tmp_path: Path, name: str) -> None:
    chain = [c.certificate_der for c in authority.chain(name)]
    der, root = chain[0], chain[-1]
    findings = lint_certificate(der)
    assert findings == [], "\n".join(findings)
    profile = authority.get_ca(name).profile
    flags = _smki_flags(_policy_oids(authority, profile)) if profile.startswith("smki-") else ["-x509_strict"]
    _assert_verifies(openssl_verify(tmp_path, der, root, chain[1:-1], flags))


def test_openssl_verify_refuses_wrong_chains(authority: CertificationAuthority, tmp_path: Path) -> None:
    """The chain check above can fail: wrong root, wrong intermediate, wrong policy or purpose, bad signature."""
    device = _issue(authority, "smki-device", device_csr(random_eui64())).der
    org = _issue(authority, "smki-org", org_csr(random_eui64())).der
    client = _issue(authority, "tls-client", tls_client_csr()).der
    smki_root = authority.get_ca("smki-root").certificate_der
    org_ca = authority.get_ca("smki-org-ca").certificate_der
    device_ca = authority.get_ca("smki-device-ca").certificate_der
    tls_root = authority.get_ca("tls-root").certificate_der
    tls_issuing = authority.get_ca("tls-issuing").certificate_der
    policy = _smki_flags(_policy_oids(authority, "smki-device"))

    # The right chains verify, so the refusals below are about the chain and not the certificates.
    _assert_verifies(openssl_verify(tmp_path, device, smki_root, [device_ca], policy))
    _assert_verifies(openssl_verify(tmp_path, client, tls_root, [tls_issuing], ["-purpose", "sslclient"]))

    unable = "unable to get local issuer certificate"
    _assert_refused(openssl_verify(tmp_path, device, tls_root, [tls_issuing], ["-x509_strict"]), unable)
    _assert_refused(openssl_verify(tmp_path, device, smki_root, [org_ca], policy), unable)
    _assert_refused(openssl_verify(tmp_path, org, smki_root, [device_ca], policy), unable)
    _assert_refused(openssl_verify(tmp_path, client, smki_root, [org_ca], ["-x509_strict"]), unable)
    _assert_refused(
        openssl_verify(tmp_path, device, smki_root, [device_ca], _smki_flags(["1.2.3.4"])), "no explicit policy"
    )
    _assert_refused(
        openssl_verify(tmp_path, client, tls_root, [tls_issuing], ["-purpose", "sslserver"]),
        "unsuitable certificate purpose",
    )
    tampered = bytearray(device)
    tampered[-1] ^= 0x01
    _assert_refused(
        openssl_verify(tmp_path, bytes(tampered), smki_root, [device_ca], policy), "certificate signature failure"
    )


# ----- field by field against the DCC's certificates -----------------------------------------------


@dataclass(frozen=True)
class Reference:
    file: str
    profile: str
    usage: str
    csr: Callable[[], bytes]
    issuing_ca: str


REFERENCES: dict[str, Reference] = {
    "device-ds": Reference(
        "device_00db1234567890a4_ds_cert.der",
        "smki-device",
        "digitalSignature",
        lambda: device_csr(DEVICE_EUI64, "digitalSignature"),
        "smki-device-ca",
    ),
    "device-ka": Reference(
        "device_00db1234567890a4_ka_cert.der",
        "smki-device",
        "keyAgreement",
        lambda: device_csr(DEVICE_EUI64, "keyAgreement"),
        "smki-device-ca",
    ),
    "org-ds": Reference(
        "org_90b3d51f30010000_ds_cert.der",
        "smki-org",
        "digitalSignature",
        lambda: org_csr(ORG_EUI64, "02", "digitalSignature", cn=ORG_CN),
        "smki-org-ca",
    ),
    "org-ka": Reference(
        "org_90b3d51f30010000_ka_cert.der",
        "smki-org",
        "keyAgreement",
        lambda: org_csr(ORG_EUI64, "02", "keyAgreement"),
        "smki-org-ca",
    ),
}


@dataclass(frozen=True)
class Pair:
    spec: Reference
    ours: Cert
    reference: Cert
    issuer: Cert  # our issuing CA


@pytest.fixture(params=list(REFERENCES))
def pair(request: pytest.FixtureRequest, authority: CertificationAuthority, vectors: Path) -> Pair:
    """Our certificate and the DCC's for the same subject, EUI-64 and usage, with our issuing CA."""
    spec = REFERENCES[request.param]
    view = _issue(authority, spec.profile, spec.csr())
    assert view.ca == spec.issuing_ca
    assert view.key_usage == spec.usage
    reference = Cert.parse((vectors / spec.file).read_bytes())
    return Pair(spec, Cert.parse(view.der), reference, _ca(authority, spec.issuing_ca))


def test_extensions_match_reference(pair: Pair) -> None:
    ours, reference, issuer = pair.ours, pair.reference, pair.issuer
    # Same extensions, same order, same criticality.
    assert ours.layout == reference.layout
    assert OID_BC not in [e.oid for e in ours.extensions] and OID_EKU not in [e.oid for e in ours.extensions]
    # keyUsage byte for byte.
    assert ours.ext(OID_KU).value == reference.ext(OID_KU).value
    assert ours.ext(OID_KU).value in (KU_DIGITAL_SIGNATURE, KU_KEY_AGREEMENT)
    # SKI: 8 octets, method 2, for ours and (as a check of the method itself) for the DCC's.
    for cert in (ours, reference):
        _assert_common_smki(cert)
    # AKI: keyIdentifier only, the issuing CA's SKI; the DCC's has the same shape.
    _assert_aki_key_id_only(ours, issuer)
    ref_aki = reference.aki()
    assert not ref_aki["authorityCertIssuer"].isValue and not ref_aki["authorityCertSerialNumber"].isValue
    assert ours.ext(OID_AKI).value[:4] == reference.ext(OID_AKI).value[:4] == bytes.fromhex("300a8008")
    # certificatePolicies: critical, one policy, no qualifiers (the OID is configuration).
    assert len(ours.policies()) == len(reference.policies()) == 1
    assert not reference.policies()[0]["policyQualifiers"].isValue


def test_names_validity_and_serial_match_reference(pair: Pair, authority: CertificationAuthority) -> None:
    ours, reference, issuer = pair.ours, pair.reference, pair.issuer
    # Subject and issuer: device empty, organisation [CN] OU x500UniqueIdentifier with the same types.
    assert ours.name_layout("subject") == reference.name_layout("subject")
    assert ours.name_der("subject") == reference.name_der("subject")
    assert ours.name_der("issuer") == issuer.name_der("subject")
    if pair.spec.profile == "smki-org":  # issued by Z1 (OU=07, CN=Z1); E357 of the device certificates is CN only
        assert ours.name_layout("issuer") == reference.name_layout("issuer")
    # Validity encodings.
    if pair.spec.profile == "smki-device":
        assert ours.name_layout("subject") == []
        for cert in (ours, reference):
            assert cert.time("notBefore")[0] == "utcTime"
            assert cert.time("notAfter") == ("generalTime", "99991231235959Z")
    else:
        years = authority.parameters.org_validity_years
        assert years == 10
        assert reference.time("notBefore")[0] == reference.time("notAfter")[0] == "utcTime"
        _assert_rfc5280_time_encoding(ours)  # UTCTime like the DCC's until validity reaches 2050
        for cert in (ours, reference):
            _assert_years_less_one_second(cert, years)
    # Signature and key algorithm identifiers byte for byte.
    assert _der(ours.asn1["signatureAlgorithm"]) == _der(reference.asn1["signatureAlgorithm"])
    assert _der(ours.tbs["subjectPublicKeyInfo"]["algorithm"]) == _der(
        reference.tbs["subjectPublicKeyInfo"]["algorithm"]
    )


@pytest.mark.parametrize("usage", ["digitalSignature", "keyAgreement"])
@pytest.mark.parametrize("cn", [None, ORG_CN])
def test_org_subject_encoding(authority: CertificationAuthority, vectors: Path, usage: str, cn: str | None) -> None:
    """CN (UTF8String, optional), OU = role (UTF8String), x500UniqueIdentifier (BIT STRING), in that order."""
    view = _issue(authority, "smki-org", org_csr(ORG_EUI64, "02", usage, cn=cn))
    ours = Cert.parse(view.der)
    # The stored subject is RFC 4514 with the BIT STRING as '#' + its DER, as `openssl -nameopt RFC2253` has it.
    assert view.subject == f"2.5.4.45=#030900{ORG_EUI64.hex()},OU=02" + (f",CN={cn}" if cn else "")
    with_cn = Cert.parse((vectors / "org_90b3d51f30010000_ds_cert.der").read_bytes())
    without_cn = Cert.parse((vectors / "org_90b3d51f30010000_ka_cert.der").read_bytes())
    expected = with_cn if cn else without_cn
    assert ours.name_der("subject") == expected.name_der("subject")
    layout = [[(OID_OU, TAG_UTF8)], [(OID_UID, TAG_BIT_STRING)]]
    assert ours.name_layout("subject") == ([[(OID_CN, TAG_UTF8)]] if cn else []) + layout
    assert ours.attribute("subject", OID_OU) == b"\x0c\x0202"
    assert ours.attribute("subject", OID_UID) == b"\x03\x09\x00" + ORG_EUI64
    # cryptography reads the same attributes back with the same types.
    attributes = list(ours.crypto.subject)
    assert [a._type for a in attributes][-2:] == [x509.name._ASN1Type.UTF8String, x509.name._ASN1Type.BitString]
    assert attributes[-1].value == b"\x00" + ORG_EUI64


def test_device_san_matches_reference(authority: CertificationAuthority, vectors: Path) -> None:
    ours = Cert.parse(_issue(authority, "smki-device", device_csr(DEVICE_EUI64, hw_type="1.2.3.4")).der)
    reference = Cert.parse((vectors / "device_00db1234567890a4_ds_cert.der").read_bytes())
    configured = authority.parameters.hw_type_oid
    # The certificate names the configured hwType, whatever the CSR asked for.
    assert _hardware_module_names(ours) == [(configured, DEVICE_EUI64)]
    assert _hardware_module_names(reference) == [(configured, DEVICE_EUI64)]
    assert ours.ext(OID_SAN) == reference.ext(OID_SAN)  # same bytes, critical, in the same place
    assert ours.ext(OID_SAN).critical


def test_device_certificate_has_the_requested_eui64(authority: CertificationAuthority) -> None:
    eui64 = random_eui64()
    view = _issue(authority, "smki-device", device_csr(eui64))
    assert _hardware_module_names(Cert.parse(view.der)) == [(authority.parameters.hw_type_oid, eui64)]
    assert view.eui64 == eui64.hex().upper()


@pytest.mark.parametrize("name", ["smki-org-ca", "smki-device-ca"])
def test_issuing_ca_matches_z1(authority: CertificationAuthority, vectors: Path, name: str) -> None:
    ours = _ca(authority, name)
    root = _ca(authority, "smki-root")
    z1 = Cert.parse((vectors / "Z1_issuing_oca.der").read_bytes())
    assert (
        ours.layout == z1.layout == [(OID_KU, True), (OID_BC, True), (OID_CP, True), (OID_SKI, False), (OID_AKI, False)]
    )
    assert ours.ext(OID_KU).value == z1.ext(OID_KU).value == KU_CA
    assert ours.ext(OID_BC).value == z1.ext(OID_BC).value == BC_CA_PATHLEN_0
    # Subject OU=07, CN, both PrintableString; issuer the root's OU=00, CN.
    printable = [[(OID_OU, TAG_PRINTABLE)], [(OID_CN, TAG_PRINTABLE)]]
    assert ours.name_layout("subject") == z1.name_layout("subject") == printable
    assert ours.name_layout("issuer") == z1.name_layout("issuer") == printable
    assert ours.attribute("subject", OID_OU) == z1.attribute("subject", OID_OU) == b"\x13\x0207"
    assert ours.attribute("issuer", OID_OU) == z1.attribute("issuer", OID_OU) == b"\x13\x0200"
    assert ours.name_der("issuer") == root.name_der("subject")
    for cert in (ours, z1):
        _assert_common_smki(cert)
        _assert_rfc5280_time_encoding(cert)
        _assert_years_less_one_second(cert, 25)
    assert authority.parameters.ca_validity_years == 25
    _assert_aki_key_id_only(ours, root)
    _assert_policy_shape(ours, authority.parameters.ca_policy_oids)
    _assert_policy_shape(z1, [str(z1.policies()[0]["policyIdentifier"])])


def test_smki_root_profile(authority: CertificationAuthority) -> None:
    root = _ca(authority, "smki-root")
    assert root.layout == [(OID_KU, True), (OID_BC, True), (OID_CP, True), (OID_SKI, False)]
    assert root.ext(OID_KU).value == KU_CA
    assert root.ext(OID_BC).value == bytes.fromhex("30030101ff")  # CA:TRUE, no path length
    assert root.name_der("issuer") == root.name_der("subject")
    assert root.name_layout("subject") == [[(OID_OU, TAG_PRINTABLE)], [(OID_CN, TAG_PRINTABLE)]]
    assert root.attribute("subject", OID_OU) == b"\x13\x0200"
    _assert_common_smki(root)
    _assert_rfc5280_time_encoding(root)
    _assert_years_less_one_second(root, authority.parameters.root_validity_years)
    _assert_policy_shape(root, authority.parameters.ca_policy_oids)


def test_ca_subject_encodes_like_z1(vectors: Path) -> None:
    z1 = Cert.parse((vectors / "Z1_issuing_oca.der").read_bytes())
    ours = ca_subject(get_profile("smki-issuing"), "Z1").public_bytes()
    assert ours == z1.name_der("subject")
    with pytest.raises(InvalidRequest, match="PrintableString"):
        ca_subject(get_profile("smki-issuing"), "Z_1")


# ----- the DCC's device CSR, and key usage as requested ------------------------------------------


def test_reference_device_csr_is_accepted(authority: CertificationAuthority, vectors: Path) -> None:
    raw = (vectors / "device_csr_ds.der").read_bytes()
    view = _issue(authority, "smki-device", raw)
    cert = Cert.parse(view.der)
    assert _hardware_module_names(cert) == [(authority.parameters.hw_type_oid, bytes.fromhex(REFERENCE_CSR_EUI64))]
    assert view.eui64 == REFERENCE_CSR_EUI64
    assert view.key_usage == "digitalSignature"
    assert cert.ext(OID_KU) == Ext(OID_KU, True, KU_DIGITAL_SIGNATURE)
    csr_key = x509.load_der_x509_csr(raw).public_key()
    assert isinstance(csr_key, ec.EllipticCurvePublicKey)
    assert cert.crypto.public_key() == csr_key
    assert cert.ski == method2_key_identifier(csr_key)
    assert cert.name_layout("subject") == []
    findings = lint_certificate(view.der)
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("usage", ["digitalSignature", "keyAgreement"])
@pytest.mark.parametrize("profile", ["smki-device", "smki-org"])
def test_key_usage_is_the_one_requested(authority: CertificationAuthority, profile: str, usage: str) -> None:
    eui64 = random_eui64()
    csr = device_csr(eui64, usage) if profile == "smki-device" else org_csr(eui64, "02", usage)
    view = _issue(authority, profile, csr)
    ku = x509.load_der_x509_certificate(view.der).extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert (ku.value.digital_signature, ku.value.key_agreement) == (
        usage == "digitalSignature",
        usage == "keyAgreement",
    )
    assert not (ku.value.key_encipherment or ku.value.content_commitment or ku.value.key_cert_sign)
    assert view.key_usage == usage
    # The order may restate the usage but not contradict it.
    other = KeyUsageChoice.KEY_AGREEMENT if usage == "digitalSignature" else KeyUsageChoice.DIGITAL_SIGNATURE
    with pytest.raises(InvalidRequest, match="order asks for"):
        authority.issue(IssuanceOrder(profile, csr, approved_by="test", key_usage=other))


# ----- the factory's bad requests are refused by the profiles (no database needed) ----------------

_EUI = bytes.fromhex("0011223344556677")
BAD_REQUESTS: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "device-p384": ("smki-device", lambda: device_csr(_EUI, curve=ec.SECP384R1()), "P-256"),
    "device-rsa": ("smki-device", lambda: device_csr(_EUI, key=rsa_key()), "P-256"),
    "device-no-san": ("smki-device", lambda: device_csr(_EUI, hw_serials=()), "no hardwareModuleName"),
    "device-two-hw": ("smki-device", lambda: device_csr(_EUI, hw_serials=(_EUI, bytes(8))), "exactly one"),
    "device-eui-7": ("smki-device", lambda: device_csr(bytes(7)), "8 octets"),
    "device-eui-9": ("smki-device", lambda: device_csr(bytes(9)), "8 octets"),
    "device-no-ku": ("smki-device", lambda: device_csr(_EUI, usage=None), "no keyUsage"),
    "device-two-ku": ("smki-device", lambda: device_csr(_EUI, ("digitalSignature", "keyAgreement")), "exactly one"),
    "device-bad-sig": ("smki-device", lambda: corrupt_signature(device_csr(_EUI)), "proof of possession"),
    "org-role-08": ("smki-org", lambda: org_csr(_EUI, "08"), "not a known RemotePartyRole"),
    "org-role-99": ("smki-org", lambda: org_csr(_EUI, "99"), "not a known RemotePartyRole"),
    "org-role-00": ("smki-org", lambda: org_csr(_EUI, "00"), "not allowed"),
    "org-eui-7": ("smki-org", lambda: org_csr(bytes(7)), "64-bit BIT STRING"),
    "org-bad-sig": ("smki-org", lambda: corrupt_signature(org_csr(_EUI, pem=True)), "proof of possession"),
    "tls-no-san": ("tls-server", lambda: tls_server_csr(()), "at least one DNS name"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_requests_are_refused(case: str) -> None:
    profile, make, reason = BAD_REQUESTS[case]
    with pytest.raises(InvalidRequest, match=reason):
        check_csr(get_profile(profile), load_csr(make()), profile_parameters(Settings()))
