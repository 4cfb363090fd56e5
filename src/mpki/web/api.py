"""The REST API under /api/v1: HTTP in, `ra`/`ca` calls out. Every route authorises through `ra`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mpki.ca import CertificationAuthority
from mpki.domain import Action, Role, Unauthenticated, format_serial, parse_serial
from mpki.ra import Directory, Principal, authorise
from mpki.ra.authorisation import visible_organisation
from mpki.ra.intake import Registration
from mpki.ra.revocation import RevocationDesk
from mpki.ra.views import RequestView
from mpki.status import StatusService
from mpki.store import CertificateRepository, RequestRepository
from mpki.web.clientcert import client_certificate
from mpki.web.problems import documented

PEM_CHAIN = "application/pem-certificate-chain"
PAGE_MAX = 1000

# ----- bodies ------------------------------------------------------------------------------------


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul(self) -> _Body:
        """No stored text holds NUL (PostgreSQL refuses it): a 422 naming the field, never a 500."""
        for name in type(self).model_fields:
            if _holds_nul(getattr(self, name)):
                raise ValueError(f"{name} holds a NUL character")
        return self


class BatchIn(_Body):
    profile: str = Field(examples=["smki-device"])
    csrs: list[str] = Field(description="PKCS#10 requests, each PEM or base64 DER")
    organisation: str | None = Field(default=None, description="Needed only by provider-side roles")


class RequestIn(_Body):
    profile: str = Field(examples=["smki-device"])
    csr: str = Field(description="A PKCS#10 request, PEM or base64 DER")
    organisation: str | None = None
    kind: Literal["new", "renewal", "rekey", "update"] = Field(
        default="new", description="renewal keeps the key, rekey brings a new one, update changes attributes"
    )
    replaces: str | None = Field(default=None, max_length=40, description="Serial (hex) of the certificate replaced")


class ApprovalRuleIn(_Body):
    profile: Literal["smki-device", "smki-org", "tls-server", "tls-client"]
    rule: Literal["auto", "review", "dual"]


class RejectIn(_Body):
    reason: str = Field(min_length=1, max_length=1000)


class ApproveIn(_Body):
    reason: str | None = Field(default=None, max_length=1000)


class OrganisationIn(_Body):
    name: str
    eui64s: list[str]
    roles: list[str] = Field(examples=[["supplier"]])


class PersonIn(_Body):
    email: str
    role: Role
    organisation: str | None = None
    password: str | None = None


class TokenIn(_Body):
    email: str


# ----- wiring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    authority: CertificationAuthority
    directory: Directory
    registration: Registration
    status: StatusService
    revocation: RevocationDesk


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="An API token from `mpki token create` or POST /api/v1/tokens")


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """A bearer token if one is sent, else a registered client certificate (TLS or trusted proxy)."""
    directory = services(request).directory
    if credentials is not None and credentials.scheme.lower() == "bearer" and credentials.credentials:
        return directory.authenticate(credentials.credentials)
    der = client_certificate(request, getattr(request.app.state, "trusted_proxies", ()))
    if der is not None:
        return directory.authenticate_certificate(der)
    raise Unauthenticated("send an API token (Authorization: Bearer TOKEN) or a registered client certificate")


Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]
After = Annotated[int, Query(ge=0, le=2**63 - 1, description="Return items with an id above this (keyset cursor)")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Id = Annotated[int, Path(ge=0, le=2**63 - 1)]


def page(items: list[dict[str, Any]], ids: list[int], limit: int) -> dict[str, Any]:
    return {"items": items, "next_after": ids[-1] if ids and len(ids) == limit else None}


def _csr_bytes(text: str) -> bytes:
    """PEM as is; otherwise base64 DER. Anything else goes through as text for `ra` to reject per item."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode()
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return stripped.encode()


def pem_of(der: bytes) -> str:
    """One certificate, DER in, PEM out (every download the API, repository and portals serve)."""
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and PEM_CHAIN not in accept


