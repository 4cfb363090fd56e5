"""RFC 9457 problem details: every error the API returns is `application/problem+json`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mpki.domain import Conflict, Forbidden, InvalidRequest, MpkiError, NotFound, Unauthenticated, Unavailable

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
}
BEARER = {"WWW-Authenticate": "Bearer"}

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for problem answers."""
    return {
        status: {"description": TITLES.get(status, "Error"), "content": {PROBLEM: {"schema": _SCHEMA}}}
        for status in statuses
    }


def problem(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _status_of(error: MpkiError) -> int:
    if isinstance(error, Unauthenticated):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, InvalidRequest):
        return 400
    return 500


def _plain(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (it may be megabytes of CSRs) or exception objects."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]


HtmlErrors = Callable[[Request, int, str], Response]


def _html_errors(request: Request) -> HtmlErrors | None:
    """Pages for people (the portals) answer errors with a page; everything else gets problem+json."""
    hook: HtmlErrors | None = getattr(request.app.state, "html_errors", None)
    return hook if hook is not None and request.url.path.startswith("/portal") else None


def install(app: FastAPI) -> None:
    @app.exception_handler(MpkiError)
    async def _mpki_error(request: Request, error: MpkiError) -> Response:
        status = _status_of(error)
        if html := _html_errors(request):
            return html(request, status, str(error))
        return problem(status, str(error), headers=BEARER if status == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        errors = _plain(list(error.errors()))
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "the request body is not valid JSON", errors=errors)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        if html := _html_errors(request):
            return html(request, 422, detail)
        return problem(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if html := _html_errors(request):
            return html(request, error.status_code, str(error.detail))
        headers = dict(error.headers or {})
        if error.status_code == 401:
            headers.update(BEARER)
        return problem(error.status_code, str(error.detail), headers=headers or None)
