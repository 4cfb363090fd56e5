"""FastAPI application factory; errors are RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mpki import __version__
from mpki.ca import CertificationAuthority
from mpki.domain import InvalidRequest, MpkiError, NotFound

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM,
    )


def create_app(authority: CertificationAuthority) -> FastAPI:
    app = FastAPI(title="mpki", version=__version__, openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs")

    @app.exception_handler(MpkiError)
    async def _mpki_error(_request: Request, error: MpkiError) -> JSONResponse:
        if isinstance(error, NotFound):
            return problem(404, "Not Found", str(error))
        if isinstance(error, InvalidRequest):
            return problem(400, "Bad Request", str(error))
        return problem(500, "Internal Error", str(error))

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        cas = authority.list_cas()
        return {"status": "ok", "version": __version__, "cas": len(cas)}

    @app.get("/api/v1/cas")
    def list_cas() -> list[dict[str, object]]:
        return [view.as_json() for view in authority.list_cas()]

    @app.get("/api/v1/cas/{name}")
    def get_ca(name: str) -> dict[str, object]:
        return authority.get_ca(name).as_json()

    return app
