"""Prometheus metrics at GET /metrics (text exposition format 0.0.4; no login).

Two kinds of figure, chosen for `mpki serve --workers N` on several nodes:

- Per process (counters and histograms of what *this* process did since it started): HTTP requests by
  route template and status with their latency, OCSP answers by outcome with their latency, certificates
  issued and revoked here. Prometheus sums them over processes: `sum(rate(mpki_certificates_issued_total[5m]))`.
  Totals since the installation began are not counted per scrape (count(*) over 10^8 certificates is
  not cheap); they are the reports' business (`mpki report`).
- Installation-wide, read from the database at scrape time by indexed queries: the batch queue depth
  (batches submitted or processing) and the requests pending an RA decision. Every process reports
  the same values; aggregate them with max(), not sum().

Each app has its own CollectorRegistry, so several apps in one process (tests) never clash. With
several workers behind one port a scrape reaches one of them; PROMETHEUS_MULTIPROC_DIR (an empty
directory, the same for all workers, set before they start) makes prometheus_client's multiprocess mode
sum the per-process figures over the workers. `mpki serve --workers N` (N > 1) sets it to a fresh
directory under the run directory for as long as it serves, unless the operator set one already
(`mpki.reports.prometheus.shared_metrics_dir`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mpki.domain import RevocationReason
from mpki.ra.authorisation import Principal
from mpki.ra.revocation import RevocationDesk
from mpki.reports.prometheus import MULTIPROCESS_ENV
from mpki.status import RevocationOutcome, StatusService
from mpki.status.ocsp import INTERNAL_ERROR, MALFORMED, TRY_LATER, UNAUTHORIZED
from mpki.store import BatchRepository, Database, RequestRepository

log = logging.getLogger("mpki.web.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUED = ("submitted", "processing")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # a path no route knows: one label value, whatever the path
OCSP_OUTCOMES = ("cache_hit", "signed", "malformed", "unauthorized", "tryLater", "internalError", "refused")
# The unsuccessful answers the OCSP service gives (the same bytes objects every time).
_UNSUCCESSFUL = {
    MALFORMED: "malformed",
    UNAUTHORIZED: "unauthorized",
    TRY_LATER: "tryLater",
    INTERNAL_ERROR: "internalError",
}
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OCSP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DatabaseGauges(Collector):
    """Installation-wide gauges read at scrape time: two grouped counts by the status indexes."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mpki_database_up", "1 when this scrape's database queries answered, else 0")
        try:
            with self.database.reader() as session:
                batches = BatchRepository(session).count_by_status(QUEUED)
                requests = RequestRepository(session).count_by_status(("pending",))
        except Exception:  # a scrape reports the outage rather than failing
            log.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        queue = GaugeMetricFamily(
            "mpki_batch_queue_depth",
            "Batches waiting for or in the hands of a batch worker, by status (installation-wide)",
            labels=["status"],
        )
        for status in QUEUED:
            queue.add_metric([status], batches.get(status, 0))
        yield queue
        yield GaugeMetricFamily(
            "mpki_requests_pending",
            "Certificate requests held for an RA decision (installation-wide)",
            value=requests.get("pending", 0),
        )
        up.add_metric([], 1)
        yield up


class Metrics:
    """The metric families of one app and the registry /metrics renders."""

    def __init__(self, database: Database) -> None:
        self.registry = CollectorRegistry()
        multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        # In multiprocess mode the values live in files shared by the workers; one collector reads them all.
        own = None if multiprocess else self.registry
        if multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            ProcessCollector(namespace="mpki", registry=self.registry)
        self.registry.register(DatabaseGauges(database))
        self.http_requests = Counter(
            "mpki_http_requests",
            "HTTP requests answered by this process, by method, route template and status (OCSP excluded)",
            ["method", "route", "status"],
            registry=own,
        )
        self.http_seconds = Histogram(
            "mpki_http_request_duration_seconds",
            "Time to answer an HTTP request in this process, by method and route template (OCSP excluded)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=own,
        )
        self.ocsp_responses = Counter(
            "mpki_ocsp_responses",
            "OCSP requests answered by this process, by outcome: cache_hit (from memory), signed (stored or "
            "signed now), malformed, unauthorized, tryLater, internalError, refused (HTTP 4xx, no OCSP answer)",
            ["outcome"],
            registry=own,
        )
        self.ocsp_seconds = Histogram(
            "mpki_ocsp_response_duration_seconds",
            "Time to answer an OCSP request in this process",
            buckets=OCSP_BUCKETS,
            registry=own,
        )
        self.issued = Counter(
            "mpki_certificates_issued",
            "Certificates issued by this process (API requests, approvals and its batch worker), by profile",
            ["profile"],
            registry=own,
        )
        self.revoked = Counter(
            "mpki_certificates_revoked",
            "Certificates revoked through this process's API, by reason (CA certificates included)",
            ["reason"],
            registry=own,
        )
        # Bound once: the OCSP hot path pays one increment and one observation, no label lookup.
        self._ocsp = {outcome: self.ocsp_responses.labels(outcome) for outcome in OCSP_OUTCOMES}
        self._ocsp_observe = self.ocsp_seconds.observe

    # ----- hooks ----------------------------------------------------------------------------------

    def count_issued(self, profile: str, count: int) -> None:
        """The `Registration.on_issued` hook."""
        self.issued.labels(profile).inc(count)

    def count_revoked(self, outcome: RevocationOutcome) -> None:
        self.revoked.labels(outcome.reason.rfc_name).inc(len(outcome.serials))

    def ocsp_answered(self, der: bytes | None, cached: bool, seconds: float) -> None:
        """One OCSP request: `der` is the answer sent (None: refused with an HTTP error)."""
        if cached:
            outcome = "cache_hit"
        elif der is None:
            outcome = "refused"
        else:
            outcome = _UNSUCCESSFUL.get(der, "signed")
        self._ocsp[outcome].inc()
        self._ocsp_observe(seconds)

    # ----- rendering ------------------------------------------------------------------------------

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)


class MeteredRevocations(RevocationDesk):
    """The RA's revocation desk, counting what it revokes."""

    def __init__(self, database: Database, status: StatusService, metrics: Metrics) -> None:
        super().__init__(database, status)
        self.metrics = metrics

    def revoke(
        self, principal: Principal, serial: str, reason: RevocationReason, *, ca_name: str | None = None
    ) -> RevocationOutcome:
        outcome = super().revoke(principal, serial, reason, ca_name=ca_name)
        self.metrics.count_revoked(outcome)
        return outcome

    def approve_ca_revocation(self, principal: Principal, proposal_id: int) -> RevocationOutcome:
        outcome = super().approve_ca_revocation(principal, proposal_id)
        self.metrics.count_revoked(outcome)
        return outcome


class HttpMetrics:
    """ASGI middleware: counts and times every HTTP request by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped to the server

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_seconds.labels(method, template).observe(time.perf_counter() - started)
