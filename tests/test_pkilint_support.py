"""Tests for tests.support.pkilint_check: pkilint with x500UniqueIdentifier decoded as BIT STRING."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from pkilint.bin import lint_pkix_cert  # type: ignore[import-untyped]

from tests.support.pkilint_check import lint_certificate, lint_crl, lint_ocsp_response

VECTORS = Path("/work/shared/vectors/smki")
ORG_CERTS = ["org_90b3d51f30010000_ds_cert.der", "org_90b3d51f30010000_ka_cert.der"]
VECTOR_CERTS = [
    "Z1_issuing_oca.der",
    "device_00db1234567890a4_ds_cert.der",
    "device_00db1234567890a4_ka_cert.der",
    *ORG_CERTS,
]
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pkilint test CA")])
EUI64 = bytes.fromhex("90b3d51f30010000")

needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason="SMKI vectors not available")


@pytest.fixture(scope="module")
def ca_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _der(obj: x509.Certificate | x509.CertificateRevocationList | ocsp.OCSPResponse) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


def _ca_cert(key: ec.EllipticCurvePrivateKey, *, basic_constraints_critical: bool = True) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(CA_NAME)
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=basic_constraints_critical)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _ee_cert(
    ca_key: ec.EllipticCurvePrivateKey, subject: x509.Name, *, key_usage_critical: bool = True
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=key_usage_critical,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _org_name(bit_string_contents: bytes) -> x509.Name:
    # DEPENDENCIES.md gotcha 11: the value is the BIT STRING's contents, unused-bits octet included.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "TESTORG"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "02"),
            x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, bit_string_contents, _ASN1Type.BitString),
        ]
    )


# --- the 2.5.4.45 fix ---------------------------------------------------------------------------


@needs_vectors
@pytest.mark.parametrize("filename", ORG_CERTS)
def test_stock_pkilint_fails_on_org_x500_unique_identifier(filename: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = lint_pkix_cert.main(["lint", "-s", "WARNING", "-f", "CSV", str(VECTORS / filename)])
    out = capsys.readouterr().out
    assert rc >= 1
    assert "FATAL,itu.invalid_asn1_syntax" in out
    assert "2.5.4.45" in out
    assert "DirectoryString" in out


@needs_vectors
@pytest.mark.parametrize("filename", ORG_CERTS)
def test_lint_certificate_decodes_org_x500_unique_identifier(filename: str) -> None:
    all_findings = lint_certificate((VECTORS / filename).read_bytes(), "DEBUG")
    assert not [f for f in all_findings if "2.5.4.45" in f or "invalid_asn1_syntax" in f or "FATAL" in f]
    assert lint_certificate((VECTORS / filename).read_bytes()) == []


@needs_vectors
@pytest.mark.parametrize("filename", VECTOR_CERTS)
def test_vector_certificates_have_no_findings_at_warning(filename: str) -> None:
    assert lint_certificate((VECTORS / filename).read_bytes()) == []


def test_well_formed_x500_unique_identifier_is_clean(ca_key: ec.EllipticCurvePrivateKey) -> None:
    cert = _ee_cert(ca_key, _org_name(b"\x00" + EUI64))
    # Below NOTICE pkilint only adds INFO pkix.subject_key_identifier_method_1_identified.
    assert lint_certificate(_der(cert), "NOTICE") == []


def test_malformed_x500_unique_identifier_is_still_reported(ca_key: ec.EllipticCurvePrivateKey) -> None:
    # 9 unused bits is not a valid BIT STRING: the attribute is decoded as a BIT STRING, not skipped.
    findings = lint_certificate(_der(_ee_cert(ca_key, _org_name(b"\x09" + EUI64))))
    assert len(findings) == 1
    assert findings[0].startswith("FATAL itu.invalid_asn1_syntax @ certificate.tbsCertificate.subject")
    assert "2.5.4.45" in findings[0]
    assert "UniqueIdentifier" in findings[0]


# --- the check can pass and fail ------------------------------------------------------------------


def test_good_ca_certificate_is_clean(ca_key: ec.EllipticCurvePrivateKey) -> None:
    assert lint_certificate(_der(_ca_cert(ca_key))) == []


def test_ca_with_non_critical_basic_constraints_is_reported(ca_key: ec.EllipticCurvePrivateKey) -> None:
    findings = lint_certificate(_der(_ca_cert(ca_key, basic_constraints_critical=False)))
    assert findings
    assert findings[0].startswith("ERROR pkix.basic_constraints_extension_not_critical @ certificate.")


def test_min_severity_threshold(ca_key: ec.EllipticCurvePrivateKey) -> None:
    der = _der(_ee_cert(ca_key, CA_NAME, key_usage_critical=False))
    warnings = lint_certificate(der)
    assert [f.split(" @ ")[0] for f in warnings] == ["WARNING pkix.key_usage_extension_not_critical"]
    assert lint_certificate(der, "error") == []
    assert warnings[0] in lint_certificate(der, "INFO")


def test_bad_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="severity"):
        lint_certificate(b"\x30\x00", "LOUD")
    with pytest.raises(ValueError, match="could not load"):
        lint_certificate(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError, match="CRL type"):
        lint_crl(b"\x30\x00", "DELTA")


@needs_vectors
def test_csr_is_not_a_certificate() -> None:
    with pytest.raises(ValueError, match="could not load the certificate"):
        lint_certificate((VECTORS / "device_csr_ds.der").read_bytes())


# --- CRL and OCSP -----------------------------------------------------------------------------------


def _crl(key: ec.EllipticCurvePrivateKey, *, with_number_and_aki: bool) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(CA_NAME)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
    )
    if with_number_and_aki:
        builder = builder.add_extension(x509.CRLNumber(1), critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize("crl_type", ["CRL", "ARL"])
def test_lint_crl(ca_key: ec.EllipticCurvePrivateKey, crl_type: str) -> None:
    assert lint_crl(_der(_crl(ca_key, with_number_and_aki=True)), crl_type, "DEBUG") == []
    codes = [f.split(" @ ")[0] for f in lint_crl(_der(_crl(ca_key, with_number_and_aki=False)), crl_type)]
    assert codes == ["ERROR pkix.crl_number_missing", "ERROR pkix.authority_key_identifier_missing"]


def _ocsp_response(ca_key: ec.EllipticCurvePrivateKey, next_update: dt.datetime) -> ocsp.OCSPResponse:
    ca = _ca_cert(ca_key)
    ee = _ee_cert(ca_key, _org_name(b"\x00" + EUI64))
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=ee,
            issuer=ca,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=next_update,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
        .sign(ca_key, hashes.SHA256())
    )


def test_lint_ocsp_response(ca_key: ec.EllipticCurvePrivateKey) -> None:
    assert lint_ocsp_response(_der(_ocsp_response(ca_key, NOW + dt.timedelta(days=1))), "DEBUG") == []
    findings = lint_ocsp_response(_der(_ocsp_response(ca_key, NOW - dt.timedelta(days=1))))
    assert [f.split(" @ ")[0] for f in findings] == ["ERROR pkix.ocsp_negative_validity_period"]
