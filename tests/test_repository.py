"""The public repository in-process: search by every filter and combinations, keyset pages, downloads
(certificate, chain, CA certificates) that parse and match, CRL listing, the HTML page (results,
escaping, accessibility basics), no login anywhere, and problem+json for bad input."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID
from fastapi.testclient import TestClient
from sqlalchemy import text

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.domain import RevocationReason
from mpki.ra import OPERATOR, Directory
from mpki.status import StatusService
from mpki.store import CertificateCriteria, RepositoryQueries
from mpki.web import create_app
from tests.csr_factory import device_csr, org_csr, tls_server_csr

PROBLEM = "application/problem+json"
EUI_A = "90B3D51F30010000"  # Acme Energy's entity identifier: its org certificates and one device share it
EUI_B = "90B3D51F30020000"
DEVICE = "0011223344556677"


@dataclass
class World:
    client: TestClient
    authority: CertificationAuthority
    status: StatusService
    org_ids: dict[str, int]
    serials: dict[str, str]  # label -> serial

    def find(self, **params: Any) -> set[str]:
        """Labels of the certificates a JSON search returns (one page of up to 1000)."""
        response = self.client.get("/api/v1/repository", params=params | {"limit": 1000})
        assert response.status_code == 200, response.text
        by_serial = {serial: label for label, serial in self.serials.items()}
        return {by_serial[item["serial"]] for item in response.json()["items"]}


@pytest.fixture
def world(authority: CertificationAuthority) -> Iterator[World]:
    """Two organisations and their certificates:

    org-a       smki-org   Acme (supplier, 02)        EUI_A   digitalSignature
    org-a-ka    smki-org   Acme (supplier, 02)        EUI_A   keyAgreement     superseded
    dev-a       smki-device Acme                      EUI_A   digitalSignature (same EUI as Acme's subject)
    dev-ds      smki-device Acme                      DEVICE  digitalSignature
    dev-ka      smki-device Beta                      DEVICE  keyAgreement     revoked (keyCompromise)
    org-b       smki-org   Beta (network-operator 03) EUI_B   digitalSignature
    tls         tls-server  no organisation
    """
    directory = Directory(authority.database)
    acme = directory.create_organisation(OPERATOR, "Acme Energy", [EUI_A], ["supplier"]).id
    beta = directory.create_organisation(OPERATOR, "Beta Networks", [EUI_B], ["network-operator"]).id
    a, b, d = bytes.fromhex(EUI_A), bytes.fromhex(EUI_B), bytes.fromhex(DEVICE)
    orders = {
        "org-a": IssuanceOrder("smki-org", org_csr(a, "02"), "t", organisation_id=acme),
        "org-a-ka": IssuanceOrder("smki-org", org_csr(a, "02", "keyAgreement"), "t", organisation_id=acme),
        "dev-a": IssuanceOrder("smki-device", device_csr(a), "t", organisation_id=acme),
        "dev-ds": IssuanceOrder("smki-device", device_csr(d, "digitalSignature"), "t", organisation_id=acme),
        "dev-ka": IssuanceOrder("smki-device", device_csr(d, "keyAgreement"), "t", organisation_id=beta),
        "org-b": IssuanceOrder("smki-org", org_csr(b, "03"), "t", organisation_id=beta),
        "tls": IssuanceOrder("tls-server", tls_server_csr(), "t"),
    }
    serials = {label: authority.issue(order).serial for label, order in orders.items()}
    authority.supersede(serials["org-a-ka"], by_serial=serials["org-a"], actor="t")
    status = StatusService(authority)
    status.revocations.revoke([serials["dev-ka"]], RevocationReason.KEY_COMPROMISE, actor="t")
    with TestClient(create_app(authority, start_worker=False)) as client:
        yield World(client, authority, status, {"acme": acme, "beta": beta}, serials)


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def local(url: str) -> str:
    """The path and query of an absolute link (JSON links are under the public URL, not the test host)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# ----- search ---------------------------------------------------------------------------------------


ALL = {"org-a", "org-a-ka", "dev-a", "dev-ds", "dev-ka", "org-b", "tls"}


def test_each_filter_finds_exactly_its_certificates(world: World) -> None:
    serial = world.serials["dev-ds"]
    assert world.find(serial=serial) == {"dev-ds"}
    assert world.find(serial=serial.upper()) == {"dev-ds"}
    assert world.find(serial="0x" + serial) == {"dev-ds"}
    padded = serial.rjust(len(serial) + len(serial) % 2, "0")
    assert world.find(serial=":".join(padded[i : i + 2] for i in range(0, len(padded), 2))) == {"dev-ds"}
    # An EUI-64 finds organisation certificates (subject) and device certificates (SAN) alike.
    assert world.find(eui64=EUI_A) == {"org-a", "org-a-ka", "dev-a"}
    assert world.find(eui64=EUI_A.lower()) == {"org-a", "org-a-ka", "dev-a"}
    assert world.find(eui64="00-11-22-33-44-55-66-77") == {"dev-ds", "dev-ka"}
    assert world.find(organisation="Acme Energy") == {"org-a", "org-a-ka", "dev-a", "dev-ds"}
    assert world.find(organisation="Beta Networks") == {"dev-ka", "org-b"}
    assert world.find(role="supplier") == {"org-a", "org-a-ka"}
    assert world.find(role="02") == {"org-a", "org-a-ka"}
    assert world.find(role="network-operator") == {"org-b"}
    assert world.find(role="wan-provider") == set()
    assert world.find(key_usage="keyAgreement") == {"org-a-ka", "dev-ka"}
    assert world.find(key_usage="digitalsignature") == {"org-a", "dev-a", "dev-ds", "org-b"}
    assert world.find(status="revoked") == {"dev-ka"}
    assert world.find(status="superseded") == {"org-a-ka"}
    assert world.find(status="issued") == ALL - {"dev-ka", "org-a-ka"}
    assert world.find() == ALL
    # Empty values (an HTML form's untouched fields) are no filter at all.
    assert world.find(serial="", eui64=" ", organisation="", role="", key_usage="", status="") == ALL


def test_filters_combine(world: World) -> None:
    assert world.find(eui64=DEVICE, key_usage="keyAgreement") == {"dev-ka"}
    assert world.find(eui64=EUI_A, role="supplier", key_usage="digitalSignature") == {"org-a"}
    assert world.find(organisation="Acme Energy", status="superseded") == {"org-a-ka"}
    assert world.find(organisation="Beta Networks", role="network-operator") == {"org-b"}
    assert world.find(organisation="Acme Energy", eui64=DEVICE) == {"dev-ds"}
    assert world.find(organisation="Beta Networks", eui64=EUI_A) == set()
    assert world.find(serial=world.serials["tls"], status="revoked") == set()


def test_views_carry_names_and_absolute_links(world: World) -> None:
    [item] = world.client.get("/api/v1/repository", params={"serial": world.serials["org-b"]}).json()["items"]
    assert item["ca"] == "smki-org-ca" and item["issuer"].startswith("CN=")
    assert (item["eui64"], item["role_code"], item["role"]) == (EUI_B, "03", "network-operator")
    assert (item["organisation"], item["profile"], item["key_usage"]) == (
        "Beta Networks",
        "smki-org",
        "digitalSignature",
    )
    assert item["status"] == "issued" and item["revoked_at"] is None and item["expired"] is False
    public = world.authority.settings.public_url.rstrip("/")
    assert all(url.startswith(public + "/") for url in item["links"].values())
    assert item["links"]["issuer"] == f"{public}/repository/cas/smki-org-ca.crt"
    assert world.client.get(local(item["links"]["self"])).json()["serial"] == item["serial"]
    [device] = world.client.get("/api/v1/repository", params={"serial": world.serials["dev-a"]}).json()["items"]
    assert device["subject"] == "" and device["role"] is None and device["organisation"] == "Acme Energy"


def test_keyset_pages_walk_everything_once_in_order(world: World) -> None:
    for params in ({}, {"organisation": "Acme Energy"}, {"eui64": EUI_A}):
        seen: list[str] = []
        after = 0
        for _ in range(10):
            body = world.client.get("/api/v1/repository", params=params | {"limit": 2, "after": after}).json()
            assert len(body["items"]) <= 2
            seen += [item["serial"] for item in body["items"]]
            if body["next_after"] is None:
                break
            assert len(body["items"]) == 2
            after = body["next_after"]
        full = [i["serial"] for i in world.client.get("/api/v1/repository", params=params).json()["items"]]
        assert seen == full and len(set(seen)) == len(seen)
        assert {label for label, s in world.serials.items() if s in seen} == world.find(**params)
    order = [world.serials[label] for label in ("org-a", "org-a-ka", "dev-a", "dev-ds", "dev-ka", "org-b", "tls")]
    assert [i["serial"] for i in world.client.get("/api/v1/repository").json()["items"]] == order


def test_revoked_certificates_show_reason_and_time(world: World) -> None:
    [item] = world.client.get("/api/v1/repository", params={"status": "revoked"}).json()["items"]
    assert item["serial"] == world.serials["dev-ka"]
    assert item["revocation_reason"] == "keyCompromise" and item["revoked_at"]
    one = world.client.get(f"/api/v1/repository/certificates/{world.serials['dev-ka']}").json()
    assert one["status"] == "revoked" and one["revocation_reason"] == "keyCompromise"
    assert x509.load_pem_x509_certificate(one["pem"].encode()).serial_number == int(world.serials["dev-ka"], 16)
    page = world.client.get("/repository", params={"status": "revoked"}).text
    assert "keyCompromise" in page and world.serials["dev-ka"] in page


# ----- downloads ------------------------------------------------------------------------------------


def test_certificate_downloads_parse_and_match(world: World) -> None:
    for label, serial in world.serials.items():
        stored = world.authority.find_certificate(serial).der
        pem = world.client.get(f"/repository/certificates/{serial}.pem")
        assert pem.status_code == 200, label
        assert pem.headers["content-type"] == "application/pem-certificate-chain"
        assert x509.load_pem_x509_certificate(pem.content).public_bytes(Encoding.DER) == stored
        der = world.client.get(
            f"/repository/certificates/{serial}.der", params={"ca": world.authority.find_certificate(serial).ca}
        )
        assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
        assert der.content == stored
        assert x509.load_der_x509_certificate(der.content).serial_number == int(serial, 16)
        assert f'filename="{serial}.der"' in der.headers["content-disposition"]


def test_chain_goes_from_leaf_to_a_self_signed_root(world: World) -> None:
    expected = {"org-a": "smki-org-ca", "dev-ds": "smki-device-ca", "tls": "tls-issuing"}
    for label, issuing in expected.items():
        response = world.client.get(f"/repository/certificates/{world.serials[label]}/chain.pem")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pem-certificate-chain"
        chain = x509.load_pem_x509_certificates(response.content)
        assert len(chain) == 3, label
        assert chain[0].serial_number == int(world.serials[label], 16)
        assert chain[1].public_bytes(Encoding.DER) == world.authority.get_ca(issuing).certificate_der
        for child, parent in itertools.pairwise(chain):
            assert child.issuer == parent.subject
            child.verify_directly_issued_by(parent)
        root = chain[-1]
        assert root.issuer == root.subject
        root.verify_directly_issued_by(root)


def test_ca_certificates_download_as_der_and_pem(world: World) -> None:
    listed = world.client.get("/api/v1/repository/cas").json()["items"]
    names = [ca["name"] for ca in listed]
    assert names == ["smki-root", "smki-org-ca", "smki-device-ca", "tls-root", "tls-issuing"]
    parents = {ca["name"]: ca["parent"] for ca in listed}
    assert parents["smki-org-ca"] == "smki-root" and parents["smki-root"] is None
    for name in names:
        stored = world.authority.get_ca(name).certificate_der
        crt = world.client.get(f"/repository/cas/{name}.crt")
        assert crt.status_code == 200 and crt.headers["content-type"] == "application/pkix-cert"
        assert crt.content == stored
        assert x509.load_der_x509_certificate(crt.content).fingerprint(hashes.SHA256()).hex() == (
            world.authority.get_ca(name).fingerprint_sha256
        )
        pem = world.client.get(f"/repository/cas/{name}.pem")
        assert x509.load_pem_x509_certificate(pem.content).public_bytes(Encoding.DER) == stored
        chain = x509.load_pem_x509_certificates(world.client.get(f"/repository/cas/{name}/chain.pem").content)
        assert chain[0].public_bytes(Encoding.DER) == stored
        assert chain[-1].issuer == chain[-1].subject


def test_ca_issuers_url_in_a_certificate_serves_its_issuer(world: World) -> None:
    tls = x509.load_der_x509_certificate(world.authority.find_certificate(world.serials["tls"]).der)
    aia = tls.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    [url] = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    issuer = x509.load_der_x509_certificate(world.client.get(local(url)).content)
    tls.verify_directly_issued_by(issuer)


def test_crls_are_listed_with_working_links(world: World) -> None:
    world.status.maintain()
    crls = world.client.get("/api/v1/repository/crls").json()["items"]
    kinds = {(crl["ca"], crl["kind"]): crl for crl in crls}
    assert kinds[("smki-root", "full")]["arl"] is True
    assert kinds[("smki-org-ca", "full")]["arl"] is False
    assert ("smki-device-ca", "delta") in kinds
    for crl in crls:
        response = world.client.get(local(crl["url"]))
        assert response.status_code == 200 and response.headers["content-type"] == "application/pkix-crl"
        number = x509.load_der_x509_crl(response.content).extensions.get_extension_for_class(x509.CRLNumber)
        assert number.value.crl_number == crl["number"]
    revoked = x509.load_der_x509_crl(world.client.get(local(kinds[("smki-device-ca", "full")]["url"])).content)
    assert revoked.get_revoked_certificate_by_serial_number(int(world.serials["dev-ka"], 16)) is not None
    page = world.client.get("/repository").text
    assert "/crl/smki-root.crl" in page and "ARL" in page and "/crl/smki-org-ca-delta.crl" in page


# ----- HTML -----------------------------------------------------------------------------------------


def test_html_page_renders_form_results_cas_and_crls(world: World) -> None:
    empty = world.client.get("/repository")
    assert empty.status_code == 200 and empty.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in empty.headers["content-security-policy"]
    assert "<script" not in empty.text
    for field in ("serial", "eui64", "organisation", "role", "key_usage", "status"):
        assert f'<label for="{field}">' in empty.text and f'id="{field}" name="{field}"' in empty.text
    assert 'href="/repository/cas/smki-root.crt"' in empty.text and "Results" not in empty.text
    page = world.client.get("/repository", params={"eui64": EUI_A, "role": "supplier"})
    assert page.status_code == 200
    assert "<caption" in page.text and '<th scope="col">' in page.text and '<th scope="row">' in page.text
    assert world.serials["org-a"] in page.text and world.serials["org-a-ka"] in page.text
    assert world.serials["dev-a"] not in page.text  # a device has no role
    assert f'href="/repository/certificates/{world.serials["org-a"]}.pem?ca=smki-org-ca"' in page.text
    assert '<option value="supplier" selected>' in page.text
    nothing = world.client.get("/repository", params={"serial": "abc"})
    assert nothing.status_code == 200 and "No certificate matches" in nothing.text


def test_html_page_links_to_the_next_page(world: World) -> None:
    first = world.client.get("/repository", params={"organisation": "Acme Energy", "limit": 3})
    [href] = re.findall(r'<a href="([^"]+)" rel="next">', first.text)
    assert href.startswith("/repository?") and "limit=3" in href and "after=" in href
    second = world.client.get(html.unescape(href))
    assert second.status_code == 200 and world.serials["dev-ds"] in second.text
    assert world.serials["org-a"] not in second.text and 'rel="next"' not in second.text


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"organisation": "<script>alert(1)</script>"}, 404),
        ({"serial": '"><img src=x onerror=alert(1)>'}, 400),
        ({"eui64": "<b>x</b>"}, 400),
        ({"role": "'><svg onload=alert(1)>"}, 400),
    ],
)
def test_html_page_escapes_what_it_echoes(world: World, params: dict[str, str], status: int) -> None:
    response = world.client.get("/repository", params=params)
    assert response.status_code == status and response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text
    for raw in ("<script>alert", "<img src", "<svg", "<b>x"):
        assert raw not in response.text
    assert "&lt;" in response.text