def _request_json(svc: Services, view: RequestView) -> dict[str, Any]:
    body = view.as_json()
    if view.status == "issued":
        der = svc.authority.certificates_for_requests([view.id]).get(view.id)
        body["certificate"] = pem_of(der) if der else None
    return body


COMMON = documented(400, 401, 403, 404, 413, 422)
PEM_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "PEM (default) or JSON with `Accept: application/json`",
        "content": {PEM_CHAIN: {"schema": {"type": "string"}}, "application/json": {}},
    }
}
router = APIRouter(prefix="/api/v1", responses=COMMON)

# ----- batches -----------------------------------------------------------------------------------


@router.post("/batches", status_code=202, tags=["batches"])
def submit_batch(body: BatchIn, who: Who, svc: Svc) -> dict[str, Any]:
    """Store a batch of CSRs; a worker processes it. Poll GET /batches/{id} until `completed`."""
    view = svc.registration.submit_batch(who, body.profile, [_csr_bytes(c) for c in body.csrs], body.organisation)
    return view.as_json()


@router.get("/batches", tags=["batches"])
def list_batches(who: Who, svc: Svc, after: After = 0, limit: Limit = 100) -> dict[str, Any]:
    views = svc.registration.batches(who, after_id=after, limit=limit)
    return page([v.as_json() for v in views], [v.id for v in views], limit)


@router.get("/batches/{batch_id}", tags=["batches"])
def get_batch(
    batch_id: Id,
    who: Who,
    svc: Svc,
    items: Annotated[bool, Query(description="Include every item's result (false: status and counts only)")] = True,
) -> dict[str, Any]:
    """The batch's status, counts and timeline, and (unless items=false) every item's result."""
    if not items:
        return svc.registration.batch_status(who, batch_id).as_json() | {"items": None}
    view, results = svc.registration.batch(who, batch_id)
    return view.as_json() | {
        "items": [
            {"item": i.item_index, "request": i.id, "status": i.status, "reason": i.reason, "serial": i.serial}
            for i in results
        ]
    }


@router.get("/batches/{batch_id}/certificates", tags=["batches"], responses=PEM_OR_JSON)
def batch_certificates(batch_id: Id, request: Request, who: Who, svc: Svc) -> Response:
    """Pickup: every certificate issued for the batch, in item order."""
    pems = [pem_of(der) for der in svc.registration.batch_certificates(who, batch_id)]
    if _wants_json(request):
        return JSONResponse(pems)
    return Response("".join(pems), media_type=PEM_CHAIN)


# ----- requests ----------------------------------------------------------------------------------


@router.post("/requests", status_code=201, tags=["requests"])
def submit_request(body: RequestIn, who: Who, svc: Svc) -> dict[str, Any]:
    """One CSR, processed at once: the answer says issued (with the certificate), pending or rejected."""
    batch = svc.registration.submit_batch(
        who, body.profile, [_csr_bytes(body.csr)], body.organisation, kind=body.kind, replaces=body.replaces
    )
    svc.registration.process_batch(batch.id)
    _, items = svc.registration.batch(who, batch.id)
    return _request_json(svc, items[0])


@router.get("/requests", tags=["requests"])
def list_requests(
    who: Who,
    svc: Svc,
    after: After = 0,
    limit: Limit = 100,
    status: Annotated[str | None, Query(max_length=16, description="e.g. pending")] = None,
) -> dict[str, Any]:
    views = svc.registration.requests(who, status=status, after_id=after, limit=limit)
    return page([v.as_json() for v in views], [v.id for v in views], limit)


@router.get("/requests/{request_id}", tags=["requests"])
def get_request(request_id: Id, who: Who, svc: Svc) -> dict[str, Any]:
    return _request_json(svc, svc.registration.request(who, request_id))


