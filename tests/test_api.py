"""The REST API in-process (TestClient): happy paths, problem+json for bad input with nothing written, and
the route-level authorisation matrix (role x route x own/other organisation, expectations from POLICY)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from mpki.ca import CertificationAuthority
from mpki.domain import Action, Role
from mpki.ra import OPERATOR, POLICY, Directory, Scope
from mpki.ra.intake import Registration
from mpki.web import create_app
from tests.csr_factory import corrupt_signature, device_csr, org_csr, random_eui64, to_der

EUI_A = "90B3D51F30010000"
EUI_B = "90B3D51F30020000"
ORG = {"A": "Acme Energy", "B": "Beta Networks"}
TABLES = ("organisations", "people", "api_tokens", "batches", "requests", "certificates", "audit_events")
PROBLEM = "application/problem+json"

# role label -> (role, organisation key or None); the org-side roles act for organisation A
ROLES: dict[str, tuple[Role, str | None]] = {
    "service-admin": (Role.SERVICE_ADMIN, None),
    "ra-manager": (Role.RA_MANAGER, None),
    "ra-agent": (Role.RA_AGENT, None),
    "auditor": (Role.AUDITOR, None),
    "subscriber-A": (Role.AUTHORISED_SUBSCRIBER, "A"),
    "officer-A": (Role.ORG_RA_OFFICER, "A"),
    "subscriber-B": (Role.AUTHORISED_SUBSCRIBER, "B"),
    "officer-B": (Role.ORG_RA_OFFICER, "B"),
}
MATRIX_ROLES = ["service-admin", "ra-manager", "ra-agent", "auditor", "subscriber-A", "officer-A"]


def device_pem(eui64: bytes | None = None) -> str:
    return device_csr(eui64 or random_eui64(), pem=True).decode()


def counts(sql: Connection) -> dict[str, int]:
    return {table: sql.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


@dataclass
class World:
    client: TestClient
    authority: CertificationAuthority
    registration: Registration
    directory: Directory
    tokens: dict[str, str]
    org_ids: dict[str, int]
    emails: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {}) | (self.headers(who) if who else {})
        return self.client.request(method, path, headers=headers, **kwargs)

    def batch(self, org: str, profile: str = "smki-device", csrs: list[bytes] | None = None) -> int:
        """A processed batch for organisation `org`, submitted by the operator."""
        view = self.registration.submit_batch(OPERATOR, profile, csrs or [device_csr(random_eui64())], ORG[org])
        self.registration.process_batch(view.id)
        return view.id

    def issued(self, org: str) -> tuple[int, str]:
        """(request id, serial) of a device certificate issued to `org`."""
        batch_id = self.batch(org)
        _, items = self.registration.batch(OPERATOR, batch_id)
        assert items[0].status == "issued" and items[0].serial
        return items[0].id, items[0].serial

    def pending(self, org: str) -> int:
        """A request of `org` held for an RA decision (organisation certificates wait for an agent)."""
        eui = bytes.fromhex(EUI_A if org == "A" else EUI_B)
        batch_id = self.batch(org, "smki-org", [org_csr(eui, "02" if org == "A" else "03")])
        _, items = self.registration.batch(OPERATOR, batch_id)
        assert items[0].status == "pending", items[0]
        return items[0].id


@pytest.fixture
def world(authority: CertificationAuthority) -> Iterator[World]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, ORG["A"], [EUI_A], ["supplier"])
    directory.create_organisation(OPERATOR, ORG["B"], [EUI_B], ["network-operator"])
    org_ids = {key: directory.organisation(OPERATOR, name).id for key, name in ORG.items()}
    tokens, emails = {}, {}
    for label, (role, org) in ROLES.items():
        email = f"{label.lower()}@example.org"
        directory.create_person(OPERATOR, email, role, ORG[org] if org else None)
        tokens[label] = directory.create_token(OPERATOR, email)
        emails[label] = email
    app = create_app(authority, start_worker=False)
    with TestClient(app) as client:
        yield World(client, authority, Registration(authority.database, authority), directory, tokens, org_ids, emails)


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and "detail" in body
    return body


# ----- happy paths -------------------------------------------------------------------------------------------


def test_health_cas_and_openapi(world: World) -> None:
    assert world.client.get("/healthz").json()["status"] == "ok"
    cas = world.client.get("/api/v1/cas").json()
    assert "smki-device-ca" in {ca["name"] for ca in cas}
    spec = world.client.get("/api/v1/openapi.json").json()
    assert "/api/v1/batches" in spec["paths"] and "HTTPBearer" in spec["components"]["securitySchemes"]


def test_batch_submit_process_view_and_pickup(world: World) -> None:
    csrs = [device_pem() for _ in range(3)]
    csrs.append(base64.b64encode(to_der(device_csr(random_eui64()))).decode())  # base64 DER is accepted too
    csrs.append(corrupt_signature(device_pem().encode()).decode())
    response = world.call("subscriber-A", "POST", "/api/v1/batches", json={"profile": "smki-device", "csrs": csrs})
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert submitted["status"] == "submitted" and submitted["counts"]["size"] == 5
    batch_id = submitted["id"]
    assert world.registration.process_next() is not None
    body = world.call("subscriber-A", "GET", f"/api/v1/batches/{batch_id}").json()
    assert body["status"] == "completed"
    assert body["counts"]["issued"] == 4 and body["counts"]["rejected"] == 1
    assert body["timeline"]["submitted"] and body["timeline"]["completed"]
    assert [item["item"] for item in body["items"]] == [0, 1, 2, 3, 4]
    assert [item["status"] for item in body["items"]] == ["issued"] * 4 + ["rejected"]
    assert body["items"][4]["reason"] and body["items"][0]["serial"]
    status_only = world.call("subscriber-A", "GET", f"/api/v1/batches/{batch_id}?items=false").json()
    assert status_only["items"] is None and status_only["counts"] == body["counts"]
    bundle = world.call("subscriber-A", "GET", f"/api/v1/batches/{batch_id}/certificates")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/pem-certificate-chain")
    assert len(x509.load_pem_x509_certificates(bundle.content)) == 4
    as_json = world.call(
        "subscriber-A", "GET", f"/api/v1/batches/{batch_id}/certificates", headers={"Accept": "application/json"}
    ).json()
    assert len(as_json) == 4 and all(p.startswith("-----BEGIN CERTIFICATE") for p in as_json)
    listing = world.call("subscriber-A", "GET", "/api/v1/batches").json()
    assert [b["id"] for b in listing["items"]] == [batch_id] and listing["next_after"] is None


def test_single_request_is_issued_at_once(world: World) -> None:
    response = world.call(
        "subscriber-A", "POST", "/api/v1/requests", json={"profile": "smki-device", "csr": device_pem()}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "issued" and body["serial"]
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert f"{cert.serial_number:x}" == body["serial"]
    again = world.call("subscriber-A", "GET", f"/api/v1/requests/{body['id']}").json()
    assert again["status"] == "issued" and again["certificate"] == body["certificate"]
    rejected = world.call(
        "subscriber-A", "POST", "/api/v1/requests", json={"profile": "smki-device", "csr": "bm90IGEgY3Ny"}
    ).json()
    assert rejected["status"] == "rejected" and rejected["reason"]


def test_request_listing_filters_and_pages(world: World) -> None:
    for _ in range(3):
        world.batch("A")
    pending = world.pending("A")
    first = world.call("ra-agent", "GET", "/api/v1/requests", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    rest = world.call("ra-agent", "GET", "/api/v1/requests", params={"limit": 2, "after": first["next_after"]}).json()
    assert len(rest["items"]) == 2 and rest["next_after"] == rest["items"][-1]["id"]
    last = world.call("ra-agent", "GET", "/api/v1/requests", params={"limit": 2, "after": rest["next_after"]}).json()
    assert last == {"items": [], "next_after": None}
    held = world.call("ra-agent", "GET", "/api/v1/requests", params={"status": "pending"}).json()
    assert [r["id"] for r in held["items"]] == [pending] and held["items"][0]["reason"]


def test_approve_and_reject(world: World) -> None:
    first, second = world.pending("A"), world.pending("A")
    approved = world.call("ra-agent", "POST", f"/api/v1/requests/{first}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "issued" and approved.json()["certificate"].startswith("-----BEGIN")
    rejected = world.call("officer-A", "POST", f"/api/v1/requests/{second}/reject", json={"reason": "not ours"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"] == "not ours"
    is_problem(world.call("ra-agent", "POST", f"/api/v1/requests/{second}/approve"), 400)


def test_directory_routes(world: World) -> None:
    created = world.call(
        "ra-manager",
        "POST",
        "/api/v1/organisations",
        json={"name": "Gamma", "eui64s": ["90B3D51F30030000"], "roles": ["supplier"]},
    )
    assert created.status_code == 201 and created.json()["roles"] == ["02"]
    names = [o["name"] for o in world.call("auditor", "GET", "/api/v1/organisations").json()["items"]]
    assert names == [ORG["A"], ORG["B"], "Gamma"]
    assert world.call("subscriber-A", "GET", f"/api/v1/organisations/{ORG['A']}").json()["eui64s"] == [EUI_A]
    person = world.call(
        "ra-manager",
        "POST",
        "/api/v1/people",
        json={"email": "new@gamma.example", "role": "authorised-subscriber", "organisation": "Gamma"},
    )
    assert person.status_code == 201 and person.json()["organisation"] == "Gamma"
    people = world.call("auditor", "GET", "/api/v1/people", params={"organisation": "Gamma"}).json()["items"]
    assert [p["email"] for p in people] == ["new@gamma.example"]
    token = world.call("ra-manager", "POST", "/api/v1/tokens", json={"email": "new@gamma.example"})
    assert token.status_code == 201
    batches = world.client.get("/api/v1/batches", headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert batches.status_code == 200 and batches.json()["items"] == []


def test_certificate_routes(world: World) -> None:
    request_id, serial = world.issued("A")
    listing = world.call("subscriber-A", "GET", "/api/v1/certificates").json()
    assert [c["serial"] for c in listing["items"]] == [serial] and listing["items"][0]["request"] == request_id
    pem_response = world.call("subscriber-A", "GET", f"/api/v1/certificates/{serial}")
    assert pem_response.headers["content-type"].startswith("application/pem-certificate-chain")
    assert f"{x509.load_pem_x509_certificate(pem_response.content).serial_number:x}" == serial
    as_json = world.call(
        "subscriber-A", "GET", f"/api/v1/certificates/{serial}", headers={"Accept": "application/json"}
    )
    assert as_json.json()["serial"] == serial and as_json.json()["pem"] == pem_response.text


def test_the_worker_processes_batches_in_the_background(authority: CertificationAuthority) -> None:

    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, ORG["A"], [EUI_A], ["supplier"])
    directory.create_person(OPERATOR, "sub@a.example", Role.AUTHORISED_SUBSCRIBER, ORG["A"])
    headers = {"Authorization": f"Bearer {directory.create_token(OPERATOR, 'sub@a.example')}"}
    with TestClient(create_app(authority)) as client:
        response = client.post(
            "/api/v1/batches", headers=headers, json={"profile": "smki-device", "csrs": [device_pem()]}
        )
        assert response.status_code == 202
        deadline = time.monotonic() + 30
        while (body := client.get(f"/api/v1/batches/{response.json()['id']}", headers=headers).json())[
            "status"
        ] != "completed":
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
        assert body["counts"]["issued"] == 1


# ----- the authorisation matrix ------------------------------------------------------------------------------

Call = tuple[str, str, dict[str, Any]]


def _uid() -> str:
    return random_eui64().hex()


ROUTES: dict[str, tuple[Action, bool, Callable[[World, str], Call]]] = {
    # name: (action, touches one organisation's data, (world, target org) -> (method, path, kwargs))
    "submit batch": (
        Action.REQUEST_SUBMIT,
        True,
        lambda w, o: (
            "POST",
            "/api/v1/batches",
            {"json": {"profile": "smki-device", "csrs": [device_pem()], "organisation": ORG[o]}},
        ),
    ),
    "list batches": (Action.REQUEST_VIEW, False, lambda w, o: ("GET", "/api/v1/batches", {})),
    "get batch": (Action.REQUEST_VIEW, True, lambda w, o: ("GET", f"/api/v1/batches/{w.batch(o)}", {})),
    "batch certificates": (
        Action.REQUEST_VIEW,
        True,
        lambda w, o: ("GET", f"/api/v1/batches/{w.batch(o)}/certificates", {}),
    ),
    "submit request": (
        Action.REQUEST_SUBMIT,
        True,
        lambda w, o: (
            "POST",
            "/api/v1/requests",
            {"json": {"profile": "smki-device", "csr": device_pem(), "organisation": ORG[o]}},
        ),
    ),
    "list requests": (Action.REQUEST_VIEW, False, lambda w, o: ("GET", "/api/v1/requests", {})),
    "get request": (Action.REQUEST_VIEW, True, lambda w, o: ("GET", f"/api/v1/requests/{w.issued(o)[0]}", {})),
    "approve request": (
        Action.REQUEST_DECIDE,
        True,
        lambda w, o: ("POST", f"/api/v1/requests/{w.pending(o)}/approve", {}),
    ),
    "reject request": (
        Action.REQUEST_DECIDE,
        True,
        lambda w, o: ("POST", f"/api/v1/requests/{w.pending(o)}/reject", {"json": {"reason": "no"}}),
    ),
    "list organisations": (Action.ORG_VIEW, False, lambda w, o: ("GET", "/api/v1/organisations", {})),
    "create organisation": (
        Action.ORG_CREATE,
        False,
        lambda w, o: (
            "POST",
            "/api/v1/organisations",
            {"json": {"name": f"Org {_uid()}", "eui64s": [_uid()], "roles": ["supplier"]}},
        ),
    ),
    "get organisation": (Action.ORG_VIEW, True, lambda w, o: ("GET", f"/api/v1/organisations/{ORG[o]}", {})),
    "set approval rule": (
        Action.ORG_UPDATE,
        True,
        lambda w, o: (
            "PUT",
            f"/api/v1/organisations/{ORG[o]}/approval-rules",
            {"json": {"profile": "smki-org", "rule": "review"}},
        ),
    ),
    "list people": (Action.PERSON_VIEW, False, lambda w, o: ("GET", "/api/v1/people", {})),
    "list an organisation's people": (
        Action.PERSON_VIEW,
        True,
        lambda w, o: ("GET", "/api/v1/people", {"params": {"organisation": ORG[o]}}),
    ),
    "create person": (
        Action.PERSON_CREATE,
        True,
        lambda w, o: (
            "POST",
            "/api/v1/people",
            {"json": {"email": f"{_uid()}@x.example", "role": "authorised-subscriber", "organisation": ORG[o]}},
        ),
    ),
    "create token": (
        Action.TOKEN_CREATE,
        True,
        lambda w, o: ("POST", "/api/v1/tokens", {"json": {"email": w.emails[f"subscriber-{o}"]}}),
    ),
    "list certificates": (Action.CERT_VIEW, False, lambda w, o: ("GET", "/api/v1/certificates", {})),
    "get certificate": (Action.CERT_VIEW, True, lambda w, o: ("GET", f"/api/v1/certificates/{w.issued(o)[1]}", {})),
}


def allowed(label: str, action: Action, target: str | None) -> bool:
    role, own = ROLES[label]
    scope = POLICY[role].get(action)
    if scope is None:
        return False
    if scope is Scope.ANY:
        return True
    return target is None or target == own  # a listing shows an OWN-scoped role its own organisation


@pytest.mark.parametrize("route", list(ROUTES))
def test_authorisation_matrix(world: World, route: str) -> None:
    action, scoped, make = ROUTES[route]
    wrong = []
    for label in MATRIX_ROLES:
        for target in ("A", "B") if scoped else (None,):
            method, path, kwargs = make(world, target or "A")
            response = world.call(label, method, path, **kwargs)
            expected = allowed(label, action, target)
            ok = 200 <= response.status_code < 300
            if ok != expected or (not ok and response.status_code not in (403, 404)):
                wrong.append(f"{label} on {target or '-'}: {response.status_code} {response.text[:200]}")
            if not ok:
                is_problem(response, response.status_code)
    assert not wrong, "\n".join(wrong)


def test_no_token_or_a_bad_one_is_401_on_every_route(world: World) -> None:
    for route, (_, _, make) in ROUTES.items():
        method, path, kwargs = make(world, "A")
        for headers in ({}, {"Authorization": "Bearer mpki_nope"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
            response = world.client.request(method, path, headers=headers, **kwargs)
            is_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", route


def test_an_organisation_never_sees_anothers_data(world: World) -> None:
    a_batch, b_batch = world.batch("A"), world.batch("B")
    a_request, a_serial = world.issued("A")
    b_request, b_serial = world.issued("B")
    b_pending = world.pending("B")
    a_id, b_id = world.org_ids["A"], world.org_ids["B"]
    for label in ("subscriber-A", "officer-A"):
        batches = world.call(label, "GET", "/api/v1/batches").json()["items"]
        assert a_batch in {b["id"] for b in batches} and {b["organisation_id"] for b in batches} == {a_id}
        requests = world.call(label, "GET", "/api/v1/requests").json()["items"]
        assert a_request in {r["id"] for r in requests} and {r["organisation_id"] for r in requests} == {a_id}
        certificates = world.call(label, "GET", "/api/v1/certificates").json()["items"]
        assert a_serial in {c["serial"] for c in certificates} and b_serial not in {c["serial"] for c in certificates}
        assert {c["organisation_id"] for c in certificates} == {a_id}
        organisations = world.call(label, "GET", "/api/v1/organisations").json()["items"]
        assert [o["name"] for o in organisations] == [ORG["A"]]
        for path in (
            f"/api/v1/batches/{b_batch}",
            f"/api/v1/batches/{b_batch}/certificates",
            f"/api/v1/requests/{b_request}",
            f"/api/v1/certificates/{b_serial}",
            f"/api/v1/organisations/{ORG['B']}",
        ):
            assert world.call(label, "GET", path).status_code in (403, 404), (label, path)
        for verb in ("approve", "reject"):
            response = world.call(label, "POST", f"/api/v1/requests/{b_pending}/{verb}", json={"reason": "x"})
            assert response.status_code in (403, 404)
    people = world.call("officer-A", "GET", "/api/v1/people").json()["items"]
    assert people and {p["organisation"] for p in people} == {ORG["A"]}
    assert world.registration.request(OPERATOR, b_pending).status == "pending"
    assert b_id != a_id


# ----- bad input: a problem, and nothing written -------------------------------------------------------------

BIG = "-" * (65 * 1024 * 1024)
BAD: list[tuple[str, str, str, dict[str, Any], tuple[int, ...]]] = [
    # (who, method, path, request kwargs, acceptable statuses)
    (
        "subscriber-A",
        "POST",
        "/api/v1/batches",
        {"content": b'{"profile": "smki-device", "csrs": [', "headers": {"Content-Type": "application/json"}},
        (400,),
    ),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": "smki-device", "csrs": "not a list"}}, (422,)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": 7, "csrs": []}}, (422,)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": ["smki-device"]}, (422,)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": "smki-device", "csrs": [], "extra": 1}}, (422,)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": "smki-device", "csrs": []}}, (400,)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": "no-such-profile", "csrs": ["x"]}}, (400, 404)),
    ("subscriber-A", "POST", "/api/v1/batches", {"json": {"profile": "smki-root", "csrs": ["x"]}}, (400,)),
    (
        "subscriber-A",
        "POST",
        "/api/v1/batches",
        {"content": BIG, "headers": {"Content-Type": "application/json"}},
        (413,),
    ),
    ("service-admin", "POST", "/api/v1/batches", {"json": {"profile": "smki-device", "csrs": ["x"]}}, (400,)),
    (
        "service-admin",
        "POST",
        "/api/v1/batches",
        {"json": {"profile": "smki-device", "csrs": ["x"], "organisation": "Nobody"}},
        (400, 404),
    ),
    (
        "subscriber-A",
        "POST",
        "/api/v1/requests",
        {"content": b"{", "headers": {"Content-Type": "application/json"}},
        (400,),
    ),
    ("subscriber-A", "POST", "/api/v1/requests", {"json": {"profile": "smki-device"}}, (422,)),
    ("subscriber-A", "POST", "/api/v1/requests", {"json": {"profile": "smki-device", "csr": ["x"]}}, (422,)),
    ("subscriber-A", "POST", "/api/v1/requests", {"json": {"profile": "bogus", "csr": "x"}}, (400, 404)),
    (
        "subscriber-A",
        "POST",
        "/api/v1/requests",
        {"content": "x" * (2 * 1024 * 1024), "headers": {"Content-Type": "application/json"}},
        (413,),
    ),
    ("subscriber-A", "GET", "/api/v1/batches?limit=0", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/batches?limit=1001", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/requests?after=-1", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/requests?after=abc", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/certificates?limit=x", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/batches/abc", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/batches/99999", {}, (404,)),
    ("subscriber-A", "GET", "/api/v1/batches/99999999999999999999999", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/batches/99999/certificates", {}, (404,)),
    ("subscriber-A", "GET", "/api/v1/requests/-1", {}, (422,)),
    ("subscriber-A", "GET", "/api/v1/requests/99999", {}, (404,)),
    ("ra-agent", "POST", "/api/v1/requests/99999/approve", {}, (404,)),
    ("ra-agent", "POST", "/api/v1/requests/99999/reject", {"json": {"reason": "x"}}, (404,)),
    ("ra-agent", "POST", "/api/v1/requests/1/reject", {"json": {}}, (422,)),
    ("ra-agent", "POST", "/api/v1/requests/1/reject", {"json": {"reason": ""}}, (422,)),
    (
        "ra-agent",
        "POST",
        "/api/v1/requests/1/approve",
        {"content": b"{", "headers": {"Content-Type": "application/json"}},
        (400,),
    ),
    ("subscriber-A", "GET", "/api/v1/certificates/zz", {}, (400,)),
    ("subscriber-A", "GET", "/api/v1/certificates/abcdef", {}, (404,)),
    ("subscriber-A", "GET", "/api/v1/organisations/Nobody", {}, (404,)),
    (
        "ra-manager",
        "POST",
        "/api/v1/organisations",
        {"json": {"name": "X", "eui64s": ["nothex"], "roles": ["supplier"]}},
        (400,),
    ),
    (
        "ra-manager",
        "POST",
        "/api/v1/organisations",
        {"json": {"name": "X", "eui64s": [EUI_A], "roles": ["astronaut"]}},
        (400,),
    ),
    (
        "ra-manager",
        "POST",
        "/api/v1/organisations",
        {"json": {"name": ORG["A"], "eui64s": [EUI_A], "roles": ["supplier"]}},
        (400,),
    ),
    (
        "ra-manager",
        "POST",
        "/api/v1/organisations",
        {"json": {"name": "X", "eui64s": EUI_A, "roles": ["supplier"]}},
        (422,),
    ),
    ("ra-manager", "POST", "/api/v1/people", {"json": {"email": "nope", "role": "ra-agent"}}, (400,)),
    ("ra-manager", "POST", "/api/v1/people", {"json": {"email": "a@b.example", "role": "emperor"}}, (422,)),
    (
        "ra-manager",
        "POST",
        "/api/v1/people",
        {"json": {"email": "a@b.example", "role": "authorised-subscriber"}},
        (400,),
    ),
    ("ra-manager", "POST", "/api/v1/tokens", {"json": {"email": "nobody@example.org"}}, (404,)),
    ("ra-manager", "POST", "/api/v1/tokens", {"json": {"email": 5}}, (422,)),
    ("ra-manager", "GET", "/api/v1/people?organisation=Nobody", {}, (404,)),
    ("subscriber-A", "GET", "/api/v1/no-such-route", {}, (404,)),
    ("subscriber-A", "DELETE", "/api/v1/batches", {}, (405,)),
    ("subscriber-A", "PUT", "/api/v1/requests/1", {}, (405,)),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{m} {p[:40]} {str(k)[:40]}" for _, m, p, k, _ in BAD])
def test_bad_input_is_a_problem_and_writes_nothing(world: World, sql: Connection, case: tuple[Any, ...]) -> None:
    who, method, path, kwargs, statuses = case
    before = counts(sql)
    response = world.call(who, method, path, **kwargs)
    assert response.status_code in statuses, response.text[:500]
    is_problem(response, response.status_code)
    assert counts(sql) == before


def test_a_batch_of_50001_is_refused_and_nothing_written(world: World, sql: Connection) -> None:
    one = device_pem()
    before = counts(sql)
    body = json.dumps({"profile": "smki-device", "csrs": [one] * 50_001})
    response = world.call(
        "subscriber-A", "POST", "/api/v1/batches", content=body, headers={"Content-Type": "application/json"}
    )
    detail = is_problem(response, 400)["detail"]
    assert "50,000" in detail
    assert counts(sql) == before


def test_a_rejected_decision_changes_nothing(world: World, sql: Connection) -> None:
    issued, _ = world.issued("A")
    before = counts(sql)
    is_problem(world.call("ra-agent", "POST", f"/api/v1/requests/{issued}/approve"), 400)
    is_problem(world.call("ra-agent", "POST", f"/api/v1/requests/{issued}/reject", json={"reason": "x"}), 400)
    assert counts(sql) == before


def test_rekey_through_the_api_supersedes_the_old_certificate(world: World) -> None:
    eui = random_eui64()
    first = world.call(
        "subscriber-A", "POST", "/api/v1/requests", json={"profile": "smki-device", "csr": device_pem(eui)}
    ).json()
    assert first["status"] == "issued", first
    rekey = world.call(
        "subscriber-A",
        "POST",
        "/api/v1/requests",
        json={"profile": "smki-device", "csr": device_pem(eui), "kind": "rekey", "replaces": first["serial"]},
    )
    assert rekey.status_code == 201 and rekey.json()["status"] == "issued", rekey.text
    old = world.call(
        "subscriber-A", "GET", f"/api/v1/certificates/{first['serial']}", headers={"Accept": "application/json"}
    ).json()
    assert old["status"] == "superseded"
    bad = world.call(
        "subscriber-A",
        "POST",
        "/api/v1/requests",
        json={"profile": "smki-device", "csr": device_pem(), "kind": "sideways", "replaces": "01"},
    )
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_nul_characters_are_refused_before_they_reach_the_database(world: World, sql: Connection) -> None:
    before = counts(sql)
    is_problem(world.call("service-admin", "GET", "/api/v1/people?organisation=%00"), 400)
    is_problem(world.call("service-admin", "GET", "/api/v1/organisations/a%00b"), 400)
    body = {"email": "a\x00b@example.org", "role": "auditor"}
    problem = is_problem(world.call("service-admin", "POST", "/api/v1/people", json=body), 422)
    assert "NUL" in problem["detail"]
    assert counts(sql) == before
