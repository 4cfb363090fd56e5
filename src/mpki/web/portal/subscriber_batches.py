"""Subscriber pages for batches: upload a file of CSRs, watch it being processed, pick up the certificates.

The upload only stores the batch (`Registration.submit_batch`); the server's batch worker processes it.
The batch page polls a small progress fragment with htmx until the batch completes; the last poll also
swaps in the per-item results (out of band). Without JavaScript the page has a Refresh link.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from mpki.domain import InvalidRequest
from mpki.ra.logins import PortalIdentity
from mpki.ra.views import RequestView
from mpki.web.api import PEM_CHAIN, pem_of
from mpki.web.limits import BATCH_LIMIT
from mpki.web.portal.pages import PORTAL_HEADERS, is_htmx, redirect, render
from mpki.web.portal.params import Cursor, RowId
from mpki.web.portal.session import Actor, Viewer
from mpki.web.portal.subscriber_common import (
    BATCH_FORMATS,
    PROFILE_LABELS,
    PROFILES,
    batch_csrs,
    can_submit,
    chosen_organisation,
    may_submit,
    organisation_choices,
    organisation_names,
    read_upload,
    services,
    views,
)

router = APIRouter()


@router.get("/batches")
def list_batches(request: Request, who: Viewer, after: Cursor = None) -> HTMLResponse:
    rows = views(request).batches(who.principal, after=after)
    return render(
        request,
        "portal/sub_batches.html",
        identity=who,
        active="batches",
        rows=rows,
        after=after,
        next_after=rows[-1].id if len(rows) == views(request).page else None,
        org_names=organisation_names(request, who.principal),
        can_submit=can_submit(who.principal),
    )


def _form(
    request: Request, who: PortalIdentity, *, error: str | None = None, profile: str = "", org: str = ""
) -> HTMLResponse:
    return render(
        request,
        "portal/sub_batch_new.html",
        identity=who,
        active="batches",
        profiles=PROFILES,
        labels=PROFILE_LABELS,
        organisations=organisation_choices(request, who.principal),
        formats=BATCH_FORMATS,
        max_batch=services(request).registration.max_batch,
        error=error,
        profile=profile or "smki-device",
        organisation=org,
        status_code=400 if error else 200,
    )


@router.get("/batches/new")
def new_batch_form(request: Request, who: Viewer) -> HTMLResponse:
    may_submit(who.principal)
    return _form(request, who)


@router.post("/batches/new")
def submit_batch(
    request: Request,
    who: Actor,
    profile: Annotated[str, Form(max_length=32)] = "",
    file: Annotated[UploadFile | None, File()] = None,
    organisation: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Store the batch for the worker; a file that holds no CSRs shows the form again, nothing stored."""
    may_submit(who.principal)
    try:
        csrs = batch_csrs(read_upload(file, BATCH_LIMIT))
        view = services(request).registration.submit_batch(
            who.principal, profile, csrs, chosen_organisation(who.principal, organisation)
        )
    except InvalidRequest as error:
        return _form(request, who, error=str(error), profile=profile, org=organisation)
    size = f"{view.size:,} CSR" + ("" if view.size == 1 else "s")
    return redirect(f"/portal/batches/{view.id}", notice=f"Batch {view.id} received: {size}, queued for processing.")


def _start(value: int | None) -> int:
    return value or 0


@router.get("/batches/{batch_id}")
def show_batch(
    request: Request,
    batch_id: RowId,
    who: Viewer,
    start: Annotated[int | None, Query(ge=0, le=2**31)] = None,
) -> HTMLResponse:
    batch, items = views(request).batch_items(who.principal, batch_id, start=_start(start))
    return render(
        request,
        "portal/sub_batch.html",
        identity=who,
        active="batches",
        batch=batch,
        items=items,
        start=_start(start),
        page=views(request).page * 4,
        org_names=organisation_names(request, who.principal),
        oob=False,
    )


@router.get("/batches/{batch_id}/progress")
def batch_progress(request: Request, batch_id: RowId, who: Viewer) -> HTMLResponse:
    """The polled fragment. The poll that first sees the batch completed also carries the results table."""
    batch = services(request).registration.batch_status(who.principal, batch_id)
    items: list[RequestView] = []
    if batch.status == "completed" and is_htmx(request):
        batch, items = views(request).batch_items(who.principal, batch_id)
    return render(
        request,
        "portal/sub_batch_progress.html",
        identity=who,
        batch=batch,
        items=items,
        start=0,
        page=views(request).page * 4,
        oob=bool(items),
    )


@router.get("/batches/{batch_id}/certificates.pem")
def batch_certificates(request: Request, batch_id: RowId, who: Viewer) -> Response:
    """Every certificate issued for the batch, in item order, as one PEM file."""
    ders = services(request).registration.batch_certificates(who.principal, batch_id)
    return Response(
        "".join(pem_of(der) for der in ders),
        media_type=PEM_CHAIN,
        headers={**PORTAL_HEADERS, "Content-Disposition": f'attachment; filename="batch-{batch_id}.pem"'},
    )
