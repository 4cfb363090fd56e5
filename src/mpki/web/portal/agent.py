"""Portal section: the RA agent's desk. The queue of held requests, the review of one request (with the
certificate a duplicate-device hold conflicts with), approve or reject with a reason, counts per organisation
and batch timelines.

Reads go through `ra.review.ReviewDesk`, decisions through `Registration.decide`: both authorise
(request.decide, scoped to the organisation) and the decision is audited there. Nothing here touches SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from mpki.domain import Forbidden, InvalidRequest, utcnow
from mpki.ra.review import ReviewDesk
from mpki.ra.views import RequestView
from mpki.web.api import Services
from mpki.web.portal.pages import is_htmx, redirect, render
from mpki.web.portal.params import Cursor, RowId
from mpki.web.portal.session import Actor, Viewer

router = APIRouter(prefix="/portal/ra", include_in_schema=False)

MAX_REASON = 1000
OrganisationFilter = Annotated[str | None, Query(max_length=20)]
QUEUE_RESULTS = "queue-results"


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _desk(request: Request) -> ReviewDesk:
    return ReviewDesk(_services(request).registration.database)


def _organisation(value: str | None) -> int | None:
    """The organisation filter: empty means all; anything but an id from the list is refused."""
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise InvalidRequest("choose an organisation from the list")
    return int(value)


def waited(since: dt.datetime, now: dt.datetime) -> str:
    """How long a request has waited, in the two largest units that matter to a person."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


# ----- the queue -----------------------------------------------------------------------------------


@router.get("/queue")
def queue(request: Request, who: Viewer, organisation: OrganisationFilter = None, after: Cursor = None) -> HTMLResponse:
    page = _desk(request).queue(who.principal, _organisation(organisation), after or 0)
    names = dict(page.organisations)
    # htmx refreshing the results asks for them alone; anything else gets the whole page.
    fragment = is_htmx(request) and request.headers.get("HX-Target") == QUEUE_RESULTS
    template = "portal/ra_queue_results.html" if fragment else "portal/ra_queue.html"
    return render(
        request, template, identity=who, active="ra-queue", page=page, names=names, waited=waited, first=not after
    )


# ----- one request ---------------------------------------------------------------------------------


def _review_page(
    request: Request,
    who: Viewer,
    request_id: int,
    *,
    error: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    desk = _desk(request)
    review = desk.review(who.principal, request_id)
    return render(
        request,
        "portal/ra_request.html",
        identity=who,
        active="ra-queue",
        review=review,
        error=error,
        reason=reason,
        waited=waited,
        now=utcnow(),
        status_code=status_code,
    )


@router.get("/requests/{request_id}")
def review_request(request: Request, who: Viewer, request_id: RowId) -> HTMLResponse:
    return _review_page(request, who, request_id)


def _notice(view: RequestView) -> str:
    if view.status == "pending":
        return f"Request {view.id}: first approval recorded; a second agent must approve"
    if view.status == "rejected":
        return f"Request {view.id} rejected"
    if view.status == "failed":
        return f"Request {view.id} approved, but the CA did not issue it: {view.reason}"
    issued = f"; certificate {view.serial} issued" if view.serial else ""
    return f"Request {view.id} approved{issued}"


def _decide(request: Request, who: Actor, request_id: int, approve: bool, reason: str) -> Response:
    """Decide through the RA; a refused decision shows the review page again with why (nothing written)."""
    text = reason.strip() or None
    try:
        if text is not None and len(text) > MAX_REASON:
            raise InvalidRequest(f"the reason is at most {MAX_REASON} characters")
        view = _services(request).registration.decide(who.principal, request_id, approve, text)
    except (InvalidRequest, Forbidden) as refused:
        status = 403 if isinstance(refused, Forbidden) else 400
        # The page is read with the same authorisation: someone who may not decide sees "Not allowed".
        return _review_page(request, who, request_id, error=str(refused), reason=reason, status_code=status)
    return redirect("/portal/ra/queue", notice=_notice(view))


@router.post("/requests/{request_id}/approve")
def approve(
    request: Request, who: Actor, request_id: RowId, reason: Annotated[str, Form(max_length=20_000)] = ""
) -> Response:
    return _decide(request, who, request_id, True, reason)


@router.post("/requests/{request_id}/reject")
def reject(
    request: Request, who: Actor, request_id: RowId, reason: Annotated[str, Form(max_length=20_000)] = ""
) -> Response:
    return _decide(request, who, request_id, False, reason)


# ----- counts and timelines ------------------------------------------------------------------------


@router.get("/organisations")
def organisations(request: Request, who: Viewer) -> HTMLResponse:
    tallies = _desk(request).tallies(who.principal)
    return render(request, "portal/ra_organisations.html", identity=who, active="ra-organisations", tallies=tallies)


@router.get("/batches")
def batches(
    request: Request, who: Viewer, organisation: OrganisationFilter = None, before: Cursor = None
) -> HTMLResponse:
    page = _desk(request).batch_timelines(who.principal, _organisation(organisation), before)
    return render(request, "portal/ra_batches.html", identity=who, active="ra-batches", page=page, first=not before)
