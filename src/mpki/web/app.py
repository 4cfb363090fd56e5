"""FastAPI application factory; errors are RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response

from mpki import __version__
from mpki.ca import CertificationAuthority
from mpki.ra import Directory
from mpki.ra.intake import Registration
from mpki.ra.logins import PortalLogins
from mpki.reports.schedule import ReportSchedule
from mpki.repository import Repository
from mpki.status import StatusMaintainer, StatusService
from mpki.web import portal, problems
from mpki.web.api import Services, router
from mpki.web.clientcert import trusted_proxies as parse_trusted_proxies
from mpki.web.limits import BodyLimit
from mpki.web.metrics import HttpMetrics, MeteredRevocations, Metrics
from mpki.web.ocsp_endpoint import OcspEndpoint
from mpki.web.problems import PROBLEM, problem
from mpki.web.report_worker import ReportWorker
from mpki.web.repository_routes import repository_router
from mpki.web.status_routes import crl_router, revocation_router
from mpki.web.worker import BatchWorker

__all__ = ["PROBLEM", "create_app", "problem"]


def create_app(
    authority: CertificationAuthority, *, start_worker: bool = True, trusted_proxies: Iterable[str] | None = None
) -> FastAPI:
    """The app for one installation. With `start_worker` a thread processes submitted batches for as
    long as the app runs (started and stopped by the lifespan). `trusted_proxies` (default: the
    `MPKI_TRUSTED_PROXIES` environment variable) may forward client certificates in RFC 9440 Client-Cert.
    With `start_worker` a second thread keeps status fresh: CRLs, OCSP responder certificates and responses,
    and a third keeps the scheduled weekly and monthly reports."""
    metrics = Metrics(authority.database)
    registration = Registration(authority.database, authority, on_issued=metrics.count_issued)
    worker = BatchWorker(registration)
    status = StatusService(authority)
    maintainer = StatusMaintainer(status)
    reports = ReportWorker(
        ReportSchedule(authority.database, authority.settings),
        interval=authority.settings.reports.schedule_check_minutes * 60,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            worker.start()
            maintainer.start()
            reports.start()
        try:
            yield
        finally:
            worker.stop()
            maintainer.stop()
            reports.stop()

    app = FastAPI(
        title="mpki",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = Services(
        authority,
        Directory(authority.database),
        registration,
        status,
        MeteredRevocations(authority.database, status, metrics),
    )
    app.state.worker = worker
    app.state.repository = Repository(authority.database, authority.settings)
    app.state.trusted_proxies = parse_trusted_proxies(trusted_proxies)
    app.state.metrics = metrics
    app.state.logins = PortalLogins(authority.database, authority.settings.portal)
    problems.install(app)
    portal.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(HttpMetrics, metrics=metrics)  # outside BodyLimit: a 413 is counted too
    # outermost: OCSP answers skip routing (and are counted by outcome, not by HTTP route)
    app.add_middleware(OcspEndpoint, service=status.ocsp, observe=metrics.ocsp_answered)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        cas = authority.list_cas()
        return {"status": "ok", "version": __version__, "cas": len(cas)}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text format, no login; see mpki.web.metrics for what is counted where."""
        return metrics.response()

    @app.get("/api/v1/cas", tags=["service"], responses=problems.documented(404))
    def list_cas() -> list[dict[str, object]]:
        return [view.as_json() for view in authority.list_cas()]

    @app.get("/api/v1/cas/{name}", tags=["service"], responses=problems.documented(404))
    def get_ca(name: str) -> dict[str, object]:
        return authority.get_ca(name).as_json()

    app.include_router(router)
    app.include_router(revocation_router)
    app.include_router(crl_router)
    app.include_router(repository_router)
    return app
