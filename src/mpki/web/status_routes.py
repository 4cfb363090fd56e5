"""CRLs and ARLs at /crl/{ca}.crl (delta at /crl/{ca}-delta.crl), and revocation under /api/v1."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import Field

from mpki.domain import NotFound, RevocationReason, utcnow
from mpki.status import DELTA, FULL, PublishedCrl
from mpki.web.api import Id, Svc, Who, _Body
from mpki.web.problems import documented

CRL_TYPE = "application/pkix-crl"

crl_router = APIRouter(tags=["status"])
revocation_router = APIRouter(prefix="/api/v1", tags=["revocation"], responses=documented(400, 401, 403, 404, 422))


class RevokeIn(_Body):
    reason: str = Field(
        examples=["keyCompromise"],
        description="RFC 5280 CRLReason: unspecified, keyCompromise, affiliationChanged, superseded, "
        "cessationOfOperation, certificateHold (where the profile allows it) or privilegeWithdrawn",
        max_length=40,
    )
    ca: str | None = Field(default=None, max_length=64, description="The issuing CA, if the serial is ambiguous")


class CaRevokeIn(_Body):
    reason: str = Field(examples=["cACompromise"], max_length=40)


def _crl_response(request: Request, crl: PublishedCrl, max_age: int) -> Response:
    """A CRL is re-issued the moment a revocation happens, so caches may keep one only `max_age` seconds."""
    etag = f'"{crl.ca}-{crl.number}"'
    until_next = int((crl.next_update - utcnow()).total_seconds())
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(crl.this_update.astimezone(dt.UTC), usegmt=True),
        "Expires": format_datetime(crl.next_update.astimezone(dt.UTC), usegmt=True),
        "Cache-Control": f"public, max-age={max(0, min(max_age, until_next))}, no-transform",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(crl.der, media_type=CRL_TYPE, headers=headers)


@crl_router.get(
    "/crl/{filename}",
    responses={200: {"content": {CRL_TYPE: {}}, "description": "The DER CRL"}, **documented(404)},
)
def get_crl(filename: Annotated[str, Path(max_length=80)], request: Request, svc: Svc) -> Response:
    """The newest CRL of an issuing CA, ARL of a root, or (`{ca}-delta.crl`) delta CRL. No login."""
    if not filename.endswith(".crl"):
        raise NotFound("CRLs are named {ca}.crl or {ca}-delta.crl")
    name = filename.removesuffix(".crl")
    known = {view.name for view in svc.authority.list_cas()}
    max_age = svc.authority.settings.status.http_max_age_seconds
    if name in known:
        return _crl_response(request, svc.status.crls.latest(name, FULL), max_age)
    if name.endswith("-delta") and name.removesuffix("-delta") in known:
        return _crl_response(request, svc.status.crls.latest(name.removesuffix("-delta"), DELTA), max_age)
    raise NotFound(f"no CA named {name!r}")


@revocation_router.post("/certificates/{serial}/revoke")
def revoke_certificate(
    serial: Annotated[str, Path(max_length=64)], body: RevokeIn, who: Who, svc: Svc
) -> dict[str, Any]:
    """Revoke a certificate: subscribers their own organisation's, RA agents any. The CRL and the OCSP
    response are re-signed before this returns."""
    reason = RevocationReason.parse(body.reason)
    return svc.revocation.revoke(who, serial, reason, ca_name=body.ca).as_json()


@revocation_router.post("/certificates/{serial}/release-hold")
def release_hold(serial: Annotated[str, Path(max_length=64)], who: Who, svc: Svc) -> dict[str, Any]:
    """Take a certificate off hold (certificateHold); the next delta CRL says removeFromCRL."""
    return svc.revocation.release_hold(who, serial).as_json()


@revocation_router.post("/cas/{name}/revocations", status_code=202)
def propose_ca_revocation(
    name: Annotated[str, Path(max_length=64)], body: CaRevokeIn, who: Who, svc: Svc
) -> dict[str, Any]:
    """First of two service administrators proposes revoking a CA certificate (dual control)."""
    return svc.revocation.propose_ca_revocation(who, name, RevocationReason.parse(body.reason)).as_json()


@revocation_router.get("/ca-revocations")
def pending_ca_revocations(who: Who, svc: Svc) -> dict[str, Any]:
    return {"items": [view.as_json() for view in svc.revocation.pending_ca_revocations(who)]}


@revocation_router.post("/ca-revocations/{proposal_id}/approve")
def approve_ca_revocation(proposal_id: Id, who: Who, svc: Svc) -> dict[str, Any]:
    """A second, different service administrator approves: the CA goes on its root's ARL at once."""
    return svc.revocation.approve_ca_revocation(who, proposal_id).as_json()


@revocation_router.post("/ca-revocations/{proposal_id}/withdraw")
def withdraw_ca_revocation(proposal_id: Id, who: Who, svc: Svc) -> dict[str, Any]:
    return svc.revocation.withdraw_ca_revocation(who, proposal_id).as_json()
