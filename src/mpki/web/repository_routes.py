"""The public repository over HTTP, without login: `/repository` (HTML), `/api/v1/repository` (JSON) and
certificate, chain and CA downloads under `/repository/...` (the caIssuers URLs point here)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from mpki.domain import (
    CertificateStatus,
    InvalidRequest,
    KeyUsageChoice,
    NotFound,
    RemotePartyRole,
    utcnow,
)
from mpki.repository import Repository, SearchFilters, SearchPage, normalise_serial, role_name
from mpki.web.api import PAGE_MAX, PEM_CHAIN, After, Limit, pem_of
from mpki.web.problems import documented
from mpki.web.templating import templates

CERT_TYPE = "application/pkix-cert"
# A certificate's bytes never change (its status does, and is not in them): caches may keep it a day.
IMMUTABLE = "public, max-age=86400"
# The page holds only the service's own stylesheet: no scripts, no other origins, no framing.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML_PAGE_SIZE = 50


def repository(request: Request) -> Repository:
    found: Repository = request.app.state.repository
    return found


Repo = Annotated[Repository, Depends(repository)]
Serial = Annotated[str, Path(max_length=64, description="Hex, with or without colons or 0x")]
CaName = Annotated[str, Path(max_length=64)]
IssuingCa = Annotated[
    str | None, Query(max_length=64, description="The issuing CA, needed only if the serial is ambiguous")
]

pem_response: dict[int | str, dict[str, Any]] = {
    200: {"description": "PEM", "content": {PEM_CHAIN: {"schema": {"type": "string"}}}}
}
der_response: dict[int | str, dict[str, Any]] = {
    200: {"description": "DER", "content": {CERT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
}

api_router = APIRouter(prefix="/api/v1/repository", tags=["repository"], responses=documented(400, 404, 422))
download_router = APIRouter(prefix="/repository", tags=["repository"], responses=documented(400, 404, 422))
html_router = APIRouter()
repository_router = APIRouter()


def _filters(
    serial: Annotated[str | None, Query(max_length=64, description="Hex serial", examples=["3f9a"])] = None,
    eui64: Annotated[
        str | None,
        Query(max_length=32, description="16 hex digits: an organisation's subject or a device's SAN"),
    ] = None,
    organisation: Annotated[str | None, Query(max_length=128, description="The organisation's name")] = None,
    role: Annotated[str | None, Query(max_length=40, description="Remote-party role: name or code")] = None,
    key_usage: Annotated[str | None, Query(max_length=32, description="digitalSignature or keyAgreement")] = None,
    status: Annotated[str | None, Query(max_length=16, description="issued, revoked or superseded")] = None,
) -> SearchFilters:
    return SearchFilters(serial, eui64, organisation, role, key_usage, status)


def _form_filters(
    serial: str | None = None,
    eui64: str | None = None,
    organisation: str | None = None,
    role: str | None = None,
    key_usage: str | None = None,
    status: str | None = None,
) -> SearchFilters:
    """The HTML form's filters, unbounded here: the service refuses a long value, and the page says why."""
    return SearchFilters(serial, eui64, organisation, role, key_usage, status)


Filters = Annotated[SearchFilters, Depends(_filters)]
FormFilters = Annotated[SearchFilters, Depends(_form_filters)]


