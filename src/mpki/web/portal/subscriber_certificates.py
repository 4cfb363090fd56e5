"""Subscriber pages for certificates: the organisation's list, one certificate, its PEM, and revoking it.

Reads authorise in `ra.subscriber_views`; revocation goes through the RA's revocation desk, which
authorises it again and re-publishes status. The revoke form has a confirm step the server checks too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from mpki.domain import Action, InvalidRequest
from mpki.ra.authorisation import scope_of
from mpki.ra.logins import PortalIdentity
from mpki.ra.subscriber_views import CertificateView, subscriber_reason
from mpki.web.api import PEM_CHAIN, pem_of
from mpki.web.portal.pages import PORTAL_HEADERS, redirect, render
from mpki.web.portal.params import Cursor
from mpki.web.portal.session import Actor, Viewer
from mpki.web.portal.subscriber_common import organisation_names, services, views

router = APIRouter()
Serial = Annotated[str, Path(min_length=1, max_length=64)]
CONFIRMED = "yes"


@router.get("/certificates")
def list_certificates(request: Request, who: Viewer, after: Cursor = None) -> HTMLResponse:
    rows = views(request).certificates(who.principal, after=after)
    return render(
        request,
        "portal/sub_certificates.html",
        identity=who,
        active="certificates",
        rows=rows,
        after=after,
        next_after=rows[-1].id if len(rows) == views(request).page else None,
        org_names=organisation_names(request, who.principal),
    )


# Declared before /certificates/{serial}: a path parameter would otherwise swallow the ".pem".
@router.get("/certificates/{serial}.pem")
def download_certificate(request: Request, serial: Serial, who: Viewer) -> Response:
    certificate, der = views(request).certificate(who.principal, serial)
    return Response(
        pem_of(der),
        media_type=PEM_CHAIN,
        headers={**PORTAL_HEADERS, "Content-Disposition": f'attachment; filename="{certificate.serial}.pem"'},
    )


def _page(
    request: Request, who: PortalIdentity, certificate: CertificateView, *, error: str | None = None, reason: str = ""
) -> HTMLResponse:
    may_revoke = scope_of(who.principal, Action.CERT_REVOKE) is not None
    return render(
        request,
        "portal/sub_certificate.html",
        identity=who,
        active="certificates",
        cert=certificate,
        reasons=certificate.reasons() if may_revoke else (),
        chosen=reason,
        error=error,
        org_names=organisation_names(request, who.principal),
        status_code=400 if error else 200,
    )


@router.get("/certificates/{serial}")
def show_certificate(request: Request, serial: Serial, who: Viewer) -> HTMLResponse:
    certificate, _ = views(request).certificate(who.principal, serial)
    return _page(request, who, certificate)


@router.post("/certificates/{serial}/revoke")
def revoke_certificate(
    request: Request,
    serial: Serial,
    who: Actor,
    reason: Annotated[str, Form(max_length=64)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Revoke one of the organisation's certificates; an unconfirmed or wrong request changes nothing."""
    certificate, _ = views(request).certificate(who.principal, serial)
    try:
        if not reason:
            raise InvalidRequest("choose a reason for the revocation")
        chosen = subscriber_reason(reason, certificate)
        if confirm != CONFIRMED:
            raise InvalidRequest("tick “I understand this cannot be undone” to confirm the revocation")
        outcome = services(request).revocation.revoke(who.principal, certificate.serial, chosen, ca_name=certificate.ca)
    except InvalidRequest as error:
        return _page(request, who, certificate, error=str(error), reason=reason)
    word = "put on hold" if outcome.reason.rfc_name == "certificateHold" else "revoked"
    return redirect(
        f"/portal/certificates/{certificate.serial}",
        notice=f"Certificate {certificate.serial} is {word} ({outcome.reason.rfc_name}).",
    )
