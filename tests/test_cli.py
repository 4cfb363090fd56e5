"""Smoke tests of the real `mpki` command and of the HTTP app, on a development hierarchy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.web import create_app
from tests.csr_factory import device_csr, org_csr, random_eui64, tls_client_csr, tls_server_csr

DEV_CAS = {
    "smki-root": ("smki-root", None),
    "smki-org-ca": ("smki-issuing", "smki-root"),
    "smki-device-ca": ("smki-issuing", "smki-root"),
    "tls-root": ("tls-root", None),
    "tls-issuing": ("tls-issuing", "tls-root"),
}


def _pems(output: str) -> list[x509.Certificate]:
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", output, re.S)
    return [x509.load_pem_x509_certificate(block.encode()) for block in blocks]


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query)).all()]
    finally:
        engine.dispose()


def test_init_dev_then_list_export_issue_show(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = mpki("init", "--dev")
    assert run.returncode == 0, run.stderr
    for name in DEV_CAS:
        assert f"created CA {name} " in run.stdout

    run = mpki("ca", "list", "--json")
    assert run.returncode == 0, run.stderr
    cas = json.loads(run.stdout)
    assert isinstance(cas, list)
    assert {ca["name"] for ca in cas} == set(DEV_CAS)
    for ca in cas:
        assert {"name", "subject", "profile"} <= ca.keys()
        assert (ca["profile"], ca["parent"]) == DEV_CAS[ca["name"]]
        assert ca["subject"].startswith("CN=mpki Dev ")
    by_name = {ca["name"]: ca for ca in cas}

    run = mpki("ca", "export")
    assert run.returncode == 0, run.stderr
    exported = _pems(run.stdout)
    assert len(exported) == len(DEV_CAS)
    fingerprints = {c.fingerprint(hashes.SHA256()).hex() for c in exported}
    assert fingerprints == {ca["fingerprint_sha256"] for ca in cas}

    run = mpki("ca", "export", "smki-device-ca", "--chain")
    assert run.returncode == 0, run.stderr
    chain = _pems(run.stdout)
    assert len(chain) == 2
    device_ca, root = chain
    assert device_ca.subject.rfc4514_string() == by_name["smki-device-ca"]["subject"]
    assert root.subject.rfc4514_string() == by_name["smki-root"]["subject"]
    device_ca.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)

    run = mpki("ca", "export", "smki-device-ca")
    assert run.returncode == 0, run.stderr
    assert [c.serial_number for c in _pems(run.stdout)] == [device_ca.serial_number]

    # Issue a device certificate to a file, and an organisation certificate to stdout.
    eui = random_eui64()
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(eui, "keyAgreement", pem=True))
    out = tmp_path / "device.pem"
    run = mpki("issue", "--profile", "smki-device", "--csr", str(csr), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert out.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----\n")
    device = x509.load_pem_x509_certificate(out.read_bytes())
    device.verify_directly_issued_by(device_ca)
    device_serial = f"{device.serial_number:x}"
    assert f"serial {device_serial}" in run.stdout

    org = tmp_path / "org.csr"
    org.write_bytes(org_csr(random_eui64(), "03", cn="Network Operator"))
    run = mpki("issue", "--profile", "smki-org", "--csr", str(org))
    assert run.returncode == 0, run.stderr
    [organisation] = _pems(run.stdout)
    assert organisation.issuer.rfc4514_string() == by_name["smki-org-ca"]["subject"]

    run = mpki("issue", "--profile", "smki-org", "--csr", str(org), "--der", "--out", str(tmp_path / "org.der"))
    assert run.returncode == 0, run.stderr
    assert x509.load_der_x509_certificate((tmp_path / "org.der").read_bytes()).issuer == organisation.issuer

    run = mpki("cert", "list", "--json")
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert isinstance(listed, list) and len(listed) == 3
    for item in listed:
        assert re.fullmatch(r"[0-9a-f]+", item["serial"])
        assert item["status"] == "issued"
        assert item["issuer"] in (by_name["smki-device-ca"]["subject"], by_name["smki-org-ca"]["subject"])
    assert [item["profile"] for item in listed] == ["smki-device", "smki-org", "smki-org"]
    assert listed[0]["serial"] == device_serial
    assert listed[0]["eui64"] == eui.hex().upper()
    assert listed[0]["key_usage"] == "keyAgreement"

    run = mpki("cert", "list", "--json", "--profile", "smki-org")
    assert [item["profile"] for item in json.loads(run.stdout)] == ["smki-org", "smki-org"]

    run = mpki("cert", "show", device_serial)
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["serial"] == device_serial
    assert shown["profile"] == "smki-device"
    assert shown["ca"] == "smki-device-ca"
    assert shown["eui64"] == eui.hex().upper()

    colons = ":".join(re.findall("..?", device_serial.upper()))
    run = mpki("cert", "show", colons, "--pem")
    assert run.returncode == 0, run.stderr
    assert [c.serial_number for c in _pems(run.stdout)] == [device.serial_number]

    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
    # The dev ceremony: 23 recorded steps (3 of them the contingency key's quorum split, test and key, 4 the
    # backup and token-admin groups' split and test) + ceremony.completed, and per CA key.generated +
    # ca.created (34); the demo organisation and its four portal accounts (5); then per certificate its
    # serial reserved and the certificate issued.
    assert "audit chain OK: 45 events" in run.stdout


def test_init_dev_twice_fails_cleanly(mpki, database_url: str) -> None:  # type: ignore[no-untyped-def]
    assert mpki("init", "--dev").returncode == 0
    before = _rows(database_url, "SELECT name, fingerprint_sha256 FROM cas ORDER BY id")
    assert len(before) == len(DEV_CAS)

    run = mpki("init", "--dev")
    assert run.returncode != 0
    assert "already exists" in _error_line(run.stderr)
    assert _rows(database_url, "SELECT name, fingerprint_sha256 FROM cas ORDER BY id") == before
    assert _rows(database_url, "SELECT COUNT(*) FROM serial_reservations") == [(len(DEV_CAS),)]
    assert mpki("audit", "verify").returncode == 0
    assert mpki("ca", "list", "--json").returncode == 0


def test_not_found_and_bad_arguments_are_one_line_errors(authority: CertificationAuthority, mpki) -> None:  # type: ignore[no-untyped-def]
    run = mpki("ca", "export", "nope")
    assert run.returncode != 0
    assert "no CA named 'nope'" in _error_line(run.stderr)

    run = mpki("ca", "export", "nope", "--chain")
    assert run.returncode != 0
    assert "no CA named 'nope'" in _error_line(run.stderr)

    run = mpki("cert", "show", "0123abcd")
    assert run.returncode != 0
    assert "no certificate with serial 123abcd" in _error_line(run.stderr)

    run = mpki("cert", "show", "not-hex")
    assert run.returncode != 0
    assert "not hexadecimal" in _error_line(run.stderr)

    run = mpki("init")
    assert run.returncode != 0
    assert "--dev" in _error_line(run.stderr)


def test_output_quotes_request_text_verbatim(authority: CertificationAuthority, mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Names from a request that look like console markup are printed as written, never interpreted."""
    csr = tmp_path / "markup.csr"
    csr.write_bytes(tls_server_csr(("[/bold]",)))
    run = mpki("issue", "--profile", "tls-server", "--csr", str(csr))
    assert run.returncode != 0
    assert "'[/bold]' is not a valid DNS name" in _error_line(run.stderr)

    authority.issue(IssuanceOrder("tls-client", tls_client_csr("[red]x[/red] [/]"), approved_by="test"))
    run = mpki("cert", "list")
    assert run.returncode == 0, run.stderr
    assert "[red]x[/red] [/]" in run.stdout.replace("\n", "") or "[red]x[/red]" in run.stdout

    run = mpki("cert", "list", "--json")
    assert json.loads(run.stdout)[0]["subject"] == "CN=[red]x[/red] [/]"


