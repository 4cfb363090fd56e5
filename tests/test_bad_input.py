"""Bad input through the real command, `mpki issue --profile P --csr FILE`: each request is refused with
one clear line on stderr and a non-zero exit, and nothing is written but the audit event recording the
rejection: no certificate, no serial reservation, no output file."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import Connection, text

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.domain import MpkiError
from tests.csr_factory import (
    corrupt_signature,
    device_csr,
    org_csr,
    random_eui64,
    rsa_key,
    tls_server_csr,
)


@functools.cache
def _rsa() -> rsa.RSAPrivateKey:
    return rsa_key(2048)


def _eui() -> bytes:
    return random_eui64()


@dataclass(frozen=True)
class Case:
    id: str
    profile: str
    csr: Callable[[], bytes]
    expect: str  # words the one-line message must contain
    cli: bool = True  # also through a real `mpki issue` subprocess (every case runs in-process)


CASES = [
    # Undecodable input.
    Case("truncated-der", "smki-device", lambda: device_csr(_eui())[:-7], "malformed or truncated"),
    Case(
        "truncated-der-header-only", "smki-device", lambda: device_csr(_eui())[:4], "malformed or truncated", cli=False
    ),
    Case("der-with-trailing-bytes", "smki-device", lambda: device_csr(_eui()) + b"\x00junk", "malformed", cli=False),
    Case(
        "garbage-pem",
        "smki-device",
        lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nThis is not base64 !!!\n-----END CERTIFICATE REQUEST-----\n",
        "could not be decoded",
    ),
    Case(
        "pem-of-a-certificate",
        "smki-device",
        lambda: b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "not a CERTIFICATE REQUEST",
        cli=False,
    ),
    Case("pem-truncated", "smki-device", lambda: device_csr(_eui(), pem=True)[:120], "could not be decoded", cli=False),
    Case("random-bytes", "smki-device", lambda: b"\x01\x02hello, world\xff", "neither PEM nor DER"),
    Case("empty-file", "smki-device", lambda: b"", "empty", cli=False),
    # Proof of possession.
    Case(
        "bad-signature-der", "smki-device", lambda: corrupt_signature(device_csr(_eui())), "signature does not verify"
    ),
    Case(
        "bad-signature-pem",
        "smki-org",
        lambda: corrupt_signature(org_csr(_eui(), pem=True)),
        "signature does not verify",
    ),
    Case(
        "bad-signature-tls",
        "tls-server",
        lambda: corrupt_signature(tls_server_csr(("bad.example.test",))),
        "signature does not verify",
        cli=False,
    ),
    # Keys SMKI does not allow.
    Case("device-p384", "smki-device", lambda: device_csr(_eui(), curve=ec.SECP384R1()), "P-256"),
    Case("device-rsa", "smki-device", lambda: device_csr(_eui(), key=_rsa()), "P-256"),
    Case("org-p384", "smki-org", lambda: org_csr(_eui(), curve=ec.SECP384R1()), "P-256", cli=False),
    Case("org-rsa", "smki-org", lambda: org_csr(_eui(), key=_rsa()), "P-256"),
    # The device's name.
    Case("device-no-eui64", "smki-device", lambda: device_csr(_eui(), hw_serials=()), "no hardwareModuleName"),
    Case("device-two-eui64", "smki-device", lambda: device_csr(_eui(), hw_serials=(_eui(), _eui())), "exactly one"),
    Case("device-eui64-7-octets", "smki-device", lambda: device_csr(bytes(7)), "8 octets"),
    Case("device-eui64-9-octets", "smki-device", lambda: device_csr(bytes(9)), "8 octets"),
    Case(
        "device-extra-san-name",
        "smki-device",
        lambda: device_csr(_eui(), extra_names=[x509.DNSName("meter.example.test")]),
        "exactly one",
        cli=False,
    ),
    Case(
        "device-with-subject",
        "smki-device",
        lambda: device_csr(_eui(), subject=x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "meter")])),
        "empty subject",
        cli=False,
    ),
    Case("device-no-key-usage", "smki-device", lambda: device_csr(_eui(), usage=None), "keyUsage", cli=False),
    Case(
        "device-two-key-usages",
        "smki-device",
        lambda: device_csr(_eui(), usage=("digitalSignature", "keyAgreement")),
        "exactly one key usage",
        cli=False,
    ),
    # Organisation role codes.
    Case("org-role-08-unknown", "smki-org", lambda: org_csr(_eui(), role="08"), "not a known RemotePartyRole"),
    Case("org-role-99-unknown", "smki-org", lambda: org_csr(_eui(), role="99"), "not a known RemotePartyRole"),
    Case("org-role-not-hex", "smki-org", lambda: org_csr(_eui(), role="2"), "two upper-case hex digits", cli=False),
    Case("org-role-00-is-a-ca-role", "smki-org", lambda: org_csr(_eui(), role="00"), "not allowed"),
    Case("org-role-07-is-a-ca-role", "smki-org", lambda: org_csr(_eui(), role="07"), "not allowed", cli=False),
    Case(
        "org-eui64-7-octets",
        "smki-org",
        lambda: org_csr(_eui(), unique_identifier=b"\x00" + bytes(7)),
        "x500UniqueIdentifier",
        cli=False,
    ),
    # The profile itself.
    Case("unknown-profile", "smki-gadget", lambda: device_csr(_eui()), "unknown profile 'smki-gadget'"),
    Case("ca-profile-from-a-csr", "smki-issuing", lambda: device_csr(_eui()), "ceremony", cli=False),
    Case("device-csr-as-org", "smki-org", lambda: device_csr(_eui()), "no OU", cli=False),
    Case("tls-server-without-names", "tls-server", lambda: tls_server_csr(()), "at least one DNS name", cli=False),
]


def _counts(sql: Connection) -> dict[str, int]:
    return {
        "certificates": sql.execute(text("SELECT COUNT(*) FROM certificates")).scalar_one(),
        "serials": sql.execute(text("SELECT COUNT(*) FROM serial_reservations")).scalar_one(),
        "rejections": sql.execute(
            text("SELECT COUNT(*) FROM audit_events WHERE action = 'certificate.rejected'")
        ).scalar_one(),
        "events": sql.execute(text("SELECT COUNT(*) FROM audit_events")).scalar_one(),
    }


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


CLI_CASES = [c for c in CASES if c.cli]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_bad_request_is_refused_and_nothing_is_written(
    case: Case,
    authority: CertificationAuthority,
    sql: Connection,
    mpki,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    csr = tmp_path / "request.csr"
    csr.write_bytes(case.csr())
    out = tmp_path / "issued.pem"
    before = _counts(sql)

    run = mpki("issue", "--profile", case.profile, "--csr", str(csr), "--out", str(out))

    assert run.returncode != 0
    line = _one_error_line(run.stderr)
    assert case.expect in line, line
    assert run.stdout == ""
    assert not out.exists()
    after = _counts(sql)
    assert after["certificates"] == before["certificates"] == 0
    assert after["serials"] == before["serials"]  # only the dev CAs' own serials
    assert after["rejections"] == before["rejections"] + 1
    assert after["events"] == before["events"] + 1
    reason = sql.execute(
        text("SELECT details FROM audit_events WHERE action = 'certificate.rejected' ORDER BY seq DESC")
    ).scalar_one()
    assert case.expect in reason
    assert verify_chain(authority.database).ok


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_in_process(case: Case, authority: CertificationAuthority, sql: Connection) -> None:
    """The same checks without the subprocess, for the cases the command line need not repeat."""
    before = _counts(sql)
    with pytest.raises(MpkiError) as refused:
        authority.issue(IssuanceOrder(case.profile, case.csr(), approved_by="test"))
    message = str(refused.value)
    assert case.expect in message
    assert "\n" not in message
    after = _counts(sql)
    assert (after["certificates"], after["serials"]) == (0, before["serials"])
    assert after["rejections"] == before["rejections"] + 1
    assert after["events"] == before["events"] + 1


def test_missing_csr_file_writes_nothing(authority: CertificationAuthority, sql: Connection, mpki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = _counts(sql)
    run = mpki("issue", "--profile", "smki-device", "--csr", str(tmp_path / "absent.csr"))
    assert run.returncode != 0
    assert "no such CSR file" in _one_error_line(run.stderr)
    assert _counts(sql) == before


def test_issue_before_init_fails_cleanly(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(_eui()))
    run = mpki("issue", "--profile", "smki-device", "--csr", str(csr))
    assert run.returncode != 0
    line = _one_error_line(run.stderr)
    assert "init" in line or "keystore" in line, line


def test_good_request_through_the_same_path_is_issued(
    authority: CertificationAuthority,
    sql: Connection,
    mpki,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The control: the harness above would notice a certificate if one were written."""
    eui = _eui()
    csr = tmp_path / "good.csr"
    csr.write_bytes(device_csr(eui, "keyAgreement", pem=True))
    out = tmp_path / "issued.pem"
    before = _counts(sql)
    run = mpki("issue", "--profile", "smki-device", "--csr", str(csr), "--out", str(out))
    assert run.returncode == 0, run.stderr
    certificate = x509.load_pem_x509_certificate(out.read_bytes())
    after = _counts(sql)
    assert after["certificates"] == 1
    assert after["serials"] == before["serials"] + 1
    assert after["rejections"] == before["rejections"]
    stored = sql.execute(text("SELECT serial, eui64, status FROM certificates")).one()
    assert stored.serial == f"{certificate.serial_number:x}"
    assert stored.eui64 == eui.hex().upper()
    reservation = sql.execute(
        text("SELECT status FROM serial_reservations WHERE serial = :s"), {"s": stored.serial}
    ).scalar_one()
    assert reservation == "used"
