"""Subscriber pages for single requests: the list, the form to submit one CSR, and one request's page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from mpki.domain import InvalidRequest
from mpki.ra.logins import PortalIdentity
from mpki.ra.single_request import MAX_CSR_BYTES, submit_one
from mpki.ra.subscriber_views import REQUEST_STATUSES
from mpki.web.portal.pages import redirect, render
from mpki.web.portal.params import Cursor, RowId
from mpki.web.portal.session import Actor, Viewer
from mpki.web.portal.subscriber_common import (
    PROFILE_LABELS,
    PROFILES,
    can_submit,
    chosen_organisation,
    may_submit,
    organisation_choices,
    organisation_names,
    read_upload,
    services,
    single_csr,
    views,
)

router = APIRouter()


@router.get("/requests")
def list_requests(
    request: Request,
    who: Viewer,
    after: Cursor = None,
    status: Annotated[str, Query(max_length=16)] = "",
) -> HTMLResponse:
    rows = views(request).requests(who.principal, status=status or None, after=after)
    page = views(request).page
    return render(
        request,
        "portal/sub_requests.html",
        identity=who,
        active="requests",
        rows=rows,
        status=status,
        statuses=REQUEST_STATUSES,
        after=after,
        next_after=rows[-1].id if len(rows) == page else None,
        org_names=organisation_names(request, who.principal),
        can_submit=can_submit(who.principal),
    )


def _form(
    request: Request, who: PortalIdentity, *, error: str | None = None, profile: str = "", csr: str = "", org: str = ""
) -> HTMLResponse:
    return render(
        request,
        "portal/sub_request_new.html",
        identity=who,
        active="requests",
        profiles=PROFILES,
        labels=PROFILE_LABELS,
        organisations=organisation_choices(request, who.principal),
        error=error,
        profile=profile,
        csr=csr,
        organisation=org,
        status_code=400 if error else 200,
    )


@router.get("/requests/new")
def new_request_form(request: Request, who: Viewer) -> HTMLResponse:
    may_submit(who.principal)
    return _form(request, who)


@router.post("/requests/new")
def submit_request(
    request: Request,
    who: Actor,
    profile: Annotated[str, Form(max_length=32)] = "",
    csr: Annotated[str, Form()] = "",
    csr_file: Annotated[UploadFile | None, File()] = None,
    organisation: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Check the CSR first (a bad one shows the form again, nothing stored), then process it at once."""
    may_submit(who.principal)
    try:
        der_or_pem = single_csr(csr, read_upload(csr_file, MAX_CSR_BYTES))
        view = submit_one(
            services(request).registration,
            who.principal,
            profile,
            der_or_pem,
            chosen_organisation(who.principal, organisation),
        )
    except InvalidRequest as error:
        return _form(request, who, error=str(error), profile=profile, csr=csr[:MAX_CSR_BYTES], org=organisation)
    notices = {
        "issued": "Your certificate is issued.",
        "pending": "Your request is waiting for an RA agent to review it.",
        "rejected": "Your request was rejected: see the reason below.",
    }
    return redirect(f"/portal/requests/{view.id}", notice=notices.get(view.status, f"Request {view.id} submitted."))


@router.get("/requests/{request_id}")
def show_request(request: Request, request_id: RowId, who: Viewer) -> HTMLResponse:
    view = services(request).registration.request(who.principal, request_id)
    return render(
        request,
        "portal/sub_request.html",
        identity=who,
        active="requests",
        item=view,
        org_names=organisation_names(request, who.principal),
    )
