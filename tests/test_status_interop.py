"""Certificate status against real clients (issue 5): a real `mpki serve`, asked by `openssl ocsp`, its CRLs
and ARLs checked by `openssl verify -crl_check[_all]`, and every CRL, ARL, delta CRL and OCSP response
linted by pkilint, for the SMKI and the TLS hierarchy, on SQLite and PostgreSQL.

One server per backend runs the whole story (setting it up costs more than all the checks): status
before a revocation, the revocation through the API, the CRL re-issued at once, OCSP saying so (with and
without a nonce, one certificate or several, GET or POST), CA revocation under dual control, the ARL
saying so. In process, `-crl_check_all` over the whole TLS chain shows a root's ARL covers the root too.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc6960

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.config import load_settings
from mpki.domain import Role
from mpki.ra import OPERATOR, Directory
from mpki.status import StatusService
from tests.csr_factory import org_csr, random_eui64, tls_client_csr, tls_server_csr
from tests.support import serve
from tests.support.openssl import OcspResult, ocsp_query, openssl, verify
from tests.support.pkilint_check import lint_crl, lint_ocsp_response

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PROBLEM = "application/problem+json"
NO_NONCE_WARNING = "WARNING: no nonce in response"
# Organisation certificates revoked for each end-entity reason but certificateHold (SMKI profiles refuse
# it); org6 stays good. cryptography's name for each reason as it reads the CRL entry.
ORG_REASONS = {
    "org0": ("keyCompromise", x509.ReasonFlags.key_compromise),
    "org1": ("affiliationChanged", x509.ReasonFlags.affiliation_changed),
    "org2": ("superseded", x509.ReasonFlags.superseded),
    "org3": ("cessationOfOperation", x509.ReasonFlags.cessation_of_operation),
    "org4": ("privilegeWithdrawn", x509.ReasonFlags.privilege_withdrawn),
    "org5": ("unspecified", None),  # RFC 5280 5.3.1: reasonCode SHOULD be absent for unspecified
}
CA_NAMES = ("smki-root", "smki-org-ca", "smki-device-ca", "tls-root", "tls-issuing")


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def crl_pem(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)


def lint_cli(work: Path, *commands: tuple[str, ...]) -> None:
    """pkilint's console scripts as the issue names them (`lint_crl lint ...`, `lint_ocsp_response lint ...`),
    side by side; each exits with the number of findings at or above its `-s` severity."""
    running = [
        (
            command,
            subprocess.Popen(
                [str(Path(sys.executable).with_name(command[0])), "lint", *command[1:]],
                cwd=work,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for command in commands
    ]
    for command, process in running:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f"{' '.join(command)}: {output}"


def crl_extension(crl: x509.CertificateRevocationList, kind: type[Any]) -> Any:
    return crl.extensions.get_extension_for_class(kind).value


def entry_reason(crl: x509.CertificateRevocationList, serial: int) -> x509.ReasonFlags | None:
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None, f"serial {serial:x} is not on the CRL"
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


@dataclass
class Site:
    """A running `mpki serve` with a development hierarchy, its people, and certificates on disk."""

    base: str
    work: Path
    http: httpx.Client
    tokens: dict[str, str]
    certs: dict[str, x509.Certificate]  # label -> certificate, also in work/{label}.pem

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def write(self, name: str, data: bytes) -> str:
        (self.work / name).write_bytes(data)
        return name

    def crl(self, filename: str, **headers: str) -> tuple[httpx.Response, x509.CertificateRevocationList | None]:
        response = self.http.get(f"/crl/{filename}", headers=headers)
        if response.status_code != 200:
            return response, None
        assert response.headers["content-type"] == "application/pkix-crl"
        return response, x509.load_der_x509_crl(response.content)

    def revoke(self, label: str, reason: str) -> dict[str, Any]:
        serial = f"{self.certs[label].serial_number:x}"
        response = self.http.post(
            f"/api/v1/certificates/{serial}/revoke", headers=self.auth("agent"), json={"reason": reason}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["serials"] == [serial] and body["reason"] == reason and body["warnings"] == [], body
        return body

    def revoke_ca(self, name: str, reason: str) -> None:
        """Dual control: one service administrator proposes, the same one cannot approve, another does."""
        proposed = self.http.post(
            f"/api/v1/cas/{name}/revocations", headers=self.auth("admin1"), json={"reason": reason}
        )
        assert proposed.status_code == 202, proposed.text
        proposal = proposed.json()
        assert proposal["status"] == "pending" and proposal["ca"] == name
        own = self.http.post(f"/api/v1/ca-revocations/{proposal['id']}/approve", headers=self.auth("admin1"))
        assert own.status_code == 400 and "dual control" in own.json()["detail"], own.text
        approved = self.http.post(f"/api/v1/ca-revocations/{proposal['id']}/approve", headers=self.auth("admin2"))
        assert approved.status_code == 200, approved.text
        assert approved.json()["reason"] == reason and approved.json()["crls_published"], approved.json()

    def ocsp(self, issuer: str, *labels: str, **options: Any) -> OcspResult:
        return ocsp_query(
            self.work, f"{self.base}/ocsp", f"{issuer}.pem", certs=[f"{c}.pem" for c in labels], **options
        )


def issue_certificates(authority: CertificationAuthority) -> dict[str, x509.Certificate]:
    orders = [IssuanceOrder("smki-org", org_csr(random_eui64()), "test") for _ in range(7)]
    orders += [IssuanceOrder("tls-server", tls_server_csr((f"s{i}.example.test",)), "test") for i in range(5)]
    orders.append(IssuanceOrder("tls-client", tls_client_csr("client.example.test"), "test"))
    labels = [f"org{i}" for i in range(7)] + [f"tls{i}" for i in range(5)] + ["client0"]
    issued = {}
    for label, result in zip(labels, authority.issue_many(orders, actor="test"), strict=True):
        assert result.certificate is not None, result.error
        issued[label] = x509.load_der_x509_certificate(result.certificate.der)
    return issued


@pytest.fixture
def site(mpki, env: dict[str, str], tmp_path: Path) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    """`mpki init --dev` with MPKI_PUBLIC_URL = the server's own address (so TLS certificates' CDP and AIA
    point at it), certificates and people made in process, then `mpki serve` on that address."""
    port = serve.free_port()
    base = f"http://127.0.0.1:{port}"
    env["MPKI_PUBLIC_URL"] = base
    mpki("init", "--dev", check=True)
    work = tmp_path / "work"
    work.mkdir()
    authority = open_authority(load_settings(env))
    try:
        certs = issue_certificates(authority)
        for name in CA_NAMES:
            certs[name] = x509.load_der_x509_certificate(authority.get_ca(name).certificate_der)
        directory = Directory(authority.database)
        tokens = {}
        for who, role in (("agent", Role.RA_AGENT), ("admin1", Role.SERVICE_ADMIN), ("admin2", Role.SERVICE_ADMIN)):
            directory.create_person(OPERATOR, f"{who}@provider.example", role, None)
            tokens[who] = directory.create_token(OPERATOR, f"{who}@provider.example")
    finally:
        authority.database.dispose()
    for label, certificate in certs.items():
        (work / f"{label}.pem").write_bytes(pem(certificate))
    with (
        mock.patch.object(serve, "free_port", return_value=port),
        serve.running_server(env, tmp_path / "serve.log") as started,
        httpx.Client(base_url=started, timeout=30) as http,
    ):
        assert started == base
        # `mpki init` publishes no CRL: the server's first upkeep round does, just after it starts.
        deadline = time.monotonic() + 60
        for name in CA_NAMES:
            while http.get(f"/crl/{name}-delta.crl").status_code != 200:
                assert time.monotonic() < deadline, f"no CRL for {name} a minute after the server started"
                time.sleep(0.1)
        yield Site(base, work, http, tokens, certs)


def check_good_with_nonce(site: Site, issuer: str, label: str, ca_file: str) -> OcspResult:
    answer = site.ocsp(issuer, label, ca_file=ca_file, respout=f"{label}-good.ocsp")
    assert answer.returncode == 0 and answer.verified, answer.text
    assert answer.status(f"{label}.pem") == "good", answer.text
    assert f"{label}.pem: good" in answer.stdout
    assert answer.request_nonce and answer.request_nonce == answer.response_nonce, answer.text
    assert NO_NONCE_WARNING not in answer.text
    return answer


def check_revoked_with_nonce(site: Site, issuer: str, label: str, ca_file: str, reason: str) -> OcspResult:
    answer = site.ocsp(issuer, label, ca_file=ca_file, respout=f"{label}-revoked.ocsp")
    assert answer.returncode == 0 and answer.verified, answer.text
    assert answer.status(f"{label}.pem") == "revoked", answer.text
    assert answer.statuses[f"{label}.pem"].get("Reason") == reason, answer.text
    assert "Revocation Time" in answer.statuses[f"{label}.pem"]
    assert answer.request_nonce and answer.request_nonce == answer.response_nonce, answer.text
    assert NO_NONCE_WARNING not in answer.text
    return answer


def check_crl_caching(site: Site, filename: str) -> tuple[str, x509.CertificateRevocationList]:
    """Cache-Control with a bounded max-age, ETag, and If-None-Match -> 304 without a body."""
    response, crl = site.crl(filename)
    assert response.status_code == 200 and crl is not None, response.text
    max_age = re.search(r"max-age=(\d+)", response.headers["cache-control"])
    assert max_age and 0 < int(max_age.group(1)) <= 300, response.headers
    assert "public" in response.headers["cache-control"]
    etag = response.headers["etag"]
    assert etag and response.headers["last-modified"] and response.headers["expires"]
    again, _ = site.crl(filename, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    return etag, crl


def test_status_with_openssl_and_pkilint(site: Site) -> None:
    work, certs = site.work, site.certs
    (work / "smki-bundle-0.pem").write_bytes(pem(certs["smki-root"]) + pem(certs["smki-org-ca"]))

    # ----- SMKI: before any revocation ----------------------------------------------------------
    good = check_good_with_nonce(site, "smki-org-ca", "org0", "smki-root.pem")
    assert good.request_nonce and good.request_nonce.startswith("0410")  # openssl's 16-octet nonce
    etag, crl = check_crl_caching(site, "smki-org-ca.crl")
    number_before = crl_extension(crl, x509.CRLNumber).crl_number
    idp = crl_extension(crl, x509.IssuingDistributionPoint)
    assert idp.only_contains_user_certs and not idp.only_contains_ca_certs and idp.full_name is None
    with pytest.raises(x509.ExtensionNotFound):  # SMKI certificates carry no CDP: the IDP names none
        certs["org0"].extensions.get_extension_for_class(x509.CRLDistributionPoints)
    (work / "smki-bundle-1.pem").write_bytes(
        (work / "smki-bundle-0.pem").read_bytes() + crl_pem(site.crl("smki-org-ca.crl")[0].content)
    )
    assert verify(work, "smki-bundle-1.pem", "org0.pem").ok

    # ----- a revocation through the API: CRL and OCSP re-issued at once ---------------------------
    revoked = site.revoke("org0", "keyCompromise")
    assert any(p.startswith("smki-org-ca#") for p in revoked["crls_published"]), revoked
    stale, _ = site.crl("smki-org-ca.crl", **{"If-None-Match": etag})
    assert stale.status_code == 200 and stale.headers["etag"] != etag
    etag_after, crl = check_crl_caching(site, "smki-org-ca.crl")
    assert etag_after == stale.headers["etag"]
    number_after = crl_extension(crl, x509.CRLNumber).crl_number
    assert number_after > number_before
    assert entry_reason(crl, certs["org0"].serial_number) == x509.ReasonFlags.key_compromise
    _, delta = site.crl("smki-org-ca-delta.crl")
    assert delta is not None
    assert crl_extension(delta, x509.DeltaCRLIndicator).crl_number == number_after
    assert crl_extension(delta, x509.CRLNumber).crl_number > number_after
    assert entry_reason(delta, certs["org0"].serial_number) == x509.ReasonFlags.key_compromise

    check_revoked_with_nonce(site, "smki-org-ca", "org0", "smki-root.pem", "keyCompromise")
    # Without a nonce the answer is the one signed at revocation, served from memory: the same bytes twice.
    asked_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    plain = [
        site.ocsp("smki-org-ca", "org0", ca_file="smki-root.pem", nonce=False, respout=f"plain{i}.ocsp") for i in (1, 2)
    ]
    for answer in plain:
        assert answer.verified and answer.status("org0.pem") == "revoked", answer.text
        assert answer.request_nonce is None and answer.response_nonce is None, answer.text
    first, second = ((work / f"plain{i}.ocsp").read_bytes() for i in (1, 2))
    assert first == second, "a request without a nonce is answered from the pre-signed response"
    presigned = ocsp.load_der_ocsp_response(first)
    assert presigned.produced_at_utc <= asked_at and presigned.revocation_reason == x509.ReasonFlags.key_compromise

    for label, (reason, _) in ORG_REASONS.items():
        if label != "org0":
            site.revoke(label, reason)
    _, full = site.crl("smki-org-ca.crl")
    assert full is not None and crl_extension(full, x509.CRLNumber).crl_number > number_after
    for label, (_, flag) in ORG_REASONS.items():
        assert entry_reason(full, certs[label].serial_number) == flag, label
    assert full.get_revoked_certificate_by_serial_number(certs["org6"].serial_number) is None
    smki_crl = site.write("smki-org-ca.crl", site.crl("smki-org-ca.crl")[0].content)
    smki_delta = site.write("smki-org-ca-delta.crl", site.crl("smki-org-ca-delta.crl")[0].content)
    (work / "smki-bundle-2.pem").write_bytes(
        (work / "smki-bundle-0.pem").read_bytes() + crl_pem((work / smki_crl).read_bytes())
    )
    for label in ORG_REASONS:
        outcome = verify(work, "smki-bundle-2.pem", f"{label}.pem")
        assert outcome.revoked and "error 23 at 0 depth" in outcome.output, outcome.output
    assert verify(work, "smki-bundle-2.pem", "org6.pem").ok

    # ----- OCSP: unknown, not ours, malformed, GET, wrong method and media type -------------------
    stranger = f"0x{x509.random_serial_number():x}"
    unknown = ocsp_query(
        work,
        f"{site.base}/ocsp",
        "smki-org-ca.pem",
        serials=[stranger],
        ca_file="smki-root.pem",
        respout="unknown.ocsp",
    )
    assert unknown.verified and unknown.status(stranger) == "unknown", unknown.text
    assert unknown.request_nonce == unknown.response_nonce
    made = openssl(
        work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        "foreign.key", "-out", "foreign.pem", "-subj", "/CN=Not Our CA", "-days", "2",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    foreign = ocsp_query(work, f"{site.base}/ocsp", "foreign.pem", serials=["0x1234"])
    assert "Responder Error: unauthorized (6)" in foreign.text, foreign.text
    request = ocsp.OCSPRequestBuilder().add_certificate(certs["org6"], certs["smki-org-ca"], hashes.SHA1()).build()
    request_der = request.public_bytes(Encoding.DER)
    for garbage in (b"garbage", b"", b"\x30\x03\x02\x01\x00", request_der[:-3], request_der + b"\x00"):
        reply = site.http.post("/ocsp", content=garbage, headers={"Content-Type": OCSP_REQUEST})
        assert reply.status_code == 200 and reply.headers["content-type"] == OCSP_RESPONSE, (garbage, reply.text)
        assert ocsp.load_der_ocsp_response(reply.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # A CertID hashed with an algorithm cryptography lacks (MD5): an OCSP error, never an HTTP 500.
    md5_request, _ = decoder.decode(request_der, asn1Spec=rfc6960.OCSPRequest())
    md5_request["tbsRequest"]["requestList"][0]["reqCert"]["hashAlgorithm"]["algorithm"] = univ.ObjectIdentifier(
        "1.2.840.113549.2.5"
    )
    reply = site.http.post("/ocsp", content=encoder.encode(md5_request), headers={"Content-Type": OCSP_REQUEST})
    assert reply.status_code == 200 and reply.headers["content-type"] == OCSP_RESPONSE, reply.text
    assert ocsp.load_der_ocsp_response(reply.content).response_status in (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )
    encoded = base64.urlsafe_b64encode(request_der).decode().rstrip("=")
    got = site.http.get(f"/ocsp/{encoded}")
    assert got.status_code == 200 and got.headers["content-type"] == OCSP_RESPONSE
    max_age = re.search(r"max-age=(\d+)", got.headers["cache-control"])
    assert max_age and int(max_age.group(1)) > 0, got.headers
    answer_get = ocsp.load_der_ocsp_response(got.content)
    assert answer_get.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer_get.serial_number == certs["org6"].serial_number
    site.write("get.ocsp", got.content)
    checked = ocsp_query(
        work, None, "smki-org-ca.pem", certs=["org6.pem"], ca_file="smki-root.pem", nonce=False, respin="get.ocsp"
    )
    assert checked.verified and checked.status("org6.pem") == "good", checked.text
    padded = quote(base64.b64encode(request_der).decode(), safe="")  # RFC 6960 A.1: base64, URL-encoded
    assert site.http.get(f"/ocsp/{padded}").content == got.content
    assert site.http.get("/ocsp/%%%not-base64").headers["content-type"] == OCSP_RESPONSE
    wrong_type = site.http.post("/ocsp", content=request_der, headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415 and wrong_type.headers["content-type"].startswith(PROBLEM)
    assert wrong_type.json()["status"] == 415
    put = site.http.put("/ocsp", content=request_der, headers={"Content-Type": OCSP_REQUEST})
    assert put.status_code == 405 and put.headers["content-type"].startswith(PROBLEM), put.text
    assert {m.strip() for m in put.headers["allow"].split(",")} == {"GET", "POST"}

    # ----- SMKI ARL: the Organisation CA revoked under dual control --------------------------------
    _, arl = site.crl("smki-root.crl")
    assert arl is not None and len(arl) == 0
    arl_idp = crl_extension(arl, x509.IssuingDistributionPoint)
    assert arl_idp.only_contains_ca_certs and not arl_idp.only_contains_user_certs and arl_idp.full_name is None
    smki_all = (work / "smki-bundle-2.pem").read_bytes()
    (work / "smki-all-0.pem").write_bytes(smki_all + crl_pem(site.crl("smki-root.crl")[0].content))
    assert verify(work, "smki-all-0.pem", "org6.pem", check_all=True).ok
    site.revoke_ca("smki-org-ca", "cACompromise")
    _, arl = site.crl("smki-root.crl")
    assert arl is not None and entry_reason(arl, certs["smki-org-ca"].serial_number) == x509.ReasonFlags.ca_compromise
    smki_arl = site.write("smki-root.crl", site.crl("smki-root.crl")[0].content)
    (work / "smki-all-1.pem").write_bytes(smki_all + crl_pem((work / smki_arl).read_bytes()))
    outcome = verify(work, "smki-all-1.pem", "org6.pem", check_all=True)
    assert outcome.revoked and "error 23 at 1 depth" in outcome.output, outcome.output
    assert verify(work, "smki-all-1.pem", "org6.pem").ok, "without -crl_check_all the ARL is not consulted"
    check_revoked_with_nonce(site, "smki-root", "smki-org-ca", "smki-root.pem", "cACompromise")

    # ----- TLS: CDP in the certificate == IDP in the CRL; holds; the issuing CA revoked ---------------
    cdp = certs["tls0"].extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name for p in cdp] == [[x509.UniformResourceIdentifier(f"{site.base}/crl/tls-issuing.crl")]]
    aia = certs["tls0"].extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
    assert ocsp_urls == [f"{site.base}/ocsp"]
    _, tls_crl = site.crl("tls-issuing.crl")
    assert tls_crl is not None
    tls_idp = crl_extension(tls_crl, x509.IssuingDistributionPoint)
    assert tls_idp.full_name == cdp[0].full_name and tls_idp.only_contains_user_certs
    tls_chain = pem(certs["tls-root"]) + pem(certs["tls-issuing"])
    (work / "tls-bundle-1.pem").write_bytes(tls_chain + crl_pem(site.crl("tls-issuing.crl")[0].content))
    for label in ("tls0", "tls1", "client0"):
        assert verify(work, "tls-bundle-1.pem", f"{label}.pem").ok, label
    check_good_with_nonce(site, "tls-issuing", "tls0", "tls-root.pem")

    site.revoke("tls0", "keyCompromise")
    site.revoke("tls1", "certificateHold")
    site.revoke("tls2", "superseded")
    site.revoke("tls3", "certificateHold")
    released = site.http.post(
        f"/api/v1/certificates/{certs['tls3'].serial_number:x}/release-hold", headers=site.auth("agent")
    )
    assert released.status_code == 200, released.text
    check_revoked_with_nonce(site, "tls-issuing", "tls0", "tls-root.pem", "keyCompromise")
    check_revoked_with_nonce(site, "tls-issuing", "tls1", "tls-root.pem", "certificateHold")
    check_good_with_nonce(site, "tls-issuing", "tls3", "tls-root.pem")
    # Several certificates in one request (pyasn1 parses it, the answer is signed on the spot).
    multi = site.ocsp(
        "tls-issuing", "tls0", "tls1", "tls4", serials=[stranger], ca_file="tls-root.pem", respout="multi.ocsp"
    )
    assert multi.returncode == 0 and multi.verified, multi.text
    assert [multi.status(f"{c}.pem") for c in ("tls0", "tls1", "tls4")] == ["revoked", "revoked", "good"]
    assert multi.status(stranger) == "unknown", multi.text
    assert multi.statuses["tls0.pem"]["Reason"] == "keyCompromise"
    assert multi.statuses["tls1.pem"]["Reason"] == "certificateHold"
    assert multi.request_nonce and multi.request_nonce == multi.response_nonce and NO_NONCE_WARNING not in multi.text
    assert len(list(ocsp.load_der_ocsp_response((work / "multi.ocsp").read_bytes()).responses)) == 4
    _, tls_crl = site.crl("tls-issuing.crl")
    assert tls_crl is not None
    assert entry_reason(tls_crl, certs["tls1"].serial_number) == x509.ReasonFlags.certificate_hold
    assert tls_crl.get_revoked_certificate_by_serial_number(certs["tls3"].serial_number) is None
    _, tls_delta = site.crl("tls-issuing-delta.crl")
    assert tls_delta is not None
    assert entry_reason(tls_delta, certs["tls3"].serial_number) == x509.ReasonFlags.remove_from_crl
    tls_crl_file = site.write("tls-issuing.crl", site.crl("tls-issuing.crl")[0].content)
    tls_delta_file = site.write("tls-issuing-delta.crl", site.crl("tls-issuing-delta.crl")[0].content)
    (work / "tls-bundle-2.pem").write_bytes(tls_chain + crl_pem((work / tls_crl_file).read_bytes()))
    for label in ("tls0", "tls1", "tls2"):
        assert verify(work, "tls-bundle-2.pem", f"{label}.pem").revoked, label
    for label in ("tls3", "tls4", "client0"):
        assert verify(work, "tls-bundle-2.pem", f"{label}.pem").ok, label

    _, tls_arl = site.crl("tls-root.crl")
    assert tls_arl is not None and len(tls_arl) == 0
    arl_idp = crl_extension(tls_arl, x509.IssuingDistributionPoint)
    # A root's ARL names no distribution point, so it also covers the self-signed root, which
    # `-crl_check_all` checks too (test_tls_arl_covers_its_own_root).
    assert arl_idp.only_contains_ca_certs and arl_idp.full_name is None
    (work / "tls-arl-0.pem").write_bytes(pem(certs["tls-root"]) + crl_pem(site.crl("tls-root.crl")[0].content))
    assert verify(work, "tls-arl-0.pem", "tls-issuing.pem").ok, "the issuing CA, checked against the ARL"
    site.revoke_ca("tls-issuing", "keyCompromise")
    tls_arl_file = site.write("tls-root.crl", site.crl("tls-root.crl")[0].content)
    _, tls_arl = site.crl("tls-root.crl")
    assert tls_arl is not None
    assert entry_reason(tls_arl, certs["tls-issuing"].serial_number) == x509.ReasonFlags.key_compromise
    (work / "tls-arl-1.pem").write_bytes(pem(certs["tls-root"]) + crl_pem((work / tls_arl_file).read_bytes()))
    outcome = verify(work, "tls-arl-1.pem", "tls-issuing.pem")
    assert outcome.revoked and "error 23 at 0 depth" in outcome.output, outcome.output
    (work / "tls-all-1.pem").write_bytes(
        (work / "tls-bundle-2.pem").read_bytes() + crl_pem((work / tls_arl_file).read_bytes())
    )
    outcome = verify(work, "tls-all-1.pem", "tls4.pem", check_all=True)
    assert outcome.revoked and "error 23 at 1 depth" in outcome.output, outcome.output

    # ----- pkilint: every CRL, ARL and delta CRL, and the OCSP responses ---------------------------
    # The issue's commands for one of each kind; every file through tests/support/pkilint_check.py (the
    # same validators in process). pkilint 0.13 has CRL and ARL types only: a delta CRL is linted as a
    # CRL (its deltaCRLIndicator is decoded and checked as an extension; nothing delta-specific is checked).
    lint_cli(
        work,
        ("lint_crl", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", smki_crl),  # six reasons
        ("lint_crl", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", tls_delta_file),  # a delta, with removeFromCRL
        ("lint_crl", "-t", "ARL", "-p", "PKIX", "-s", "WARNING", tls_arl_file),  # a revoked CA
        ("lint_ocsp_response", "-s", "WARNING", "org0-revoked.ocsp"),  # revoked, with a nonce
    )
    for crl_file in (smki_crl, smki_delta, tls_crl_file, tls_delta_file):
        assert lint_crl((work / crl_file).read_bytes(), "CRL", "WARNING") == [], crl_file
    for arl_file in (smki_arl, tls_arl_file):
        assert lint_crl((work / arl_file).read_bytes(), "ARL", "WARNING") == [], arl_file
    # good and revoked (with nonces), unknown, pre-signed without a nonce, GET, several certificates
    for response_file in (
        "tls0-good.ocsp",
        "org0-revoked.ocsp",
        "tls1-revoked.ocsp",
        "unknown.ocsp",
        "plain1.ocsp",
        "get.ocsp",
        "multi.ocsp",
    ):
        assert lint_ocsp_response((work / response_file).read_bytes(), "WARNING") == [], response_file


# ----- in process: the whole TLS chain, root included -------------------------------------------------


def test_tls_arl_covers_its_own_root(authority: CertificationAuthority, tmp_path: Path) -> None:
    """`openssl verify -crl_check_all` checks every certificate of the chain, the self-signed root too."""
    [issued] = authority.issue_many([IssuanceOrder("tls-server", tls_server_csr(), "test")], actor="test")
    assert issued.certificate is not None
    (tmp_path / "leaf.pem").write_bytes(pem(x509.load_der_x509_certificate(issued.certificate.der)))
    status = StatusService(authority)
    bundle = b""
    for name in ("tls-root", "tls-issuing"):
        bundle += pem(x509.load_der_x509_certificate(authority.get_ca(name).certificate_der))
        bundle += crl_pem(status.crls.publish(name).der)
    (tmp_path / "tls-all.pem").write_bytes(bundle)
    outcome = verify(tmp_path, "tls-all.pem", "leaf.pem", check_all=True)
    assert outcome.ok, outcome.output
