"""Administration: the audit log, newest first, with filters and keyset paging; and, on request, the
verification of the whole hash chain (a walk over every event, too slow to run on every page view)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mpki.domain import Action, InvalidRequest, format_serial, parse_serial
from mpki.ra.authorisation import authorise
from mpki.store import AuditCriteria
from mpki.web.portal.admin_common import administration
from mpki.web.portal.pages import is_htmx, render
from mpki.web.portal.params import Cursor
from mpki.web.portal.session import Viewer

router = APIRouter(prefix="/portal/admin", include_in_schema=False)
Text = Annotated[str, Query(max_length=256)]


def _day(text: str, label: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidRequest(f"the {label} date {text!r} is not a date like 2026-11-28") from None


def criteria_of(action: str, actor: str, serial: str, since: str, until: str) -> AuditCriteria:
    """The filters as typed into the form; a bad one is InvalidRequest naming it."""
    start, end = _day(since.strip(), "from"), _day(until.strip(), "to")
    if start is not None and end is not None and end < start:
        raise InvalidRequest("the to date is before the from date")
    return AuditCriteria(
        action_prefix=action.strip().lower() or None,
        actor=actor.strip() or None,
        serial=format_serial(parse_serial(serial)) if serial.strip() else None,
        since=start,
        until=end + dt.timedelta(days=1) if end is not None else None,  # the whole "to" day
    )


@router.get("/audit")
def audit_log(
    request: Request,
    who: Viewer,
    action: Text = "",
    actor: Text = "",
    serial: Text = "",
    since: Annotated[str, Query(alias="from", max_length=10)] = "",
    until: Annotated[str, Query(alias="to", max_length=10)] = "",
    before: Cursor = None,
) -> Response:
    authorise(who.principal, Action.AUDIT_VIEW)  # before anything about the filters is said
    filters = {"action": action, "actor": actor, "serial": serial, "from": since, "to": until}
    admin = administration(request)
    error: str | None = None
    try:
        criteria = criteria_of(action, actor, serial, since, until)
    except InvalidRequest as bad:
        error, criteria = str(bad), None
    page = admin.audit_events(who.principal, criteria, before) if criteria is not None else None
    kept = {name: value for name, value in filters.items() if value}
    newest = "/portal/admin/audit" + (f"?{urlencode(kept)}" if kept else "")
    older = None
    if page is not None and page.older is not None:
        older = "/portal/admin/audit?" + urlencode(kept | {"before": str(page.older)})
    return render(
        request,
        "portal/admin_audit.html",
        identity=who,
        active="audit",
        status_code=400 if error else 200,
        filters=filters,
        page=page,
        older=older,
        newest=newest,
        paged=before is not None,
        error=error,
    )


@router.get("/audit/verification")
def verification(request: Request, who: Viewer) -> Response:
    """A fragment for htmx ("Verify now"); opened without JavaScript, a whole page around it."""
    chain = administration(request).audit_chain(who.principal)
    template = "portal/admin_audit_verification.html" if is_htmx(request) else "portal/admin_audit_verified.html"
    return render(request, template, identity=who, active="audit", chain=chain)