@router.post("/requests/{request_id}/approve", tags=["requests"])
def approve_request(request_id: Id, who: Who, svc: Svc, body: ApproveIn | None = None) -> dict[str, Any]:
    view = svc.registration.decide(who, request_id, True, body.reason if body else None)
    return _request_json(svc, view)


@router.post("/requests/{request_id}/reject", tags=["requests"])
def reject_request(request_id: Id, body: RejectIn, who: Who, svc: Svc) -> dict[str, Any]:
    return _request_json(svc, svc.registration.decide(who, request_id, False, body.reason))


# ----- directory ---------------------------------------------------------------------------------


@router.get("/organisations", tags=["directory"])
def list_organisations(who: Who, svc: Svc) -> dict[str, Any]:
    return {"items": [v.as_json() for v in svc.directory.organisations(who)], "next_after": None}


@router.post("/organisations", status_code=201, tags=["directory"])
def create_organisation(body: OrganisationIn, who: Who, svc: Svc) -> dict[str, object]:
    return svc.directory.create_organisation(who, body.name, body.eui64s, body.roles).as_json()


@router.get("/organisations/{name}", tags=["directory"])
def get_organisation(name: Annotated[str, Path(max_length=128)], who: Who, svc: Svc) -> dict[str, object]:
    return svc.directory.organisation(who, name).as_json()


@router.put("/organisations/{name}/approval-rules", tags=["directory"])
def set_approval_rule(
    name: Annotated[str, Path(max_length=128)], body: ApprovalRuleIn, who: Who, svc: Svc
) -> dict[str, object]:
    """How this organisation's requests for a profile are approved: auto, review, or dual (two approvers)."""
    return {"organisation": name, "rules": svc.directory.set_approval_rule(who, name, body.profile, body.rule)}


@router.get("/people", tags=["directory"])
def list_people(
    who: Who, svc: Svc, organisation: Annotated[str | None, Query(max_length=128)] = None
) -> dict[str, Any]:
    return {"items": [v.as_json() for v in svc.directory.people(who, organisation)], "next_after": None}


@router.post("/people", status_code=201, tags=["directory"])
def create_person(body: PersonIn, who: Who, svc: Svc) -> dict[str, object]:
    return svc.directory.create_person(who, body.email, body.role, body.organisation, body.password).as_json()


@router.post("/tokens", status_code=201, tags=["directory"])
def create_token(body: TokenIn, who: Who, svc: Svc) -> dict[str, str]:
    """A new API token for the person; shown once, stored only as a hash."""
    return {"token": svc.directory.create_token(who, body.email)}


# ----- certificates ------------------------------------------------------------------------------


@router.get("/certificates", tags=["certificates"])
def list_certificates(who: Who, svc: Svc, after: After = 0, limit: Limit = 100) -> dict[str, Any]:
    """Certificates issued through the RA that the caller may see; the cursor is the request id."""
    visible_organisation(who, Action.CERT_VIEW)
    views = svc.registration.requests(who, status="issued", after_id=after, limit=limit)
    items = []
    for view in views:
        if view.serial:
            cert = svc.authority.find_certificate(view.serial)
            items.append(cert.as_json() | {"request": view.id, "organisation_id": view.organisation_id})
    return page(items, [v.id for v in views], limit)


@router.get("/certificates/{serial}", tags=["certificates"], responses=PEM_OR_JSON)
def get_certificate(serial: Annotated[str, Path(max_length=64)], request: Request, who: Who, svc: Svc) -> Response:
    text = format_serial(parse_serial(serial))
    with svc.authority.database.reader() as session:
        row = CertificateRepository(session).by_serial(text)
        organisation_id = RequestRepository(session).by_id(row.request_id).organisation_id if row.request_id else None
    authorise(who, Action.CERT_VIEW, organisation_id)
    view = svc.authority.find_certificate(text)
    if _wants_json(request):
        return JSONResponse(view.as_json() | {"organisation_id": organisation_id, "pem": pem_of(view.der)})
    return Response(pem_of(view.der), media_type=PEM_CHAIN)
