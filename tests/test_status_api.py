"""Revocation, CRLs and OCSP over HTTP in process (TestClient): who may revoke what (role x own/other
organisation), bad input refused as problem+json with nothing written, holds, CA revocation under dual
control, /crl/{ca}.crl with ETags, and /ocsp by POST and GET."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from mpki.ca import CertificationAuthority
from mpki.domain import Action, Role
from mpki.ra import OPERATOR, POLICY, Directory, Principal, Scope
from mpki.ra.intake import Registration
from mpki.status import DELTA, StatusService
from mpki.web import create_app
from tests.support.status import (
    ca_certificate,
    cert_id,
    crl_serials,
    csr_for,
    events,
    multi_request,
    ocsp_request,
    response_status,
    snapshot,
    successful,
)
from tests.test_api import ROLES

ORG = {"A": "Acme Energy", "B": "Beta Networks"}
EUI = {"A": "90B3D51F30010000", "B": "90B3D51F30020000"}
PROBLEM = "application/problem+json"
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}
# The people of tests/test_api.py, and a second service administrator for dual control.
PEOPLE: dict[str, tuple[Role, str | None]] = ROLES | {"admin-2": (Role.SERVICE_ADMIN, None)}


@dataclass
class World:
    client: TestClient
    authority: CertificationAuthority
    registration: Registration
    status: StatusService  # the app's own, whose OCSP cache answers /ocsp
    tokens: dict[str, str]
    principals: dict[str, Principal]

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {}) | ({"Authorization": f"Bearer {self.tokens[who]}"} if who else {})
        return self.client.request(method, path, headers=headers, **kwargs)

    def revoke(self, who: str | None, serial: str, body: Any = None, **kwargs: Any) -> Any:
        if body is None:
            body = {"reason": "keyCompromise"}
        return self.call(who, "POST", f"/api/v1/certificates/{serial}/revoke", json=body, **kwargs)

    def issued(self, org: str, profile: str = "smki-device") -> tuple[str, x509.Certificate]:
        """(serial, certificate) of a certificate issued through the RA to organisation `org`."""
        view = self.registration.submit_batch(OPERATOR, profile, [csr_for(profile)], ORG[org])
        self.registration.process_batch(view.id)
        [item] = self.registration.batch(OPERATOR, view.id)[1]
        if item.status == "pending":  # TLS certificates wait for an RA agent
            item = self.registration.decide(self.principals["ra-agent"], item.id, True)
        assert item.status == "issued" and item.serial, item
        certificate = self.authority.find_certificate(item.serial)
        return item.serial, x509.load_der_x509_certificate(certificate.der)

    def row(self, serial: str) -> tuple[str, int | None]:
        found = self.status.revocations.find(serial)
        return found.status, found.revocation_reason


@pytest.fixture
def world(authority: CertificationAuthority) -> Iterator[World]:
    directory = Directory(authority.database)
    for key, name in ORG.items():
        directory.create_organisation(OPERATOR, name, [EUI[key]], ["supplier"])
    tokens, principals = {}, {}
    for label, (role, org) in PEOPLE.items():
        directory.create_person(OPERATOR, f"{label.lower()}@example.org", role, ORG[org] if org else None)
        tokens[label] = directory.create_token(OPERATOR, f"{label.lower()}@example.org")
        principals[label] = directory.authenticate(tokens[label])
    app = create_app(authority, start_worker=False)
    with TestClient(app) as client:
        registration = Registration(authority.database, authority)
        yield World(client, authority, registration, app.state.services.status, tokens, principals)


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# ----- who may revoke ------------------------------------------------------------------------------------

MATRIX = [
    ("subscriber-A", "A", 200),
    ("subscriber-A", "B", 403),
    ("subscriber-B", "B", 200),
    ("officer-A", "A", 200),
    ("officer-A", "B", 403),
    ("ra-agent", "A", 200),
    ("ra-agent", "B", 200),
    ("service-admin", "B", 200),
    ("auditor", "A", 403),
    ("ra-manager", "B", 200),
    (None, "A", 401),
]


def test_the_matrix_agrees_with_the_policy() -> None:
    for who, org, expected in MATRIX:
        if who is None:
            continue
        role, own = PEOPLE[who]
        scope = POLICY[role].get(Action.CERT_REVOKE)
        allowed = scope is Scope.ANY or (scope is Scope.OWN and own == org)
        assert allowed == (expected == 200), (who, org)


def test_who_may_revoke_whose_certificate(world: World, sql: Connection) -> None:
    for who, org, expected in MATRIX:
        serial, _ = world.issued(org)
        before = snapshot(sql)
        response = world.revoke(who, serial)
        case = f"{who} revoking a certificate of {org}"
        if expected != 200:
            assert response.status_code == expected, (case, response.text)
            is_problem(response, expected)
            assert snapshot(sql) == before, case
            assert world.row(serial) == ("issued", None), case
            continue
        assert who is not None and response.status_code == 200, (case, response.text)
        body = response.json()
        assert body["serials"] == [serial] and body["reason"] == "keyCompromise" and body["warnings"] == []
        assert [p.split("#")[0] for p in body["crls_published"]] == ["smki-device-ca"] * 2, case
        assert world.row(serial) == ("revoked", 1), case
        [event] = [e for e in events(sql, "certificate.revoked") if e["serial"] == serial]
        assert event["actor"] == world.principals[who].actor and json.loads(event["details"])["via"] == "ra"
    if_unknown = world.revoke("subscriber-A", "abcdef0123")
    is_problem(if_unknown, 404)


def test_bad_revocations_are_problems_and_write_nothing(world: World, sql: Connection) -> None:
    serial, _ = world.issued("A")
    url = f"/api/v1/certificates/{serial}/revoke"
    before = snapshot(sql)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("unknown reason", {"json": {"reason": "sleepy"}}, 400, "unknown revocation reason"),
        ("empty body", {"json": {}}, 422, ""),
        ("no body", {}, 422, ""),
        (
            "not JSON",
            {"content": b"reason=keyCompromise", "headers": {"Content-Type": "application/json"}},
            400,
            "JSON",
        ),
        ("extra field", {"json": {"reason": "keyCompromise", "when": "now"}}, 422, ""),
        ("reason not a string", {"json": {"reason": 1}}, 422, ""),
        ("reason too long", {"json": {"reason": "k" * 41}}, 422, ""),
        ("CA reason", {"json": {"reason": "cACompromise"}}, 400, "not a reason for an end-entity"),
        ("removeFromCRL", {"json": {"reason": "removeFromCRL"}}, 400, "not a reason for an end-entity"),
        ("aACompromise", {"json": {"reason": "aACompromise"}}, 400, "not a reason for an end-entity"),
        ("hold on SMKI", {"json": {"reason": "certificateHold"}}, 400, "does not allow certificateHold"),
        ("unknown CA", {"json": {"reason": "keyCompromise", "ca": "no-such-ca"}}, 404, "no-such-ca"),
        ("another CA", {"json": {"reason": "keyCompromise", "ca": "tls-issuing"}}, 404, serial),
    ]
    for name, kwargs, status, detail in cases:
        body = is_problem(world.call("ra-agent", "POST", url, **kwargs), status)
        assert detail in body["detail"], (name, body)
    bad_serials = [("zz-not-hex", 400), ("a" * 65, 422), ("f" * 64, 404), ("-1", 400)]
    for bad, status in bad_serials:
        is_problem(world.revoke("ra-agent", bad), status)
    assert snapshot(sql) == before
    assert world.revoke("ra-agent", serial, {"reason": "superseded"}).status_code == 200
    is_problem(world.revoke("ra-agent", serial), 400)


def test_hold_and_release_through_the_api(world: World, sql: Connection) -> None:
    serial, cert = world.issued("A", "tls-server")
    issuer = ca_certificate(world.authority, "tls-issuing")
    request = ocsp_request(cert, issuer)
    held = world.revoke("subscriber-A", serial, {"reason": "certificateHold"})
    assert held.status_code == 200, held.text
    answer = successful(world.client.post("/ocsp", content=request, headers=OCSP_REQUEST).content)
    assert answer.revocation_reason is x509.ReasonFlags.certificate_hold

    before = snapshot(sql)
    is_problem(world.call("subscriber-B", "POST", f"/api/v1/certificates/{serial}/release-hold"), 403)
    # Lifting a hold is the RA's decision, not the subscriber's, even for its own certificate.
    is_problem(world.call("subscriber-A", "POST", f"/api/v1/certificates/{serial}/release-hold"), 403)
    is_problem(world.call("auditor", "POST", f"/api/v1/certificates/{serial}/release-hold"), 403)
    is_problem(world.call(None, "POST", f"/api/v1/certificates/{serial}/release-hold"), 401)
    assert snapshot(sql) == before
    released = world.call("ra-agent", "POST", f"/api/v1/certificates/{serial}/release-hold")
    assert released.status_code == 200, released.text
    assert released.json()["reason"] == "removeFromCRL" and released.json()["serials"] == [serial]
    assert world.row(serial) == ("issued", None)
    answer = successful(world.client.post("/ocsp", content=request, headers=OCSP_REQUEST).content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    delta = world.client.get("/crl/tls-issuing-delta.crl")
    assert crl_serials(x509.load_der_x509_crl(delta.content)) == {cert.serial_number: x509.ReasonFlags.remove_from_crl}
    assert cert.serial_number not in crl_serials(
        x509.load_der_x509_crl(world.client.get("/crl/tls-issuing.crl").content)
    )
    is_problem(world.call("ra-agent", "POST", f"/api/v1/certificates/{serial}/release-hold"), 400)


# ----- CA revocation under dual control -------------------------------------------------------------------


def test_ca_revocation_under_dual_control(world: World, sql: Connection) -> None:
    device_ca = world.authority.get_ca("smki-device-ca")
    propose = "/api/v1/cas/smki-device-ca/revocations"
    before = snapshot(sql)
    for who in ("subscriber-A", "officer-A", "ra-agent", "ra-manager", "auditor"):
        is_problem(world.call(who, "POST", propose, json={"reason": "cACompromise"}), 403)
    is_problem(world.call(None, "POST", propose, json={"reason": "cACompromise"}), 401)
    is_problem(
        world.call("service-admin", "POST", "/api/v1/cas/smki-root/revocations", json={"reason": "keyCompromise"}), 400
    )
    is_problem(
        world.call("service-admin", "POST", "/api/v1/cas/no-such-ca/revocations", json={"reason": "keyCompromise"}), 404
    )
    is_problem(world.call("service-admin", "POST", propose, json={"reason": "certificateHold"}), 400)
    is_problem(world.call("service-admin", "POST", propose, json={"reason": "cACompromise", "now": True}), 422)
    is_problem(world.call("service-admin", "POST", propose, json={}), 422)
    assert snapshot(sql) == before

    proposed = world.call("service-admin", "POST", propose, json={"reason": "cACompromise"})
    assert proposed.status_code == 202, proposed.text
    proposal = proposed.json()
    assert (proposal["ca"], proposal["status"], proposal["reason"]) == ("smki-device-ca", "pending", "cACompromise")
    assert proposal["requested_by"] == world.principals["service-admin"].actor and proposal["approved_by"] is None
    is_problem(world.call("admin-2", "POST", propose, json={"reason": "keyCompromise"}), 400)
    listed = world.call("admin-2", "GET", "/api/v1/ca-revocations")
    assert [item["id"] for item in listed.json()["items"]] == [proposal["id"]]
    is_problem(world.call("ra-agent", "GET", "/api/v1/ca-revocations"), 403)

    approve = f"/api/v1/ca-revocations/{proposal['id']}/approve"
    pending = snapshot(sql)
    is_problem(world.call("service-admin", "POST", approve), 400)
    is_problem(world.call("ra-agent", "POST", approve), 403)
    is_problem(world.call("subscriber-A", "POST", approve), 403)
    assert snapshot(sql) == pending
    approved = world.call("admin-2", "POST", approve)
    assert approved.status_code == 200, approved.text
    assert approved.json()["serials"] == [device_ca.serial] and approved.json()["reason"] == "cACompromise"
    assert world.authority.get_ca("smki-device-ca").status == "revoked"
    is_problem(world.call("admin-2", "POST", approve), 400)
    assert world.call("admin-2", "GET", "/api/v1/ca-revocations").json()["items"] == []

    arl = x509.load_der_x509_crl(world.client.get("/crl/smki-root.crl").content)
    assert crl_serials(arl) == {int(device_ca.serial, 16): x509.ReasonFlags.ca_compromise}
    root = ca_certificate(world.authority, "smki-root")
    ca_cert = x509.load_der_x509_certificate(device_ca.certificate_der)
    answer = successful(world.client.post("/ocsp", content=ocsp_request(ca_cert, root), headers=OCSP_REQUEST).content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    response = world.registration.submit_batch(OPERATOR, "smki-device", [csr_for("smki-device")], ORG["A"])
    world.registration.process_batch(response.id)
    [item] = world.registration.batch(OPERATOR, response.id)[1]
    assert item.status != "issued"


def test_withdrawing_a_ca_revocation(world: World, sql: Connection) -> None:
    proposal = world.call("service-admin", "POST", "/api/v1/cas/tls-issuing/revocations", json={"reason": "superseded"})
    proposal_id = proposal.json()["id"]
    is_problem(world.call("ra-agent", "POST", f"/api/v1/ca-revocations/{proposal_id}/withdraw"), 403)
    withdrawn = world.call("service-admin", "POST", f"/api/v1/ca-revocations/{proposal_id}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    before = snapshot(sql)
    is_problem(world.call("admin-2", "POST", f"/api/v1/ca-revocations/{proposal_id}/approve"), 400)
    is_problem(world.call("admin-2", "POST", f"/api/v1/ca-revocations/{proposal_id}/withdraw"), 400)
    is_problem(world.call("admin-2", "POST", "/api/v1/ca-revocations/999/approve"), 404)
    is_problem(world.call("admin-2", "POST", "/api/v1/ca-revocations/first/approve"), 422)
    assert snapshot(sql) == before
    assert world.authority.get_ca("tls-issuing").status == "active"


# ----- /crl and /ocsp -------------------------------------------------------------------------------------


def test_crl_download_with_etags(world: World) -> None:
    is_problem(world.client.get("/crl/smki-device-ca.crl"), 404)  # none published yet
    is_problem(world.client.get("/crl/no-such-ca.crl"), 404)
    is_problem(world.client.get("/crl/no-such-ca-delta.crl"), 404)
    is_problem(world.client.get("/crl/smki-device-ca.pem"), 404)
    serial, _ = world.issued("A")
    assert world.revoke("ra-agent", serial).status_code == 200

    first = world.client.get("/crl/smki-device-ca.crl")
    assert first.status_code == 200 and first.headers["content-type"] == "application/pkix-crl"
    latest = world.status.crls.latest("smki-device-ca")
    assert first.content == latest.der and first.headers["etag"] == f'"smki-device-ca-{latest.number}"'
    assert first.headers["last-modified"] and first.headers["expires"]
    max_age = int(first.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert first.headers["cache-control"].startswith("public") and 0 < max_age <= 300
    assert int(serial, 16) in crl_serials(x509.load_der_x509_crl(first.content))

    cached = world.client.get("/crl/smki-device-ca.crl", headers={"If-None-Match": first.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == first.headers["etag"]
    other = world.client.get("/crl/smki-device-ca.crl", headers={"If-None-Match": '"smki-device-ca-0"'})
    assert other.status_code == 200 and other.content == first.content

    delta = world.client.get("/crl/smki-device-ca-delta.crl")
    assert delta.status_code == 200 and delta.headers["content-type"] == "application/pkix-crl"
    delta_crl = x509.load_der_x509_crl(delta.content)
    assert delta_crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == latest.number
    assert delta.headers["etag"] != first.headers["etag"]

    second, _ = world.issued("B")
    assert world.revoke("ra-agent", second).status_code == 200
    renewed = world.client.get("/crl/smki-device-ca.crl", headers={"If-None-Match": first.headers["etag"]})
    assert renewed.status_code == 200 and renewed.headers["etag"] != first.headers["etag"]
    assert {int(serial, 16), int(second, 16)} <= set(crl_serials(x509.load_der_x509_crl(renewed.content)))
    assert world.status.crls.latest("smki-device-ca", DELTA).number > latest.number

    world.status.crls.publish("smki-root")
    arl = x509.load_der_x509_crl(world.client.get("/crl/smki-root.crl").content)
    assert arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value.only_contains_ca_certs


def test_ocsp_over_http(world: World) -> None:
    serial, cert = world.issued("A")
    issuer = ca_certificate(world.authority, "smki-device-ca")
    request = ocsp_request(cert, issuer)
    answer = world.client.post("/ocsp", content=request, headers=OCSP_REQUEST)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/ocsp-response"
    assert successful(answer.content).certificate_status is ocsp.OCSPCertStatus.GOOD

    assert world.revoke("subscriber-A", serial).status_code == 200
    for response in (
        world.client.post("/ocsp", content=request, headers=OCSP_REQUEST),
        world.client.get("/ocsp/" + base64.urlsafe_b64encode(request).decode().rstrip("=")),
        world.client.get("/ocsp/" + base64.b64encode(request).decode().replace("/", "%2F").replace("+", "%2B")),
    ):
        assert response.status_code == 200, response.text
        revoked = successful(response.content)
        assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    get = world.client.get("/ocsp/" + base64.urlsafe_b64encode(request).decode())
    assert "max-age=" in get.headers["cache-control"] and get.headers["etag"]

    with_nonce = ocsp_request(cert, issuer, hashes.SHA256(), nonce=b"abc")
    nonce = successful(world.client.post("/ocsp", content=with_nonce, headers=OCSP_REQUEST).content)
    assert nonce.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"abc"
    several = multi_request([cert_id(issuer, cert.serial_number), cert_id(issuer, 5)])
    both = successful(world.client.post("/ocsp", content=several, headers=OCSP_REQUEST).content)
    statuses = [single.certificate_status for single in both.responses]
    assert statuses == [ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN]
    tls_ca = ca_certificate(world.authority, "tls-issuing")
    mixed = multi_request([cert_id(issuer, cert.serial_number), cert_id(tls_ca, 5)])
    unauthorized = world.client.post("/ocsp", content=mixed, headers=OCSP_REQUEST).content
    assert response_status(unauthorized) is ocsp.OCSPResponseStatus.UNAUTHORIZED

    for garbage in (b"", b"not a request", request[:-1]):
        response = world.client.post("/ocsp", content=garbage, headers=OCSP_REQUEST)
        assert response.status_code == 200
        assert response_status(response.content) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    bad_get = world.client.get("/ocsp/!!!")
    assert response_status(bad_get.content) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    is_problem(world.client.post("/ocsp", content=request, headers={"Content-Type": "application/json"}), 415)
    is_problem(world.client.put("/ocsp", content=request, headers=OCSP_REQUEST), 405)
