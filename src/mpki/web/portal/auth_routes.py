"""Sign in, sign out, and the home page each role lands on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mpki.ra.logins import LoginRefused, tokens_match
from mpki.web.portal.pages import PORTAL_HEADERS, redirect, render
from mpki.web.portal.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Actor,
    CsrfRefused,
    Viewer,
    logins,
    new_login_csrf,
    secure_cookies,
)

auth_router = APIRouter(prefix="/portal", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path inside the portal: never an open redirect to another site."""
    if target and target.startswith("/portal") and not target.startswith("//") and "\\" not in target:
        return target
    return "/portal/"


def _login_page(request: Request, next_path: str, error: str | None, status_code: int, email: str = "") -> HTMLResponse:
    token = new_login_csrf()
    response = render(
        request,
        "portal/login.html",
        identity=None,
        login_csrf=token,
        next_path=_safe_next(next_path),
        error=error,
        email=email,
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/portal/login", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    return response


@auth_router.get("/login")
def login_form(request: Request, next: str = "/portal/") -> HTMLResponse:
    return _login_page(request, next, None, 200)


@auth_router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/portal/",
) -> Response:
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE) or "\0", csrf_token or None):
        raise CsrfRefused("the sign-in form expired: reload the page and try again")
    if not email or not password:
        return _login_page(request, next, "enter your email and password", 400, email)
    client = request.client.host if request.client else "unknown"
    try:
        signed_in = logins(request).sign_in(email, password, client=client)
    except LoginRefused as refused:
        return _login_page(request, next, str(refused), 401, email)
    response = RedirectResponse(_safe_next(next), status_code=303, headers=PORTAL_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.cookie,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/portal/login")
    return response


@auth_router.post("/logout")
def logout(request: Request, _who: Actor) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        logins(request).sign_out(cookie)
    response = redirect("/portal/login", notice="You are signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@auth_router.get("")
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@auth_router.get("/")
def home(request: Request, who: Viewer) -> HTMLResponse:
    return render(request, "portal/home.html", identity=who, active="home")
