"""Who is signed in to the portal, and the CSRF check every state-changing portal request passes.

The session cookie is HttpOnly and SameSite=Strict; on top of that every POST carries the session's
synchroniser token, as a form field (`csrf_token`, plain HTML forms) or as the `X-CSRF-Token` header
(htmx, set once on <body> with hx-headers). Sign-in, before any session exists, uses a double-submit
cookie instead.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from mpki.domain import InvalidRequest, Unauthenticated
from mpki.ra.logins import PortalIdentity, PortalLogins, tokens_match

SESSION_COOKIE = "mpki_session"
LOGIN_CSRF_COOKIE = "mpki_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No live session: the page sends the browser to sign in, then back to `next_path`."""

    def __init__(self, next_path: str, reason: str | None = None) -> None:
        super().__init__(reason or "sign in to continue")
        self.next_path = next_path
        self.reason = reason


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token: refused with 403, nothing written."""


def logins(request: Request) -> PortalLogins:
    found: PortalLogins = request.app.state.logins
    return found


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https"


def login_url(next_path: str) -> str:
    return "/portal/login?next=" + quote(next_path, safe="/")


def current_identity(request: Request) -> PortalIdentity:
    """The signed-in person (GET pages); no session sends the browser to sign in."""
    cookie = request.cookies.get(SESSION_COOKIE)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not cookie:
        raise LoginRequired(target)
    try:
        identity = logins(request).identify(cookie)
    except Unauthenticated as ended:
        raise LoginRequired(target, str(ended)) from None
    request.state.identity = identity
    return identity


async def csrf_checked_identity(request: Request) -> PortalIdentity:
    """The signed-in person, for a request that changes something: its CSRF token must match the session's."""
    identity = current_identity(request)
    if request.method in UNSAFE:
        offered = request.headers.get(CSRF_HEADER)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            if offered is None:
                value = form.get(CSRF_FIELD)
                offered = value if isinstance(value, str) else None
            if not tokens_match(identity.csrf_token, offered):
                raise CsrfRefused("the form's security token is missing or wrong: reload the page and try again")
            # No stored text holds NUL (PostgreSQL refuses it): refuse it here for every form at once.
            if any(isinstance(value, str) and "\x00" in value for value in form.values()):
                raise InvalidRequest("a form field holds a NUL character")
        elif not tokens_match(identity.csrf_token, offered):
            raise CsrfRefused("the form's security token is missing or wrong: reload the page and try again")
    return identity


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


Viewer = Annotated[PortalIdentity, Depends(current_identity)]
Actor = Annotated[PortalIdentity, Depends(csrf_checked_identity)]
