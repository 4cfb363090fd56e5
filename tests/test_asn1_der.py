"""The hot-path DER codec for hardwareModuleName agrees with pyasn1 and refuses malformed input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc4108

from mpki.asn1 import HardwareModuleName, decode_hardware_module_name, encode_hardware_module_name
from mpki.asn1.certificate import subject_der
from mpki.domain import InvalidRequest


@pytest.mark.parametrize("oid", ["1.3.6.1.5.5.7.8.4", "1.2.826.0.1.8641679.1.2.2.1", "2.999.7", "0.9", "2.100.3"])
@pytest.mark.parametrize("length", [0, 1, 8, 127, 128, 300])
def test_matches_pyasn1(oid: str, length: int) -> None:
    serial = os.urandom(length)
    reference = rfc4108.HardwareModuleName()
    reference["hwType"] = univ.ObjectIdentifier(oid)
    reference["hwSerialNum"] = univ.OctetString(serial)
    expected = bytes(encoder.encode(reference))
    assert encode_hardware_module_name(HardwareModuleName(oid, serial)) == expected
    assert decode_hardware_module_name(expected) == HardwareModuleName(oid, serial)


GOOD = bytes.fromhex("3019060D2A863A0001848FB90F01020201040800DB1234567890A4")


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing"),
        (b"\x31" + GOOD[1:], "not a SEQUENCE"),
        (bytes.fromhex("3081190"[:6]) + GOOD[2:], "minimal DER length"),
        (bytes.fromhex("300A") + bytes.fromhex("0408") + b"\x00" * 8, "not an OBJECT IDENTIFIER"),
        (bytes.fromhex("30070603550403") + bytes.fromhex("0500"), "not an OCTET STRING"),
        (GOOD[:1] + bytes([GOOD[1] + 2]) + GOOD[2:] + b"\x05\x00", "extra fields"),
        (b"", "truncated"),
    ],
)
def test_malformed_input_is_refused(der: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        decode_hardware_module_name(der)


def test_subject_der_is_the_subject_as_encoded_in_the_certificate(vectors: Path) -> None:
    """Real DCC certificates: the bytes sliced out are a whole Name that decodes to the subject."""
    for path in [*sorted(vectors.glob("*_cert.der")), vectors / "Z1_issuing_oca.der"]:
        der = path.read_bytes()
        certificate = x509.load_der_x509_certificate(der)
        sliced = subject_der(der)
        assert sliced[0] == 0x30 and sliced in certificate.tbs_certificate_bytes
        assert sliced == certificate.subject.public_bytes(), path.name


def test_subject_der_refuses_a_truncated_certificate(vectors: Path) -> None:
    with pytest.raises(InvalidRequest):
        subject_der((vectors / "Z1_issuing_oca.der").read_bytes()[:40])