def _download(body: bytes | str, media_type: str, filename: str) -> Response:
    headers = {"Cache-Control": IMMUTABLE, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


def _pems(ders: list[bytes]) -> str:
    return "".join(pem_of(der) for der in ders)


# ----- JSON ----------------------------------------------------------------------------------------


@api_router.get("")
def search_certificates(filters: Filters, repo: Repo, after: After = 0, limit: Limit = 100) -> dict[str, Any]:
    """Search published certificates; every filter given must match. No login. Page on with `after`."""
    found = repo.search(filters, after=after, limit=limit)
    now = utcnow()
    return {"items": [e.as_json(repo.base_url, now) for e in found.items], "next_after": found.next_after}


@api_router.get("/certificates/{serial}")
def get_certificate(serial: Serial, repo: Repo, ca: IssuingCa = None) -> dict[str, Any]:
    """One certificate's details, links and PEM."""
    entry, der = repo.certificate(serial, ca)
    return entry.as_json(repo.base_url, utcnow()) | {"pem": pem_of(der)}


@api_router.get("/cas")
def list_cas(repo: Repo) -> dict[str, Any]:
    """Every published CA certificate, active or revoked, with download and CRL links."""
    return {"items": [entry.as_json(repo.base_url) for entry in repo.cas()]}


@api_router.get("/crls")
def list_crls(repo: Repo) -> dict[str, Any]:
    """The newest full CRL (a root's is its ARL) and delta CRL of each CA."""
    return {"items": [entry.as_json(repo.base_url) for entry in repo.crls()]}


# ----- downloads -----------------------------------------------------------------------------------


@download_router.get("/certificates/{serial}.pem", responses=pem_response)
def certificate_pem(serial: Serial, repo: Repo, ca: IssuingCa = None) -> Response:
    entry, der = repo.certificate(serial, ca)
    return _download(pem_of(der), PEM_CHAIN, f"{entry.serial}.pem")


@download_router.get("/certificates/{serial}.der", responses=der_response)
def certificate_der(serial: Serial, repo: Repo, ca: IssuingCa = None) -> Response:
    entry, der = repo.certificate(serial, ca)
    return _download(der, CERT_TYPE, f"{entry.serial}.der")


@download_router.get("/certificates/{serial}/chain.pem", responses=pem_response)
def certificate_chain(serial: Serial, repo: Repo, ca: IssuingCa = None) -> Response:
    """The certificate, then each CA certificate up to and including the root."""
    return _download(_pems(repo.chain(serial, ca)), PEM_CHAIN, f"{normalise_serial(serial)}-chain.pem")


@download_router.get("/cas/{name}.crt", responses=der_response)
def ca_certificate_der(name: CaName, repo: Repo) -> Response:
    """The CA certificate as DER: the caIssuers URL in the certificates this CA issues."""
    return _download(repo.ca_certificate(name), CERT_TYPE, f"{name}.crt")


@download_router.get("/cas/{name}.pem", responses=pem_response)
def ca_certificate_pem(name: CaName, repo: Repo) -> Response:
    return _download(pem_of(repo.ca_certificate(name)), PEM_CHAIN, f"{name}.pem")


@download_router.get("/cas/{name}/chain.pem", responses=pem_response)
def ca_chain(name: CaName, repo: Repo) -> Response:
    return _download(_pems(repo.ca_chain(name)), PEM_CHAIN, f"{name}-chain.pem")


# ----- HTML ----------------------------------------------------------------------------------------


@html_router.get("/repository", response_class=HTMLResponse, include_in_schema=False)
def repository_page(
    request: Request,
    filters: FormFilters,
    repo: Repo,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = HTML_PAGE_SIZE,
) -> HTMLResponse:
    """Search form, results, CA certificates and CRLs: server-rendered, usable without scripts."""
    results: SearchPage | None = None
    error, status_code = None, 200
    if request.query_params:
        try:
            results = repo.search(filters, after=after, limit=limit)
        except InvalidRequest as problem:
            error, status_code = str(problem), 400
        except NotFound as problem:
            error, status_code = str(problem), 404
    given = filters.given()
    next_link = None
    if results is not None and results.next_after is not None:
        next_link = "/repository?" + urlencode(given | {"after": results.next_after, "limit": limit})
    html = templates.get_template("repository.html").render(
        filters=given,
        results=results,
        error=error,
        next_link=next_link,
        now=utcnow(),
        cas=repo.cas(),
        crls=repo.crls(),
        roles=[(role_name(role.code), f"{role_name(role.code)} ({role.code})") for role in RemotePartyRole],
        key_usages=[usage.value for usage in KeyUsageChoice],
        statuses=[status.value for status in CertificateStatus],
    )
    return HTMLResponse(html, status_code=status_code, headers=HTML_HEADERS)


repository_router.include_router(api_router)
repository_router.include_router(download_router)
repository_router.include_router(html_router)