# ----- no login ---------------------------------------------------------------------------------------


def test_nothing_in_the_repository_needs_a_login(world: World) -> None:
    serial = world.serials["dev-ds"]
    paths = [
        "/repository",
        "/api/v1/repository",
        f"/api/v1/repository/certificates/{serial}",
        "/api/v1/repository/cas",
        "/api/v1/repository/crls",
        f"/repository/certificates/{serial}.pem",
        f"/repository/certificates/{serial}.der",
        f"/repository/certificates/{serial}/chain.pem",
        "/repository/cas/smki-root.crt",
        "/repository/cas/smki-root.pem",
        "/repository/cas/smki-device-ca/chain.pem",
    ]
    for path in paths:
        assert world.client.get(path).status_code == 200, path
    # ... while the authenticated API next door still asks for one.
    is_problem(world.client.get(f"/api/v1/certificates/{serial}"), 401)


# ----- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/api/v1/repository", {"serial": "xyz"}, 400, "not hexadecimal"),
        ("/api/v1/repository", {"serial": "0x"}, 400, "not hexadecimal"),
        ("/api/v1/repository", {"serial": "f" * 41}, 400, "20 octets"),
        ("/api/v1/repository", {"serial": "f" * 65}, 422, "serial"),
        ("/api/v1/repository", {"eui64": "90B3D51F3001"}, 400, "16 hex digits"),
        ("/api/v1/repository", {"eui64": "90B3D51F3001000G"}, 400, "not hexadecimal"),
        ("/api/v1/repository", {"eui64": "90B3D51F300100001"}, 400, "16 hex digits"),
        ("/api/v1/repository", {"role": "mayor"}, 400, "unknown remote-party role"),
        ("/api/v1/repository", {"role": "99"}, 400, "not a known RemotePartyRole"),
        ("/api/v1/repository", {"key_usage": "keyEncipherment"}, 400, "digitalSignature, keyAgreement"),
        ("/api/v1/repository", {"status": "expired"}, 400, "issued, revoked, superseded"),
        ("/api/v1/repository", {"organisation": "Nobody Ltd"}, 404, "no organisation named 'Nobody Ltd'"),
        ("/api/v1/repository", {"organisation": "x" * 129}, 422, "organisation"),
        ("/api/v1/repository", {"after": "-1"}, 422, "after"),
        ("/api/v1/repository", {"after": "abc"}, 422, "after"),
        ("/api/v1/repository", {"limit": "0"}, 422, "limit"),
        ("/api/v1/repository", {"limit": "1001"}, 422, "limit"),
        ("/api/v1/repository/certificates/zz", {}, 400, "not hexadecimal"),
        ("/api/v1/repository/certificates/abcdef", {}, 404, "no certificate with serial abcdef"),
        ("/repository/certificates/zz.pem", {}, 400, "not hexadecimal"),
        ("/repository/certificates/abcdef.der", {}, 404, "no certificate"),
        ("/repository/certificates/abcdef/chain.pem", {}, 404, "no certificate"),
        ("/repository/cas/nope.crt", {}, 404, "no CA named 'nope'"),
        ("/repository/cas/nope/chain.pem", {}, 404, "no CA named 'nope'"),
        ("/repository/certificates/SERIAL.pem", {"ca": "nope"}, 404, "no CA named 'nope'"),
        ("/repository/certificates/SERIAL.pem", {"ca": "tls-issuing"}, 404, "issued by tls-issuing"),
        ("/repository", {"limit": "0"}, 422, "limit"),
    ],
)
def test_bad_input_is_a_problem(world: World, path: str, params: dict[str, str], status: int, says: str) -> None:
    body = is_problem(world.client.get(path.replace("SERIAL", world.serials["dev-ds"]), params=params), status)
    assert says in body["detail"], body


