"""Portal section: reports. Everyone allowed to view reports lists the kept weekly and monthly ones, opens
or downloads them, and makes a report now for any week or month; an organisation's RA officer sees only
its own organisation's reports (never the all-organisations ones). Reports only read, so every page here
is a GET: nothing to protect with a CSRF token, and a report made now is shown, not kept."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from mpki.domain import Action, InvalidRequest, NotFound
from mpki.ra.authorisation import authorise, visible_organisation
from mpki.ra.directory import OrganisationView
from mpki.ra.logins import PortalIdentity
from mpki.reports import FORMATS, Period, Report, ReportBuilder, charts, duration, reason_name, render, to_dict
from mpki.reports.archive import KeptReports
from mpki.web.api import Services
from mpki.web.portal.pages import PORTAL_HEADERS, is_htmx
from mpki.web.portal.pages import render as render_page
from mpki.web.portal.session import Viewer

router = APIRouter(prefix="/portal", include_in_schema=False)

# A kept HTML report is a standalone document with its own inline styles and no scripts: it gets a policy
# of its own that allows exactly that (and may be framed only by the portal).
REPORT_DOCUMENT_HEADERS = PORTAL_HEADERS | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _kept(request: Request) -> KeptReports:
    return KeptReports(_services(request).authority.database)


def _organisations(request: Request, who: PortalIdentity) -> list[OrganisationView]:
    return _services(request).directory.organisations(who.principal)


@router.get("/reports")
def reports_index(request: Request, who: Viewer) -> HTMLResponse:
    only = visible_organisation(who.principal, Action.REPORT_VIEW)
    kept = _kept(request).listing(only, everything=only is None)
    return render_page(
        request,
        "portal/reports.html",
        identity=who,
        active="reports",
        kept=kept,
        organisations=_organisations(request, who),
        may_see_all=only is None,
        form={"period": "", "organisation": "" if only is None else str(only), "format": "html"},
        error=None,
        result=None,
    )


@router.get("/reports/run")
def run_report(
    request: Request,
    who: Viewer,
    period: Annotated[str, Query(max_length=200)] = "",
    organisation: Annotated[str, Query(max_length=200)] = "",
    fmt: Annotated[str, Query(alias="format", max_length=200)] = "html",
) -> Response:
    """A report made now for any week or month: shown in the page (html) or downloaded (csv, json). Bad
    input answers 400 with the form and the reason."""
    only = visible_organisation(who.principal, Action.REPORT_VIEW)
    visible = _organisations(request, who)
    form = {"period": period, "organisation": organisation, "format": fmt}
    try:
        parsed, name = _checked(who, visible, period, organisation, fmt)
    except InvalidRequest as error:
        return _form_page(request, who, form, visible, only, str(error), None, 400)
    report = ReportBuilder(_services(request).authority.database, _services(request).authority.settings).build(
        parsed, name
    )
    if fmt != "html":
        scope = "all" if name is None else f"org{organisation}"
        filename = f"mpki-report-{parsed.label}-{scope}.{fmt}"
        return Response(
            render(report, fmt),
            media_type=MEDIA_TYPES[fmt],
            headers=PORTAL_HEADERS | {"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return _form_page(request, who, form, visible, only, None, report, 200)


def _checked(
    who: PortalIdentity, visible: list[OrganisationView], period: str, organisation: str, fmt: str
) -> tuple[Period, str | None]:
    """The period and the organisation's name (None: all), once the person may see that scope."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"the format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not period.strip():
        raise InvalidRequest("enter a period: an ISO week like 2026-W47 or a month like 2026-11")
    parsed = Period.parse(period)
    if not organisation:
        authorise(who.principal, Action.REPORT_VIEW, None)
        return parsed, None
    if not organisation.isdigit():
        raise InvalidRequest(f"{organisation!r} is not an organisation")
    authorise(who.principal, Action.REPORT_VIEW, int(organisation))
    names = {view.id: view.name for view in visible}
    if int(organisation) not in names:
        raise InvalidRequest(f"there is no organisation {organisation}")
    return parsed, names[int(organisation)]


def _form_page(
    request: Request,
    who: PortalIdentity,
    form: dict[str, str],
    visible: list[OrganisationView],
    only: int | None,
    error: str | None,
    report: Report | None,
    status: int,
) -> HTMLResponse:
    result = _result_context(report, form["organisation"]) if report is not None else None
    if is_htmx(request):
        return render_page(
            request, "portal/reports_result.html", identity=who, error=error, result=result, status_code=status
        )
    return render_page(
        request,
        "portal/reports.html",
        identity=who,
        active="reports",
        kept=_kept(request).listing(only, everything=only is None),
        organisations=visible,
        may_see_all=only is None,
        form=form,
        error=error,
        result=result,
        status_code=status,
    )


def _result_context(report: Report, organisation: str) -> dict[str, object]:
    return {
        "report": report,
        "query": urlencode({"period": report.period.label, "organisation": organisation}),
        "data": to_dict(report),
        "charts": charts(report),
        "duration": duration,
        "reason_name": reason_name,
    }


@router.get("/reports/{report_id}.{fmt}")
def kept_report(request: Request, who: Viewer, report_id: int, fmt: str) -> Response:
    """A kept report: HTML opens as its own document; CSV and JSON download."""
    if fmt not in FORMATS:
        raise NotFound(f"a kept report is available as {', '.join(FORMATS)}")
    kept = _kept(request).body(report_id, fmt)
    authorise(who.principal, Action.REPORT_VIEW, kept.organisation_id)
    if fmt == "html":
        return HTMLResponse(kept.body, headers=REPORT_DOCUMENT_HEADERS)
    disposition = {"Content-Disposition": f'attachment; filename="{kept.filename}"'}
    return Response(kept.body, media_type=MEDIA_TYPES[fmt], headers=PORTAL_HEADERS | disposition)
