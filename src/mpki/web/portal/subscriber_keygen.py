"""A key and certificate for a person with no CSR: the browser makes the key and the CSR (keygen.js), the
server sees only the CSR. The answer is JSON for the page's script; the private key never reaches here.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mpki.domain import Forbidden, InvalidRequest, MpkiError, NotFound
from mpki.ra.logins import PortalIdentity
from mpki.ra.single_request import MAX_CSR_BYTES, submit_one
from mpki.ra.views import RequestView
from mpki.web.api import pem_of
from mpki.web.portal.pages import PORTAL_HEADERS, render
from mpki.web.portal.session import Actor, Viewer
from mpki.web.portal.subscriber_common import (
    chosen_organisation,
    may_submit,
    organisation_choices,
    services,
)

router = APIRouter()
PROFILE = "tls-client"
NO_SCRIPT = (
    "this page makes your key in the browser and needs JavaScript; with JavaScript off, make a CSR yourself "
    "and submit it on the New request page"
)


def _page(request: Request, who: PortalIdentity, error: str | None = None) -> HTMLResponse:
    return render(
        request,
        "portal/sub_keygen.html",
        identity=who,
        active="keygen",
        profile=PROFILE,
        organisations=organisation_choices(request, who.principal),
        error=error,
        status_code=400 if error else 200,
    )


@router.get("/keygen")
def keygen_page(request: Request, who: Viewer) -> HTMLResponse:
    may_submit(who.principal)
    return _page(request, who)


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=PORTAL_HEADERS)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_CSR_BYTES * 2:
        raise InvalidRequest("the request is too large for one CSR")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("csr"), str):
        raise InvalidRequest('send {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}')
    organisation = body.get("organisation", "")
    if not isinstance(organisation, str):
        raise InvalidRequest("organisation must be a name")
    extra = sorted(set(body) - {"csr", "organisation"})
    if extra:
        raise InvalidRequest(f"only the CSR is sent here, not {', '.join(extra)}")
    return body


@router.post("/keygen")
async def keygen_request(request: Request, who: Actor) -> Response:
    """{"csr": PEM, "organisation"?: name} -> {"status", "reason", "request", "request_url", "certificate"}."""
    may_submit(who.principal)
    if not request.headers.get("content-type", "").startswith("application/json"):
        return _page(request, who, NO_SCRIPT)
    try:
        body = await _body(request)
        organisation = chosen_organisation(who.principal, body.get("organisation", ""))
        csr = body["csr"].strip().encode()
        view = await _submit(request, who, csr, organisation)
    except MpkiError as error:
        code = 403 if isinstance(error, Forbidden) else 404 if isinstance(error, NotFound) else 400
        return _answer(code, {"status": "refused", "reason": str(error)})
    certificate = None
    if view.status == "issued":
        der = services(request).authority.certificates_for_requests([view.id]).get(view.id)
        certificate = pem_of(der) if der else None
    return _answer(
        201,
        {
            "status": view.status,
            "reason": view.reason,
            "request": view.id,
            "request_url": f"/portal/requests/{view.id}",
            "serial": view.serial,
            "certificate": certificate,
        },
    )


async def _submit(request: Request, who: PortalIdentity, csr: bytes, organisation: str | None) -> RequestView:
    """Issuance signs and writes: run it off the event loop, as FastAPI runs the synchronous routes."""
    registration = services(request).registration
    return await run_in_threadpool(submit_one, registration, who.principal, PROFILE, csr, organisation)