def test_human_readable_listings(authority: CertificationAuthority, mpki) -> None:  # type: ignore[no-untyped-def]
    authority.issue(IssuanceOrder("smki-device", device_csr(random_eui64()), approved_by="test"))
    run = mpki("ca", "list")
    assert run.returncode == 0, run.stderr
    for name in DEV_CAS:
        assert name in run.stdout
    run = mpki("cert", "list")
    assert run.returncode == 0, run.stderr
    assert "smki-device" in run.stdout


# ----- HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def client(authority: CertificationAuthority) -> TestClient:
    return TestClient(create_app(authority))


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["cas"] == len(DEV_CAS)


def test_api_lists_cas(client: TestClient, authority: CertificationAuthority) -> None:
    response = client.get("/api/v1/cas")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    cas = response.json()
    assert {ca["name"] for ca in cas} == set(DEV_CAS)
    for ca in cas:
        assert {"name", "subject", "profile"} <= ca.keys()
        assert ca["profile"] == DEV_CAS[ca["name"]][0]
    assert cas == [view.as_json() for view in authority.list_cas()]

    response = client.get("/api/v1/cas/smki-device-ca")
    assert response.status_code == 200
    assert response.json()["subject"] == "CN=mpki Dev Device CA,OU=07"


def test_unknown_ca_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/cas/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert "nope" in problem["detail"]
    assert problem["type"] == "about:blank"


def test_exported_pem_matches_stored_der(authority: CertificationAuthority, mpki) -> None:  # type: ignore[no-untyped-def]
    run = mpki("ca", "export", "tls-issuing", "--chain")
    assert run.returncode == 0, run.stderr
    exported = [c.public_bytes(serialization.Encoding.DER) for c in _pems(run.stdout)]
    assert exported == [view.certificate_der for view in authority.chain("tls-issuing")]


def test_unwritable_out_path_is_refused_before_issuing(authority: CertificationAuthority, mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(random_eui64()))
    run = mpki("issue", "--profile", "smki-device", "--csr", str(csr), "--out", str(tmp_path / "no" / "such.pem"))
    assert run.returncode != 0
    assert "no such directory" in _error_line(run.stderr)
    assert authority.list_certificates() == []
