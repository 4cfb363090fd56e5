"""The web portals: subscriber, RA agent and administration pages over the same `ra` services the API uses.

Server-rendered (Jinja2) with htmx for live parts; signed in with argon2 passwords into database sessions;
every POST carries the session's CSRF token. `install(app)` adds the routes, static files and error pages.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mpki.web.portal.auth_routes import auth_router
from mpki.web.portal.pages import TITLES_FOR_STATUS, htmx_redirect, is_htmx, render
from mpki.web.portal.routes import portal_routers
from mpki.web.portal.session import CsrfRefused, LoginRequired, login_url
from mpki.web.templating import STATIC_DIR

__all__ = ["install"]


def _error_page(request: Request, status: int, detail: str) -> Response:
    if status == 401:
        return _to_login(request, LoginRequired(request.url.path))
    identity = getattr(request.state, "identity", None)
    return render(
        request,
        "portal/error.html",
        identity=identity,
        title=TITLES_FOR_STATUS.get(status, "Something went wrong"),
        detail=detail,
        status_code=status,
    )


def _to_login(request: Request, error: LoginRequired) -> Response:
    target = login_url(error.next_path if request.method == "GET" else "/portal/")
    if is_htmx(request):
        return htmx_redirect(target)
    return RedirectResponse(target, status_code=303)


def install(app: FastAPI) -> None:
    """Routes under /portal, static files under /static, and HTML error pages for portal paths."""
    app.state.html_errors = _error_page
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, error: LoginRequired) -> Response:
        return _to_login(request, error)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, error: CsrfRefused) -> Response:
        return _error_page(request, 403, str(error))

    app.include_router(auth_router)
    for router in portal_routers():
        app.include_router(router)
