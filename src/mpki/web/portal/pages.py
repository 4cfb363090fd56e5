"""Rendering portal pages: one layout, a navigation made from what the person may do, flash notices,
and the security headers every portal answer carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mpki.domain import Action
from mpki.ra.authorisation import Principal, scope_of
from mpki.ra.logins import PortalIdentity
from mpki.web.templating import templates

# Only the service's own scripts and styles; images may be inline (charts) or data: URLs.
PORTAL_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
FLASH_COOKIE = "mpki_flash"
TITLES_FOR_STATUS = {
    400: "That request cannot be done",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    422: "Check the form",
    500: "Something went wrong",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    href: str


def navigation(principal: Principal) -> list[NavItem]:
    """The sections this person may open; an RA page never shows in a subscriber's menu."""

    def may(action: Action) -> bool:
        return scope_of(principal, action) is not None

    items = [NavItem("home", "Home", "/portal/")]
    if may(Action.REQUEST_SUBMIT):
        items += [
            NavItem("requests", "Requests", "/portal/requests"),
            NavItem("batches", "Batches", "/portal/batches"),
            NavItem("certificates", "Certificates", "/portal/certificates"),
            NavItem("keygen", "New key", "/portal/keygen"),
        ]
    if may(Action.REQUEST_DECIDE):
        items += [
            NavItem("ra-queue", "RA queue", "/portal/ra/queue"),
            NavItem("ra-organisations", "Organisations", "/portal/ra/organisations"),
            NavItem("ra-batches", "Batch timelines", "/portal/ra/batches"),
        ]
    if may(Action.REPORT_VIEW):
        items.append(NavItem("reports", "Reports", "/portal/reports"))
    if may(Action.ORG_CREATE) or may(Action.CA_ADMIN):
        items.append(NavItem("admin", "Administration", "/portal/admin/"))
    if may(Action.AUDIT_VIEW):
        items.append(NavItem("audit", "Audit log", "/portal/admin/audit"))
    return items


def render(
    request: Request,
    template: str,
    *,
    identity: PortalIdentity | None,
    active: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A full portal page (or, with `fragment`, a piece htmx swaps in) with the person's navigation."""
    flash = _read_flash(request)
    html = templates.get_template(template).render(
        me=identity.principal if identity else None,
        csrf_token=identity.csrf_token if identity else "",
        htmx_headers=json.dumps({"X-CSRF-Token": identity.csrf_token}) if identity else "",
        nav=navigation(identity.principal) if identity else [],
        active=active,
        flash=flash,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=PORTAL_HEADERS)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/portal")
    return response


def redirect(url: str, *, notice: str | None = None) -> RedirectResponse:
    """303 after a POST (the browser then GETs `url`), with an optional one-time notice shown there."""
    response = RedirectResponse(url, status_code=303, headers=PORTAL_HEADERS)
    if notice:
        response.set_cookie(FLASH_COOKIE, quote(notice[:300]), path="/portal", httponly=True, samesite="strict")
    return response


def htmx_redirect(url: str) -> Response:
    """For htmx requests: ask htmx to navigate (a 303 would be followed inside the fragment)."""
    return Response(status_code=204, headers={"HX-Redirect": url, **PORTAL_HEADERS})


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _read_flash(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    return unquote(raw) if raw else None