def test_bad_input_on_the_html_page_is_an_html_error(world: World) -> None:
    for params, status, says in (
        ({"eui64": "123"}, 400, "16 hex digits"),
        ({"organisation": "Nobody Ltd"}, 404, "no organisation named"),
        ({"key_usage": "x" * 200}, 400, "longer than 128"),
    ):
        response = world.client.get("/repository", params=params)
        assert response.status_code == status and response.headers["content-type"].startswith("text/html")
        assert says in response.text and "Results" not in response.text


# ----- the queries use indexes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"serial": "abc"},
        {"eui64": EUI_A},
        {"eui64": EUI_A, "key_usage": "keyAgreement"},
        {"organisation_id": 1},
        {"organisation_id": 1, "status": "revoked"},
    ],
)
def test_searches_use_an_index(authority: CertificationAuthority, filters: dict[str, Any]) -> None:
    """SQLite's plan names the index; PostgreSQL, told to avoid sequential scans (a test table is tiny, so
    it would rightly prefer one), shows that an index can serve the search."""
    statement = RepositoryQueries.search_statement(CertificateCriteria(**filters), after_id=0, limit=100)
    compiled = statement.compile(authority.database.engine, compile_kwargs={"literal_binds": True})
    with authority.database.engine.connect() as connection:
        if authority.database.is_sqlite:
            rows = connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            plan = " ".join(str(row[-1]) for row in rows)
            assert "INDEX ix_certificates_" in plan and "SCAN certificates" not in plan, plan
        else:
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(str(row[0]) for row in connection.execute(text(f"EXPLAIN {compiled}")))
            assert "ix_certificates_" in plan and "Seq Scan on certificates" not in plan, plan
